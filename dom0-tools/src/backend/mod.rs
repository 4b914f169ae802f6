//! The virtio-blk backend: `keel backend <domain> --disk <path>,<mode> ...`
//! (hidden; `keel create` starts it, `keel destroy` stops it).
//!
//! It maps the DomU's RAM through the memory window ([`window`]), waits
//! for notifications ([`notify`], [`uio`]) and serves each disk with
//! keel-virtio's device model ([`blk`]). Its run files are described in
//! [`runfiles`]; how it is started and stopped in [`supervisor`]. It
//! exits on SIGTERM and when the domain is gone.

pub mod blk;
pub mod notify;
pub mod runfiles;
pub mod supervisor;
pub mod uio;
pub mod window;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use keel_abi::mgmt::virtio::{control_bit, device_type, kick_bit, MAX_DEVICES};
use keel_abi::mgmt::{DomainId, Status};
use keel_virtio::blk::BlockBackend;
use keel_virtio::GuestMemory;

use self::blk::{disk_model, open_image, DiskDevice, DomainCalls, ImageFile, VirtioCalls};
use self::notify::{Notifier, Wakeup, IDLE};
use self::runfiles::{create_run_dir, DiskRecord, PidLock, ReadyInfo, RunFiles, RUN_DIR};
use self::uio::{SlotHw, Sysfs};
use crate::client::{is_status, Client};
use crate::config::Disk;
use crate::device::Device;
use crate::sys;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BackendArgs {
    /// The DomU's id
    pub domain: DomainId,
    /// A disk as PATH,rw or PATH,ro; the n-th is the domain's virtio device n
    #[arg(long = "disk", value_name = "PATH,MODE", required = true)]
    pub disks: Vec<String>,
    /// Where the pid, ready and log files are
    #[arg(long, value_name = "DIR", default_value = RUN_DIR)]
    pub run_dir: PathBuf,
}

/// Runs the backend until it is stopped or the domain is gone; `log` is
/// its stderr (the log file).
pub fn run(args: &BackendArgs, log: &mut dyn Write) -> Result<()> {
    let id = args.domain;
    let disks = args
        .disks
        .iter()
        .map(|spec| Disk::parse(spec, Path::new("")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| anyhow!("--disk {reason}"))?;
    ensure!(disks.len() <= MAX_DEVICES, "at most {MAX_DEVICES} disks");
    create_run_dir(&args.run_dir)?;
    let files = RunFiles::new(&args.run_dir, id);
    let _pid = PidLock::acquire(&files)?;
    let result = serve(id, &disks, &files, log);
    let _ = std::fs::remove_file(files.ready());
    result
}

fn serve(id: DomainId, disks: &[Disk], files: &RunFiles, log: &mut dyn Write) -> Result<()> {
    let mut images = Vec::new();
    for disk in disks {
        let (file, len) = open_image(&disk.path, disk.read_only).map_err(|reason| anyhow!(reason))?;
        images.push(ImageFile::new(file, len));
    }
    let device = Device::open()?;
    let dir = device.dir().to_path_buf();
    let mut keel = DomainCalls {
        client: Client::connect(device)?,
        id,
    };
    let slot = keel
        .client
        .window_map(id)
        .with_context(|| format!("cannot map domain {id}'s memory"))?;
    let mut memory = window::map_window(&dir, &slot)?;
    let mut devices = Vec::new();
    for (index, (disk, image)) in disks.iter().zip(images).enumerate() {
        let state = keel
            .state(index)
            .with_context(|| format!("cannot read virtio device {index} of domain {id}"))?;
        ensure!(
            state.device_type == device_type::BLOCK && state.num_queues >= 1,
            "virtio device {index} of domain {id} is not a block device with a queue (type {}, {} queues)",
            state.device_type,
            state.num_queues
        );
        let model = disk_model(index, image.len(), disk.read_only);
        devices.push(DiskDevice::new(index, model, image, usize::from(state.num_queues)));
    }
    let (hw, nap) = SlotHw::open(&dir, slot.slot, &Sysfs::system(), log)?;
    let notifications = hw.mode().to_string();
    let mut notifier = Notifier::new(hw, nap, IDLE);
    sys::install_stop_handler().context("cannot install the signal handlers")?;
    files.write_ready(&ReadyInfo {
        domain: id,
        pid: std::process::id(),
        slot: slot.slot,
        notifications: notifications.clone(),
        disks: disks
            .iter()
            .zip(&devices)
            .map(|(disk, device)| DiskRecord {
                index: device.index(),
                path: disk.path.display().to_string(),
                read_only: disk.read_only,
                sectors: device.capacity(),
            })
            .collect(),
    })?;
    writeln!(
        log,
        "keel backend {id}: serving {} disk(s); window slot {}, {} MiB; {notifications} notifications",
        devices.len(),
        slot.slot,
        slot.ram_bytes >> 20
    )?;
    let reason = serve_loop(&mut keel, &mut memory, &mut devices, &mut notifier, log)?;
    writeln!(log, "keel backend {id}: {reason}; exiting")?;
    Ok(())
}

/// Logs a device's notes and a failed call; `Some` when the domain is gone.
fn outcome<B: BlockBackend>(result: Result<()>, device: &mut DiskDevice<B>, log: &mut dyn Write) -> Option<String> {
    for note in device.take_notes() {
        let _ = writeln!(log, "keel backend: {note}");
    }
    match result {
        Ok(()) => None,
        Err(error) if is_status(&error, Status::NoSuchDomain) => Some("the domain is gone".to_string()),
        Err(error) => {
            let _ = writeln!(log, "keel backend: device {}: {error:#}", device.index());
            None
        }
    }
}

pub(crate) fn serve_loop<C, M, B, H>(
    keel: &mut C,
    memory: &mut M,
    devices: &mut [DiskDevice<B>],
    notifier: &mut Notifier<H>,
    log: &mut dyn Write,
) -> Result<String>
where
    C: VirtioCalls,
    M: GuestMemory,
    B: BlockBackend,
    H: notify::NotifyHw,
{
    // The driver may have set the device up before the backend started.
    for device in devices.iter_mut() {
        let result = device.on_control(keel, memory);
        if let Some(reason) = outcome(result, device, log) {
            return Ok(reason);
        }
    }
    loop {
        let bits = if devices.iter().any(DiskDevice::has_more) {
            notifier.poll()?
        } else {
            match notifier.wait(sys::stop_requested)? {
                Wakeup::Pending(bits) => bits,
                Wakeup::Stop => return Ok("stopped by a signal".to_string()),
                Wakeup::Idle => {
                    // Quiet for a while: is the domain still there?
                    match keel.state(0) {
                        Err(error) if is_status(&error, Status::NoSuchDomain) => {
                            return Ok("the domain is gone".to_string())
                        }
                        Err(error) => writeln!(log, "keel backend: {error:#}")?,
                        Ok(_) => {}
                    }
                    continue;
                }
            }
        };
        if sys::stop_requested() {
            return Ok("stopped by a signal".to_string());
        }
        for device in devices.iter_mut() {
            let index = device.index();
            let result = if bits & control_bit(index) != 0 {
                device.on_control(keel, memory)
            } else if bits & kick_bit(index) != 0 || device.has_more() {
                device.serve(keel, memory)
            } else {
                continue;
            };
            if let Some(reason) = outcome(result, device, log) {
                return Ok(reason);
            }
        }
    }
}

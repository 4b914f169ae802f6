//! The virtio backend: `keel backend <domain> --disk <path>,<mode> ... --vif mac=<mac> ... [--console]`
//! (hidden; `keel create` starts it, `keel destroy` stops it).
//!
//! It maps the DomU's RAM through the memory window ([`window`]), waits
//! for notifications ([`notify`], [`uio`]) and for frames from the switch
//! ([`crate::switch_daemon`]) and console clients ([`console_link`]), and
//! serves each disk ([`blk`]), network interface ([`net`]) and console
//! ([`console`]) with keel-virtio's device models; the transport
//! state both share is in [`queues`] and [`calls`]. Its run files are described in
//! [`runfiles`]; how it is started and stopped in [`supervisor`]. It
//! exits on SIGTERM and when the domain is gone.

pub mod blk;
pub mod calls;
pub mod console;
pub mod console_link;
pub mod net;
pub mod notify;
pub mod queues;
pub mod runfiles;
pub mod supervisor;
pub mod uio;
pub mod window;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use keel_abi::mgmt::virtio::{control_bit, device_type, kick_bit, MAX_DEVICES};
use keel_abi::mgmt::{DomainId, Status};
use keel_virtio::blk::BlockBackend;
use keel_virtio::GuestMemory;

use self::blk::{disk_model, open_image, DiskDevice, ImageFile};
use self::calls::{DomainCalls, VirtioCalls};
use self::console::{console_model, ConsoleDevice, ConsoleLink};
use self::console_link::SocketLink;
use self::net::{nic_model, FramePort, NicDevice};
use self::notify::{Notifier, Wakeup, IDLE};
use self::queues::CoreDevice;
use self::runfiles::{create_run_dir, ConsoleRecord, DiskRecord, NicRecord, PidLock, ReadyInfo, RunFiles, RUN_DIR};
use self::supervisor::BackendDevices;
use self::uio::{SlotHw, Sysfs};
use crate::client::{is_status, Client};
use crate::config::Disk;
use crate::device::Device;
use crate::switch_daemon::SwitchPort;
use crate::sys;
use crate::vif::{MacText, Nic};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group(clap::ArgGroup::new("devices").required(true).multiple(true).args(["disks", "vifs", "console"])))]
pub struct BackendArgs {
    /// The DomU's id
    pub domain: DomainId,
    /// A disk as PATH,rw or PATH,ro; the n-th is the domain's virtio device n
    #[arg(long = "disk", value_name = "PATH,MODE")]
    pub disks: Vec<String>,
    /// A network interface as mac=MAC[,mtu=MTU]; they follow the disks
    #[arg(long = "vif", value_name = "mac=MAC")]
    pub vifs: Vec<String>,
    /// A virtio console (the guest's hvc0), after the interfaces
    #[arg(long)]
    pub console: bool,
    /// Where the pid, ready and log files are (and the switch's socket)
    #[arg(long, value_name = "DIR", default_value = RUN_DIR)]
    pub run_dir: PathBuf,
}

/// One device the backend serves, whatever its type: what the loop needs
/// (its index, leftover work and notes come from [`CoreDevice`]).
pub trait Served<C: VirtioCalls, M: GuestMemory>: CoreDevice {
    fn on_control(&mut self, keel: &mut C, memory: &mut M) -> Result<()>;
    fn serve(&mut self, keel: &mut C, memory: &mut M) -> Result<()>;
    /// Adds the descriptors whose readability means input for the device
    /// (a switch port, a console socket) while it can take input.
    fn input_fds(&self, _fds: &mut Vec<RawFd>) {}
    /// Adds the descriptors the device waits to write to (output a slow
    /// reader has not taken yet); their writability wakes the loop, which
    /// then calls [`on_input`](Self::on_input).
    fn output_fds(&self, _fds: &mut Vec<RawFd>) {}
    fn on_input(&mut self, _keel: &mut C, _memory: &mut M) -> Result<()> {
        Ok(())
    }
}

impl<C: VirtioCalls, M: GuestMemory, B: BlockBackend> Served<C, M> for DiskDevice<B> {
    fn on_control(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        DiskDevice::on_control(self, keel, memory)
    }
    fn serve(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        DiskDevice::serve(self, keel, memory)
    }
}

impl<C: VirtioCalls, M: GuestMemory, P: FramePort> Served<C, M> for NicDevice<P> {
    fn on_control(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        NicDevice::on_control(self, keel, memory)
    }
    fn serve(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        NicDevice::serve(self, keel, memory)
    }
    fn input_fds(&self, fds: &mut Vec<RawFd>) {
        fds.extend(NicDevice::input_fd(self));
    }
    fn on_input(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        NicDevice::on_input(self, keel, memory)
    }
}

impl<C: VirtioCalls, M: GuestMemory, L: ConsoleLink> Served<C, M> for ConsoleDevice<L> {
    fn on_control(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        ConsoleDevice::on_control(self, keel, memory)
    }
    fn serve(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        ConsoleDevice::serve(self, keel, memory)
    }
    fn input_fds(&self, fds: &mut Vec<RawFd>) {
        ConsoleDevice::input_fds(self, fds)
    }
    fn output_fds(&self, fds: &mut Vec<RawFd>) {
        ConsoleDevice::output_fds(self, fds)
    }
    fn on_input(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        ConsoleDevice::on_input(self, keel, memory)
    }
}

impl FramePort for SwitchPort {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        SwitchPort::send(self, frame)
    }
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        SwitchPort::recv(self, buf)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(SwitchPort::as_raw_fd(self))
    }
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
    let nics = args
        .vifs
        .iter()
        .map(|spec| Nic::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| anyhow!("--vif {reason}"))?;
    let devices = BackendDevices {
        disks,
        nics,
        console: args.console,
    };
    ensure!(!devices.is_empty(), "no --disk, --vif or --console: nothing to serve");
    ensure!(devices.count() <= MAX_DEVICES, "at most {MAX_DEVICES} devices");
    create_run_dir(&args.run_dir)?;
    let files = RunFiles::new(&args.run_dir, id);
    let _pid = PidLock::acquire(&files)?;
    let result = serve(id, &devices, &args.run_dir, &files, log);
    let _ = std::fs::remove_file(files.ready());
    result
}

fn serve(id: DomainId, devices: &BackendDevices, run_dir: &Path, files: &RunFiles, log: &mut dyn Write) -> Result<()> {
    let BackendDevices { disks, nics, console } = devices;
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
    let mut devices: Vec<Box<dyn Served<_, _>>> = Vec::new();
    let mut disk_records = Vec::new();
    for (index, (disk, image)) in disks.iter().zip(images).enumerate() {
        expect_type(&mut keel, index, device_type::BLOCK, "a block device")?;
        let state = keel.state(index)?;
        let model = disk_model(index, image.len(), disk.read_only);
        let device = DiskDevice::new(index, model, image, usize::from(state.num_queues));
        disk_records.push(DiskRecord {
            index,
            path: disk.path.display().to_string(),
            read_only: disk.read_only,
            sectors: device.capacity(),
        });
        devices.push(Box::new(device));
    }
    let mut nic_records = Vec::new();
    for (position, nic) in nics.iter().enumerate() {
        let index = disks.len() + position;
        expect_type(&mut keel, index, device_type::NET, "a network interface")?;
        let port = SwitchPort::connect(run_dir, id, index, nic.mac)
            .with_context(|| format!("cannot connect interface {index} to the switch"))?;
        devices.push(Box::new(NicDevice::new(index, nic_model(nic), port)));
        nic_records.push(NicRecord {
            index,
            mac: MacText(&nic.mac).to_string(),
            mtu: nic.mtu,
        });
    }
    let mut console_record = None;
    if *console {
        let index = disks.len() + nics.len();
        expect_type(&mut keel, index, device_type::CONSOLE, "a console")?;
        let link = SocketLink::bind(run_dir, id)?;
        console_record = Some(ConsoleRecord {
            index,
            socket: link.path().display().to_string(),
        });
        devices.push(Box::new(ConsoleDevice::new(index, console_model(), link)));
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
        disks: disk_records,
        nics: nic_records,
        console: console_record,
    })?;
    writeln!(
        log,
        "keel backend {id}: serving {} disk(s), {} interface(s){}; window slot {}, {} MiB; {notifications} notifications",
        disks.len(),
        nics.len(),
        if *console { " and a console" } else { "" },
        slot.slot,
        slot.ram_bytes >> 20
    )?;
    let reason = serve_loop(&mut keel, &mut memory, &mut devices, &mut notifier, log)?;
    writeln!(log, "keel backend {id}: {reason}; exiting")?;
    Ok(())
}

/// Checks that Keel's device `index` of the domain has type `kind`.
fn expect_type<C: VirtioCalls>(keel: &mut C, index: usize, kind: u16, what: &str) -> Result<()> {
    let state = keel
        .state(index)
        .with_context(|| format!("cannot read virtio device {index}"))?;
    ensure!(
        state.device_type == kind && state.num_queues >= 1,
        "virtio device {index} is not {what} with a queue (type {}, {} queues)",
        state.device_type,
        state.num_queues
    );
    Ok(())
}

/// Logs a device's notes and a failed call; `Some` when the domain is gone.
fn outcome<C: VirtioCalls, M: GuestMemory>(
    result: Result<()>,
    device: &mut dyn Served<C, M>,
    log: &mut dyn Write,
) -> Option<String> {
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

pub(crate) fn serve_loop<C, M, H>(
    keel: &mut C,
    memory: &mut M,
    devices: &mut [Box<dyn Served<C, M> + '_>],
    notifier: &mut Notifier<H>,
    log: &mut dyn Write,
) -> Result<String>
where
    C: VirtioCalls,
    M: GuestMemory,
    H: notify::NotifyHw,
{
    // The driver may have set the device up before the backend started.
    for device in devices.iter_mut() {
        let result = device.on_control(keel, memory);
        if let Some(reason) = outcome(result, device.as_mut(), log) {
            return Ok(reason);
        }
    }
    let mut inputs: Vec<RawFd> = Vec::new();
    let mut outputs: Vec<RawFd> = Vec::new();
    let mut takes_input = [false; MAX_DEVICES];
    loop {
        inputs.clear();
        outputs.clear();
        for device in devices.iter() {
            let before = (inputs.len(), outputs.len());
            device.input_fds(&mut inputs);
            device.output_fds(&mut outputs);
            takes_input[device.index() % MAX_DEVICES] = (inputs.len(), outputs.len()) != before;
        }
        let bits = if devices.iter().any(|device| device.has_more()) {
            notifier.poll()?
        } else {
            match notifier.wait(sys::stop_requested, &inputs, &outputs)? {
                Wakeup::Pending(bits) => bits,
                Wakeup::Input => 0,
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
            } else if takes_input[index % MAX_DEVICES] {
                // Cheap when nothing waits: a refused non-blocking read.
                device.on_input(keel, memory)
            } else {
                continue;
            };
            if let Some(reason) = outcome(result, device.as_mut(), log) {
                return Ok(reason);
            }
        }
    }
}

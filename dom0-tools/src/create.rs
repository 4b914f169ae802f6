//! `keel create`: Create, PciAttach (each of the config's `pci` devices),
//! LoadImage (kernel, initrd, command line, in chunks that fit the data
//! area), VirtioAttach (each of the config's disks, each vif, the
//! console), the backend (and for vifs the switch) started and ready,
//! Boot; a half-built domain is destroyed (its backend stopped first) when
//! any step after Create fails.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, ensure, Context, Result};
use keel_abi::mgmt::virtio::{device_type, queue_shape};
use keel_abi::mgmt::{layout, pci_function_flags, DomainId, ImageKind, PciAddress, Status};
use keel_virtio::blk::QUEUE_SIZE;
use keel_virtio::console::{NUM_QUEUES as CONSOLE_QUEUES, QUEUE_SIZE as CONSOLE_QUEUE_SIZE};
use keel_virtio::net::{NUM_QUEUES as NET_QUEUES, QUEUE_SIZE as NET_QUEUE_SIZE};

use crate::backend::blk::{disk_model, open_image};
use crate::backend::console::console_model;
use crate::backend::net::nic_model;
use crate::backend::supervisor::{BackendDevices, Backends};
use crate::client::{is_status, Client};
use crate::config::{Config, ConfigError, Disk};
use crate::transport::Transport;
use crate::vif::{MacText, Nic};

/// An image to stage, streamed so that a large initrd need not fit in
/// Dom0's memory at once.
pub struct Image {
    pub kind: ImageKind,
    /// What error messages call it (the file's path, or "command line").
    pub label: String,
    pub len: u64,
    pub reader: Box<dyn Read>,
}

pub fn kind_name(kind: ImageKind) -> &'static str {
    match kind {
        ImageKind::Kernel => "kernel",
        ImageKind::Initrd => "initrd",
        ImageKind::Cmdline => "command line",
    }
}

impl Image {
    pub fn from_bytes(kind: ImageKind, label: &str, bytes: Vec<u8>) -> Self {
        Self {
            kind,
            label: label.to_string(),
            len: bytes.len() as u64,
            reader: Box::new(std::io::Cursor::new(bytes)),
        }
    }
}

/// Opens the config's kernel and initrd and checks their sizes, before
/// anything is created: file problems must not leave a domain behind.
/// `file` is the config's name for error messages.
pub fn open_images(config: &Config, file: &str) -> Result<Vec<Image>, ConfigError> {
    let open = |key: &str, kind: ImageKind, path: &std::path::Path| {
        let fail = |reason: String| ConfigError {
            file: file.to_string(),
            key: Some(key.to_string()),
            reason,
        };
        let label = path.display().to_string();
        let opened = File::open(path).and_then(|handle| Ok((handle.metadata()?.len(), handle)));
        let (len, handle) = opened.map_err(|error| fail(format!("cannot read {label}: {error}")))?;
        let max = kind.max_bytes();
        if len == 0 {
            return Err(fail(format!("{label} is empty")));
        }
        if len > max {
            return Err(fail(format!("{label} is {len} bytes, Keel takes at most {max}")));
        }
        Ok(Image {
            kind,
            label,
            len,
            reader: Box::new(handle),
        })
    };
    let mut images = vec![open("kernel", ImageKind::Kernel, &config.kernel)?];
    if let Some(initrd) = &config.initrd {
        images.push(open("initrd", ImageKind::Initrd, initrd)?);
    }
    // An empty command line is simply not staged.
    if !config.cmdline.is_empty() {
        images.push(Image::from_bytes(
            ImageKind::Cmdline,
            "command line",
            config.cmdline.clone().into_bytes(),
        ));
    }
    Ok(images)
}

/// A disk checked before anything is created: opened in its mode, at least
/// a sector long; its path made absolute (the backend runs elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDisk {
    pub disk: Disk,
    pub len: u64,
}

/// Opens each of the config's disks as the backend will (a missing file, a
/// directory, or a rw disk on a file that cannot be written is refused
/// here, before anything is created).
pub fn open_disks(config: &Config, file: &str) -> Result<Vec<OpenDisk>, ConfigError> {
    let fail = |reason: String| ConfigError {
        file: file.to_string(),
        key: Some("disk".to_string()),
        reason,
    };
    let mut disks: Vec<OpenDisk> = Vec::with_capacity(config.disks.len());
    for disk in &config.disks {
        let (_, len) = open_image(&disk.path, disk.read_only).map_err(fail)?;
        let path: PathBuf = std::fs::canonicalize(&disk.path)
            .map_err(|error| fail(format!("cannot resolve {}: {error}", disk.path.display())))?;
        if path.to_str().is_none() {
            return Err(fail(format!("{} is not a UTF-8 path", path.display())));
        }
        if let Some(at) = disks.iter().position(|other| other.disk.path == path) {
            return Err(fail(format!(
                "{} and {} are the same file",
                config.disks[at].path.display(),
                disk.path.display()
            )));
        }
        disks.push(OpenDisk {
            disk: Disk {
                path,
                read_only: disk.read_only,
            },
            len,
        });
    }
    Ok(disks)
}

/// Gives domain `id` a virtio-blk device per disk, in order: disk `n` must
/// be device `n`, as the backend serves them.
pub fn attach_disks<T: Transport>(client: &mut Client<T>, id: DomainId, disks: &[OpenDisk]) -> Result<()> {
    for (number, open) in disks.iter().enumerate() {
        let model = disk_model(number, open.len, open.disk.read_only);
        let index = client
            .virtio_attach(
                id,
                device_type::BLOCK,
                model.device_features(),
                queue_shape(1, QUEUE_SIZE),
                &model.config(),
            )
            .with_context(|| format!("cannot attach disk {}", open.disk.path.display()))?;
        ensure!(
            index == number,
            "Keel gave disk {} device index {index}, expected {number}",
            open.disk.path.display()
        );
    }
    Ok(())
}

/// The config's interfaces with their addresses decided (generated ones
/// from the domain's name and the vif's position).
pub fn resolve_nics(config: &Config) -> Vec<Nic> {
    config
        .vifs
        .iter()
        .enumerate()
        .map(|(position, vif)| vif.resolve(&config.name, position))
        .collect()
}

/// Gives domain `id` a virtio-net device per interface, in order, after
/// its `first` disks: interface `m` must be device `first + m`.
pub fn attach_nics<T: Transport>(client: &mut Client<T>, id: DomainId, first: usize, nics: &[Nic]) -> Result<()> {
    for (position, nic) in nics.iter().enumerate() {
        let model = nic_model(nic);
        let index = client
            .virtio_attach(
                id,
                device_type::NET,
                model.device_features(),
                queue_shape(NET_QUEUES, NET_QUEUE_SIZE),
                &model.config(),
            )
            .with_context(|| format!("cannot attach interface {}", MacText(&nic.mac)))?;
        ensure!(
            index == first + position,
            "Keel gave interface {} device index {index}, expected {}",
            MacText(&nic.mac),
            first + position
        );
    }
    Ok(())
}

/// Gives domain `id` its virtio console as device `index` (the last).
pub fn attach_console<T: Transport>(client: &mut Client<T>, id: DomainId, index: usize) -> Result<()> {
    let model = console_model();
    let given = client
        .virtio_attach(
            id,
            device_type::CONSOLE,
            model.device_features(),
            queue_shape(CONSOLE_QUEUES, CONSOLE_QUEUE_SIZE),
            &model.config(),
        )
        .context("cannot attach the virtio console")?;
    ensure!(
        given == index,
        "Keel gave the console device index {given}, expected {index}"
    );
    Ok(())
}

/// Sends `image` in chunks of at most the data area's size.
pub fn load_image<T: Transport>(client: &mut Client<T>, id: DomainId, image: Image) -> Result<()> {
    let Image {
        kind,
        label,
        len,
        mut reader,
    } = image;
    let mut buffer = vec![0; layout::DATA_BYTES.min(len as usize)];
    let mut offset = 0;
    while offset < len {
        let chunk = &mut buffer[..(len - offset).min(layout::DATA_BYTES as u64) as usize];
        reader.read_exact(chunk).with_context(|| format!("reading {label}"))?;
        client
            .load_image(id, kind, offset, len, chunk)
            .with_context(|| format!("cannot load the {} ({label})", kind_name(kind)))?;
        offset += chunk.len() as u64;
    }
    Ok(())
}

/// Attaches the config's PCI devices to domain `id` (Keel hands them over
/// at boot).
pub fn attach_devices<T: Transport>(client: &mut Client<T>, id: DomainId, config: &Config) -> Result<()> {
    for &address in &config.pci {
        client
            .pci_attach(id, address, config.pci_unconfined_dma)
            .map_err(|error| {
                if is_status(&error, Status::NotConfined) {
                    anyhow!(
                        "{error:#}; set pci_unconfined_dma = true in the config to force it \
                         (the device's DMA will not be confined: it can read and write all host memory)"
                    )
                } else {
                    error
                }
            })
            .with_context(|| format!("cannot attach PCI device {address}"))?;
    }
    Ok(())
}

/// With `pci_unconfined_dma`, the config's devices no IOMMU confines (one
/// PciList before anything is created), to warn about once they are
/// attached; without it Keel refuses them.
fn unconfined_devices<T: Transport>(client: &mut Client<T>, config: &Config) -> Result<Vec<PciAddress>> {
    if !config.pci_unconfined_dma || config.pci.is_empty() {
        return Ok(Vec::new());
    }
    let functions = client.pci_list().context("cannot list the host's PCI devices")?;
    let confined = |address: &PciAddress| {
        functions
            .iter()
            .any(|function| function.address == *address && function.has(pci_function_flags::DMA_CONFINED))
    };
    Ok(config
        .pci
        .iter()
        .copied()
        .filter(|address| !confined(address))
        .collect())
}

/// What `keel create` checked and opened before calling Keel.
pub struct Staging {
    pub images: Vec<Image>,
    pub disks: Vec<OpenDisk>,
    /// The interfaces ([`resolve_nics`]).
    pub nics: Vec<Nic>,
    /// Leave the domain paused after Boot.
    pub paused: bool,
}

/// Creates, attaches devices, stages, starts the backend and boots the
/// domain; returns its id. `notes` gets what happened to a half-built
/// domain, and a warning for each device whose DMA no IOMMU confines.
pub fn create_domain<T: Transport>(
    client: &mut Client<T>,
    config: &Config,
    staging: Staging,
    backends: &mut dyn Backends,
    notes: &mut dyn Write,
) -> Result<DomainId> {
    let Staging {
        images,
        disks,
        nics,
        paused,
    } = staging;
    let name = &config.name;
    let unconfined = unconfined_devices(client, config)?;
    let devices = BackendDevices {
        disks: disks.iter().map(|open| open.disk.clone()).collect(),
        nics,
        console: config.virtio_console,
    };
    if !devices.is_empty() {
        client.require_virtio()?;
    }
    let id = client
        .create(&config.create_request())
        .with_context(|| format!("cannot create domain {name}"))?;
    let staged = attach_devices(client, id, config)
        .and_then(|()| images.into_iter().try_for_each(|image| load_image(client, id, image)))
        .and_then(|()| attach_disks(client, id, &disks))
        .and_then(|()| attach_nics(client, id, disks.len(), &devices.nics))
        .and_then(|()| {
            if !devices.console {
                return Ok(());
            }
            attach_console(client, id, devices.count() - 1)
        })
        .and_then(|()| {
            if devices.is_empty() {
                return Ok(());
            }
            backends.start(id, &devices).context("cannot start the backend")
        })
        .and_then(|()| client.boot(id, paused).context("cannot boot it"))
        .with_context(|| format!("domain {name} (id {id})"));
    if let Err(error) = staged {
        // The backend first: it maps the domain's memory.
        if !devices.is_empty() {
            if let Err(stop) = backends.stop(id) {
                let _ = writeln!(notes, "keel: could not stop the backend of {name} (id {id}): {stop:#}");
            }
        }
        // Leave nothing behind: a Building domain holds its memory until
        // destroyed, and its name would block the next attempt.
        let _ = match client.destroy(id) {
            Ok(()) => writeln!(notes, "keel: destroyed the half-built domain {name} (id {id})"),
            Err(destroy) => writeln!(
                notes,
                "keel: could not destroy the half-built domain {name} (id {id}): {destroy:#}; try `keel destroy {id}`"
            ),
        };
        return Err(error);
    }
    for address in unconfined {
        writeln!(
            notes,
            "keel: warning: {address} is attached to {name} (id {id}) with pci_unconfined_dma: no IOMMU confines \
             its DMA, so the device can read and write all host memory, Keel's and other domains'"
        )?;
    }
    Ok(id)
}

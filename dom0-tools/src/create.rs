//! `keel create`: Create, PciAttach (each of the config's `pci` devices),
//! LoadImage (kernel, initrd, command line, in chunks that fit the data
//! area), Boot; a half-built domain is destroyed when any step after
//! Create fails.

use std::fs::File;
use std::io::{Read, Write};

use anyhow::{anyhow, Context, Result};
use keel_abi::mgmt::{layout, pci_function_flags, DomainId, ImageKind, PciAddress, Status};

use crate::client::{is_status, Client};
use crate::config::{Config, ConfigError};
use crate::transport::Transport;

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

/// Creates, attaches devices, stages and boots the domain; returns its id.
/// `notes` gets what happened to a half-built domain, and a warning for
/// each device whose DMA no IOMMU confines.
pub fn create_domain<T: Transport>(
    client: &mut Client<T>,
    config: &Config,
    images: Vec<Image>,
    paused: bool,
    notes: &mut dyn Write,
) -> Result<DomainId> {
    let name = &config.name;
    let unconfined = unconfined_devices(client, config)?;
    let id = client
        .create(&config.create_request())
        .with_context(|| format!("cannot create domain {name}"))?;
    let staged = attach_devices(client, id, config)
        .and_then(|()| images.into_iter().try_for_each(|image| load_image(client, id, image)))
        .and_then(|()| client.boot(id, paused).context("cannot boot it"))
        .with_context(|| format!("domain {name} (id {id})"));
    if let Err(error) = staged {
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

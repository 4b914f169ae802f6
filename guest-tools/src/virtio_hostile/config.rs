//! What sysfs and procfs hand over: the PCI configuration space's
//! capability list, and `/proc/self/pagemap` entries.

/// A virtio structure: which BAR, where in it, how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// What the capability list says about the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub common: Region,
    pub notify: Region,
    pub notify_off_multiplier: u32,
    pub isr: Region,
    pub device: Option<Region>,
    /// Offset of the MSI-X capability in configuration space.
    pub msix: Option<u8>,
}

pub const PCI_COMMAND: usize = 0x04;
pub const PCI_COMMAND_IO: u16 = 1;
pub const PCI_COMMAND_MEMORY: u16 = 2;
pub const PCI_COMMAND_MASTER: u16 = 4;
pub const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;
const PCI_STATUS: usize = 0x06;
const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
const PCI_CAPABILITY_LIST: usize = 0x34;
/// MSI-X Message Control, 2 bytes into the capability, and its Enable bit.
pub const MSIX_CONTROL: usize = 2;
pub const MSIX_ENABLE: u16 = 1 << 15;

fn config_u16(config: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([config[at], config[at + 1]])
}

fn config_u32(config: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([config[at], config[at + 1], config[at + 2], config[at + 3]])
}

/// Walks the capability list of a 256-byte configuration space (virtio
/// 1.x, 4.1.4): the common, notification, ISR and device configuration
/// structures (the first of each type) and the MSI-X capability.
pub fn parse_capabilities(config: &[u8]) -> Result<Capabilities, String> {
    use keel_virtio::pci::{
        PCI_CAP_ID_MSIX, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_ISR_CFG,
        VIRTIO_PCI_CAP_NOTIFY_CFG,
    };
    if config.len() < 256 {
        return Err(format!("only {} bytes of configuration space", config.len()));
    }
    if config_u16(config, PCI_STATUS) & PCI_STATUS_CAP_LIST == 0 {
        return Err("no capability list".into());
    }
    let (mut common, mut notify, mut isr, mut device, mut msix) = (None, None, None, None, None);
    let mut at = usize::from(config[PCI_CAPABILITY_LIST] & 0xFC);
    // 48 capabilities of 4 bytes fill the space above the header: more is a loop.
    for _ in 0..48 {
        if at < 0x40 {
            break;
        }
        let (id, next) = (config[at], usize::from(config[at + 1] & 0xFC));
        if id == PCI_CAP_ID_MSIX && msix.is_none() {
            msix = Some(at as u8);
        }
        if id == PCI_CAP_ID_VNDR && at + 16 <= 256 {
            let region = Region {
                bar: config[at + 4],
                offset: config_u32(config, at + 8),
                length: config_u32(config, at + 12),
            };
            let slot = match config[at + 3] {
                VIRTIO_PCI_CAP_COMMON_CFG => Some(&mut common),
                VIRTIO_PCI_CAP_ISR_CFG => Some(&mut isr),
                VIRTIO_PCI_CAP_DEVICE_CFG => Some(&mut device),
                VIRTIO_PCI_CAP_NOTIFY_CFG if at + 20 <= 256 && notify.is_none() => {
                    notify = Some((region, config_u32(config, at + 16)));
                    None
                }
                _ => None,
            };
            if let Some(slot) = slot {
                slot.get_or_insert(region);
            }
        }
        at = next;
    }
    let (notify, notify_off_multiplier) = notify.ok_or("no notification capability")?;
    Ok(Capabilities {
        common: common.ok_or("no common configuration capability")?,
        notify,
        notify_off_multiplier,
        isr: isr.ok_or("no ISR capability")?,
        device,
        msix,
    })
}

// --- /proc/self/pagemap --------------------------------------------------

/// The page frame an entry of `/proc/self/pagemap` names: bit 63 present,
/// bit 62 swapped, bits 0-54 the frame (0 without CAP_SYS_ADMIN).
pub fn pagemap_frame(entry: u64) -> Result<u64, String> {
    if entry & (1 << 63) == 0 {
        return Err(format!("page not present (pagemap entry {entry:#x})"));
    }
    if entry & (1 << 62) != 0 {
        return Err(format!("page swapped out (pagemap entry {entry:#x})"));
    }
    let frame = entry & ((1 << 55) - 1);
    if frame == 0 {
        return Err("pagemap shows no frame numbers (needs root: CAP_SYS_ADMIN)".into());
    }
    Ok(frame)
}

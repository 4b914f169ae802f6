//! Host PCI functions assigned to DomUs (PCI passthrough).
//!
//! At boot Keel lists the host's functions (`keel-pci`) and reads the
//! firmware's MADT for its I/O APICs. Dom0 marks functions assignable and
//! attaches them to a DomU before it boots; when the DomU boots, each one is
//! wired:
//! - the guest sees a type-0 header with the device's identity and BARs at
//!   the host's addresses (`keel_devices::passthrough`) in a slot of its
//!   PCI bus; memory BARs are mapped one to one, uncached, into its EPT,
//!   and I/O BARs' ports (plus a legacy IDE controller's fixed ports) are
//!   opened in its I/O bitmap, so it drives the registers without exits;
//! - the device's DMA is confined to the DomU's RAM by an IOMMU domain
//!   where an enabled VT-d unit covers it; otherwise only when Dom0 forced
//!   it, with a warning that the device can reach any host memory;
//! - its interrupts are routed by the host I/O APIC to Keel's device
//!   vectors and forwarded to the DomU's I/O APIC ([`forward_pending`]):
//!   - a PCI function's INTx, level-triggered, arrives at the host input
//!     its firmware's Interrupt Line names (`HostMadt::pci_intx_route`);
//!     Keel masks the input as it fires, raises the DomU's line for the
//!     function's slot, and unmasks the input when the DomU acknowledges
//!     the interrupt or re-enables INTx ([`resample`];
//!     `platform_devices::assigned_intx` has the guest's side);
//!   - a legacy IDE controller's ISA IRQs 14 and 15 are edges. A DomU's
//!     firmware is hardware-reduced ACPI: it has no ISA IRQs, so such a
//!     controller is shown to it in native mode (programming interface
//!     bits 0 and 2 set, BARs 0-3 at the legacy ports, INTA routed like any
//!     slot's), and both host IRQs arrive on that INTx line as edges.
//!
//!   - a function's MSI ([`apply_msi`]): the guest sees an emulated
//!     one-vector MSI capability; when it enables it, Keel programs the
//!     real device with a vector of its own (through an interrupt
//!     remapping entry where a unit remaps the device's interrupts), and
//!     what arrives is delivered as the guest's own message by the model;
//!   - a function's MSI-X ([`apply_msix`], `msix`): the guest sees an
//!     emulated capability and table (the table's and PBA's pages are
//!     trapped, the rest of the BAR mapped); each entry it unmasks gets a
//!     host vector (and remapping entry) of Keel's in the real table.
//!
//! Where a remapping unit remaps interrupts (and so blocks the
//! compatibility format), every I/O APIC entry and MSI Keel programs names
//! an interrupt remapping entry (`iommu::interrupts`).
//!
//! When the DomU stops, everything is undone and the function is
//! assignable again. Two assigned functions may not share a host input.
//!
//! Here: the host's functions, assignability, and wiring and unwiring a
//! function; `bars` (EPT and I/O bitmap), `intx` (host inputs and
//! resampling), `msi` and `msix` (message interrupts), `reset`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use keel_acpi_tables::host_madt::HostMadt;
use keel_devices::passthrough::{BarMove, BarPieces, DeviceSpecific, PassthroughFunction, PassthroughWrite};
use keel_devices::passthrough_msi::HostCapabilities;
use keel_devices::pci_config::{Bar as GuestBar, BarKind as GuestBarKind, PciIdentity};
use keel_hypervisor::host_irq::{compatibility_msi, redirection_entry, Route, RouteError, Routes};
use keel_pci::bar::{Bar, BarKind};
use keel_pci::enumerate::FunctionInfo;
use keel_pci::{header, Bdf, ConfigAccess};
use multiboot2::BootInformation;
use spin::Mutex;

mod bars;
mod intx;
mod msi;
mod msix;
mod reset;

pub use bars::move_bar;
use bars::*;
pub use intx::resample;
use intx::*;
pub use msi::apply_msi;
use msi::*;
pub use msix::{apply_msix, retries as msix_retries};
pub(crate) use reset::reset_function;

use crate::arch::pci::HostConfig;
use crate::domain::Domain;
use crate::host_msix::HostMsixTable;
use crate::iommu::interrupts::Requester;
use crate::vmx::VmxVcpu;

/// A legacy (compatibility-mode) IDE channel: its fixed ports and ISA IRQ.
struct LegacyChannel {
    command_block: u16,
    control_port: u16,
    irq: u8,
    /// Programming-interface bit that says the channel is in native mode.
    native_bit: u32,
    /// The BARs a native-mode channel decodes through (command block,
    /// control block).
    bars: (u8, u8),
}

const LEGACY_IDE: [LegacyChannel; 2] = [
    LegacyChannel {
        command_block: 0x1f0,
        control_port: 0x3f6,
        irq: 14,
        native_bit: 1 << 0,
        bars: (0, 1),
    },
    LegacyChannel {
        command_block: 0x170,
        control_port: 0x376,
        irq: 15,
        native_bit: 1 << 2,
        bars: (2, 3),
    },
];
const IDE_CLASS: u32 = 0x0101;

/// Ports Keel's own virtual devices decode for every DomU (the paravirtual
/// devices' notify ports included): an assigned device's I/O BAR may not
/// cover them.
const EMULATED_PORTS: [(u16, u16); 7] = [
    (0x20, 2),
    (0x60, 5),
    (0x70, 2),
    (0x3f8, 8),
    (0x600, 16),
    (0xcf8, 8),
    (
        keel_hypervisor::platform_devices::VIRTIO_NOTIFY_PORT_BASE,
        keel_hypervisor::platform_devices::VIRTIO_NOTIFY_PORTS,
    ),
];

/// A function attached to a domain, and whether Dom0 accepted unconfined DMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub host: Bdf,
    pub unconfined_dma: bool,
}

/// What wiring an assignment did, for [`unwire`].
pub struct Wired {
    host: Bdf,
    /// Where the guest sees it.
    guest: keel_devices::pci_host::PciAddress,
    domain: u32,
    confinement: Option<crate::iommu::Confinement>,
    /// The BAR registers and Interrupt Line as the host's firmware left
    /// them, written back after a function-level reset (which clears
    /// them), so the function can be wired again.
    saved_bars: [u32; 6],
    saved_line: u8,
    /// Where each memory BAR's pages are mapped in the guest now (what
    /// Keel really mapped, not what the guest asked for), and which parts
    /// of it (all but the MSI-X table's and PBA's pages).
    mapped: [Option<(u64, BarPieces)>; 6],
    /// The real MSI-X table, where the guest is shown MSI-X.
    msix: Option<HostMsixTable>,
    /// Whether Keel forwards the function's INTx (or a legacy IDE
    /// controller's IRQs); otherwise the real device keeps INTx disabled,
    /// whatever the guest writes: its pin may drive a host input Keel
    /// does not know of (or gave another function).
    intx_forwarded: bool,
}

/// The guest wrote its view of the device's configuration: the command
/// register's I/O, memory, bus-master and INTx-disable bits, and the
/// device-specific registers outside capabilities, go to the real device.
pub fn apply_write(assigned: &[Wired], guest: keel_devices::pci_host::PciAddress, write: PassthroughWrite) {
    use keel_devices::passthrough::FORWARDED_COMMAND_BITS;
    let Some(wired) = assigned.iter().find(|wired| wired.guest == guest) else {
        return;
    };
    let config = &mut HostConfig;
    match write {
        PassthroughWrite::Command(command) => {
            let old = config.read16(wired.host, header::COMMAND);
            let mut command = (old & !FORWARDED_COMMAND_BITS) | (command & FORWARDED_COMMAND_BITS);
            if !wired.intx_forwarded {
                command |= COMMAND_INTX_DISABLE;
            }
            config.write16(wired.host, header::COMMAND, command);
        }
        PassthroughWrite::Register { offset, value } => {
            let dword = offset & !3;
            let shift = (offset & 3) * 8;
            let old = config.read32(wired.host, dword);
            config.write32(wired.host, dword, (old & !(0xff << shift)) | u32::from(value) << shift);
        }
    }
}

/// The host's registers past the header, with its capability structures
/// hidden (from each capability to the next, the last one to 64 bytes).
fn device_specific(config: &mut HostConfig, bdf: Bdf) -> DeviceSpecific {
    let mut registers = DeviceSpecific::default();
    for (index, byte) in registers.bytes.iter_mut().enumerate() {
        *byte = config.read8(bdf, 0x40 + index as u16);
    }
    let mut starts: Vec<u16> = keel_pci::capabilities::capabilities(config, bdf)
        .map(|(_, at)| at)
        .collect();
    starts.sort_unstable();
    for (position, &start) in starts.iter().enumerate() {
        let end = starts.get(position + 1).copied().unwrap_or(start + 64).min(0x100);
        for offset in start.max(0x40)..end {
            registers.hidden[usize::from(offset - 0x40)] = true;
        }
    }
    registers
}

pub struct HostDevices {
    functions: Vec<FunctionInfo>,
    assignable: Vec<Bdf>,
    /// Host GSIs Dom0 gave for assignable functions' INTx (else the
    /// firmware's Interrupt Line is used).
    intx_gsis: Vec<(Bdf, u32)>,
    owners: Vec<(Bdf, u32)>,
    madt: HostMadt,
    routes: Routes,
    /// Interrupt remapping entries of routes (by vector) where a remapping
    /// unit remaps the host I/O APIC's interrupts.
    remapped: Vec<(u8, crate::iommu::interrupts::RemappedInterrupt)>,
}

static HOST_DEVICES: Mutex<Option<HostDevices>> = Mutex::new(None);

/// Lists the host's functions and its I/O APICs.
pub fn init(boot_info: &BootInformation, functions: Vec<FunctionInfo>) {
    let madt = match crate::host_acpi::find(boot_info, *b"APIC") {
        Ok(Some(table)) => keel_acpi_tables::host_madt::parse(&table).unwrap_or_else(|error| {
            log::warn!("pci: the MADT is malformed ({error:?}): no device interrupts can be forwarded");
            HostMadt::default()
        }),
        _ => HostMadt::default(),
    };
    for apic in &madt.io_apics {
        log::info!(
            "pci: host I/O APIC {} at {:#x}, GSIs from {}",
            apic.id,
            apic.address,
            apic.gsi_base
        );
    }
    *HOST_DEVICES.lock() = Some(HostDevices {
        functions,
        assignable: Vec::new(),
        intx_gsis: Vec::new(),
        owners: Vec::new(),
        madt,
        routes: Routes::default(),
        remapped: Vec::new(),
    });
}

fn with<T>(f: impl FnOnce(&mut HostDevices) -> T) -> Option<T> {
    HOST_DEVICES.lock().as_mut().map(f)
}

/// The host's I/O APICs, as the MADT lists them.
pub fn host_io_apics() -> Vec<keel_acpi_tables::host_madt::HostIoApic> {
    with(|devices| devices.madt.io_apics.clone()).unwrap_or_default()
}

/// What `keel pci-assignable-list` shows of one function.
pub struct Listing {
    pub info: FunctionInfo,
    pub assignable: bool,
    pub owner: Option<u32>,
    pub dma_confined: bool,
    pub host_bridge: bool,
}

pub fn list() -> Vec<Listing> {
    with(|devices| {
        devices
            .functions
            .iter()
            .map(|info| Listing {
                info: *info,
                assignable: devices.assignable.contains(&info.bdf),
                owner: devices
                    .owners
                    .iter()
                    .find(|(bdf, _)| *bdf == info.bdf)
                    .map(|&(_, owner)| owner),
                dma_confined: source_id(info.bdf).is_some_and(crate::iommu::covers),
                host_bridge: is_bridge(info),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn is_bridge(info: &FunctionInfo) -> bool {
    info.class >> 16 == 0x06
}

/// A function's routes are found by this (bus << 8 | device << 3 | function).
fn function_id(bdf: Bdf) -> u16 {
    u16::from(bdf.bus) << 8 | u16::from(bdf.device) << 3 | u16::from(bdf.function)
}

/// Whether a remapping unit remaps the function's interrupts (so its
/// writes to the interrupt window can only raise entries Keel wrote).
fn interrupts_remapped(bdf: Bdf) -> bool {
    source_id(bdf)
        .is_some_and(|source| crate::iommu::interrupts::remaps(crate::iommu::interrupts::Requester::Function(source)))
}

fn source_id(bdf: Bdf) -> Option<keel_iommu::SourceId> {
    keel_iommu::SourceId::new(bdf.bus, bdf.device, bdf.function)
}

#[derive(Debug, PartialEq, Eq)]
pub enum AssignError {
    NoSuchFunction,
    /// Bridges (host, ISA, PCI-to-PCI) carry other devices: never assigned.
    Bridge,
    NotAssignable,
    /// Attached to a domain already.
    Busy(u32),
    /// No IOMMU confines its DMA, and Dom0 did not force it.
    NotConfined,
    /// An IOMMU confines its DMA but does not remap interrupts: its writes
    /// to the interrupt window could send any interrupt (an NMI stops
    /// Keel), and Dom0 did not force it.
    InterruptsNotRemapped,
    Unsupported(String),
}

/// Makes `bdf` assignable (or not); `intx_gsi` names the host GSI of its
/// INTx where the firmware's Interrupt Line is wrong or empty.
pub fn set_assignable(bdf: Bdf, assignable: bool, intx_gsi: Option<u32>) -> Result<(), AssignError> {
    with(|devices| {
        let info = devices
            .functions
            .iter()
            .find(|info| info.bdf == bdf)
            .ok_or(AssignError::NoSuchFunction)?;
        if is_bridge(info) {
            return Err(AssignError::Bridge);
        }
        if let Some(&(_, owner)) = devices.owners.iter().find(|(owned, _)| *owned == bdf) {
            return Err(AssignError::Busy(owner));
        }
        if let Some(gsi) = intx_gsi.filter(|_| assignable) {
            if host_input(&devices.madt, gsi).is_none() {
                return Err(AssignError::Unsupported(format!("no host I/O APIC has GSI {gsi}")));
            }
        }
        devices.assignable.retain(|&listed| listed != bdf);
        devices.intx_gsis.retain(|&(listed, _)| listed != bdf);
        if assignable {
            devices.assignable.push(bdf);
            if let Some(gsi) = intx_gsi {
                devices.intx_gsis.push((bdf, gsi));
            }
        }
        Ok(())
    })
    .unwrap_or(Err(AssignError::NoSuchFunction))
}

/// Reserves an assignable function for `domain` (booted later).
pub fn attach(domain: u32, assignment: Assignment) -> Result<(), AssignError> {
    let bdf = assignment.host;
    with(|devices| {
        if !devices.functions.iter().any(|info| info.bdf == bdf) {
            return Err(AssignError::NoSuchFunction);
        }
        if let Some(&(_, owner)) = devices.owners.iter().find(|(owned, _)| *owned == bdf) {
            return Err(AssignError::Busy(owner));
        }
        if !devices.assignable.contains(&bdf) {
            return Err(AssignError::NotAssignable);
        }
        check_interrupts(devices, bdf).map_err(AssignError::Unsupported)?;
        let confined = source_id(bdf).is_some_and(crate::iommu::covers);
        if !confined && !assignment.unconfined_dma {
            return Err(AssignError::NotConfined);
        }
        if confined && !interrupts_remapped(bdf) && !assignment.unconfined_dma {
            return Err(AssignError::InterruptsNotRemapped);
        }
        devices.owners.push((bdf, domain));
        Ok(())
    })
    .unwrap_or(Err(AssignError::NoSuchFunction))
}

/// The legacy IDE channels a function drives (compatibility mode).
fn legacy_channels(class: u32) -> Vec<&'static LegacyChannel> {
    if class >> 8 == IDE_CLASS {
        LEGACY_IDE
            .iter()
            .filter(|channel| class & channel.native_bit == 0)
            .collect()
    } else {
        Vec::new()
    }
}

/// The host I/O APIC input that carries `gsi`: the MADT says which I/O
/// APIC's range starts below it, the I/O APIC's version register how many
/// inputs it has.
fn host_input(madt: &HostMadt, gsi: u32) -> Option<(keel_acpi_tables::host_madt::HostIoApic, u32)> {
    madt.io_apic_for(gsi).filter(|&(apic, input)| {
        crate::arch::ioapic::inputs(u64::from(apic.address)).is_some_and(|count| input < count)
    })
}

/// How a function's interrupts reach Keel.
#[derive(Clone, Debug)]
enum Interrupts {
    /// No INTx pin: MSI or MSI-X (forwarded when the guest enables them),
    /// or nothing.
    None,
    /// An INTx pin Keel cannot route (its host input unknown), on a
    /// function with MSI or MSI-X: the guest is shown no pin and uses
    /// those. The String says why INTx is not forwarded.
    MessagesOnly(alloc::string::String),
    /// A legacy IDE controller's ISA IRQs (its channels, by class).
    LegacyIde,
    /// PCI INTx at this host input.
    Intx(keel_acpi_tables::host_madt::IsaRoute),
}

/// How Keel can forward the function's interrupts, or why it cannot.
fn check_interrupts(devices: &HostDevices, bdf: Bdf) -> Result<Interrupts, String> {
    let madt = &devices.madt;
    let config = &mut HostConfig;
    let class = config.read32(bdf, header::CLASS_REVISION) >> 8;
    if !legacy_channels(class).is_empty() {
        return Ok(Interrupts::LegacyIde);
    }
    let pin = config.read8(bdf, header::INTERRUPT_PIN);
    if pin == 0 {
        // No INTx: MSI or MSI-X (forwarded when the guest enables them;
        // `wire` refuses a function whose only MSI-X cannot be), or nothing.
        return Ok(Interrupts::None);
    }
    let given = devices
        .intx_gsis
        .iter()
        .find(|&&(listed, _)| listed == bdf)
        .map(|&(_, gsi)| gsi);
    let line = config.read8(bdf, header::INTERRUPT_LINE);
    let route = match given {
        Some(gsi) => Ok(madt.pci_intx_gsi(gsi)),
        None => madt.pci_intx_route(line).ok_or_else(|| {
            format!(
                "its firmware did not route INTx pin {pin} (Interrupt Line {line:#x}); name the host GSI with `keel pci-assignable-add {bdf} --intx-gsi N`"
            )
        }),
    };
    let route = route.and_then(|route| match host_input(madt, route.gsi) {
        Some(_) => Ok(route),
        None => Err(format!("no host I/O APIC has GSI {} (its INTx)", route.gsi)),
    });
    match route {
        Ok(route) => Ok(Interrupts::Intx(route)),
        // A function that can interrupt by message works without INTx
        // (Linux's drivers prefer MSI-X and MSI): Dom0 need not know the
        // GSI, which firmware that routes PCI interrupts only through
        // ACPI `_PRT` does not tell Keel.
        Err(why) if given.is_none() && has_message_interrupts(config, bdf) => Ok(Interrupts::MessagesOnly(why)),
        Err(why) => Err(format!("{bdf}: {why}")),
    }
}

/// Whether `bdf` has an MSI or MSI-X capability.
fn has_message_interrupts(config: &mut HostConfig, bdf: Bdf) -> bool {
    keel_pci::capabilities::capabilities(config, bdf)
        .any(|(id, _)| id == keel_pci::capabilities::MSI || id == keel_pci::capabilities::MSI_X)
}

/// Gives back every function `domain` held (it is destroyed).
pub fn detach_all(domain: u32) {
    with(|devices| devices.owners.retain(|&(_, owner)| owner != domain));
}

/// Hands `assignment`'s function to the booting `domain`. On error nothing
/// stays wired.
pub fn wire(domain_id: u32, domain: &mut Domain, vcpu: &mut VmxVcpu, assignment: Assignment) -> Result<Wired, String> {
    let bdf = assignment.host;
    let config = &mut HostConfig;
    let saved_bars: [u32; 6] = core::array::from_fn(|index| config.read32(bdf, header::BAR0 + 4 * index as u16));
    let saved_line = config.read8(bdf, header::INTERRUPT_LINE);
    // Nothing of a previous owner's state (queues, DMA addresses) reaches
    // the guest.
    reset_function(config, bdf, &saved_bars, saved_line, "assigned")?;
    let bars = keel_pci::bar::probe(config, bdf).map_err(|error| format!("{bdf}: BARs: {error:?}"))?;
    if let Some(bar) = bars.iter().find(|bar| bar.address == 0) {
        return Err(format!(
            "{bdf}: BAR {} has no address (the firmware did not place it)",
            bar.index
        ));
    }
    let class_revision = config.read32(bdf, header::CLASS_REVISION);
    let class = class_revision >> 8;
    let legacy = legacy_channels(class);
    let interrupts =
        with(|devices| check_interrupts(devices, bdf)).unwrap_or(Err(String::from("host devices not initialized")))?;
    let pin = config.read8(bdf, header::INTERRUPT_PIN);
    let forwards_intx = matches!(interrupts, Interrupts::Intx(_) | Interrupts::LegacyIde);
    let io_ranges = io_ranges(&bars, &legacy)?;
    let memory_bars: Vec<&Bar> = bars.iter().filter(|bar| bar.kind != BarKind::Io).collect();
    // EPT maps whole pages: a smaller BAR would hand the guest whatever
    // else shares its page.
    if let Some(bar) = memory_bars
        .iter()
        .find(|bar| bar.size < 4096 || bar.address % 4096 != 0)
    {
        return Err(format!(
            "{bdf}: memory BAR {} ({} bytes at {:#x}) shares a page with other registers",
            bar.index, bar.size, bar.address
        ));
    }

    // DMA first: the device must be confined before the guest can start it.
    let confinement = match source_id(bdf)
        .and_then(|source| crate::iommu::confine(source, domain_id as u16, &domain.ram_runs()))
    {
        Some(Ok(confinement)) => Some(confinement),
        Some(Err(error)) => return Err(format!("{bdf}: {error}")),
        None if assignment.unconfined_dma => {
            log::warn!(
                "domain {domain_id}: {bdf} assigned WITHOUT DMA confinement (no IOMMU covers it): its DMA can read and write any host memory"
            );
            None
        }
        None => return Err(format!("{bdf}: no IOMMU confines its DMA")),
    };
    if confinement.is_some() && !interrupts_remapped(bdf) {
        if !assignment.unconfined_dma {
            if let Some(confinement) = confinement {
                crate::iommu::release(confinement);
            }
            return Err(format!(
                "{bdf}: the IOMMU confines its DMA but does not remap interrupts"
            ));
        }
        log::warn!(
            "domain {domain_id}: {bdf} assigned WITHOUT interrupt remapping: it can send any interrupt to the host, NMIs included"
        );
    }
    let mut wired = Wired {
        host: bdf,
        guest: keel_devices::pci_host::PciAddress::HOST_BRIDGE,
        domain: domain_id,
        confinement,
        saved_bars,
        saved_line,
        mapped: [None; 6],
        msix: None,
        intx_forwarded: forwards_intx,
    };
    let result = (|| {
        let mut identity = identity(config, bdf, class_revision);
        let mut shown_bars = guest_bars(&bars);
        let mut shown_pin = if matches!(interrupts, Interrupts::MessagesOnly(_)) {
            0
        } else {
            pin
        };
        if !legacy.is_empty() {
            for channel in &legacy {
                identity.class_code |= channel.native_bit;
                shown_bars.push(legacy_bar(channel.bars.0, channel.command_block, 8));
                shown_bars.push(legacy_bar(channel.bars.1, channel.control_port & !3, 4));
            }
            shown_pin = 1;
        }
        let mut function = PassthroughFunction::new(identity, &shown_bars, shown_pin, 0)
            .map_err(|error| format!("{bdf}: {error}"))?
            .with_device_specific(device_specific(config, bdf));
        // MSI and MSI-X are offered where the host has them (the guest's
        // driver chooses), both off until the guest enables them; Keel
        // programs them then.
        let msi = keel_pci::capabilities::find(config, bdf, keel_pci::capabilities::MSI);
        let msi_control = msi.map(|msi| disable_msi(config, bdf, msi));
        let msix = match HostMsixTable::find(config, bdf, &bars) {
            Ok(table) => table,
            Err(why) if !forwards_intx && msi.is_none() => {
                return Err(format!("{why}; it has no other interrupt Keel can forward"));
            }
            Err(why) => {
                log::warn!("{why}: the guest is not shown MSI-X");
                None
            }
        };
        // Off and function-masked whatever a previous owner left: a table
        // the guest is not shown MSI-X for stays mapped into it.
        crate::host_msix::force_off(config, bdf);
        wired.msix = msix;
        if let Some(table) = wired.msix.as_mut() {
            msix::quiet(table);
        }
        let host = HostCapabilities {
            msi_control,
            msix: wired.msix.as_ref().map(HostMsixTable::registers),
        };
        if let Err(error) = function.set_interrupt_capabilities(host) {
            if !forwards_intx && msi_control.is_none() {
                return Err(format!("{bdf}: MSI-X: {error}"));
            }
            log::warn!("{bdf}: MSI-X: {error}: the guest is not shown MSI-X");
            wired.msix = None;
            if let Some(control) = msi_control {
                function = function.with_msi(control);
            }
        }
        if function.capabilities_shadow_host_registers() {
            log::warn!(
                "{bdf}: the emulated MSI or MSI-X capability hides device registers at its offset from the guest"
            );
        }
        // Quiet until the guest's driver enables it.
        let command = config.read16(bdf, header::COMMAND);
        config.write16(
            bdf,
            header::COMMAND,
            command & !(header::COMMAND_BUS_MASTER | header::COMMAND_IO | header::COMMAND_MEMORY),
        );
        for bar in &memory_bars {
            let pieces = function.bar_pieces(usize::from(bar.index));
            map_pieces(domain, bar.address, bar.address, &pieces)
                .map_err(|error| format!("{bdf}: BAR {} at {:#x}: {error}", bar.index, bar.address))?;
            if let Some(slot) = wired.mapped.get_mut(usize::from(bar.index)) {
                *slot = Some((bar.address, pieces));
            }
        }
        let platform = domain.platform.as_deref_mut().ok_or("the domain has no platform")?;
        let guest_address = platform
            .attach_passthrough(function)
            .map_err(|error| format!("{bdf}: {error}"))?;
        wired.guest = guest_address;
        for &(first, count) in &io_ranges {
            vcpu.pass_through_ports(first, count);
        }
        let interrupts_shown = match interrupts {
            Interrupts::None => String::from("no INTx"),
            Interrupts::MessagesOnly(why) => format!("INTx not forwarded ({why})"),
            Interrupts::LegacyIde => {
                let guest_gsi = keel_hypervisor::platform_devices::PCI_ROOT
                    .intx_gsi(guest_address.device(), 1)
                    .ok_or("no INTx route for the device's slot")?;
                route_interrupts(domain_id, bdf, &legacy, guest_gsi)?;
                format!(
                    "IRQs {:?} as edges",
                    legacy.iter().map(|channel| channel.irq).collect::<Vec<_>>()
                )
            }
            Interrupts::Intx(host) => {
                let guest_gsi = platform
                    .forward_passthrough_intx(guest_address)
                    .map_err(|error| format!("{bdf}: {error}"))?;
                route_intx(domain_id, bdf, host, guest_address.device(), guest_gsi)?;
                format!("INTx level-triggered, host GSI {} -> guest GSI {guest_gsi}", host.gsi)
            }
        };
        log::info!(
            "domain {domain_id}: {bdf} assigned as {:02x}:{:02x}.{} ({} I/O range(s), {} memory BAR(s), {interrupts_shown}{}, DMA {})",
            guest_address.bus(),
            guest_address.device(),
            guest_address.function(),
            io_ranges.len(),
            memory_bars.len(),
            msix::describe(wired.msix.as_ref()),
            if wired.confinement.is_some() { "confined by the IOMMU" } else { "NOT confined" }
        );
        Ok(())
    })();
    match result {
        Ok(()) => Ok(wired),
        Err(error) => {
            unwire(wired);
            Err(error)
        }
    }
}

/// Undoes [`wire`]: interrupts masked and unrouted, the device quiet (and
/// reset where it can be), its DMA blocked again.
pub fn unwire(mut wired: Wired) {
    let config = &mut HostConfig;
    // Quiet first: no DMA, no MSI, INTx held low (a cause its guest left
    // latched must not reach the input's next owner), before anything the
    // device could still use is freed.
    config.write16(wired.host, header::COMMAND, COMMAND_INTX_DISABLE);
    if let Some(msi) = keel_pci::capabilities::find(config, wired.host, keel_pci::capabilities::MSI) {
        disable_msi(config, wired.host, msi);
    }
    match wired.msix.as_mut() {
        Some(table) => msix::quiet(table),
        None => crate::host_msix::force_off(config, wired.host),
    }
    with(|devices| {
        for route in devices.routes.remove_function(wired.domain, function_id(wired.host)) {
            if route.msi_slot.is_some() {
                release_remapped(devices, route.vector);
                log::info!(
                    "domain {}: {} vector {:#x}: {} interrupt(s) arrived for it",
                    wired.domain,
                    if route.msix_entry.is_some() { "MSI-X" } else { "MSI" },
                    route.vector,
                    crate::arch::device_interrupts::arrivals(route.vector)
                );
            } else {
                unroute(devices, &route);
                log::info!(
                    "domain {}: host GSI {}: {} interrupt(s) arrived for it",
                    wired.domain,
                    route.host_gsi,
                    crate::arch::device_interrupts::arrivals(route.vector)
                );
            }
            crate::arch::device_interrupts::forget_pending(route.vector);
        }
    });
    if let Err(why) = reset_function(config, wired.host, &wired.saved_bars, wired.saved_line, "taken back") {
        // Wiring it again resets it again, and refuses it if that fails.
        log::warn!("{why}");
    }
    if let Some(confinement) = wired.confinement {
        crate::iommu::release(confinement);
    }
}

const COMMAND_INTX_DISABLE: u16 = 1 << 10;

fn identity(config: &mut HostConfig, bdf: Bdf, class_revision: u32) -> PciIdentity {
    let id = config.read32(bdf, header::VENDOR_ID);
    let subsystem = config.read32(bdf, 0x2c);
    PciIdentity {
        vendor_id: id as u16,
        device_id: (id >> 16) as u16,
        class_code: class_revision >> 8,
        revision: class_revision as u8,
        subsystem_vendor_id: subsystem as u16,
        subsystem_id: (subsystem >> 16) as u16,
    }
}

/// Hands the device interrupts that arrived to their domains (`deliver`
/// raises the guest's line: an edge, or a level for INTx routes).
pub fn forward_pending(mut deliver: impl FnMut(&Route)) {
    let pending = crate::arch::device_interrupts::take_pending();
    if pending == 0 {
        return;
    }
    let routes: Vec<Route> = with(|devices| {
        (0..64u8)
            .filter(|bit| pending & (1 << bit) != 0)
            .filter_map(|bit| {
                devices
                    .routes
                    .by_vector(crate::arch::device_interrupts::FIRST_VECTOR + bit)
            })
            .collect()
    })
    .unwrap_or_default();
    for route in routes {
        let count = crate::arch::device_interrupts::arrivals(route.vector);
        if count <= 2 && route.msi_slot.is_some() {
            let entry = route
                .msix_entry
                .map_or(String::new(), |entry| format!(" (MSI-X entry {entry})"));
            log::info!(
                "domain {}: MSI vector {:#x}{entry} interrupt {count} forwarded to guest slot {}",
                route.domain,
                route.vector,
                route.msi_slot.unwrap_or_default()
            );
        } else if count <= 2 {
            log::info!(
                "domain {}: host GSI {} interrupt {count} forwarded to guest GSI {}",
                route.domain,
                route.host_gsi,
                route.guest_gsi
            );
        }
        deliver(&route);
        if route.level_triggered && route.intx_slot.is_none() && route.msi_slot.is_none() {
            // A level ISA route is pulsed: its input (masked as it fired)
            // opens again for the next one.
            if let Some((apic, input)) = with(|devices| devices.madt.io_apic_for(route.host_gsi)).flatten() {
                crate::arch::ioapic::set_masked(u64::from(apic.address), input, false);
            }
        }
    }
}

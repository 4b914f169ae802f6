//! The virtual platform a Linux domain sees: a 16550 UART on COM1, the
//! CMOS RTC, PCI configuration space, ACPI power management, reset
//! registers, an I/O APIC and an x2APIC-mode local APIC. The device models
//! live in `keel-devices`; this module routes accesses to them and carries
//! their effects (interrupt lines, power requests) to where they land.

use alloc::boxed::Box;
use alloc::vec::Vec;

use keel_devices::acpi_pm::{AcpiPm, ACPI_PM_BASE_PORT, ACPI_PM_PORT_COUNT};
use keel_devices::bus::{DeviceBus, DeviceId};
use keel_devices::cmos_rtc::{CmosRtc, CMOS_RTC_PORT_COUNT};
use keel_devices::ioapic::{IoApic, IOAPIC_BASE, IOAPIC_MMIO_LEN};
use keel_devices::lapic::{is_x2apic_msr, ApicEffect, LocalApic, TimerClock, IA32_TSC_DEADLINE};
use keel_devices::mgmt_pci::{MgmtConfig, MgmtEffect, MgmtFunction, MgmtLayout};
use keel_devices::passthrough::{BarMove, PassthroughFunction, PassthroughWrite};
use keel_devices::pci_host::{PciAddress, PciHost, PCI_CONFIG_ADDRESS_PORT, PCI_HOST_PORT_COUNT};
use keel_devices::power_button::PowerButton;
use keel_devices::reset::{KeyboardControllerReset, KEYBOARD_CONTROLLER_BASE_PORT, KEYBOARD_CONTROLLER_PORT_COUNT};
use keel_devices::uart16550::Uart16550;
use keel_devices::virtio_pci::VirtioDevice;
use keel_devices::{all_ones, Device, InterruptMessage, Platform, PowerAction};
use keel_virtio::pci::{Effect, MsiMessage, VirtioPciFunction};

/// What the platform needs from the machine it runs on: the TSC (device
/// timers count in TSC cycles) and the console (where the console domain's
/// serial output goes). The hypervisor passes the real ones; tests a fake.
mod assigned_intx;
mod assigned_msi;
mod assigned_msix;
mod paravirtual;
#[cfg(test)]
mod tests_intx;
#[cfg(test)]
mod tests_msi;
#[cfg(test)]
mod tests_msix;

pub use assigned_msix::MsixRequest;

pub trait PlatformHost {
    fn now_tsc(&self) -> u64;
    fn console_output(&mut self, byte: u8);
    /// A guest read of an assigned device's register that Keel traps (one
    /// that shares a page with the device's MSI-X table): `size` bytes at
    /// host-physical `address`, inside the device's BAR.
    fn device_read(&mut self, address: u64, size: u8) -> u64;
    /// The same for a write.
    fn device_write(&mut self, address: u64, size: u8, value: u64);
}

/// A guest access to a local-APIC MSR that raises #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

pub const COM1_BASE: u16 = 0x3f8;
/// CONFIG_DATA, after CONFIG_ADDRESS's dword.
const PCI_CONFIG_DATA_PORT: u64 = PCI_CONFIG_ADDRESS_PORT + 4;
const COM1_LEN: u16 = 8;
pub const COM1_IRQ: u32 = 4;
pub const IOAPIC_ID: u8 = 1;
/// The local APIC's xAPIC MMIO page. Linux cannot use x2APIC without
/// interrupt remapping under a hypervisor it does not know, so the guest's
/// APIC runs in xAPIC mode.
pub const LOCAL_APIC_BASE: u64 = 0xfee0_0000;
const LOCAL_APIC_MMIO_LEN: u64 = 0x1000;
/// The TPR register in the xAPIC page.
const TPR_OFFSET: u64 = 0x80;
const RTC_BASE_PORT: u64 = 0x70;
/// The PCI root bridge every Linux domain's DSDT describes.
pub const PCI_ROOT: keel_acpi_tables::PciRootConfig = keel_acpi_tables::PciRootConfig::KEEL_DEFAULT;
/// The ACPI power button (a Generic Event Device's interrupt) every Linux
/// domain's DSDT describes.
pub const POWER_BUTTON: keel_acpi_tables::PowerButtonConfig = keel_acpi_tables::PowerButtonConfig::KEEL_DEFAULT;

/// Dom0's management function: slot 1 of bus 0, its BARs where Keel (as
/// firmware) places them at the bottom of the PCI MMIO window.
pub const MANAGEMENT_ADDRESS: PciAddress = match PciAddress::new(0, 1, 0) {
    Some(address) => address,
    None => panic!("a valid PCI address"),
};
pub const MANAGEMENT_REGISTERS_GPA: u64 = PCI_ROOT.mmio_start as u64;
pub const MANAGEMENT_SHARED_GPA: u64 = PCI_ROOT.mmio_start as u64 + (2 << 20);
/// The memory window (ABI 1.3): the whole 64-bit PCI MMIO window.
pub const MANAGEMENT_WINDOW_GPA: u64 = PCI_ROOT.mmio64_start;
/// Assigned host functions and paravirtual devices take slots from here
/// up, function 0 each.
pub const PASSTHROUGH_FIRST_SLOT: u8 = 4;
/// Paravirtual devices' BAR 0 (16 KiB each), 16 MiB into the PCI MMIO
/// window, above the management function's BARs.
pub const VIRTIO_MMIO_BASE: u64 = PCI_ROOT.mmio_start as u64 + (16 << 20);
const VIRTIO_MMIO_STRIDE: u64 = 0x4000;
/// Their notify ports (BAR 2), 64 ports apart.
pub const VIRTIO_NOTIFY_PORT_BASE: u16 = 0xe000;
const VIRTIO_NOTIFY_PORT_STRIDE: u16 = 0x40;
/// Every port a DomU's paravirtual devices may take.
pub const VIRTIO_NOTIFY_PORTS: u16 = VIRTIO_NOTIFY_PORT_STRIDE * keel_abi::mgmt::virtio::MAX_DEVICES as u16;

/// LVT timer, initial count and divide configuration: the xAPIC registers
/// that change when the timer fires.
const APIC_TIMER_REGISTERS: [u64; 3] = [0x320, 0x380, 0x3e0];

/// What device models asked for during one access; applied right after it.
struct Effects<H> {
    host: H,
    irq_lines: Vec<(u32, bool)>,
    interrupts: Vec<InterruptMessage>,
    power: Option<PowerAction>,
    start_tsc: u64,
    tsc_hz: u64,
}

impl<H: PlatformHost> Platform for Effects<H> {
    fn set_irq_line(&mut self, gsi: u32, asserted: bool) {
        self.irq_lines.push((gsi, asserted));
    }

    fn deliver_interrupt(&mut self, message: InterruptMessage) {
        self.interrupts.push(message);
    }

    /// The console domain's serial output goes to Keel's console unchanged
    /// (its shell needs prompts and escape sequences to pass through).
    fn console_output(&mut self, byte: u8) {
        self.host.console_output(byte);
    }

    fn power(&mut self, action: PowerAction) {
        self.power.get_or_insert(action);
    }

    fn now_ns(&self) -> u64 {
        let ticks = u128::from(self.host.now_tsc().wrapping_sub(self.start_tsc));
        (ticks * 1_000_000_000 / u128::from(self.tsc_hz.max(1))) as u64
    }
}

/// What the management function may do to the platform from inside a
/// register access: drive its INTx line (collected, then settled).
struct LineSink<'a>(&'a mut Vec<(u32, bool)>);

impl Platform for LineSink<'_> {
    fn set_irq_line(&mut self, gsi: u32, asserted: bool) {
        self.0.push((gsi, asserted));
    }
    fn deliver_interrupt(&mut self, _message: InterruptMessage) {}
    fn console_output(&mut self, _byte: u8) {}
    fn power(&mut self, _action: PowerAction) {}
    fn now_ns(&self) -> u64 {
        0
    }
}

pub struct VirtualPlatform<H> {
    ports: DeviceBus,
    pci: DeviceId,
    /// Where the management function's BARs decode (Dom0 only).
    management: Option<MgmtLayout>,
    /// The shared-memory or window BAR moved: the hypervisor must remap
    /// them.
    management_moved: Option<MgmtLayout>,
    uart: Uart16550,
    power_button: PowerButton,
    ioapic: IoApic,
    lapic: LocalApic,
    effects: Effects<H>,
    /// The local APIC timer changed: the vCPU's timer must be re-armed.
    timer_dirty: bool,
    /// Dom0 rang the management doorbell during the last access.
    doorbell: bool,
    /// Where assigned host functions sit in the guest's configuration space.
    passthrough: Vec<PciAddress>,
    /// Configuration writes the guest made, for the real devices.
    passthrough_writes: Vec<(PciAddress, PassthroughWrite)>,
    /// Memory BAR mappings to change, for the hypervisor.
    passthrough_bar_moves: Vec<(PciAddress, BarMove)>,
    /// Assigned devices' interrupts waiting for the guest's EOI of the
    /// previous one on the same pin (see [`VirtualPlatform::pulse_irq`]).
    deferred_pulses: Vec<u32>,
    /// Assigned functions whose INTx is forwarded level-triggered.
    intx_sources: Vec<assigned_intx::IntxSource>,
    /// Of those, the ones whose host input Keel must unmask again.
    intx_resamples: Vec<PciAddress>,
    /// Assigned functions' MSI: changes to apply, refused messages.
    msi: assigned_msi::MsiForwarding,
    /// Assigned functions' MSI-X: trapped pages, changes to apply.
    msix: assigned_msix::MsixForwarding,
    /// Paravirtual (virtio-pci) devices, and where their BARs decode now.
    virtio: Vec<VirtioSlot>,
    /// What the guest asked of them, for their backends.
    virtio_effects: Vec<(PciAddress, Effect)>,
}

/// A virtio device's slot and its BARs' current windows (refreshed after
/// every configuration write, so the hot MMIO path needs no PCI lookup).
#[derive(Clone, Copy, Debug)]
struct VirtioSlot {
    address: PciAddress,
    mmio: Option<(u64, u64)>,
    notify: Option<(u64, u64)>,
    /// The INTx level last driven (MSI-X off: ISR non-zero), and the
    /// guest GSI it was driven on.
    intx: bool,
    gsi: u32,
}

#[derive(Debug)]
pub enum PlatformError {
    Bus(keel_devices::bus::BusError),
    Management(&'static str),
    Passthrough(&'static str),
    Virtio(&'static str),
}

impl core::fmt::Display for PlatformError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Bus(error) => write!(f, "registering a device: {error:?}"),
            Self::Management(what) => write!(f, "adding the management function: {what}"),
            Self::Passthrough(what) => write!(f, "adding an assigned device: {what}"),
            Self::Virtio(what) => write!(f, "adding a paravirtual device: {what}"),
        }
    }
}

impl<H: PlatformHost> VirtualPlatform<H> {
    pub fn new(host: H, tsc_hz: u64, wallclock_seconds: u64) -> Result<Self, PlatformError> {
        let mut ports = DeviceBus::new();
        let devices: [(u64, u64, Box<dyn Device>); 4] = [
            (
                RTC_BASE_PORT,
                CMOS_RTC_PORT_COUNT,
                Box::new(CmosRtc::new(wallclock_seconds)),
            ),
            (PCI_CONFIG_ADDRESS_PORT, PCI_HOST_PORT_COUNT, Box::new(PciHost::new())),
            (
                u64::from(ACPI_PM_BASE_PORT),
                ACPI_PM_PORT_COUNT,
                Box::new(AcpiPm::new()),
            ),
            (
                KEYBOARD_CONTROLLER_BASE_PORT,
                KEYBOARD_CONTROLLER_PORT_COUNT,
                Box::new(KeyboardControllerReset::new()),
            ),
        ];
        let mut pci = None;
        for (start, len, device) in devices {
            let id = ports.register(start, len, device).map_err(PlatformError::Bus)?;
            if start == PCI_CONFIG_ADDRESS_PORT {
                pci = Some(id);
            }
        }
        let pci = pci.ok_or(PlatformError::Management("no PCI host"))?;
        // The local APIC timer ticks at the crystal rate CPUID leaf 0x15
        // reports, which Keel sets equal to the TSC rate.
        let clock = TimerClock { tsc_hz, bus_hz: tsc_hz };
        Ok(Self {
            ports,
            pci,
            management: None,
            management_moved: None,
            uart: Uart16550::new(COM1_IRQ),
            power_button: PowerButton::new(POWER_BUTTON.gsi),
            ioapic: IoApic::new(IOAPIC_ID),
            lapic: LocalApic::new(0, clock),
            effects: Effects {
                start_tsc: host.now_tsc(),
                host,
                irq_lines: Vec::with_capacity(8),
                interrupts: Vec::with_capacity(8),
                power: None,
                tsc_hz,
            },
            timer_dirty: true,
            doorbell: false,
            passthrough: Vec::new(),
            passthrough_writes: Vec::new(),
            passthrough_bar_moves: Vec::new(),
            deferred_pulses: Vec::new(),
            intx_sources: Vec::new(),
            intx_resamples: Vec::new(),
            msi: assigned_msi::MsiForwarding::default(),
            msix: assigned_msix::MsixForwarding::default(),
            virtio: Vec::new(),
            virtio_effects: Vec::new(),
        })
    }

    /// The machine this platform reports to (its console and clock).
    pub fn host(&self) -> &H {
        &self.effects.host
    }

    pub fn host_mut(&mut self) -> &mut H {
        &mut self.effects.host
    }

    /// Adds the management function (Dom0 only); returns where its BARs are.
    pub fn attach_management(&mut self) -> Result<MgmtLayout, PlatformError> {
        let gsi = PCI_ROOT
            .intx_gsi(MANAGEMENT_ADDRESS.device(), 1)
            .ok_or(PlatformError::Management("no INTx route"))?;
        let function = MgmtFunction::new(MgmtConfig {
            registers_gpa: MANAGEMENT_REGISTERS_GPA,
            shared_gpa: MANAGEMENT_SHARED_GPA,
            window_gpa: MANAGEMENT_WINDOW_GPA,
            gsi,
        })
        .map_err(|_| PlatformError::Management("BAR placement refused"))?;
        let layout = function.layout();
        self.pci_host()
            .ok_or(PlatformError::Management("no PCI host"))?
            .add_function(MANAGEMENT_ADDRESS, Box::new(function))
            .map_err(|_| PlatformError::Management("slot taken"))?;
        self.management = Some(layout);
        Ok(layout)
    }

    fn pci_host(&mut self) -> Option<&mut PciHost> {
        self.ports.device_as::<PciHost>(self.pci)
    }

    fn management_function(&mut self) -> Option<&mut MgmtFunction> {
        self.pci_host()?.function_as::<MgmtFunction>(MANAGEMENT_ADDRESS)
    }

    /// After a PCI configuration write: notes a moved or disabled BAR.
    fn check_management_layout(&mut self) {
        if self.management.is_none() {
            return;
        }
        let windows = [
            (u64::from(PCI_ROOT.mmio_start), u64::from(PCI_ROOT.mmio_end)),
            (
                PCI_ROOT.mmio64_start,
                PCI_ROOT
                    .mmio64_start
                    .saturating_add(PCI_ROOT.mmio64_len.saturating_sub(1)),
            ),
        ];
        if let Some(change) = self.management_function().and_then(MgmtFunction::take_layout_change) {
            let layout = change.within(&windows);
            let moved = |old: MgmtLayout| old.shared != layout.shared || old.window != layout.window;
            if self.management.is_none_or(moved) {
                self.management_moved = Some(layout);
            }
            self.management = Some(layout);
        }
    }

    /// The first free slot from [`PASSTHROUGH_FIRST_SLOT`] (function 0).
    fn free_slot(&self) -> Option<PciAddress> {
        (PASSTHROUGH_FIRST_SLOT..32)
            .filter_map(|device| PciAddress::new(0, device, 0))
            .find(|address| {
                !self.passthrough.contains(address)
                    && !self.virtio.iter().any(|slot| slot.address == *address)
                    && *address != MANAGEMENT_ADDRESS
            })
    }

    /// Adds a paravirtual device: its BAR 0 in the PCI MMIO window above
    /// the management function's, its notify port from
    /// [`VIRTIO_NOTIFY_PORT_BASE`], INTx routed like any slot's.
    pub fn attach_virtio(&mut self, function: VirtioPciFunction) -> Result<PciAddress, PlatformError> {
        let address = self.free_slot().ok_or(PlatformError::Virtio("no free PCI slot"))?;
        let index = self.virtio.len() as u64;
        let mmio_base = VIRTIO_MMIO_BASE + index * VIRTIO_MMIO_STRIDE;
        let notify_port = VIRTIO_NOTIFY_PORT_BASE + (index as u16) * VIRTIO_NOTIFY_PORT_STRIDE;
        let line = PCI_ROOT
            .intx_gsi(address.device(), 1)
            .ok_or(PlatformError::Virtio("no INTx route"))?;
        let device = VirtioDevice::new(function, mmio_base, notify_port, line as u8)
            .map_err(|_| PlatformError::Virtio("BAR placement refused"))?;
        self.pci_host()
            .ok_or(PlatformError::Virtio("no PCI host"))?
            .add_function(address, Box::new(device))
            .map_err(|_| PlatformError::Virtio("slot taken"))?;
        self.virtio.push(VirtioSlot {
            address,
            mmio: None,
            notify: None,
            intx: false,
            gsi: line,
        });
        self.refresh_virtio_windows();
        Ok(address)
    }

    fn virtio_device(&mut self, address: PciAddress) -> Option<&mut VirtioDevice> {
        self.pci_host()?.function_as::<VirtioDevice>(address)
    }

    fn refresh_virtio_windows(&mut self) {
        for index in 0..self.virtio.len() {
            let address = self.virtio[index].address;
            if let Some(device) = self.virtio_device(address) {
                let (mmio, notify) = (device.mmio_window(), device.notify_ports());
                self.virtio[index].mmio = mmio;
                self.virtio[index].notify = notify;
            }
        }
    }

    fn virtio_at_mmio(&self, gpa: u64) -> Option<(PciAddress, u64)> {
        self.virtio.iter().find_map(|slot| {
            let (base, len) = slot.mmio?;
            let offset = gpa.checked_sub(base).filter(|&offset| offset < len)?;
            Some((slot.address, offset))
        })
    }

    fn virtio_at_port(&self, port: u16) -> Option<(PciAddress, u64)> {
        self.virtio.iter().find_map(|slot| {
            let (base, len) = slot.notify?;
            let offset = u64::from(port).checked_sub(base).filter(|&offset| offset < len)?;
            Some((slot.address, offset))
        })
    }

    /// Moves a device's effects to the platform's list and delivers the
    /// interrupts its transport released.
    fn collect_virtio(&mut self, address: PciAddress) {
        let first = self.virtio_effects.len();
        let Some(device) = self
            .ports
            .device_as::<PciHost>(self.pci)
            .and_then(|host| host.function_as::<VirtioDevice>(address))
        else {
            return;
        };
        device.drain_effects_into(address, &mut self.virtio_effects);
        while let Some(message) = self
            .virtio_device(address)
            .and_then(|device| device.function_mut().next_released_interrupt())
        {
            self.deliver_msi(message);
        }
        for index in first..self.virtio_effects.len() {
            let (_, effect) = self.virtio_effects[index];
            self.deliver_effect_interrupt(address, &effect);
        }
        self.sync_virtio_intx(address);
    }

    /// What the guest asked of its paravirtual devices (queue kicks,
    /// resets, status changes) since the last call.
    pub fn take_virtio_effects(&mut self) -> Vec<(PciAddress, Effect)> {
        core::mem::take(&mut self.virtio_effects)
    }

    /// A backend completed work on queue `queue` of the device at
    /// `address`: the interrupt the driver asked for, if any, is delivered.
    pub fn signal_virtio_queue(&mut self, address: PciAddress, queue: u16) -> bool {
        let Some(interrupt) = self
            .virtio_device(address)
            .and_then(|device| device.function_mut().signal_queue(queue))
        else {
            return false;
        };
        self.deliver_virtio_interrupt(address, interrupt);
        true
    }

    /// An MSI a device wrote: the vector (data bits 7:0) and trigger mode
    /// (bit 15) at the only local APIC, which every destination names.
    fn deliver_msi(&mut self, message: MsiMessage) {
        const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;
        if message.address & 0xfff0_0000 != MSI_ADDRESS_BASE {
            // Not an interrupt message: the write goes nowhere.
            return;
        }
        let vector = message.data as u8;
        let level_triggered = message.data & (1 << 15) != 0;
        self.effects.interrupts.push(InterruptMessage {
            vector,
            // Destination ID, address bits 19:12.
            destination: ((message.address >> 12) & 0xff) as u32,
            level_triggered,
        });
        self.settle();
    }

    /// Puts an assigned host function at the first free slot from
    /// [`PASSTHROUGH_FIRST_SLOT`]; returns its address in the guest.
    pub fn attach_passthrough(&mut self, function: PassthroughFunction) -> Result<PciAddress, PlatformError> {
        let slot = self.free_slot().ok_or(PlatformError::Passthrough("no free PCI slot"))?;
        self.pci_host()
            .ok_or(PlatformError::Passthrough("no PCI host"))?
            .add_function(slot, Box::new(function))
            .map_err(|_| PlatformError::Passthrough("slot taken"))?;
        self.passthrough.push(slot);
        self.note_msix_function(slot);
        self.refresh_msix_windows();
        Ok(slot)
    }

    fn check_passthrough_writes(&mut self) {
        for index in 0..self.passthrough.len() {
            let address = self.passthrough[index];
            let Some(function) = self
                .ports
                .device_as::<PciHost>(self.pci)
                .and_then(|host| host.function_as::<PassthroughFunction>(address))
            else {
                continue;
            };
            let moves = function.take_bar_moves();
            self.passthrough_bar_moves
                .extend(moves.into_iter().map(|change| (address, change)));
            let command = function.take_command_change().map(PassthroughWrite::Command);
            let registers = function
                .take_config_writes()
                .into_iter()
                .map(|(offset, value)| PassthroughWrite::Register { offset, value });
            let writes: Vec<PassthroughWrite> = command.into_iter().chain(registers).collect();
            self.passthrough_writes
                .extend(writes.into_iter().map(|write| (address, write)));
            self.collect_passthrough_msi(address);
            self.collect_passthrough_msix(address);
        }
        self.refresh_msix_windows();
        if !self.intx_sources.is_empty() {
            self.sync_intx_after_command();
        }
    }

    /// Configuration writes to apply to the assigned devices, by their
    /// guest address.
    pub fn take_passthrough_writes(&mut self) -> Vec<(PciAddress, PassthroughWrite)> {
        core::mem::take(&mut self.passthrough_writes)
    }

    /// Memory BARs of assigned devices whose mapping must follow the
    /// guest's BAR (moved, or decoding turned on or off).
    pub fn take_passthrough_bar_moves(&mut self) -> Vec<(PciAddress, BarMove)> {
        core::mem::take(&mut self.passthrough_bar_moves)
    }

    /// Whether `[start, start + len)` overlaps MMIO the platform emulates
    /// (the I/O APIC, the local APIC, paravirtual and management BARs): an
    /// assigned device's BAR must not be mapped over them.
    pub fn overlaps_emulated_mmio(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        let mut windows: Vec<(u64, u64)> =
            alloc::vec![(IOAPIC_BASE, IOAPIC_MMIO_LEN), (LOCAL_APIC_BASE, LOCAL_APIC_MMIO_LEN),];
        windows.extend(self.virtio.iter().filter_map(|slot| slot.mmio));
        if let Some(registers) = self.management.and_then(|layout| layout.registers) {
            windows.push((registers, keel_abi::mgmt::REGISTER_BYTES));
        }
        windows
            .iter()
            .any(|&(base, len)| start < base.saturating_add(len) && base < end)
    }

    /// One interrupt of an assigned device on guest GSI `gsi`: an edge
    /// (the line up, then down). On a level-triggered pin whose last
    /// interrupt the guest has not acknowledged yet, that edge would be
    /// lost (Remote IRR blocks it, and the line is down again by the EOI):
    /// it waits for the EOI instead.
    pub fn pulse_irq(&mut self, gsi: u32) {
        if self.ioapic.in_service(gsi) {
            self.deferred_pulses.push(gsi);
            return;
        }
        self.effects.irq_lines.push((gsi, true));
        // Back to what the line's other sources drive (slots share GSIs).
        let rest = self.passthrough_asserts(gsi) || self.virtio_asserts(gsi);
        self.effects.irq_lines.push((gsi, rest));
        self.settle();
    }

    /// After an EOI: the pulses that waited for it.
    fn replay_deferred_pulses(&mut self) {
        let mut index = 0;
        while index < self.deferred_pulses.len() {
            let gsi = self.deferred_pulses[index];
            if self.ioapic.in_service(gsi) {
                index += 1;
                continue;
            }
            self.deferred_pulses.remove(index);
            self.effects.irq_lines.push((gsi, true));
            let rest = self.passthrough_asserts(gsi) || self.virtio_asserts(gsi);
            self.effects.irq_lines.push((gsi, rest));
            self.settle();
        }
    }

    /// Takes "the management shared memory moved" (where it decodes now).
    pub fn take_management_move(&mut self) -> Option<MgmtLayout> {
        self.management_moved.take()
    }

    fn management_offset(&self, gpa: u64) -> Option<u64> {
        let base = self.management?.registers?;
        gpa.checked_sub(base)
            .filter(|&offset| offset < keel_abi::mgmt::REGISTER_BYTES)
    }

    /// Presses the power button once (`keel shutdown`): the guest's ACPI
    /// button driver reports it and its userspace powers off.
    pub fn press_power_button(&mut self) {
        self.power_button.press(&mut self.effects);
        self.settle();
    }

    /// Takes "the management doorbell was rung" (Dom0 only).
    pub fn take_doorbell(&mut self) -> bool {
        core::mem::take(&mut self.doorbell)
    }

    pub fn port_read(&mut self, port: u16, size: u8) -> u64 {
        // Notify registers are write-only.
        if self.virtio_at_port(port).is_some() {
            return 0;
        }
        let value = if (COM1_BASE..COM1_BASE + COM1_LEN).contains(&port) {
            self.uart.read(u64::from(port - COM1_BASE), size, &mut self.effects)
        } else {
            self.ports
                .read(u64::from(port), size, &mut self.effects)
                .unwrap_or(all_ones(size))
        };
        self.settle();
        value
    }

    pub fn port_write(&mut self, port: u16, size: u8, value: u64) {
        if let Some((address, offset)) = self.virtio_at_port(port) {
            if let Some(device) = self.virtio_device(address) {
                device.notify_write(offset, size, value as u32);
            }
            self.collect_virtio(address);
            return;
        }
        if (COM1_BASE..COM1_BASE + COM1_LEN).contains(&port) {
            self.uart
                .write(u64::from(port - COM1_BASE), size, value, &mut self.effects);
        } else {
            self.ports.write(u64::from(port), size, value, &mut self.effects);
            // Only CONFIG_DATA writes (0xCFC-0xCFF) change a function's
            // configuration; CONFIG_ADDRESS (and the reset register at
            // 0xCF9) never do, and every guest configuration read writes
            // CONFIG_ADDRESS first.
            if (PCI_CONFIG_DATA_PORT..PCI_CONFIG_ADDRESS_PORT + PCI_HOST_PORT_COUNT).contains(&u64::from(port)) {
                self.check_management_layout();
                self.check_passthrough_writes();
                if !self.virtio.is_empty() {
                    self.refresh_virtio_windows();
                    for index in 0..self.virtio.len() {
                        let address = self.virtio[index].address;
                        self.collect_virtio(address);
                    }
                }
            }
        }
        self.settle();
    }

    /// Whether `gpa` belongs to an emulated MMIO device.
    pub fn is_mmio(&self, gpa: u64) -> bool {
        self.is_emulated_device(gpa) || (self.has_msix_windows() && self.msix_window(gpa).is_some())
    }

    /// Whether `gpa` belongs to a device the platform emulates (not an
    /// assigned function's trapped pages): those win where a guest put an
    /// assigned BAR over them.
    fn is_emulated_device(&self, gpa: u64) -> bool {
        (IOAPIC_BASE..IOAPIC_BASE + IOAPIC_MMIO_LEN).contains(&gpa)
            || (LOCAL_APIC_BASE..LOCAL_APIC_BASE + LOCAL_APIC_MMIO_LEN).contains(&gpa)
            || self.management_offset(gpa).is_some()
            || self.virtio_at_mmio(gpa).is_some()
    }

    /// The trapped MSI-X pages `gpa` falls in, unless an emulated device
    /// is there too.
    fn trapped_msix_page(&self, gpa: u64) -> Option<assigned_msix::MsixWindow> {
        if !self.has_msix_windows() || self.is_emulated_device(gpa) {
            return None;
        }
        self.msix_window(gpa)
    }

    pub fn mmio_read(&mut self, gpa: u64, size: u8) -> u64 {
        if let Some(window) = self.trapped_msix_page(gpa) {
            return self.msix_page_read(window, gpa, size);
        }
        if let Some((address, offset)) = self.virtio_at_mmio(gpa) {
            let value = self
                .virtio_device(address)
                .map_or(all_ones(size), |device| device.mmio_read(offset, size));
            self.collect_virtio(address);
            return value;
        }
        if let Some(offset) = self.management_offset(gpa) {
            let mut effects = core::mem::take(&mut self.effects.irq_lines);
            let value = match self.management_function() {
                Some(function) => {
                    let mut sink = LineSink(&mut effects);
                    function.register_read(offset, size, &mut sink)
                }
                None => all_ones(size),
            };
            self.effects.irq_lines = effects;
            self.settle();
            return value;
        }
        let value = if let Some(offset) = gpa.checked_sub(LOCAL_APIC_BASE).filter(|&o| o < LOCAL_APIC_MMIO_LEN) {
            u64::from(self.lapic.mmio_read(offset, size, self.now_tsc()))
        } else {
            self.ioapic.read(gpa.wrapping_sub(IOAPIC_BASE), size, &mut self.effects)
        };
        self.settle();
        value
    }

    pub fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) {
        if let Some(window) = self.trapped_msix_page(gpa) {
            self.msix_page_write(window, gpa, size, value);
            return;
        }
        if let Some((address, offset)) = self.virtio_at_mmio(gpa) {
            if let Some(device) = self.virtio_device(address) {
                device.mmio_write(offset, size, value);
            }
            self.collect_virtio(address);
            return;
        }
        if let Some(offset) = self.management_offset(gpa) {
            let mut effects = core::mem::take(&mut self.effects.irq_lines);
            let effect = self.management_function().and_then(|function| {
                let mut sink = LineSink(&mut effects);
                function.register_write(offset, size, value, &mut sink)
            });
            self.effects.irq_lines = effects;
            self.doorbell |= effect == Some(MgmtEffect::Doorbell);
            self.settle();
            return;
        }
        if let Some(offset) = gpa.checked_sub(LOCAL_APIC_BASE).filter(|&o| o < LOCAL_APIC_MMIO_LEN) {
            // Only the timer's own registers move its deadline; anything
            // else (EOI above all) must not re-arm, or a guest could keep
            // extending its time slice.
            self.timer_dirty |= APIC_TIMER_REGISTERS.contains(&(offset & !0xf));
            let effect = self.lapic.mmio_write(offset, size, value as u32, self.now_tsc());
            self.apply_apic_effect(effect);
        } else {
            self.ioapic
                .write(gpa.wrapping_sub(IOAPIC_BASE), size, value, &mut self.effects);
        }
        self.settle();
    }

    fn apply_apic_effect(&mut self, effect: Option<ApicEffect>) {
        if let (Some(ApicEffect::Eoi { vector, .. }), false) = (effect, self.intx_sources.is_empty()) {
            self.acknowledge_intx(vector);
        }
        match effect {
            Some(ApicEffect::Eoi {
                vector,
                level_triggered: true,
            }) => {
                self.ioapic.end_of_interrupt(vector, &mut self.effects);
                if !self.deferred_pulses.is_empty() {
                    self.settle();
                    self.replay_deferred_pulses();
                }
            }
            // A single-vCPU domain has no other APIC to reach.
            Some(ApicEffect::Ipi { .. }) | Some(ApicEffect::Eoi { .. }) | None => {}
        }
    }

    /// RDMSR of a local-APIC MSR; `None` if `msr` is not one.
    fn now_tsc(&self) -> u64 {
        self.effects.host.now_tsc()
    }

    pub fn apic_rdmsr(&mut self, msr: u32) -> Option<Result<u64, GeneralProtection>> {
        if msr == IA32_TSC_DEADLINE {
            return Some(Ok(self.lapic.tsc_deadline()));
        }
        if !is_x2apic_msr(msr) {
            return None;
        }
        // In xAPIC mode the x2APIC MSRs do not exist.
        Some(Err(GeneralProtection))
    }

    /// WRMSR of a local-APIC MSR; `None` if `msr` is not one.
    pub fn apic_wrmsr(&mut self, msr: u32, value: u64) -> Option<Result<(), GeneralProtection>> {
        if msr == IA32_TSC_DEADLINE {
            self.timer_dirty = true;
            self.lapic.set_tsc_deadline(value, self.now_tsc());
            return Some(Ok(()));
        }
        if !is_x2apic_msr(msr) {
            return None;
        }
        let _ = value;
        Some(Err(GeneralProtection))
    }

    /// The highest-priority interrupt the local APIC would deliver now.
    pub fn pending_interrupt(&self) -> Option<u8> {
        self.lapic.pending_interrupt()
    }

    /// The vCPU is about to take `vector`.
    pub fn start_delivery(&mut self, vector: u8) {
        self.lapic.start_delivery(vector);
    }

    /// Fires timers that are due.
    pub fn on_time(&mut self) {
        self.lapic.on_time(self.now_tsc());
        self.timer_dirty = true;
    }

    /// Takes "the timer deadline changed", returning the deadline to arm.
    pub fn take_timer_change(&mut self) -> Option<Option<u64>> {
        core::mem::take(&mut self.timer_dirty).then(|| self.lapic.next_timer_deadline())
    }

    pub fn timer_deadline(&self) -> Option<u64> {
        self.lapic.next_timer_deadline()
    }

    /// A byte typed on Keel's console, for the domain's serial port.
    /// Returns false when the UART's receive FIFO is full.
    pub fn console_input(&mut self, byte: u8) -> bool {
        let taken = self.uart.push_input(byte, &mut self.effects);
        self.settle();
        taken
    }

    /// CR8: the local APIC's task-priority class (TPR bits 7:4).
    pub fn task_priority(&self) -> u64 {
        u64::from(self.lapic.mmio_read(TPR_OFFSET, 4, self.now_tsc()) >> 4)
    }

    pub fn set_task_priority(&mut self, class: u64) {
        let effect = self
            .lapic
            .mmio_write(TPR_OFFSET, 4, ((class & 0xf) << 4) as u32, self.now_tsc());
        self.apply_apic_effect(effect);
    }

    pub fn can_accept_console_input(&self) -> bool {
        self.uart.can_accept_input()
    }

    pub fn take_power_request(&mut self) -> Option<PowerAction> {
        self.effects.power.take()
    }

    /// Carries interrupt lines to the I/O APIC and its messages to the local APIC.
    fn settle(&mut self) {
        while !self.effects.irq_lines.is_empty() || !self.effects.interrupts.is_empty() {
            let lines = core::mem::take(&mut self.effects.irq_lines);
            for &(gsi, asserted) in &lines {
                self.ioapic.set_irq(gsi, asserted, &mut self.effects);
            }
            self.effects.irq_lines = lines;
            self.effects.irq_lines.clear();
            for message in self.effects.interrupts.drain(..) {
                // Every message targets the only local APIC.
                self.lapic.accept(message.vector, message.level_triggered);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A machine whose clock the test moves and whose console it reads.
    #[derive(Clone, Default)]
    pub(super) struct FakeHost {
        tsc: Rc<Cell<u64>>,
        console: Rc<core::cell::RefCell<Vec<u8>>>,
        /// Device register accesses forwarded.
        pub(super) device: Rc<core::cell::RefCell<Vec<DeviceAccess>>>,
    }

    /// A forwarded device register access: (address, size, the value
    /// written or `None` for a read).
    pub(super) type DeviceAccess = (u64, u8, Option<u64>);

    impl PlatformHost for FakeHost {
        fn now_tsc(&self) -> u64 {
            self.tsc.get()
        }

        fn console_output(&mut self, byte: u8) {
            self.console.borrow_mut().push(byte);
        }

        fn device_read(&mut self, address: u64, size: u8) -> u64 {
            self.device.borrow_mut().push((address, size, None));
            0x5a5a_5a5a_5a5a_5a5a >> (64 - 8 * u32::from(size.clamp(1, 8)))
        }

        fn device_write(&mut self, address: u64, size: u8, value: u64) {
            self.device.borrow_mut().push((address, size, Some(value)));
        }
    }

    const TSC_HZ: u64 = 10_000_000;
    pub(super) const IOREGSEL: u64 = IOAPIC_BASE;
    pub(super) const IOWIN: u64 = IOAPIC_BASE + 0x10;

    pub(super) fn platform() -> (VirtualPlatform<FakeHost>, FakeHost) {
        let host = FakeHost::default();
        host.tsc.set(1_000_000);
        let platform = VirtualPlatform::new(host.clone(), TSC_HZ, 0).expect("devices register");
        (platform, host)
    }

    /// What Linux does before it can take interrupts: APIC software-enabled,
    /// I/O APIC pin `pin` routed (edge, fixed, unmasked) to `vector`.
    fn route(platform: &mut VirtualPlatform<FakeHost>, pin: u32, vector: u8) {
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        platform.mmio_write(IOREGSEL, 4, u64::from(0x10 + 2 * pin));
        platform.mmio_write(IOWIN, 4, u64::from(vector));
        platform.mmio_write(IOREGSEL, 4, u64::from(0x11 + 2 * pin));
        platform.mmio_write(IOWIN, 4, 0);
    }

    #[test]
    fn uart_output_reaches_the_host_console() {
        let (mut platform, host) = platform();
        for &byte in b"ok\n" {
            platform.port_write(COM1_BASE, 1, u64::from(byte));
        }
        assert_eq!(&*host.console.borrow(), b"ok\n");
    }

    #[test]
    fn a_typed_byte_becomes_an_interrupt_and_can_be_read() {
        let (mut platform, _host) = platform();
        route(&mut platform, COM1_IRQ, 0x24);
        platform.port_write(COM1_BASE + 1, 1, 1); // IER: received-data interrupt
        platform.port_write(COM1_BASE + 4, 1, 0x08); // MCR: OUT2 gates the IRQ
        assert_eq!(platform.pending_interrupt(), None);
        assert!(platform.can_accept_console_input());
        assert!(platform.console_input(b'x'));
        assert_eq!(platform.pending_interrupt(), Some(0x24));
        platform.start_delivery(0x24);
        assert_eq!(platform.port_read(COM1_BASE, 1), u64::from(b'x'));
        platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0); // EOI
        assert_eq!(platform.pending_interrupt(), None);
    }

    #[test]
    fn the_tsc_deadline_timer_fires_through_the_platform() {
        let (mut platform, host) = platform();
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        platform.mmio_write(LOCAL_APIC_BASE + 0x320, 4, 0x4_0000 | 0xef); // LVT timer: TSC deadline
        let deadline = host.tsc.get() + 5_000;
        assert_eq!(platform.apic_wrmsr(0x6e0, deadline), Some(Ok(())));
        assert_eq!(platform.take_timer_change(), Some(Some(deadline)));
        assert_eq!(platform.take_timer_change(), None, "the change is reported once");
        platform.on_time();
        assert_eq!(platform.pending_interrupt(), None, "not due yet");
        host.tsc.set(deadline);
        platform.on_time();
        assert_eq!(platform.pending_interrupt(), Some(0xef));
    }

    #[test]
    fn only_timer_changes_ask_for_the_timer_to_be_re_armed() {
        let (mut platform, host) = platform();
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        platform.mmio_write(LOCAL_APIC_BASE + 0x320, 4, 0x4_0000 | 0xef);
        let _ = platform.take_timer_change();
        // EOIs, TPR writes and unrelated MSRs (a guest looping on them)
        // leave the armed timer, and so the time slice, alone.
        for _ in 0..3 {
            platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0);
            platform.mmio_write(LOCAL_APIC_BASE + 0x80, 4, 0x10);
            assert_eq!(platform.apic_wrmsr(0x1b, 0), None);
        }
        assert_eq!(platform.take_timer_change(), None);
        assert_eq!(platform.apic_wrmsr(0x6e0, host.tsc.get() + 10), Some(Ok(())));
        assert!(platform.take_timer_change().is_some());
        platform.mmio_write(LOCAL_APIC_BASE + 0x380, 4, 1000);
        assert!(platform.take_timer_change().is_some());
    }

    fn config_address(register: u32) -> u64 {
        u64::from(0x8000_0000 | (u32::from(MANAGEMENT_ADDRESS.device()) << 11) | register)
    }

    #[test]
    fn dom0s_management_function_answers_config_cycles_and_its_doorbell() {
        let (mut platform, _host) = platform();
        assert!(
            !platform.is_mmio(MANAGEMENT_REGISTERS_GPA),
            "nothing there before attaching"
        );
        let layout = platform.attach_management().unwrap();
        assert_eq!(layout.registers, Some(MANAGEMENT_REGISTERS_GPA));
        assert_eq!(layout.shared, Some(MANAGEMENT_SHARED_GPA));
        platform.port_write(0xcf8, 4, config_address(0));
        let id = platform.port_read(0xcfc, 4);
        assert_eq!(
            id,
            u64::from(keel_abi::mgmt::PCI_VENDOR_ID) | u64::from(keel_abi::mgmt::PCI_DEVICE_ID) << 16
        );
        assert!(platform.is_mmio(MANAGEMENT_REGISTERS_GPA + 8));
        assert!(!platform.is_mmio(MANAGEMENT_REGISTERS_GPA + 0x1000));
        assert_eq!(
            platform.mmio_read(MANAGEMENT_REGISTERS_GPA, 4),
            u64::from(keel_abi::mgmt::regs::MAGIC_VALUE)
        );
        assert!(!platform.take_doorbell());
        platform.mmio_write(MANAGEMENT_REGISTERS_GPA + keel_abi::mgmt::regs::DOORBELL, 4, 1);
        assert!(platform.take_doorbell());
        assert!(!platform.take_doorbell(), "reported once");
    }

    #[test]
    fn a_moved_shared_memory_bar_is_reported_and_one_outside_the_window_dropped() {
        let (mut platform, _host) = platform();
        platform.attach_management().unwrap();
        assert_eq!(platform.take_management_move(), None);
        // BAR 2 (64-bit, offsets 0x18/0x1c) moves 2 MiB up.
        let new_base = MANAGEMENT_SHARED_GPA + (2 << 20);
        platform.port_write(0xcf8, 4, config_address(0x18));
        platform.port_write(0xcfc, 4, new_base & 0xffff_ffff);
        let moved = platform.take_management_move().expect("reported");
        assert_eq!(moved.shared, Some(new_base));
        // Moving it outside the PCI window (into RAM) maps nothing.
        platform.port_write(0xcf8, 4, config_address(0x18));
        platform.port_write(0xcfc, 4, 0x20_0000);
        assert_eq!(platform.take_management_move().map(|layout| layout.shared), Some(None));
    }

    #[test]
    fn domus_have_no_management_function() {
        let (mut platform, _host) = platform();
        platform.port_write(0xcf8, 4, config_address(0));
        assert_eq!(platform.port_read(0xcfc, 4), 0xffff_ffff);
        assert!(!platform.is_mmio(MANAGEMENT_REGISTERS_GPA));
        platform.mmio_write(MANAGEMENT_REGISTERS_GPA + keel_abi::mgmt::regs::DOORBELL, 4, 1);
        assert!(!platform.take_doorbell());
    }

    #[test]
    fn an_assigned_device_is_configured_by_the_guest_and_its_irq_pulses() {
        use keel_devices::pci_config::{Bar, BarKind, PciIdentity};
        let (mut platform, _host) = platform();
        let identity = PciIdentity::new(0x8086, 0x7010, 0x010180, 0);
        let bar = Bar {
            kind: BarKind::Io,
            size: 16,
            address: 0xc000,
        };
        let function = PassthroughFunction::new(identity, &[(4, bar)], 0, 14).unwrap();
        let address = platform.attach_passthrough(function).unwrap();
        assert_eq!(address, PciAddress::new(0, PASSTHROUGH_FIRST_SLOT, 0).unwrap());
        let config = |register: u32| u64::from(0x8000_0000 | u32::from(address.device()) << 11 | register);
        platform.port_write(0xcf8, 4, config(0));
        assert_eq!(platform.port_read(0xcfc, 4), 0x7010_8086);
        platform.port_write(0xcf8, 4, config(4));
        platform.port_write(0xcfc, 2, 0x5);
        let changes = platform.take_passthrough_writes();
        assert_eq!(changes, [(address, PassthroughWrite::Command(0x5))]);
        assert!(platform.take_passthrough_writes().is_empty());
        // ISA IRQ 14, edge-triggered as Linux programs it.
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        platform.mmio_write(IOREGSEL, 4, 0x10 + 2 * 14);
        platform.mmio_write(IOWIN, 4, 0x3e);
        platform.mmio_write(IOREGSEL, 4, 0x11 + 2 * 14);
        platform.mmio_write(IOWIN, 4, 0);
        platform.pulse_irq(14);
        assert_eq!(platform.pending_interrupt(), Some(0x3e));
    }

    #[test]
    fn a_second_interrupt_on_a_level_pin_in_service_waits_for_the_eoi() {
        let (mut platform, _host) = platform();
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        // GSI 16 as Linux programs a PCI INTx pin: level, active low.
        platform.mmio_write(IOREGSEL, 4, 0x10 + 2 * 16);
        platform.mmio_write(IOWIN, 4, 0xa000 | 0x45);
        platform.mmio_write(IOREGSEL, 4, 0x11 + 2 * 16);
        platform.mmio_write(IOWIN, 4, 0);
        platform.pulse_irq(16);
        assert_eq!(platform.pending_interrupt(), Some(0x45));
        platform.start_delivery(0x45);
        // The second channel interrupts before the guest's EOI.
        platform.pulse_irq(16);
        assert_eq!(platform.pending_interrupt(), None, "Remote IRR holds it back");
        platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0); // EOI
        assert_eq!(
            platform.pending_interrupt(),
            Some(0x45),
            "delivered after the EOI, not lost"
        );
        platform.start_delivery(0x45);
        platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0);
        assert_eq!(platform.pending_interrupt(), None, "and only once");
    }

    /// A virtio-blk transport: one queue of up to 128 entries, two MSI-X
    /// vectors, 60 bytes of configuration.
    fn blk_transport() -> VirtioPciFunction {
        use keel_virtio::features::KEEL_TRANSPORT_FEATURES;
        use keel_virtio::pci::FunctionConfig;
        VirtioPciFunction::new(
            FunctionConfig {
                device_type: keel_virtio::device_id::BLOCK,
                device_features: KEEL_TRANSPORT_FEATURES,
                num_queues: 1,
                queue_max_size: 128,
                msix_vectors: 2,
                notify_off_multiplier: 0,
            },
            &[0; 60],
        )
        .unwrap()
    }

    #[test]
    fn a_virtio_device_is_probed_kicked_and_interrupts_through_msi_x() {
        use keel_abi::mgmt::virtio::{control_bit, kick_bit};
        use keel_virtio::features::VIRTIO_F_VERSION_1;
        use keel_virtio::pci::{common, CAP_MSIX, MSIX_TABLE_OFFSET};
        use keel_virtio::status::{ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK};
        let (mut platform, _host) = platform();
        let function = blk_transport();
        let address = platform.attach_virtio(function).unwrap();
        let config = |register: u32| u64::from(0x8000_0000 | u32::from(address.device()) << 11 | register);
        let cfg_read = |platform: &mut VirtualPlatform<FakeHost>, register: u32, size: u8| {
            platform.port_write(0xcf8, 4, config(register & !3));
            platform.port_read(0xcfc + (register & 3) as u16, size)
        };
        assert_eq!(cfg_read(&mut platform, 0, 4), 0x1042_1af4, "modern virtio-blk");
        assert_ne!(cfg_read(&mut platform, 6, 2) & 0x10, 0, "a capability list");
        assert_eq!(cfg_read(&mut platform, 0x34, 1), 0x40);
        assert!(
            !platform.is_mmio(VIRTIO_MMIO_BASE),
            "BAR 0 decodes only once memory is on"
        );
        let cfg_write = |platform: &mut VirtualPlatform<FakeHost>, register: u32, size: u8, value: u64| {
            platform.port_write(0xcf8, 4, config(register & !3));
            platform.port_write(0xcfc + (register & 3) as u16, size, value);
        };
        cfg_write(&mut platform, 4, 2, 0x3); // I/O and memory decoding
        cfg_write(&mut platform, u32::from(CAP_MSIX) + 2, 2, 1 << 15); // MSI-X on
        assert!(platform.is_mmio(VIRTIO_MMIO_BASE));
        let bar0 = VIRTIO_MMIO_BASE;
        // MSI-X entry 0: the local APIC, vector 0x51, unmasked.
        platform.mmio_write(bar0 + MSIX_TABLE_OFFSET, 4, 0xfee0_0000);
        platform.mmio_write(bar0 + MSIX_TABLE_OFFSET + 4, 4, 0);
        platform.mmio_write(bar0 + MSIX_TABLE_OFFSET + 8, 4, 0x51);
        platform.mmio_write(bar0 + MSIX_TABLE_OFFSET + 12, 4, 0);
        let common = |offset: u64| bar0 + offset;
        platform.mmio_write(common(common::DEVICE_STATUS), 1, u64::from(ACKNOWLEDGE | DRIVER));
        platform.mmio_write(common(common::DRIVER_FEATURE_SELECT), 4, 1);
        platform.mmio_write(common(common::DRIVER_FEATURE), 4, VIRTIO_F_VERSION_1 >> 32);
        platform.mmio_write(
            common(common::DEVICE_STATUS),
            1,
            u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK),
        );
        assert_ne!(
            platform.mmio_read(common(common::DEVICE_STATUS), 1) as u8 & FEATURES_OK,
            0
        );
        platform.mmio_write(common(common::QUEUE_SELECT), 2, 0);
        platform.mmio_write(common(common::QUEUE_MSIX_VECTOR), 2, 0);
        platform.mmio_write(common(common::QUEUE_DESC), 8, 0x10000);
        platform.mmio_write(common(common::QUEUE_DRIVER), 8, 0x11000);
        platform.mmio_write(common(common::QUEUE_DEVICE), 8, 0x12000);
        platform.mmio_write(common(common::QUEUE_ENABLE), 2, 1);
        platform.mmio_write(
            common(common::DEVICE_STATUS),
            1,
            u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK),
        );
        let effects: Vec<Effect> = platform
            .take_virtio_effects()
            .into_iter()
            .map(|(_, effect)| effect)
            .collect();
        assert!(effects.contains(&Effect::QueueEnabled(0)), "{effects:?}");
        // The driver kicks queue 0 through the notify port: an effect for
        // the backend, no exit to decode.
        platform.port_write(VIRTIO_NOTIFY_PORT_BASE, 2, 0);
        assert_eq!(platform.take_virtio_effects(), [(address, Effect::QueueNotify(0))]);
        // The backend completes: MSI-X vector 0 reaches the local APIC.
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        assert!(platform.signal_virtio_queue(address, 0));
        assert_eq!(platform.pending_interrupt(), Some(0x51));
        // As the backend sees them: two kicks coalesce into device 0's kick
        // bit; nothing is left for the next call.
        platform.port_write(VIRTIO_NOTIFY_PORT_BASE, 2, 0);
        platform.port_write(VIRTIO_NOTIFY_PORT_BASE, 2, 0);
        assert!(platform.has_virtio_effects());
        assert_eq!(platform.take_virtio_notifications(true), kick_bit(0));
        assert!(!platform.has_virtio_effects());
        assert_eq!(platform.take_virtio_notifications(true), 0);
        // A reset is a control bit and waits for the backend...
        platform.mmio_write(common(common::DEVICE_STATUS), 1, 0);
        assert_eq!(platform.take_virtio_notifications(true), control_bit(0));
        assert!(platform.virtio_transport(0).unwrap().reset_pending());
        platform.virtio_transport(0).unwrap().complete_reset();
        // ...unless there is none: then it completes at once.
        let features_ok = u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        platform.mmio_write(common(common::DRIVER_FEATURE_SELECT), 4, 1);
        platform.mmio_write(common(common::DRIVER_FEATURE), 4, VIRTIO_F_VERSION_1 >> 32);
        platform.mmio_write(common(common::DEVICE_STATUS), 1, features_ok);
        let _ = platform.take_virtio_notifications(false);
        platform.mmio_write(common(common::DEVICE_STATUS), 1, 0);
        assert_eq!(platform.take_virtio_notifications(false), 0);
        assert!(!platform.virtio_transport(0).unwrap().reset_pending());
        assert_eq!(platform.mmio_read(common(common::DEVICE_STATUS), 1), 0);
    }

    #[test]
    fn a_backend_slot_interrupts_dom0_only_when_armed_and_unmasked() {
        use keel_abi::mgmt::virtio::{notify_arm_register, notify_register};
        let (mut platform, _host) = platform();
        let layout = platform.attach_management().unwrap();
        assert_eq!(layout.window, Some(MANAGEMENT_WINDOW_GPA));
        assert_eq!(platform.management_window(), Some(MANAGEMENT_WINDOW_GPA));
        let gsi = PCI_ROOT.intx_gsi(MANAGEMENT_ADDRESS.device(), 1).unwrap();
        route(&mut platform, gsi, 0x61);
        let regs = MANAGEMENT_REGISTERS_GPA;
        platform.mmio_write(regs + keel_abi::mgmt::regs::EVENT_MASK, 4, 1 << 2);
        platform.notify_backend(2, 1);
        assert_eq!(platform.pending_interrupt(), None, "slot 2 is not armed");
        platform.mmio_write(regs + notify_arm_register(2), 4, 1);
        assert_eq!(platform.pending_interrupt(), Some(0x61));
        assert_eq!(platform.mmio_read(regs + notify_register(2), 4), 1);
        // The slot's domain goes away: nothing of it remains.
        platform.notify_backend(2, 1 << 16);
        platform.clear_backend_slot(2);
        assert_eq!(platform.mmio_read(regs + notify_register(2), 4), 0);
        assert_eq!(platform.mmio_read(regs + notify_arm_register(2), 4), 0);
    }

    #[test]
    fn without_msi_x_a_virtio_device_interrupts_on_intx_until_the_isr_is_read() {
        use keel_virtio::pci::{common, ISR_OFFSET};
        use keel_virtio::status::{ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK};
        let (mut platform, _host) = platform();
        let function = blk_transport();
        let address = platform.attach_virtio(function).unwrap();
        assert_eq!(platform.virtio_index(address), Some(0));
        assert_eq!(platform.virtio_count(), 1);
        let gsi = PCI_ROOT.intx_gsi(address.device(), 1).unwrap();
        route(&mut platform, gsi, 0x62);
        platform.port_write(0xcf8, 4, u64::from(0x8000_0004 | u32::from(address.device()) << 11));
        platform.port_write(0xcfc, 2, 0x3);
        let bar0 = VIRTIO_MMIO_BASE;
        let features_ok = u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        platform.mmio_write(bar0 + common::DRIVER_FEATURE_SELECT, 4, 1);
        platform.mmio_write(bar0 + common::DRIVER_FEATURE, 4, 1);
        platform.mmio_write(bar0 + common::DEVICE_STATUS, 1, features_ok);
        platform.mmio_write(bar0 + common::DEVICE_STATUS, 1, features_ok | u64::from(DRIVER_OK));
        assert!(platform.has_virtio_effects());
        let _ = platform.take_virtio_effects();
        assert!(platform.signal_virtio(0, 0));
        assert_eq!(platform.pending_interrupt(), Some(0x62));
        platform.start_delivery(0x62);
        platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0);
        // The ISR read clears the level: no second interrupt.
        assert_eq!(platform.mmio_read(bar0 + ISR_OFFSET, 1), 1);
        assert_eq!(platform.pending_interrupt(), None);
        // The line fell with the read, so the next completion is a new
        // edge (the route is edge-triggered).
        assert!(platform.signal_virtio(0, 0));
        assert_eq!(platform.pending_interrupt(), Some(0x62));
        assert!(!platform.signal_virtio(1, 0), "no device 1");
        // A backend's report of a broken queue: DEVICE_NEEDS_RESET.
        platform.virtio_needs_reset(0);
        assert_ne!(platform.virtio_transport(0).unwrap().status() & 0x40, 0);
    }

    #[test]
    fn the_power_button_raises_one_interrupt_per_press() {
        let (mut platform, _host) = platform();
        platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
        // Linux programs the GED's pin edge-triggered, active high.
        platform.mmio_write(IOREGSEL, 4, u64::from(0x10 + 2 * POWER_BUTTON.gsi));
        platform.mmio_write(IOWIN, 4, 0x41);
        platform.mmio_write(IOREGSEL, 4, u64::from(0x11 + 2 * POWER_BUTTON.gsi));
        platform.mmio_write(IOWIN, 4, 0);
        assert_eq!(platform.pending_interrupt(), None);
        platform.press_power_button();
        assert_eq!(platform.pending_interrupt(), Some(0x41));
        platform.start_delivery(0x41);
        platform.mmio_write(LOCAL_APIC_BASE + 0xb0, 4, 0);
        assert_eq!(platform.pending_interrupt(), None, "one press, one interrupt");
    }

    #[test]
    fn x2apic_msrs_fault_in_xapic_mode_and_other_msrs_are_not_the_apics() {
        let (mut platform, _host) = platform();
        assert_eq!(platform.apic_rdmsr(0x802), Some(Err(GeneralProtection)));
        assert_eq!(platform.apic_wrmsr(0x80b, 0), Some(Err(GeneralProtection)));
        assert_eq!(platform.apic_rdmsr(0x1b), None);
    }

    #[test]
    fn the_dsdt_and_the_pm_device_agree_on_s5() {
        // The DSDT's \_S5_ package tells Linux what to write; the PM device
        // must read the same value as power-off.
        assert_eq!(keel_devices::acpi_pm::S5_SLP_TYP, keel_acpi_tables::S5_SLEEP_TYPE);
    }

    #[test]
    fn sleep_state_s5_requests_power_off_and_the_reset_register_a_reset() {
        let (mut platform, _host) = platform();
        assert_eq!(platform.take_power_request(), None);
        platform.port_write(keel_devices::acpi_pm::SLEEP_CONTROL_PORT, 1, (5 << 2) | (1 << 5));
        assert_eq!(platform.take_power_request(), Some(PowerAction::PowerOff));
        platform.port_write(0xcf9, 1, 0x06);
        assert_eq!(platform.take_power_request(), Some(PowerAction::Reset));
    }

    #[test]
    fn unclaimed_ports_read_all_ones_and_mmio_ranges_are_exact() {
        let (mut platform, _host) = platform();
        assert_eq!(platform.port_read(0x1234, 2), 0xffff);
        platform.port_write(0x1234, 4, 0xdead_beef);
        assert!(platform.is_mmio(IOAPIC_BASE));
        assert!(platform.is_mmio(LOCAL_APIC_BASE + 0xfff));
        assert!(!platform.is_mmio(LOCAL_APIC_BASE + 0x1000));
        assert!(!platform.is_mmio(IOAPIC_BASE - 1));
    }

    #[test]
    fn cr8_maps_to_the_task_priority_class() {
        let (mut platform, _host) = platform();
        platform.set_task_priority(0x9);
        assert_eq!(platform.task_priority(), 0x9);
        assert_eq!(platform.mmio_read(LOCAL_APIC_BASE + 0x80, 4), 0x90);
    }
}

//! What the hypervisor tells the generator about one guest's virtual platform.

use core::fmt;
use core::ops::BitOr;

/// Architectural default of the local APIC MMIO window.
pub const DEFAULT_LOCAL_APIC_ADDRESS: u64 = 0xFEE0_0000;
/// Conventional address of the first I/O APIC.
pub const DEFAULT_IO_APIC_ADDRESS: u32 = 0xFEC0_0000;
/// OEM ID stamped into every table (space-padded to six bytes as ACPI requires).
pub const KEEL_OEM_ID: [u8; 6] = *b"KEEL  ";

/// Everything needed to describe one guest's platform in ACPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestAcpiConfig<'a> {
    /// One entry per virtual CPU, in boot order: its (x2)APIC id. The first
    /// entry is the bootstrap processor.
    pub cpus: &'a [u32],
    pub local_apic_address: u64,
    pub io_apic: Option<IoApicConfig>,
    /// Extra ISA IRQ → GSI remappings. IRQ0 → GSI2 is added automatically
    /// unless this list remaps IRQ0 itself.
    pub isa_overrides: &'a [IsaOverride],
    pub pm: PowerManagement,
    /// Declares the ACPI hardware-reduced profile: Linux then ignores the PM1
    /// blocks and the SCI and uses `pm.sleep_registers` to power off.
    pub hw_reduced: bool,
    pub boot_arch_flags: BootArchFlags,
    pub oem_id: [u8; 6],
    /// 16550 serial ports described in the DSDT (`PNP0501` devices). A
    /// hardware-reduced guest has no legacy ISA IRQs, so a UART's interrupt
    /// reaches the OS only through such a description.
    pub serial_ports: &'a [SerialPort],
    /// A CMOS RTC described in the DSDT (`PNP0B00`), so the OS binds its
    /// driver to it; on a hardware-reduced platform that is the only way.
    pub cmos_rtc: Option<CmosRtc>,
    /// A PCI host bridge described in the DSDT (`\_SB.PCI0`). Without it an
    /// ACPI guest enumerates no PCI bus at all: Linux scans root buses only
    /// where ACPI declares them.
    pub pci: Option<PciRootConfig>,
    /// A control-method power button (`\_SB.PWRB`, `PNP0C0C`) and the
    /// Generic Event Device (`\_SB.GED0`, `ACPI0013`) whose interrupt
    /// notifies it: how a hardware-reduced guest, which has no fixed-feature
    /// power button, learns that it is asked to power off.
    pub power_button: Option<PowerButtonConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicConfig {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

impl IoApicConfig {
    /// Inputs (redirection entries) of the I/O APIC Keel emulates, an
    /// 82093AA-style one with 24 pins (`keel_devices::ioapic::IOAPIC_PIN_COUNT`):
    /// it serves GSIs `gsi_base` to `gsi_base + 23`.
    pub const INPUTS: u32 = 24;

    /// Whether `gsi` is one of this I/O APIC's inputs.
    pub const fn serves(&self, gsi: u32) -> bool {
        gsi >= self.gsi_base && gsi - self.gsi_base < Self::INPUTS
    }
}

/// An MADT Interrupt Source Override: ISA `source_irq` is wired to `gsi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaOverride {
    pub source_irq: u8,
    pub gsi: u32,
    /// MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3.
    pub flags: u16,
}

impl IsaOverride {
    pub const POLARITY_CONFORMING: u16 = 0b00;
    pub const POLARITY_ACTIVE_HIGH: u16 = 0b01;
    pub const POLARITY_ACTIVE_LOW: u16 = 0b11;
    pub const TRIGGER_CONFORMING: u16 = 0b00 << 2;
    pub const TRIGGER_EDGE: u16 = 0b01 << 2;
    pub const TRIGGER_LEVEL: u16 = 0b11 << 2;
    /// Bits the ACPI spec leaves reserved (must be zero).
    pub(crate) const RESERVED_FLAG_BITS: u16 = !0b1111;

    /// The PIT is wired to I/O APIC pin 2 on every PC since the APIC era; Linux
    /// relies on this override to find its timer interrupt.
    pub const TIMER: Self = Self {
        source_irq: 0,
        gsi: 2,
        flags: Self::POLARITY_CONFORMING | Self::TRIGGER_CONFORMING,
    };
}

/// Fixed-hardware power management registers, all in I/O port space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerManagement {
    /// Base port of the 4-byte PM1a event block (status word, then enable word).
    pub pm1a_event_block: u16,
    /// Port of the 2-byte PM1a control register (SCI_EN, SLP_TYP, SLP_EN).
    pub pm1a_control_block: u16,
    /// Port of the 4-byte, 24-bit ACPI PM timer, if the guest gets one.
    pub pm_timer_block: Option<u16>,
    pub sci_irq: u16,
    pub reset_register: ResetRegister,
    /// Hardware-reduced sleep control/status registers (FADT SLEEP_CONTROL_REG
    /// and SLEEP_STATUS_REG); only meaningful with `hw_reduced`.
    pub sleep_registers: Option<SleepRegisters>,
}

/// The I/O port the guest writes `value` to in order to reset the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    pub port: u16,
    pub value: u8,
}

impl ResetRegister {
    /// PCI Reset Control Register: 0x06 requests a hard (cold) reset.
    pub const PCI_RESET_CONTROL: Self = Self {
        port: 0xCF9,
        value: 0x06,
    };
}

/// One-byte hardware-reduced sleep registers, each an I/O port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepRegisters {
    pub control_port: u16,
    pub status_port: u16,
}

/// FADT IAPC_BOOT_ARCH: which legacy PC devices the guest may assume exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootArchFlags(u16);

impl BootArchFlags {
    pub const LEGACY_DEVICES: Self = Self(1 << 0);
    /// Without this bit Linux skips probing the i8042 keyboard controller.
    pub const I8042_PRESENT: Self = Self(1 << 1);
    pub const VGA_NOT_PRESENT: Self = Self(1 << 2);
    pub const MSI_NOT_SUPPORTED: Self = Self(1 << 3);
    pub const PCIE_ASPM_CONTROLS: Self = Self(1 << 4);
    /// Stops Linux registering the rtc_cmos device on ports 0x70/0x71.
    pub const CMOS_RTC_NOT_PRESENT: Self = Self(1 << 5);

    /// Keel emulates neither VGA nor a CMOS RTC nor (yet) an i8042.
    pub const KEEL_DEFAULT: Self = Self(Self::VGA_NOT_PRESENT.0 | Self::CMOS_RTC_NOT_PRESENT.0);

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Sets or clears `I8042_PRESENT`, for when the keyboard controller is emulated.
    pub const fn with_i8042(self, present: bool) -> Self {
        if present {
            Self(self.0 | Self::I8042_PRESENT.0)
        } else {
            Self(self.0 & !Self::I8042_PRESENT.0)
        }
    }
}

impl BitOr for BootArchFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keel_default_hides_vga_rtc_and_i8042() {
        let flags = BootArchFlags::KEEL_DEFAULT;
        assert!(flags.contains(BootArchFlags::VGA_NOT_PRESENT));
        assert!(flags.contains(BootArchFlags::CMOS_RTC_NOT_PRESENT));
        assert!(!flags.contains(BootArchFlags::I8042_PRESENT));
        assert_eq!(flags.bits(), 0b10_0100);
    }

    #[test]
    fn i8042_flag_toggles_only_its_bit() {
        let with = BootArchFlags::KEEL_DEFAULT.with_i8042(true);
        assert_eq!(with.bits(), 0b10_0110);
        assert_eq!(with.with_i8042(false), BootArchFlags::KEEL_DEFAULT);
    }

    #[test]
    fn bitor_unions_flags() {
        let flags = BootArchFlags::LEGACY_DEVICES | BootArchFlags::MSI_NOT_SUPPORTED;
        assert_eq!(flags.bits(), 0b1001);
        assert_eq!(BootArchFlags::empty().bits(), 0);
    }

    #[test]
    fn timer_override_routes_irq0_to_gsi2() {
        assert_eq!(IsaOverride::TIMER.source_irq, 0);
        assert_eq!(IsaOverride::TIMER.gsi, 2);
        assert_eq!(IsaOverride::TIMER.flags, 0);
    }
}

/// A 16550-compatible UART at an I/O port range with one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialPort {
    /// First of its eight I/O ports.
    pub io_base: u16,
    /// The I/O APIC input (GSI) its interrupt drives, edge-triggered, active high.
    pub gsi: u32,
}

/// An MC146818-compatible RTC at two I/O ports with one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmosRtc {
    /// The index port (the data port follows it).
    pub io_base: u16,
    /// The I/O APIC input (GSI) of its interrupt, edge-triggered, active high.
    pub gsi: u32,
}

/// A PCI host bridge (`\_SB.PCI0`, `PNP0A08` compatible with `PNP0A03`) on
/// segment 0 whose configuration space is reached through mechanism #1
/// (ports 0xCF8-0xCFF; no MCFG table, so no ECAM). Its `_CRS` forwards
/// I/O ports 0x0000-0x0CF7 and 0x0D00-0xFFFF and the 32-bit MMIO window
/// `[mmio_start, mmio_end]`; its `_PRT` routes INTA-INTD of every device
/// slot on bus 0 to four GSIs, swizzled by slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciRootConfig {
    /// The last bus number behind the bridge (it decodes buses 0 to this).
    pub bus_end: u8,
    /// First byte of the 32-bit MMIO window where BARs live. The window must
    /// hold no RAM and no other device: Linux (6.1, without DMI data) clips
    /// host bridge windows against every e820 entry, and keeps a firmware
    /// BAR assignment only if it lies inside a window.
    pub mmio_start: u32,
    /// Last byte (inclusive) of the MMIO window.
    pub mmio_end: u32,
    /// A 64-bit MMIO window `[mmio64_start, mmio64_start + mmio64_len)`
    /// above guest RAM for large prefetchable BARs; length 0: none.
    pub mmio64_start: u64,
    pub mmio64_len: u64,
    /// The GSI of INTA# of device 0. Device `d`'s pin `p` (INTA = 0) is wired
    /// to `intx_gsi_base + (d + p) % 4`, the swizzle a PCI-to-PCI bridge
    /// would apply, spreading slots over four level-triggered, active-low
    /// I/O APIC inputs.
    pub intx_gsi_base: u32,
}

impl PciRootConfig {
    /// Bus 0 only; MMIO from 3 GiB up to just below the I/O APIC at
    /// 0xFEC00000 (the local APIC at 0xFEE00000 is above it too), and 64 GiB
    /// from 64 GiB up (the management function's memory window; any CPU
    /// with 37 or more physical address bits reaches it); INTx on
    /// GSIs 16-19, the first I/O APIC inputs above the ISA range.
    pub const KEEL_DEFAULT: Self = Self {
        bus_end: 0,
        mmio_start: 0xC000_0000,
        mmio_end: 0xFEBF_FFFF,
        mmio64_start: 64 << 30,
        mmio64_len: 64 << 30,
        intx_gsi_base: 16,
    };

    /// The GSI the `_PRT` gives `device`'s interrupt `pin` as its Interrupt
    /// Pin register names it (1 = INTA ... 4 = INTD); `None` for pin 0 (no
    /// interrupt), pins above 4 or devices above 31.
    pub const fn intx_gsi(&self, device: u8, pin: u8) -> Option<u32> {
        if device > 31 || pin == 0 || pin > 4 {
            return None;
        }
        let swizzled = (device as u32 + pin as u32 - 1) % 4;
        self.intx_gsi_base.checked_add(swizzled)
    }

    /// Whether `[start, start + len)` shares a byte with the MMIO window.
    pub(crate) fn mmio_window_overlaps(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len.saturating_sub(1));
        len != 0 && start <= u64::from(self.mmio_end) && u64::from(self.mmio_start) <= end
    }
}

#[cfg(test)]
mod pci_tests {
    use super::*;

    #[test]
    fn intx_swizzle_spreads_slots_over_four_gsis() {
        let pci = PciRootConfig::KEEL_DEFAULT;
        assert_eq!(pci.intx_gsi(0, 1), Some(16));
        assert_eq!(pci.intx_gsi(1, 1), Some(17), "the management function's INTA#");
        assert_eq!(pci.intx_gsi(1, 4), Some(16));
        assert_eq!(pci.intx_gsi(3, 2), Some(16));
        assert_eq!(pci.intx_gsi(31, 1), Some(19));
        assert_eq!(pci.intx_gsi(1, 0), None, "no interrupt pin");
        assert_eq!(pci.intx_gsi(1, 5), None);
        assert_eq!(pci.intx_gsi(32, 1), None);
        let high = PciRootConfig {
            intx_gsi_base: u32::MAX,
            ..pci
        };
        assert_eq!(high.intx_gsi(1, 1), None, "overflow");
    }

    #[test]
    fn default_window_avoids_both_apics() {
        let pci = PciRootConfig::KEEL_DEFAULT;
        assert!(!pci.mmio_window_overlaps(u64::from(DEFAULT_IO_APIC_ADDRESS), 0x1000));
        assert!(!pci.mmio_window_overlaps(DEFAULT_LOCAL_APIC_ADDRESS, 0x1000));
        assert!(pci.mmio_window_overlaps(0xFEBF_F000, 0x2000));
        assert!(pci.mmio_window_overlaps(0xBFFF_FFFF, 2));
        assert!(!pci.mmio_window_overlaps(0xBFFF_F000, 0x1000));
        assert!(!pci.mmio_window_overlaps(0xC000_0000, 0));
        assert!(pci.mmio_window_overlaps(0, u64::MAX));
    }
}

/// The power button: the DSDT's `\_SB.GED0` (`ACPI0013`, Linux's
/// drivers/acpi/evged.c) consumes I/O APIC input `gsi`, edge-triggered,
/// active high, exclusive; on each interrupt the OS evaluates
/// `\_SB.GED0._EVT (gsi)`, which does `Notify (\_SB.PWRB, 0x80)`, and the
/// button driver reports one press of KEY_POWER. To press the button the
/// hypervisor pulses the line: asserts it, then deasserts it (one rising
/// edge, one press).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerButtonConfig {
    /// The I/O APIC input the GED's interrupt arrives on. It must be one of
    /// the I/O APIC's inputs and used by nothing else in the configuration.
    pub gsi: u32,
}

impl PowerButtonConfig {
    /// GSI 23, the I/O APIC's last input: above the ISA range and clear of
    /// the UART (4), the RTC (8), the SCI (9) and PCI INTx (16-19), leaving
    /// 20-22 for more devices.
    pub const KEEL_DEFAULT: Self = Self { gsi: 23 };
}

/// What else in a [`GuestAcpiConfig`] uses a GSI the power button asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsiUser {
    /// The SCI (`pm.sci_irq`).
    Sci,
    /// `serial_ports[index]`.
    SerialPort(usize),
    CmosRtc,
    /// One of the PCI root's four INTx GSIs.
    PciIntx,
    /// The MADT routes ISA IRQ `source_irq` there (IRQ0 → GSI 2 unless overridden).
    IsaOverride(u8),
}

impl fmt::Display for GsiUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sci => write!(f, "the SCI"),
            Self::SerialPort(index) => write!(f, "serial port {index}"),
            Self::CmosRtc => write!(f, "the CMOS RTC"),
            Self::PciIntx => write!(f, "PCI INTx"),
            Self::IsaOverride(irq) => write!(f, "the override of ISA IRQ {irq}"),
        }
    }
}

#[cfg(test)]
mod power_button_tests {
    use super::*;

    #[test]
    fn io_apic_serves_its_24_inputs_from_its_base() {
        let io_apic = IoApicConfig {
            id: 1,
            address: DEFAULT_IO_APIC_ADDRESS,
            gsi_base: 0,
        };
        assert!(io_apic.serves(0));
        assert!(io_apic.serves(PowerButtonConfig::KEEL_DEFAULT.gsi));
        assert!(!io_apic.serves(24));
        let second = IoApicConfig {
            gsi_base: 24,
            ..io_apic
        };
        assert!(!second.serves(23));
        assert!(second.serves(24) && second.serves(47) && !second.serves(48));
        let top = IoApicConfig {
            gsi_base: u32::MAX - 1,
            ..io_apic
        };
        assert!(top.serves(u32::MAX) && !top.serves(0));
    }
}

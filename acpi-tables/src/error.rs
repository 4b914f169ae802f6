use core::fmt;

use crate::aml::AmlError;
use crate::config::GsiUser;

/// Why a guest's ACPI tables could not be generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The guest must have at least one CPU.
    NoCpus,
    TooManyCpus {
        count: usize,
        max: usize,
    },
    DuplicateApicId(u32),
    /// 0xFFFF_FFFF is the x2APIC broadcast id and cannot name a CPU.
    InvalidApicId(u32),
    /// Interrupt source overrides were given but there is no I/O APIC to route to.
    IsaOverrideWithoutIoApic,
    /// Only ISA IRQs 0-15 can be overridden.
    InvalidIsaIrq(u8),
    DuplicateIsaOverride(u8),
    /// The override's flags set bits the ACPI spec reserves.
    InvalidIsaOverrideFlags {
        source_irq: u8,
        flags: u16,
    },
    /// A full-ACPI (not hardware-reduced) guest needs PM1a event and control blocks.
    MissingPm1aBlock,
    /// The tables would extend past the top of the guest-physical address space.
    AddressOverflow,
    /// A table would exceed the 4 GiB its 32-bit length field can describe.
    TableTooLarge,
    /// The PCI MMIO window ends before it starts.
    PciWindowEmpty {
        start: u32,
        end: u32,
    },
    /// The PCI MMIO window covers the 4 KiB MMIO page of an APIC at `address`.
    PciWindowOverlapsApic {
        address: u64,
    },
    /// `intx_gsi_base + 3` does not fit a GSI number.
    PciIntxGsiOutOfRange(u32),
    /// The power button's interrupt needs an I/O APIC to arrive through.
    PowerButtonWithoutIoApic,
    /// The power button's GSI is not one of the I/O APIC's inputs.
    PowerButtonGsiOutOfRange(u32),
    /// The power button's GSI is already taken by `user`.
    PowerButtonGsiInUse {
        gsi: u32,
        user: GsiUser,
    },
    Aml(AmlError),
}

impl From<AmlError> for AcpiError {
    fn from(error: AmlError) -> Self {
        Self::Aml(error)
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCpus => write!(f, "guest has no CPUs"),
            Self::TooManyCpus { count, max } => {
                write!(f, "guest has {count} CPUs, at most {max} are supported")
            }
            Self::DuplicateApicId(id) => write!(f, "APIC id {id} is used by two CPUs"),
            Self::InvalidApicId(id) => write!(f, "APIC id {id:#x} cannot name a CPU"),
            Self::IsaOverrideWithoutIoApic => {
                write!(f, "ISA interrupt overrides need an I/O APIC")
            }
            Self::InvalidIsaIrq(irq) => write!(f, "IRQ {irq} is not an ISA IRQ (0-15)"),
            Self::DuplicateIsaOverride(irq) => write!(f, "ISA IRQ {irq} is overridden twice"),
            Self::InvalidIsaOverrideFlags { source_irq, flags } => {
                write!(
                    f,
                    "ISA IRQ {source_irq} override has reserved flag bits set ({flags:#x})"
                )
            }
            Self::MissingPm1aBlock => {
                write!(f, "full ACPI needs PM1a event and control blocks")
            }
            Self::AddressOverflow => write!(f, "tables overflow the guest-physical address space"),
            Self::TableTooLarge => write!(f, "table longer than its 32-bit length field allows"),
            Self::PciWindowEmpty { start, end } => {
                write!(f, "PCI MMIO window {start:#x}-{end:#x} is empty")
            }
            Self::PciWindowOverlapsApic { address } => {
                write!(f, "PCI MMIO window covers the APIC at {address:#x}")
            }
            Self::PciIntxGsiOutOfRange(base) => write!(f, "PCI INTx GSIs from {base} overflow"),
            Self::PowerButtonWithoutIoApic => write!(f, "the power button needs an I/O APIC"),
            Self::PowerButtonGsiOutOfRange(gsi) => {
                write!(f, "power button GSI {gsi} is not an input of the I/O APIC")
            }
            Self::PowerButtonGsiInUse { gsi, user } => {
                write!(f, "power button GSI {gsi} is already used by {user}")
            }
            Self::Aml(error) => write!(f, "DSDT encoding failed: {error}"),
        }
    }
}

impl core::error::Error for AcpiError {}

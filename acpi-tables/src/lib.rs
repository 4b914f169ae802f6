//! Generates the ACPI tables Keel gives each Linux guest (and, in [`find`],
//! reads the host firmware's): RSDP → XSDT →
//! {FADT → {DSDT, FACS}, MADT}, laid out in one blob that the loader copies
//! to a chosen guest-physical address.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod aml;
mod builder;
mod bytes;
mod config;
mod dsdt;
mod error;
mod facs;
mod fadt;
pub mod find;
mod gas;
pub mod host_madt;
mod layout;
mod madt;
mod rsdp;
mod sdt;
mod xsdt;

pub use builder::{build_guest_acpi, AcpiBlob};
pub use config::{
    BootArchFlags, CmosRtc, GsiUser, GuestAcpiConfig, IoApicConfig, IsaOverride, PciRootConfig, PowerButtonConfig,
    PowerManagement, ResetRegister, SerialPort, SleepRegisters, DEFAULT_IO_APIC_ADDRESS, DEFAULT_LOCAL_APIC_ADDRESS,
    KEEL_OEM_ID,
};
pub use dsdt::S5_SLEEP_TYPE;
pub use error::AcpiError;
pub use madt::MAX_GUEST_CPUS;

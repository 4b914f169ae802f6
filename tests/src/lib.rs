//! Keel's boot-test harness: builds GRUB ISOs of the hypervisor, boots them
//! in Bochs or QEMU, and judges each run by the markers in its serial log.
//! `cargo xtask test` drives it.

pub mod case;
pub mod cases;
pub mod console;
pub mod dom0;
pub mod emulator;
pub mod host_kvm;
pub mod interrupt;
pub mod iso;
pub mod layout;
pub mod machine;
pub mod marker;
pub mod report;
pub mod runner;
pub mod verdict;

pub use case::{Finish, Requirement, TestCase};
pub use cases::all_boot_tests;
pub use dom0::{Dom0Modules, KernelImage};
pub use layout::{Layout, Profile};
pub use machine::Machine;
pub use marker::Marker;

//! One module per `cargo xtask` command.

pub mod bench;
pub mod build;
pub mod fuzz;
pub mod iso;
pub mod run;
pub mod test;

use keel_boot_tests::Machine;

use crate::prerequisites::{self, Prerequisite};

/// The emulator tools a machine needs.
fn emulator_prerequisites(machine: &Machine) -> &'static [Prerequisite] {
    match machine {
        Machine::Bochs(_) => prerequisites::BOCHS,
        Machine::Qemu(_) => prerequisites::QEMU,
    }
}

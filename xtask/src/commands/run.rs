//! `cargo xtask run`: boot Keel with its serial console on this terminal.

use std::io;

use anyhow::Result;
use keel_abi::emulator::{qemu_status, QEMU_EXIT_FAILURE, QEMU_EXIT_SUCCESS};
use keel_boot_tests::cases::DOM0_MEMORY_MIB;
use keel_boot_tests::emulator::{self, RunEnding, Watch};
use keel_boot_tests::{Dom0Modules, Machine};

use crate::cli::EmulatorChoice;
use crate::commands::emulator_prerequisites;
use crate::workspace::Workspace;
use crate::{host_kvm, prerequisites, say};

fn machine_for(choice: EmulatorChoice) -> Machine {
    match choice {
        EmulatorChoice::Bochs => Machine::bochs(),
        EmulatorChoice::Qemu => Machine::qemu_tcg(),
        EmulatorChoice::Kvm => Machine::qemu_kvm(),
    }
}

fn default_choice() -> EmulatorChoice {
    if host_kvm::accepts_vmx_guests() {
        EmulatorChoice::Kvm
    } else {
        EmulatorChoice::Bochs
    }
}

/// The hypervisor command line when none is given: Dom0 when its modules
/// are on the ISO, else Keel's own default guest.
fn default_cmdline(dom0: Option<&Dom0Modules>) -> &'static str {
    match dom0 {
        Some(_) => "guest=dom0",
        None => "",
    }
}

pub fn run(
    workspace: &Workspace,
    choice: Option<EmulatorChoice>,
    cmdline: Option<String>,
    dom0: Option<&Dom0Modules>,
    debug: bool,
) -> Result<()> {
    let mut machine = machine_for(choice.unwrap_or_else(default_choice));
    if dom0.is_some() {
        machine = machine.with_memory(DOM0_MEMORY_MIB);
    }
    prerequisites::ensure(&[emulator_prerequisites(&machine)])?;
    let cmdline = cmdline.unwrap_or_else(|| default_cmdline(dom0).to_string());
    let iso = super::iso::build(workspace, &cmdline, dom0, debug)?;
    let run_dir = workspace.layout.interactive_run_dir();
    say!(
        "booting {} in {machine} (Ctrl-C to stop; files in {})",
        iso.display(),
        run_dir.display()
    );
    let running = emulator::launch(&machine, &iso, &run_dir)?;
    // Serial output goes to a file the watch streams here (like `tail -f`),
    // so the terminal is never put in raw mode by an emulator.
    let mut stdout = io::stdout();
    let outcome = running.watch(Watch {
        timeout: None,
        finish: None,
        forbidden: &[],
        echo: Some(&mut stdout),
    })?;
    match outcome.ending {
        RunEnding::Interrupted => say!("stopped the emulator"),
        _ => say!(
            "emulator exited: {}",
            describe_exit(&machine, outcome.exit_status)
        ),
    }
    Ok(())
}

fn describe_exit(machine: &Machine, status: Option<i32>) -> String {
    match (machine, status) {
        (_, None) => "killed by a signal".to_string(),
        (Machine::Qemu(_), Some(status)) if status == qemu_status(QEMU_EXIT_SUCCESS) => {
            format!("status {status} (Keel reported success)")
        }
        (Machine::Qemu(_), Some(status)) if status == qemu_status(QEMU_EXIT_FAILURE) => {
            format!("status {status} (Keel reported failure)")
        }
        (_, Some(status)) => format!("status {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_is_the_default_guest_only_when_its_modules_are_there() {
        assert_eq!(
            default_cmdline(Some(&Dom0Modules::interactive())),
            "guest=dom0"
        );
        assert_eq!(default_cmdline(None), "");
    }

    #[test]
    fn qemu_debug_exit_statuses_are_explained() {
        let qemu = Machine::qemu_tcg();
        assert_eq!(
            describe_exit(&qemu, Some(33)),
            "status 33 (Keel reported success)"
        );
        assert_eq!(
            describe_exit(&qemu, Some(35)),
            "status 35 (Keel reported failure)"
        );
        assert_eq!(describe_exit(&Machine::bochs(), Some(1)), "status 1");
        assert_eq!(describe_exit(&qemu, None), "killed by a signal");
    }
}

//! `cargo xtask run`: boot Keel with its serial console on this terminal,
//! input included (see `crate::console`).

use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use keel_abi::emulator::{qemu_status, QEMU_EXIT_FAILURE, QEMU_EXIT_SUCCESS};
use keel_boot_tests::cases::DOM0_MEMORY_MIB;
use keel_boot_tests::emulator::{self, RunEnding, Watch};
use keel_boot_tests::{Dom0Modules, Machine};

use crate::cli::EmulatorChoice;
use crate::commands::emulator_prerequisites;
use crate::console::{Input, Pty, RawMode, Relay, RelayOptions, StdinInput};
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
/// are on the ISO (the emulator stops when it powers off), else Keel's own
/// default guest.
fn default_cmdline(dom0: Option<&Dom0Modules>) -> &'static str {
    match dom0 {
        Some(_) => "guest=dom0 exit=emulator",
        None => "",
    }
}

/// Dom0's /init (xtask/guest/init.sh) prints this first thing, its console
/// already open (Linux's tty buffers input from then on, until the shell
/// reads it). Input sent earlier can reach the UART before Linux's driver
/// and be lost, so the console holds it back until this appears.
const DOM0_READY: &[u8] = b"dom0: userspace started";

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
    let input = if io::stdin().is_terminal() {
        Input::Terminal
    } else {
        Input::Piped
    };
    let pty = Pty::open().context("cannot create a pseudo-terminal for the serial console")?;
    let running = emulator::launch_on_terminal(&machine, &iso, &run_dir, &pty.slave_path)?;
    let log_path = run_dir.join(emulator::SERIAL_LOG);
    let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    say!(
        "booting {} in {machine}; its serial console is this terminal ({}), files in {}",
        iso.display(),
        match input {
            Input::Terminal => "Ctrl-A x stops the emulator, Ctrl-C goes to the guest",
            Input::Piped => "input from stdin, Ctrl-C stops the emulator",
        },
        run_dir.display()
    );
    // Declared before the relay so it is dropped after it: the terminal is
    // restored once the last output is written, also on errors and panics.
    let raw_mode = match input {
        Input::Terminal => Some(RawMode::enable(io::stdin().as_fd()).context("cannot put the terminal in raw mode")?),
        Input::Piped => None,
    };
    let ready_marker = if dom0.is_some() { DOM0_READY } else { b"" };
    let source = StdinInput::new(input).context("cannot duplicate stdin for the serial console")?;
    let options = RelayOptions {
        echo_to_stdout: true,
        hold_input_until: ready_marker,
    };
    let relay = Relay::start(&pty, log, source, options).context("cannot start the serial console relay")?;
    // The relay writes serial.log; the watch only waits for the emulator to
    // exit or for a stop request (Ctrl-C, Ctrl-A x, a relay error).
    let outcome = running.watch(Watch {
        timeout: None,
        finish: None,
        forbidden: &[],
        echo: None,
        stop: Some(relay.failed()),
    });
    let relayed = relay.stop();
    drop(raw_mode);
    let outcome = outcome?;
    relayed.context("serial console relay")?;
    // The guest's output may end mid-line.
    println!();
    match outcome.ending {
        RunEnding::Interrupted => say!("stopped the emulator"),
        _ => say!("emulator exited: {}", describe_exit(&machine, outcome.exit_status)),
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
            "guest=dom0 exit=emulator"
        );
        assert_eq!(default_cmdline(None), "");
    }

    #[test]
    fn qemu_debug_exit_statuses_are_explained() {
        let qemu = Machine::qemu_tcg();
        assert_eq!(describe_exit(&qemu, Some(33)), "status 33 (Keel reported success)");
        assert_eq!(describe_exit(&qemu, Some(35)), "status 35 (Keel reported failure)");
        assert_eq!(describe_exit(&Machine::bochs(), Some(1)), "status 1");
        assert_eq!(describe_exit(&qemu, None), "killed by a signal");
    }
}

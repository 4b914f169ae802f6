//! Starting an emulator on a Keel ISO and supervising it.

pub mod bochs;
mod follow;
mod process;
pub mod qemu;
mod watch;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::machine::Machine;
use process::EmulatorProcess;
pub use watch::{RunEnding, RunOutcome, Watch};

pub const SERIAL_LOG: &str = "serial.log";

/// Where the emulated machine's COM1 is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialPort<'a> {
    /// Output appended to this file, no input (boot tests).
    LogFile(&'a Path),
    /// A terminal device, e.g. a pseudo-terminal's slave side, for input and
    /// output. The emulator puts it in raw mode.
    Terminal(&'a Path),
}

/// A started emulator, killed when dropped.
pub struct RunningEmulator {
    process: EmulatorProcess,
    run_dir: PathBuf,
    serial_log: PathBuf,
    /// The emulator's diagnostics (Bochs' log: failed VM-entry checks).
    emulator_log: PathBuf,
    /// The emulator's stdout and stderr: where start-up failures land.
    console: PathBuf,
}

/// Boots `iso` on `machine`, with all its files in a fresh `run_dir`; the
/// serial output goes to `run_dir/serial.log`.
pub fn launch(machine: &Machine, iso: &Path, run_dir: &Path) -> Result<RunningEmulator> {
    launch_with_serial(machine, iso, run_dir, None)
}

/// Boots `iso` on `machine` with COM1 on the terminal device `tty`. The
/// emulator writes no `serial.log`: whoever relays the terminal keeps it
/// (the watch follows that file) after this returns.
pub fn launch_on_terminal(machine: &Machine, iso: &Path, run_dir: &Path, tty: &Path) -> Result<RunningEmulator> {
    launch_with_serial(machine, iso, run_dir, Some(tty))
}

fn launch_with_serial(machine: &Machine, iso: &Path, run_dir: &Path, tty: Option<&Path>) -> Result<RunningEmulator> {
    let iso = std::path::absolute(iso)?;
    let run_dir = std::path::absolute(run_dir)?;
    if !iso.is_file() {
        bail!("no ISO at {}", iso.display());
    }
    check_config_safe(&iso)?;
    check_config_safe(&run_dir)?;
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("cannot clear {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let serial_log = run_dir.join(SERIAL_LOG);
    let serial = match tty {
        Some(tty) => {
            check_config_safe(tty)?;
            SerialPort::Terminal(tty)
        }
        None => SerialPort::LogFile(&serial_log),
    };

    let (command, emulator_log, console) = match machine {
        Machine::Bochs(bochs_machine) => {
            let config = bochs::bochsrc(bochs_machine, &iso, &run_dir, serial);
            fs::write(run_dir.join(bochs::BOCHSRC), config)?;
            fs::write(run_dir.join(bochs::DEBUGGER_RC), bochs::DEBUGGER_SCRIPT)?;
            bochs::write_disk_image(bochs_machine, &run_dir)?;
            let console = run_dir.join(bochs::CONSOLE);
            (bochs::command(&run_dir), run_dir.join(bochs::LOG), console)
        }
        Machine::Qemu(qemu_machine) => {
            let console = run_dir.join(qemu::CONSOLE);
            let command = qemu::command(qemu_machine, &iso, serial, &run_dir)?;
            (command, console.clone(), console)
        }
    };
    RunningEmulator::start(command, run_dir, serial_log, emulator_log, console)
}

impl RunningEmulator {
    fn start(
        mut command: Command,
        run_dir: PathBuf,
        serial_log: PathBuf,
        emulator_log: PathBuf,
        console: PathBuf,
    ) -> Result<Self> {
        let console_file = File::create(&console).with_context(|| format!("cannot create {}", console.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(console_file.try_clone()?)
            .stderr(console_file);
        let process = EmulatorProcess::spawn(command)?;
        Ok(RunningEmulator {
            process,
            run_dir,
            serial_log,
            emulator_log,
            console,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

/// Bochs' config parser splits values at commas and whitespace, and QEMU's
/// option parser splits at commas: such paths would silently point elsewhere.
fn check_config_safe(path: &Path) -> Result<()> {
    let text = path.display().to_string();
    if let Some(bad) = text.chars().find(|c| *c == ',' || *c == '"' || c.is_whitespace()) {
        bail!(
            "path {text:?} contains {bad:?}, which emulator configs cannot express; \
             move the workspace to a path without commas, quotes or spaces"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_accepted() {
        assert!(check_config_safe(Path::new("/work/main/target/keel/x.iso")).is_ok());
    }

    #[test]
    fn paths_the_configs_would_split_are_rejected() {
        for path in ["/a b/x.iso", "/a,b/x.iso", "/a\"b"] {
            assert!(check_config_safe(Path::new(path)).is_err(), "{path}");
        }
    }
}

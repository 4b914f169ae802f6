//! An emulator child process that can never outlive its owner.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

use anyhow::{Context, Result};

/// Kills the emulator when dropped, so a time-out, an error, a panic or
/// Ctrl-C never leaves an emulator running.
pub struct EmulatorProcess {
    program: String,
    child: Child,
    exit_status: Option<ExitStatus>,
}

impl EmulatorProcess {
    pub fn spawn(mut command: Command) -> Result<Self> {
        let program = command.get_program().to_string_lossy().into_owned();
        // A process group of its own keeps the terminal's Ctrl-C away from
        // the emulator (Bochs' debugger would catch it and wait at a prompt);
        // the harness kills it itself.
        command.process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Covers what Drop cannot: xtask itself being killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("cannot start {program}"))?;
        Ok(EmulatorProcess {
            program,
            child,
            exit_status: None,
        })
    }

    /// The exit status once the emulator has exited, without blocking.
    pub fn poll_exit(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .with_context(|| format!("cannot check on {}", self.program))?;
        }
        Ok(self.exit_status)
    }

    /// Kills the emulator (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.exit_status.is_some() {
            return;
        }
        // Errors mean it already exited; wait() below reaps it either way.
        let _ = self.child.kill();
        self.exit_status = self.child.wait().ok();
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

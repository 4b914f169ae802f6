//! The serial console of `cargo xtask run`: the emulator's COM1 is a
//! pseudo-terminal, relayed in both directions to this process's stdin and
//! stdout and copied to the run's serial log. The pseudo-terminal, the relay
//! and its pacing are the boot tests' (`keel_boot_tests::console`); this
//! module supplies the input side: the user's terminal or a pipe.

mod escape;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use escape::EscapeFilter;
use keel_boot_tests::console::InputSource;
pub use keel_boot_tests::console::{Pty, RawMode, Relay, RelayOptions};

/// Ctrl-D: ends the guest shell's input when piped input ends.
const END_OF_FILE: u8 = 0x04;

/// Where this process's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A terminal, in raw mode while relaying: every key goes to the guest
    /// except the Ctrl-A x escape, which stops the run.
    Terminal,
    /// A pipe or file, relayed as is; its end sends the guest a Ctrl-D.
    Piped,
}

/// This process's stdin as the relay's input source.
pub struct StdinInput {
    /// A duplicate, read unbuffered: `io::Stdin` buffers, and poll() cannot
    /// see bytes already in its buffer. `None` once it has ended.
    stdin: Option<File>,
    input: Input,
    escape: EscapeFilter,
}

impl StdinInput {
    pub fn new(input: Input) -> io::Result<StdinInput> {
        Ok(StdinInput {
            stdin: Some(File::from(io::stdin().as_fd().try_clone_to_owned()?)),
            input,
            escape: EscapeFilter::default(),
        })
    }
}

impl InputSource for StdinInput {
    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        self.stdin.as_ref().map(AsFd::as_fd)
    }

    /// Ctrl-A x, or the terminal hanging up, asks the running emulator watch
    /// to stop (`keel_boot_tests::interrupt`).
    fn read(&mut self, guest: &mut Vec<u8>) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        let mut buffer = [0u8; 1024];
        let count = match stdin.read(&mut buffer) {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(error) => return Err(error),
        };
        if count == 0 {
            self.stdin = None;
            match self.input {
                Input::Piped => guest.push(END_OF_FILE),
                // The terminal hung up: nobody is left to type or read.
                Input::Terminal => keel_boot_tests::interrupt::request_stop(),
            }
            return Ok(());
        }
        let typed = &buffer[..count];
        match self.input {
            Input::Piped => guest.extend_from_slice(typed),
            Input::Terminal => {
                if self.escape.filter(typed, guest) {
                    self.stdin = None;
                    keel_boot_tests::interrupt::request_stop();
                }
            }
        }
        Ok(())
    }
}

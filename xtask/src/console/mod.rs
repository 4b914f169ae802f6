//! The serial console of `cargo xtask run`: the emulator's COM1 is a
//! pseudo-terminal, relayed in both directions to this process's stdin and
//! stdout and copied to the run's serial log.

mod escape;
mod gate;
mod terminal;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use escape::EscapeFilter;
use gate::InputGate;
pub use terminal::{Pty, RawMode};

/// How often the relay looks at its stop flag when nothing moves.
const POLL_MILLISECONDS: libc::c_int = 50;
/// Typed bytes held for the guest before stdin is no longer read.
const MAX_PENDING_INPUT: usize = 4096;
/// An emulated serial port has no flow control and a 16-byte receive FIFO:
/// input goes out a few bytes at a time, so a pasted or piped burst is not
/// lost while the guest is busy. Typing is far slower than this.
const INPUT_CHUNK: usize = 8;
const INPUT_PACE: Duration = Duration::from_millis(30);
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

/// The relay thread; stopped (and joined) when dropped.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Relay {
    /// Starts relaying between stdin/stdout and `pty`'s master, copying the
    /// guest's output to `log`. Input is held back until `ready_marker` has
    /// appeared in the output (empty: at once). Ctrl-A x or an error asks the
    /// running emulator watch to stop (`keel_boot_tests::interrupt`).
    pub fn start(pty: &Pty, log: File, input: Input, ready_marker: &[u8]) -> io::Result<Relay> {
        let master = File::from(pty.master.try_clone()?);
        // A duplicate, read unbuffered: `io::Stdin` buffers, and poll() cannot
        // see bytes already in its buffer.
        let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = RelayState {
            master,
            stdin: Some(stdin),
            log,
            input,
            escape: EscapeFilter::default(),
            gate: InputGate::until(ready_marker),
            pending: Vec::new(),
            last_input_write: None,
        };
        let thread_stop = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("console-relay".to_string())
            .spawn(move || {
                let relayed = state.run(&thread_stop);
                if relayed.is_err() {
                    keel_boot_tests::interrupt::request_stop();
                }
                relayed
            })?;
        Ok(Relay {
            stop,
            thread: Some(thread),
        })
    }

    /// Relays the guest output still waiting in the pseudo-terminal, then stops.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(relayed)) => relayed,
            Some(Err(_)) => Err(io::Error::other("the console relay panicked")),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

struct RelayState {
    /// Non-blocking.
    master: File,
    /// `None` once it has ended.
    stdin: Option<File>,
    log: File,
    input: Input,
    escape: EscapeFilter,
    gate: InputGate,
    /// Input not yet taken by the pseudo-terminal.
    pending: Vec<u8>,
    /// When the last chunk of input went to the guest (see [`INPUT_CHUNK`]).
    last_input_write: Option<Instant>,
}

impl RelayState {
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            // Once stopping, only drain what is already there.
            let timeout = if stopping { 0 } else { POLL_MILLISECONDS };
            let ready = self.poll(timeout)?;
            if ready.output {
                self.relay_output()?;
            }
            if ready.input {
                self.read_input()?;
            }
            if ready.input_space {
                self.write_pending()?;
            }
            if stopping && !ready.output {
                return Ok(());
            }
        }
    }

    fn poll(&self, timeout: libc::c_int) -> io::Result<Ready> {
        let mut master_events = libc::POLLIN;
        let mut timeout = timeout;
        if self.gate.is_open() && !self.pending.is_empty() {
            match self.input_pace_wait() {
                Duration::ZERO => master_events |= libc::POLLOUT,
                wait => timeout = timeout.min(wait.as_millis() as libc::c_int + 1),
            }
        }
        let stdin_fd = match &self.stdin {
            Some(stdin) if self.pending.len() < MAX_PENDING_INPUT => stdin.as_raw_fd(),
            // poll() skips negative descriptors.
            _ => -1,
        };
        let mut fds = [
            libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: master_events,
                revents: 0,
            },
            libc::pollfd {
                fd: stdin_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a live array of fds.len() pollfd structures.
        let result = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if result == -1 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(Ready::default()),
                _ => Err(error),
            };
        }
        let [master, stdin] = fds;
        Ok(Ready {
            output: master.revents & libc::POLLIN != 0,
            input_space: master.revents & libc::POLLOUT != 0,
            // A hang-up reads as the end of input.
            input: stdin.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
        })
    }

    fn relay_output(&mut self) -> io::Result<()> {
        let mut buffer = [0u8; 4096];
        let count = match self.master.read(&mut buffer) {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error),
        };
        let output = &buffer[..count];
        self.gate.observe(output);
        let mut stdout = io::stdout().lock();
        stdout.write_all(output)?;
        stdout.flush()?;
        self.log.write_all(output)
    }

    fn read_input(&mut self) -> io::Result<()> {
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
                Input::Piped => self.pending.push(END_OF_FILE),
                // The terminal hung up: nobody is left to type or read.
                Input::Terminal => keel_boot_tests::interrupt::request_stop(),
            }
            return Ok(());
        }
        let typed = &buffer[..count];
        match self.input {
            Input::Piped => self.pending.extend_from_slice(typed),
            Input::Terminal => {
                if self.escape.filter(typed, &mut self.pending) {
                    self.stdin = None;
                    keel_boot_tests::interrupt::request_stop();
                }
            }
        }
        Ok(())
    }

    /// How long until the next chunk of input may go out.
    fn input_pace_wait(&self) -> Duration {
        self.last_input_write
            .map_or(Duration::ZERO, |last| INPUT_PACE.saturating_sub(last.elapsed()))
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.input_pace_wait() > Duration::ZERO {
            return Ok(());
        }
        let chunk = &self.pending[..self.pending.len().min(INPUT_CHUNK)];
        match self.master.write(chunk) {
            Ok(count) => {
                self.pending.drain(..count);
                self.last_input_write = Some(Instant::now());
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[derive(Debug, Default)]
struct Ready {
    /// Guest output waiting in the pseudo-terminal.
    output: bool,
    /// Input (or its end) waiting on stdin.
    input: bool,
    /// The pseudo-terminal takes more input.
    input_space: bool,
}

//! A guest's serial console on a pseudo-terminal: the emulator's COM1 is the
//! slave side; a relay thread copies the guest's output from the master side
//! to the run's serial log (where the emulator watch follows it, and
//! optionally to this process's stdout) and types input into it, paced for
//! the emulated UART.
//!
//! Input comes from an [`InputSource`]: a [`ConsoleScript`] in boot tests,
//! the user's terminal or a pipe in `cargo xtask run`.

mod gate;
pub mod pace;
pub mod script;
mod terminal;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use gate::InputGate;
pub use pace::Pacer;
pub use script::{ConsoleScript, ConsoleStep};
pub use terminal::{Pty, RawMode};

/// How often the relay looks at its stop flag when nothing moves.
const POLL_MILLISECONDS: libc::c_int = 50;
/// Input held for the guest before the source is no longer read.
const MAX_PENDING_INPUT: usize = 4096;

/// Where a relay's input for the guest comes from.
pub trait InputSource: Send + 'static {
    /// A descriptor the relay waits on for input; `None` when there is none
    /// (now or any more).
    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The descriptor is readable (or hung up): read it and append what goes
    /// to the guest to `guest`.
    fn read(&mut self, _guest: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }

    /// Guest output just relayed (empty once when the relay starts); append
    /// the input it calls for to `guest`.
    fn observe(&mut self, _output: &[u8], _guest: &mut Vec<u8>) {}
}

impl InputSource for ConsoleScript {
    fn observe(&mut self, output: &[u8], guest: &mut Vec<u8>) {
        guest.extend(ConsoleScript::observe(self, output));
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RelayOptions<'a> {
    /// Also write the guest's output to this process's stdout.
    pub echo_to_stdout: bool,
    /// Hold all input back until this appears in the output (empty: don't).
    /// Bytes that reach the emulated UART before Linux's serial driver runs
    /// are lost.
    pub hold_input_until: &'a [u8],
}

/// The relay thread; stopped (and joined) when dropped.
pub struct Relay<S: InputSource> {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    thread: Option<JoinHandle<(S, io::Result<()>)>>,
}

impl<S: InputSource> Relay<S> {
    /// Starts relaying between `pty`'s master, `log` and `source`.
    pub fn start(pty: &Pty, log: File, source: S, options: RelayOptions<'_>) -> io::Result<Relay<S>> {
        let master = File::from(pty.master.try_clone()?);
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let mut state = RelayState {
            master,
            log,
            echo_to_stdout: options.echo_to_stdout,
            source,
            gate: InputGate::until(options.hold_input_until),
            pending: Vec::new(),
            pacer: Pacer::default(),
        };
        let (thread_stop, thread_failed) = (Arc::clone(&stop), Arc::clone(&failed));
        let thread = thread::Builder::new()
            .name("console-relay".to_string())
            .spawn(move || {
                let relayed = state.run(&thread_stop);
                if relayed.is_err() {
                    thread_failed.store(true, Ordering::SeqCst);
                }
                (state.source, relayed)
            })?;
        Ok(Relay {
            stop,
            failed,
            thread: Some(thread),
        })
    }

    /// Set when the relay stopped on an error; pass it to the emulator watch
    /// (`Watch::stop`) so the run ends then ([`Relay::stop`] returns the error).
    pub fn failed(&self) -> &AtomicBool {
        &self.failed
    }

    /// Relays the guest output still waiting in the pseudo-terminal, stops,
    /// and hands back the input source (a script knows how far it got).
    pub fn stop(mut self) -> io::Result<S> {
        self.stop_and_join()?
            .ok_or_else(|| io::Error::other("the console relay was already stopped"))
    }

    fn stop_and_join(&mut self) -> io::Result<Option<S>> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(None),
            Some(Ok((source, Ok(())))) => Ok(Some(source)),
            Some(Ok((_, Err(error)))) => Err(error),
            Some(Err(_)) => Err(io::Error::other("the console relay panicked")),
        }
    }
}

impl<S: InputSource> Drop for Relay<S> {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

struct RelayState<S> {
    /// Non-blocking.
    master: File,
    log: File,
    echo_to_stdout: bool,
    source: S,
    gate: InputGate,
    /// Input not yet taken by the pseudo-terminal.
    pending: Vec<u8>,
    pacer: Pacer,
}

#[derive(Debug, Default)]
struct Ready {
    /// Guest output waiting in the pseudo-terminal.
    output: bool,
    /// Input (or its end) waiting on the source's descriptor.
    input: bool,
    /// The pseudo-terminal takes more input.
    input_space: bool,
}

impl<S: InputSource> RelayState<S> {
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        self.source.observe(&[], &mut self.pending);
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            // Once stopping, only drain what is already there.
            let timeout = if stopping { 0 } else { POLL_MILLISECONDS };
            let ready = self.poll(timeout)?;
            if ready.output {
                self.relay_output()?;
            }
            if ready.input {
                self.source.read(&mut self.pending)?;
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
            match self.pacer.wait(Instant::now()) {
                Duration::ZERO => master_events |= libc::POLLOUT,
                wait => timeout = timeout.min(wait.as_millis() as libc::c_int + 1),
            }
        }
        let input_fd = match self.source.descriptor() {
            Some(fd) if self.pending.len() < MAX_PENDING_INPUT => fd.as_raw_fd(),
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
                fd: input_fd,
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
        let [master, input] = fds;
        Ok(Ready {
            output: master.revents & libc::POLLIN != 0,
            input_space: master.revents & libc::POLLOUT != 0,
            // A hang-up reads as the end of input.
            input: input.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
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
        self.source.observe(output, &mut self.pending);
        if self.echo_to_stdout {
            let mut stdout = io::stdout().lock();
            stdout.write_all(output)?;
            stdout.flush()?;
        }
        self.log.write_all(output)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let chunk = self.pacer.next_chunk(&self.pending, now);
        if chunk.is_empty() {
            return Ok(());
        }
        match self.master.write(chunk) {
            Ok(count) => {
                self.pending.drain(..count);
                self.pacer.wrote(count, now);
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    /// The relay types a script's steps into the master as the "guest" (a
    /// thread on the slave side) prints what they wait for, and copies the
    /// guest's output to the log.
    #[test]
    fn a_script_is_typed_into_the_pseudo_terminal_as_its_prompts_appear() {
        let pty = Pty::open().unwrap();
        let dir = std::env::temp_dir().join(format!("keel-relay-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log_path = dir.join("serial.log");
        let log = File::create(&log_path).unwrap();
        let script = ConsoleScript::new(vec![
            ConsoleStep::new("$ ", "echo one two three four\r"),
            ConsoleStep::new("$ ", "exit\r"),
        ]);
        let mut slave = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&pty.slave_path)
            .unwrap();
        let relay = Relay::start(&pty, log, script, RelayOptions::default()).unwrap();

        // A "shell" that reads lines (raw mode: ends at \r) and answers.
        let mut typed = Vec::new();
        slave.write_all(b"booting\r\n$ ").unwrap();
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines.len() < 2 && Instant::now() < deadline {
            let mut buffer = [0u8; 64];
            let count = slave.read(&mut buffer).unwrap();
            typed.extend_from_slice(&buffer[..count]);
            while let Some(end) = typed.iter().position(|byte| *byte == b'\r') {
                let line: Vec<u8> = typed.drain(..=end).collect();
                slave.write_all(b"ran\r\n$ ").unwrap();
                lines.push(String::from_utf8(line).unwrap());
            }
        }
        assert_eq!(lines, ["echo one two three four\r", "exit\r"]);
        let script = relay.stop().unwrap();
        assert!(script.is_done());
        assert_eq!(fs::read(&log_path).unwrap(), b"booting\r\n$ ran\r\n$ ran\r\n$ ");
        fs::remove_dir_all(&dir).unwrap();
    }
}

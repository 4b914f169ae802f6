//! `keel console` and `keel dmesg`: following a ring of output by cursor.

use std::io::Write;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use keel_abi::mgmt::{DomainId, Status};

use crate::client::{is_status, Client};
use crate::transport::Transport;

/// Ctrl-]: leaves an interactive console (as in xl and telnet).
pub const DETACH: u8 = 0x1d;
/// How long to wait between polls that found no output.
pub const POLL: Duration = Duration::from_millis(20);
/// Typed bytes held for a guest that does not take them yet.
const PENDING_MAX: usize = 4096;

pub struct ConsoleOptions {
    /// Stop successfully once this text has appeared in the output.
    pub until: Option<String>,
    /// Fail once this much time has passed.
    pub timeout: Option<Duration>,
    /// Stdin is a terminal in raw mode: Ctrl-] detaches, and notes need
    /// "\r\n" because raw mode does not turn "\n" into a new line.
    pub interactive: bool,
    pub poll: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEnd {
    Detached,
    /// The `until` text appeared.
    Matched,
    /// The domain was destroyed (or shut down with `on_poweroff = "destroy"`).
    DomainGone,
}

/// Finds a byte string in a stream that arrives in pieces, including
/// matches split across pieces.
pub struct Matcher {
    needle: Vec<u8>,
    /// The last `needle.len() - 1` bytes seen.
    tail: Vec<u8>,
}

impl Matcher {
    pub fn new(needle: &str) -> Self {
        Self {
            needle: needle.as_bytes().to_vec(),
            tail: Vec::new(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        self.tail.extend_from_slice(bytes);
        let found = self.tail.windows(self.needle.len()).any(|window| window == self.needle);
        let keep = self.needle.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        found
    }

    /// Bytes were lost: what came before cannot join what comes next.
    pub fn gap(&mut self) {
        self.tail.clear();
    }
}

/// Writes a lost-bytes note when the ring dropped output we had not read.
fn note_loss(lost: u64, what: &str, eol: &str, notes: &mut dyn Write) {
    if lost > 0 {
        let _ = write!(
            notes,
            "keel: [{lost} bytes of {what} lost: older than the ring holds]{eol}"
        );
    }
}

/// What a console endpoint gave.
pub enum Output {
    /// New output (possibly none), and how many bytes were lost before it.
    Bytes { bytes: Vec<u8>, lost: u64 },
    /// The domain (or the console's backend) is gone.
    Gone,
}

/// What became of typed bytes.
pub enum Input {
    /// The first `n` were taken.
    Taken(usize),
    /// Dropped, with the reason for a note.
    Dropped(String),
    Gone,
}

/// A console to follow: Keel's console ring of a domain ([`KeelConsole`])
/// or its virtio console's socket ([`crate::hvc::HvcConsole`]).
pub trait Endpoint {
    fn read(&mut self) -> Result<Output>;
    fn write(&mut self, bytes: &[u8]) -> Result<Input>;
    /// Wait up to `poll` for output (after a read that found none).
    fn wait(&mut self, poll: Duration) {
        std::thread::sleep(poll);
    }
}

/// Domain `id`'s console as Keel keeps it (the UART's ring).
pub struct KeelConsole<'a, T> {
    pub client: &'a mut Client<T>,
    pub id: DomainId,
    cursor: u64,
}

impl<'a, T: Transport> KeelConsole<'a, T> {
    /// From the ring's first byte.
    pub fn new(client: &'a mut Client<T>, id: DomainId) -> Self {
        Self { client, id, cursor: 0 }
    }
}

impl<T: Transport> Endpoint for KeelConsole<'_, T> {
    fn read(&mut self) -> Result<Output> {
        let chunk = match self.client.console_read(self.id, self.cursor) {
            Ok(chunk) => chunk,
            Err(error) if is_status(&error, Status::NoSuchDomain) => return Ok(Output::Gone),
            Err(error) => return Err(error),
        };
        let lost = chunk.lost_since(self.cursor);
        self.cursor = chunk.end;
        Ok(Output::Bytes {
            bytes: chunk.bytes,
            lost,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<Input> {
        match self.client.console_write(self.id, bytes) {
            Ok(taken) => Ok(Input::Taken(taken)),
            Err(error) if is_status(&error, Status::NoSuchDomain) => Ok(Input::Gone),
            // E.g. a preserved, shut-down domain: its output is still
            // worth showing, the typed bytes are not worth keeping.
            Err(error) if is_status(&error, Status::BadState) => Ok(Input::Dropped(error.to_string())),
            Err(error) => Err(error),
        }
    }
}

/// Follows a console from its first byte: prints output to `out`,
/// forwards bytes from `input` (None when there is no input), and ends as
/// [`ConsoleEnd`] says. `label` names the domain in messages.
pub fn attach(
    console: &mut dyn Endpoint,
    label: &str,
    options: &ConsoleOptions,
    mut input: Option<Receiver<Vec<u8>>>,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<ConsoleEnd> {
    let eol = if options.interactive { "\r\n" } else { "\n" };
    let started = Instant::now();
    let mut matcher = options.until.as_deref().map(Matcher::new);
    // Typed bytes the guest has not taken yet.
    let mut pending: Vec<u8> = Vec::new();
    let mut detach = false;
    let gone = |notes: &mut dyn Write| -> Result<ConsoleEnd> {
        if let Some(until) = &options.until {
            bail!("domain {label} no longer exists; `{until}` never appeared on its console");
        }
        let _ = write!(notes, "keel: domain {label} no longer exists{eol}");
        Ok(ConsoleEnd::DomainGone)
    };

    loop {
        if let Some(timeout) = options.timeout {
            if started.elapsed() >= timeout {
                let secs = timeout.as_secs_f64();
                match &options.until {
                    Some(until) => bail!("timed out after {secs} s waiting for `{until}` on {label}'s console"),
                    None => bail!("timed out after {secs} s on {label}'s console"),
                }
            }
        }

        let (bytes, lost) = match console.read()? {
            Output::Bytes { bytes, lost } => (bytes, lost),
            Output::Gone => return gone(notes),
        };
        note_loss(lost, "console output", eol, notes);
        if let Some(matcher) = matcher.as_mut().filter(|_| lost > 0) {
            matcher.gap();
        }
        if !bytes.is_empty() {
            out.write_all(&bytes)?;
            out.flush()?;
        }
        if matcher.as_mut().is_some_and(|matcher| matcher.feed(&bytes)) {
            return Ok(ConsoleEnd::Matched);
        }

        if let Some(receiver) = &input {
            // Leaves input in the (bounded) channel while the guest is slow
            // to take it, which in turn stalls the reader of stdin.
            while pending.len() < PENDING_MAX {
                match receiver.try_recv() {
                    Ok(typed) => {
                        let detach_at = typed.iter().position(|&byte| byte == DETACH);
                        match detach_at.filter(|_| options.interactive) {
                            Some(at) => {
                                pending.extend_from_slice(&typed[..at]);
                                detach = true;
                                break;
                            }
                            None => pending.extend_from_slice(&typed),
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    // EOF on stdin: keep showing output.
                    Err(TryRecvError::Disconnected) => {
                        input = None;
                        break;
                    }
                }
            }
        }
        if !pending.is_empty() {
            match console.write(&pending)? {
                Input::Taken(taken) => drop(pending.drain(..taken.min(pending.len()))),
                Input::Gone => return gone(notes),
                Input::Dropped(reason) => {
                    let _ = write!(notes, "keel: input dropped: {reason}{eol}");
                    pending.clear();
                }
            }
        }
        if detach {
            return Ok(ConsoleEnd::Detached);
        }
        // A full answer may mean more is waiting: poll again at once.
        if bytes.is_empty() {
            console.wait(options.poll);
        }
    }
}

/// Prints Keel's log ring from its oldest byte to its newest.
pub fn dmesg<T: Transport>(client: &mut Client<T>, out: &mut dyn Write, notes: &mut dyn Write) -> Result<()> {
    let mut cursor = 0;
    loop {
        let chunk = client.dmesg(cursor)?;
        note_loss(chunk.lost_since(cursor), "Keel's log", "\n", notes);
        if chunk.bytes.is_empty() {
            break;
        }
        out.write_all(&chunk.bytes)?;
        cursor = chunk.end;
    }
    out.flush()?;
    Ok(())
}

//! The real [`ConsoleLink`]: a Unix stream socket,
//! `<run dir>/console-<id>.sock` (mode 0600), that `keel console --hvc`
//! connects to. One client at a time: a new one takes over and the old
//! one is closed (as when `xl console` is attached twice). Everything is
//! non-blocking: output a slow client has not taken waits in a bounded
//! buffer (its oldest bytes go first, counted), never holding up the
//! backend's disks and interfaces.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use keel_abi::mgmt::DomainId;

use super::console::ConsoleLink;

/// Output kept for the next client while nobody (or a slow one) reads.
pub const HISTORY: usize = 64 * 1024;
/// How long the listener is left alone after `accept` failed.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The socket of domain `id`'s console in `run_dir`.
pub fn socket_path(run_dir: &Path, id: DomainId) -> PathBuf {
    run_dir.join(format!("console-{id}.sock"))
}

pub struct SocketLink {
    path: PathBuf,
    listener: UnixListener,
    client: Option<UnixStream>,
    /// The last [`HISTORY`] bytes of output, replayed to a new client.
    history: VecDeque<u8>,
    /// Output the current client has not taken yet.
    unsent: VecDeque<u8>,
    /// Bytes a slow client never saw.
    lost: u64,
    /// `accept` failed for a reason other than "nothing waits": the
    /// listener is not polled until then.
    accept_paused_until: Option<Instant>,
}

impl SocketLink {
    /// Listens at [`socket_path`] (a stale socket there is replaced: the
    /// caller holds the domain's backend lock).
    pub fn bind(run_dir: &Path, id: DomainId) -> Result<Self> {
        let path = socket_path(run_dir, id);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen at {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            path,
            listener,
            client: None,
            history: VecDeque::with_capacity(HISTORY),
            unsent: VecDeque::new(),
            lost: 0,
            accept_paused_until: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connected(&self) -> bool {
        self.client.is_some()
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    // The newest client takes over, with everything kept so far.
                    self.client = Some(stream);
                    self.unsent = self.history.clone();
                }
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
                Err(_) => {
                    // E.g. out of descriptors: the connection stays queued
                    // and the listener readable; not polling it for a while
                    // keeps the loop from spinning on it.
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn flush(&mut self) {
        let Some(client) = &mut self.client else { return };
        while !self.unsent.is_empty() {
            let (front, _) = self.unsent.as_slices();
            match client.write(front) {
                Ok(0) => {
                    self.client = None;
                    return;
                }
                Ok(written) => {
                    self.unsent.drain(..written);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.client = None;
                    return;
                }
            }
        }
    }
}

/// Appends `bytes` to `buffer`, dropping its oldest bytes beyond `limit`;
/// returns how many were dropped.
fn push_bounded(buffer: &mut VecDeque<u8>, bytes: &[u8], limit: usize) -> u64 {
    buffer.extend(bytes);
    let over = buffer.len().saturating_sub(limit);
    buffer.drain(..over);
    over as u64
}

impl ConsoleLink for SocketLink {
    fn output(&mut self, bytes: &[u8]) {
        push_bounded(&mut self.history, bytes, HISTORY);
        if self.client.is_some() {
            self.lost += push_bounded(&mut self.unsent, bytes, HISTORY);
            self.flush();
        }
    }

    fn input(&mut self, input: &mut Vec<u8>, max: usize) {
        let Some(client) = &mut self.client else { return };
        let mut buffer = [0u8; 1024];
        let mut taken = 0;
        while taken < max {
            let room = (max - taken).min(buffer.len());
            match client.read(&mut buffer[..room]) {
                Ok(0) => {
                    // The client left; what it sent stays.
                    self.client = None;
                    return;
                }
                Ok(read) => {
                    input.extend_from_slice(&buffer[..read]);
                    taken += read;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.client = None;
                    return;
                }
            }
        }
    }

    fn service(&mut self) {
        self.accept();
        self.flush();
    }

    fn output_fds(&self, fds: &mut Vec<RawFd>) {
        if let Some(client) = self.client.as_ref().filter(|_| !self.unsent.is_empty()) {
            fds.push(client.as_raw_fd());
        }
    }

    fn fds(&self, reading: bool, fds: &mut Vec<RawFd>) {
        if self.accept_paused_until.is_none_or(|until| Instant::now() >= until) {
            fds.push(self.listener.as_raw_fd());
        }
        if reading {
            if let Some(client) = &self.client {
                fds.push(client.as_raw_fd());
            }
        }
    }
}

impl Drop for SocketLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;
    use crate::sys::{poll_io, PolledAny};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keel-tools-console-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn kept_output_is_replayed_and_a_slow_client_is_waited_for_by_poll_not_lost() {
        let dir = scratch("slow");
        let mut link = SocketLink::bind(&dir, 4).unwrap();
        link.output(b"before anyone connected\n");
        let mut client = UnixStream::connect(link.path()).unwrap();
        link.service();
        assert!(link.connected());
        let mut first = vec![0u8; 24];
        client.read_exact(&mut first).unwrap();
        assert_eq!(first, b"before anyone connected\n");

        // More than the socket holds: the rest waits, and the link asks to
        // be woken when the client can take more.
        let mut big = Vec::new();
        let mut waiting = Vec::new();
        for round in 0..256u32 {
            let chunk: Vec<u8> = (0..16384u32).map(|at| ((at + round) % 251) as u8).collect();
            link.output(&chunk);
            big.extend_from_slice(&chunk);
            link.output_fds(&mut waiting);
            if !waiting.is_empty() {
                break;
            }
        }
        assert_eq!(waiting.len(), 1, "output is waiting for the client");
        let mut received = Vec::new();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while received.len() < big.len() {
            // What the backend loop does: poll the waiting client for
            // writability, and service the link when it can take more.
            let mut fds = Vec::new();
            link.output_fds(&mut fds);
            if !fds.is_empty() && matches!(poll_io(&[], &fds, Duration::ZERO).unwrap(), PolledAny::Readable(_)) {
                link.service();
            }
            let mut chunk = [0u8; 8192];
            let read = client.read(&mut chunk).unwrap();
            received.extend_from_slice(&chunk[..read]);
        }
        assert_eq!(received, big);
        assert_eq!(link.lost(), 0);
        let mut none = Vec::new();
        link.output_fds(&mut none);
        assert!(none.is_empty(), "nothing waits any more");

        // Typed bytes come in; a client that leaves is forgotten.
        client.write_all(b"marco\n").unwrap();
        let mut input = Vec::new();
        link.input(&mut input, 4096);
        assert_eq!(input, b"marco\n");
        drop(client);
        // The close reaches the link's end at once; a few looks at most.
        for _ in 0..100 {
            link.input(&mut input, 4096);
            if !link.connected() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!link.connected(), "input after the close: {input:?}");
        drop(link);
        assert!(!socket_path(&dir, 4).exists(), "the socket goes with the backend");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

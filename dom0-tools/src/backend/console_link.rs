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

use anyhow::{Context, Result};
use keel_abi::mgmt::DomainId;

use super::console::ConsoleLink;

/// Output kept for the next client while nobody (or a slow one) reads.
pub const HISTORY: usize = 64 * 1024;

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
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            // The newest client takes over, with everything kept so far.
            self.client = Some(stream);
            self.unsent = self.history.clone();
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

    fn fds(&self, reading: bool, fds: &mut Vec<RawFd>) {
        fds.push(self.listener.as_raw_fd());
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

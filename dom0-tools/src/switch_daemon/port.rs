//! A backend's end of a switch port ([`SwitchPort`]): one connection per
//! virtio-net device, never blocking, reconnecting on its own when the
//! switch restarts.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_abi::mgmt::DomainId;

use super::ffi;
use super::protocol::{Hello, HELLO_LEN, MAX_FRAME, MIN_FRAME};
use super::SOCKET_NAME;
use crate::switch::{is_valid_source, Mac};

/// How often a port whose switch is gone tries to reconnect.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// Send buffer asked for on each side of a port (the kernel caps it at
/// `net.core.wmem_max`): how much the receiver may fall behind before
/// frames are dropped.
pub const SEND_BUFFER: libc::c_int = 1 << 20;

/// The errors that mean the switch (or, for the switch, the backend) is
/// gone.
pub fn is_gone(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNREFUSED | libc::ENOTCONN | libc::ECONNRESET)
    )
}

/// The errors that mean "the buffer is full, drop the frame".
pub fn is_full(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.raw_os_error() == Some(libc::ENOBUFS)
}

/// A backend's connection to the switch for one virtio-net device.
///
/// While the switch is gone, [`as_raw_fd`](Self::as_raw_fd) is a timer
/// that turns readable every [`RECONNECT_INTERVAL`]: a loop that polls it
/// and then calls [`recv`](Self::recv) (or sends) reconnects without a
/// poll timeout of its own.
#[derive(Debug)]
pub struct SwitchPort {
    path: PathBuf,
    hello: [u8; HELLO_LEN],
    /// The connection; None while the switch is gone.
    socket: Option<OwnedFd>,
    /// Armed while disconnected (see above).
    timer: File,
    last_attempt: Instant,
    retry: Duration,
}

/// Connects to the switch at `path` and sends `hello`.
fn connect_socket(path: &Path, hello: &[u8]) -> io::Result<OwnedFd> {
    let socket = ffi::seqpacket_socket()?;
    ffi::connect(socket.as_fd(), path)?;
    // Best effort: the default is fine, only smaller.
    let _ = ffi::set_send_buffer(socket.as_fd(), SEND_BUFFER);
    // A fresh socket's buffer is empty: this does not fail for space.
    ffi::send(socket.as_fd(), hello)?;
    Ok(socket)
}

impl SwitchPort {
    /// Connects to the switch in `run_dir` and says hello: which domain,
    /// device and MAC this port is (the switch forwards only frames whose
    /// source address is `mac`). Fails when no switch listens there.
    pub fn connect(run_dir: &Path, domain: DomainId, device: usize, mac: Mac) -> io::Result<Self> {
        let device = u16::try_from(device)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("device index {device} too large")))?;
        if !is_valid_source(&mac) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a port's MAC must be a unicast address other than all zeros",
            ));
        }
        let path = run_dir.join(SOCKET_NAME);
        let hello = Hello { domain, device, mac }.encode();
        let socket = connect_socket(&path, &hello).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot connect to the switch at {}: {error}", path.display()),
            )
        })?;
        Ok(Self {
            path,
            hello,
            socket: Some(socket),
            timer: ffi::timer()?,
            last_attempt: Instant::now(),
            retry: RECONNECT_INTERVAL,
        })
    }

    /// Changes how often a disconnected port retries (tests).
    pub fn with_reconnect_interval(mut self, interval: Duration) -> Self {
        self.retry = interval;
        self
    }

    /// Whether the port is connected to a switch now.
    pub fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// What to poll for readability: the connection, or while the switch
    /// is gone the reconnect timer. Changes on (re)connection: read it
    /// again on every loop.
    pub fn as_raw_fd(&self) -> RawFd {
        match &self.socket {
            Some(socket) => socket.as_raw_fd(),
            None => self.timer.as_raw_fd(),
        }
    }

    /// The switch is gone: wake the poller every `retry` to reconnect.
    fn disconnect(&mut self) {
        self.socket = None;
        let _ = ffi::set_timer(&self.timer, Some(self.retry));
    }

    /// Tries to reconnect if the last attempt is `retry` old.
    fn reconnect(&mut self) {
        // Consume the timer's expirations so it stops being readable.
        let _ = self.timer.read(&mut [0u8; 8]);
        if self.last_attempt.elapsed() < self.retry {
            return;
        }
        self.last_attempt = Instant::now();
        if let Ok(socket) = connect_socket(&self.path, &self.hello) {
            self.socket = Some(socket);
            let _ = ffi::set_timer(&self.timer, None);
        }
    }

    /// The connection, reconnecting first if it is gone (and it is time).
    fn socket(&mut self) -> Option<&OwnedFd> {
        if self.socket.is_none() {
            self.reconnect();
        }
        self.socket.as_ref()
    }

    /// Sends one frame without blocking: `Ok(false)` when it was dropped:
    /// the switch's buffer is full (as on Ethernet, the sender does not
    /// wait), the switch is gone (see the type's documentation), or the
    /// frame is shorter than an Ethernet header or longer than any the
    /// switch carries.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Ok(false);
        }
        for _ in 0..2 {
            let Some(socket) = self.socket() else {
                return Ok(false);
            };
            match ffi::send(socket.as_fd(), frame) {
                Ok(_) => return Ok(true),
                Err(error) if is_full(&error) => return Ok(false),
                // Once more on a new connection, if one can be made now.
                Err(error) if is_gone(&error) => self.disconnect(),
                Err(error) => return Err(error),
            }
        }
        Ok(false)
    }

    /// One frame from the switch into `buf` without blocking; None when
    /// none is queued (or the switch is gone). A frame longer than `buf`
    /// is dropped.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // Bounded: the switch's messages, read one at a time.
        for _ in 0..64 {
            let Some(socket) = self.socket() else {
                return Ok(None);
            };
            match ffi::recv(socket.as_fd(), buf) {
                // The switch closed the connection.
                Ok(0) => self.disconnect(),
                Ok(len) if len > buf.len() => continue,
                Ok(len) => return Ok(Some(len)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if is_gone(&error) => self.disconnect(),
                Err(error) => return Err(error),
            }
            if self.socket.is_none() {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

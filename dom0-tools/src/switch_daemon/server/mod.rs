//! The switch's event loop ([`Server`]): the listening socket, the TAP and
//! every port in one `poll`, frames moved by [`Switch`]'s decisions.
//! Host-testable: it needs no TAP and no root, only a socket path.

mod frames;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ffi;
use super::files::{write_ports, PortRecord, TapRecord};
use super::port::SEND_BUFFER;
use super::protocol::{mac_text, Hello, MESSAGE_BUFFER};
use super::tap::Tap;
use crate::switch::{Mac, Port, Switch};

pub use self::frames::Counters;

/// Dom0's TAP is always port 0; DomU ports are numbered from 1.
pub const TAP_PORT: Port = 0;
/// Frames taken from one port (or the TAP) per wakeup, so that a busy one
/// cannot starve the others.
pub const BUDGET: usize = 64;
/// Addresses the switch learns at most (see [`Switch::new`]).
pub const TABLE_CAPACITY: usize = 8192;
/// Connections (with a hello or waiting for one) at most; more are
/// closed at once. Well below the usual 1024 open files.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection may wait before its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often aged addresses are forgotten when no frame does it.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

struct Connection {
    socket: OwnedFd,
    hello: Hello,
    counters: Counters,
}

struct TapPort {
    tap: Tap,
    counters: Counters,
}

/// What a pollfd stands for.
#[derive(Clone, Copy)]
enum Source {
    Listener,
    Tap,
    Pending(u64),
    Port(Port),
}

/// The switch daemon's state: see the module documentation.
pub struct Server {
    listener: OwnedFd,
    socket_path: PathBuf,
    ports_path: Option<PathBuf>,
    tap: Option<TapPort>,
    switch: Switch,
    ports: BTreeMap<Port, Connection>,
    /// Accepted connections whose hello has not come yet, and since when.
    pending: BTreeMap<u64, (OwnedFd, Instant)>,
    next_pending: u64,
    next_port: Port,
    buffer: Vec<u8>,
    last_expire: Instant,
    /// The ports changed since the ports file was written.
    dirty: bool,
}

impl Server {
    /// Listens at `socket_path` (which must not exist; created mode 0600)
    /// with `tap` as port 0, writing the ports file at `ports_path` if
    /// given.
    pub fn bind(socket_path: &Path, tap: Option<Tap>, ports_path: Option<PathBuf>) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let listener = ffi::seqpacket_socket()?;
        ffi::bind(listener.as_fd(), socket_path)?;
        // Before listen(): nobody can connect while the mode is wider.
        let mode = std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o600));
        if let Err(error) = mode.and_then(|()| ffi::listen(listener.as_fd(), 64)) {
            let _ = std::fs::remove_file(socket_path);
            return Err(error);
        }
        let mut switch = Switch::new(TABLE_CAPACITY);
        if tap.is_some() {
            switch.add_port(TAP_PORT);
        }
        Ok(Self {
            listener,
            socket_path: socket_path.to_path_buf(),
            ports_path,
            tap: tap.map(|tap| TapPort {
                tap,
                counters: Counters::default(),
            }),
            switch,
            ports: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_pending: 0,
            next_port: 1,
            buffer: vec![0; MESSAGE_BUFFER],
            last_expire: Instant::now(),
            dirty: true,
        })
    }

    /// The connected DomU ports, as the ports file lists them.
    pub fn port_records(&self) -> Vec<PortRecord> {
        let records = self.ports.iter().map(|(&port, connection)| PortRecord {
            port,
            domain: connection.hello.domain,
            device: usize::from(connection.hello.device),
            mac: connection.hello.mac,
        });
        records.collect()
    }

    pub fn tap_record(&self) -> Option<TapRecord> {
        self.tap.as_ref().map(|tap| TapRecord {
            port: TAP_PORT,
            name: tap.tap.name().to_string(),
            mac: tap.tap.mac(),
        })
    }

    /// A port's counters.
    pub fn counters(&self, port: Port) -> Option<Counters> {
        match port {
            TAP_PORT => self.tap.as_ref().map(|tap| tap.counters),
            _ => self.ports.get(&port).map(|connection| connection.counters),
        }
    }

    /// The port `mac` is learned on.
    pub fn lookup(&self, mac: &Mac) -> Option<Port> {
        self.switch.lookup(mac, Instant::now())
    }

    /// One round: waits up to `timeout` for something to do, then does it.
    /// Only a failing `poll` is an error; everything a port does costs
    /// that port at most.
    pub fn step(&mut self, timeout: Duration, log: &mut dyn Write) -> io::Result<()> {
        // The first round lists the TAP before it waits.
        if self.dirty {
            self.write_ports_file(log);
        }
        let mut sources = vec![Source::Listener];
        let mut fds = vec![pollfd(self.listener.as_raw_fd())];
        if let Some(tap) = &self.tap {
            sources.push(Source::Tap);
            fds.push(pollfd(tap.tap.as_raw_fd()));
        }
        for (&id, (socket, _)) in &self.pending {
            sources.push(Source::Pending(id));
            fds.push(pollfd(socket.as_raw_fd()));
        }
        for (&port, connection) in &self.ports {
            sources.push(Source::Port(port));
            fds.push(pollfd(connection.socket.as_raw_fd()));
        }
        ffi::poll(&mut fds, timeout)?;
        let now = Instant::now();
        for (source, fd) in sources.into_iter().zip(&fds) {
            if fd.revents == 0 {
                continue;
            }
            match source {
                Source::Listener => self.accept(now, log),
                Source::Tap => self.read_tap(now, log),
                Source::Pending(id) => self.hello(id, log),
                Source::Port(port) => self.read_port(port, now, log),
            }
        }
        let before = self.pending.len();
        self.pending
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < HELLO_TIMEOUT);
        if self.pending.len() < before {
            let _ = writeln!(log, "keel switch: closed a connection that sent no hello");
        }
        if now.saturating_duration_since(self.last_expire) >= EXPIRE_EVERY {
            self.switch.expire(now);
            self.last_expire = now;
        }
        if self.dirty {
            self.write_ports_file(log);
        }
        Ok(())
    }

    fn write_ports_file(&mut self, log: &mut dyn Write) {
        self.dirty = false;
        if let Some(path) = &self.ports_path {
            if let Err(error) = write_ports(path, self.tap_record().as_ref(), &self.port_records()) {
                let _ = writeln!(log, "keel switch: cannot write {}: {error}", path.display());
            }
        }
    }

    fn accept(&mut self, now: Instant, log: &mut dyn Write) {
        for _ in 0..BUDGET {
            match ffi::accept(self.listener.as_fd()) {
                Ok(socket) if self.pending.len() + self.ports.len() >= MAX_CONNECTIONS => {
                    let _ = writeln!(log, "keel switch: {MAX_CONNECTIONS} connections already; refused one");
                    drop(socket);
                }
                Ok(socket) => {
                    self.pending.insert(self.next_pending, (socket, now));
                    self.next_pending += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let _ = writeln!(log, "keel switch: accept: {error}");
                    return;
                }
            }
        }
    }

    /// A free port number, counting up so a number is not reused at once.
    fn free_port(&mut self) -> Option<Port> {
        for _ in 0..Port::MAX {
            let port = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(1);
            if port != TAP_PORT && !self.ports.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    /// A pending connection's first message: a port if it is a hello.
    fn hello(&mut self, id: u64, log: &mut dyn Write) {
        let Some((socket, _)) = self.pending.get(&id) else {
            return;
        };
        let result = ffi::recv(socket.as_fd(), &mut self.buffer);
        let message = match result {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return,
            // Closed (or failed) before saying anything: a probe, quietly.
            Ok(0) | Err(_) => {
                self.pending.remove(&id);
                return;
            }
            Ok(len) => self.buffer.get(..len.min(MESSAGE_BUFFER)).unwrap_or_default(),
        };
        let Some((socket, _)) = self.pending.remove(&id) else {
            return;
        };
        let hello = match Hello::decode(message) {
            Ok(hello) => hello,
            Err(reason) => {
                let _ = writeln!(
                    log,
                    "keel switch: closed a connection whose first message is not a hello ({reason})"
                );
                return;
            }
        };
        let Some(port) = self.free_port() else {
            let _ = writeln!(log, "keel switch: no free port number; closed a connection");
            return;
        };
        let _ = ffi::set_send_buffer(socket.as_fd(), SEND_BUFFER);
        self.switch.add_port(port);
        self.ports.insert(
            port,
            Connection {
                socket,
                hello,
                counters: Counters::default(),
            },
        );
        self.dirty = true;
        let _ = writeln!(
            log,
            "keel switch: port {port}: domain {} device {} ({}) connected",
            hello.domain,
            hello.device,
            mac_text(&hello.mac)
        );
    }

    /// Removes a DomU port (its addresses are forgotten) and logs its
    /// counters.
    fn close_port(&mut self, port: Port, reason: &str, log: &mut dyn Write) {
        let Some(connection) = self.ports.remove(&port) else {
            return;
        };
        self.switch.remove_port(port);
        self.dirty = true;
        let hello = connection.hello;
        let _ = writeln!(
            log,
            "keel switch: port {port}: domain {} device {} ({}) gone: {reason}; {}",
            hello.domain,
            hello.device,
            mac_text(&hello.mac),
            connection.counters.summary()
        );
    }

    /// Closes every port, logging their counters (and the TAP's).
    pub fn shutdown(&mut self, log: &mut dyn Write) {
        let ports: Vec<Port> = self.ports.keys().copied().collect();
        for port in ports {
            self.close_port(port, "the switch stops", log);
        }
        if let Some(tap) = self.tap.take() {
            let _ = writeln!(log, "keel switch: TAP {}: {}", tap.tap.name(), tap.counters.summary());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
        if let Some(path) = &self.ports_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

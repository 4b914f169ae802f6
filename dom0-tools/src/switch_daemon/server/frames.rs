//! Moving frames: reading a port or the TAP (up to the budget, checking
//! lengths and, on DomU ports, the source address), asking the switch
//! where a frame goes and delivering it without waiting.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use super::{Server, BUDGET, TAP_PORT};
use crate::switch::{Forward, Port};
use crate::switch_daemon::ffi;
use crate::switch_daemon::port::{is_full, is_gone};
use crate::switch_daemon::protocol::{source_mac, MAX_FRAME, MIN_FRAME};

/// A port's frame counts, logged when it goes away.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Frames taken from the port and forwarded (or dropped by the switch).
    pub rx: u64,
    /// Frames delivered to the port.
    pub tx: u64,
    /// Frames from the port with another source address than its hello's.
    pub spoofed: u64,
    /// Frames from the port shorter than a header or longer than the most.
    pub malformed: u64,
    /// Frames from the port the switch dropped (for a station on the same
    /// port, or an invalid source on the TAP).
    pub filtered: u64,
    /// Frames for the port dropped because its buffer was full.
    pub dropped: u64,
}

impl Counters {
    pub(super) fn summary(&self) -> String {
        format!(
            "received {} frames, sent {}; dropped: {} spoofed, {} malformed, {} filtered, {} for a full buffer",
            self.rx, self.tx, self.spoofed, self.malformed, self.filtered, self.dropped
        )
    }
}

impl Server {
    /// Frames from a DomU port, up to the budget.
    pub(super) fn read_port(&mut self, port: Port, now: Instant, log: &mut dyn Write) {
        let mut buffer = std::mem::take(&mut self.buffer);
        for _ in 0..BUDGET {
            let Some(connection) = self.ports.get_mut(&port) else {
                break;
            };
            let len = match ffi::recv(connection.socket.as_fd(), &mut buffer) {
                Ok(0) => {
                    self.close_port(port, "the backend closed it", log);
                    break;
                }
                Ok(len) => len,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.close_port(port, &format!("receive failed: {error}"), log);
                    break;
                }
            };
            let frame = match buffer.get(..len) {
                Some(frame) if (MIN_FRAME..=MAX_FRAME).contains(&len) => frame,
                _ => {
                    connection.counters.malformed += 1;
                    continue;
                }
            };
            // Anti-spoofing: a DomU sends from its NIC's address only.
            if source_mac(frame) != Some(connection.hello.mac) {
                connection.counters.spoofed += 1;
                continue;
            }
            connection.counters.rx += 1;
            self.forward(port, frame, now, log);
        }
        self.buffer = buffer;
    }

    /// Frames from Dom0's TAP, up to the budget (any source address: Dom0
    /// is trusted).
    pub(super) fn read_tap(&mut self, now: Instant, log: &mut dyn Write) {
        let mut buffer = std::mem::take(&mut self.buffer);
        for _ in 0..BUDGET {
            let Some(tap) = &mut self.tap else {
                break;
            };
            let len = match tap.tap.read_frame(&mut buffer) {
                Ok(len) => len,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let _ = writeln!(
                        log,
                        "keel switch: TAP {} failed ({error}); continuing without it; {}",
                        tap.tap.name(),
                        tap.counters.summary()
                    );
                    self.tap = None;
                    self.switch.remove_port(TAP_PORT);
                    self.dirty = true;
                    break;
                }
            };
            match buffer.get(..len) {
                Some(frame) if (MIN_FRAME..=MAX_FRAME).contains(&len) => {
                    tap.counters.rx += 1;
                    self.forward(TAP_PORT, frame, now, log);
                }
                _ => tap.counters.malformed += 1,
            }
        }
        self.buffer = buffer;
    }

    /// Sends `frame` from `in_port` where the switch says.
    fn forward(&mut self, in_port: Port, frame: &[u8], now: Instant, log: &mut dyn Write) {
        match self.switch.forward(in_port, frame, now) {
            Forward::Unicast(port) => self.deliver(port, frame, log),
            Forward::Flood(ports) => {
                for port in ports {
                    self.deliver(port, frame, log);
                }
            }
            Forward::Drop(_) => {
                if let Some(counters) = self.counters_mut(in_port) {
                    counters.filtered += 1;
                }
            }
        }
    }

    fn counters_mut(&mut self, port: Port) -> Option<&mut Counters> {
        match port {
            TAP_PORT => self.tap.as_mut().map(|tap| &mut tap.counters),
            _ => self.ports.get_mut(&port).map(|connection| &mut connection.counters),
        }
    }

    /// One frame to one port, without waiting: a full buffer drops it.
    fn deliver(&mut self, port: Port, frame: &[u8], log: &mut dyn Write) {
        if port == TAP_PORT {
            if let Some(tap) = &mut self.tap {
                // Any error (the link down: EIO) costs this frame only.
                match tap.tap.write_frame(frame) {
                    Ok(()) => tap.counters.tx += 1,
                    Err(_) => tap.counters.dropped += 1,
                }
            }
            return;
        }
        let Some(connection) = self.ports.get_mut(&port) else {
            return;
        };
        match ffi::send(connection.socket.as_fd(), frame) {
            Ok(_) => connection.counters.tx += 1,
            Err(error) if is_gone(&error) => self.close_port(port, "the backend went away", log),
            Err(error) if is_full(&error) => connection.counters.dropped += 1,
            Err(_) => connection.counters.dropped += 1,
        }
    }
}

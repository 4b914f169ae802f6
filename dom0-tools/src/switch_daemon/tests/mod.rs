//! The switch over real Unix sockets in a scratch directory: a [`Server`]
//! without a TAP driven one `step` at a time, backends' [`SwitchPort`]s,
//! and raw sockets for what a well-behaved port never sends.

mod daemon;
mod forwarding;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ffi;
use super::server::Server;
use super::{SwitchPort, SOCKET_NAME};
use crate::switch::Mac;

const A: Mac = [0x02, 0, 0, 0, 0, 0x0A];
const B: Mac = [0x02, 0, 0, 0, 0, 0x0B];
const C: Mac = [0x02, 0, 0, 0, 0, 0x0C];
const BROADCAST: Mac = [0xFF; 6];

/// An empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-switch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server in `dir`, without a TAP, writing `dir/switch.ports`.
fn server(dir: &Path) -> Server {
    Server::bind(&dir.join(SOCKET_NAME), None, Some(dir.join("switch.ports"))).unwrap()
}

/// A frame of `len` bytes from `source` to `destination`; the payload
/// says `tag`.
fn frame(destination: Mac, source: Mac, tag: u8, len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.resize(len, tag);
    frame
}

/// Runs the server until what is queued has gone through (a few rounds:
/// a hello makes a port, whose frames the next round reads).
fn pump(server: &mut Server, log: &mut Vec<u8>) {
    for _ in 0..4 {
        server.step(Duration::from_millis(5), log).unwrap();
    }
}

/// Every frame queued for `port`.
fn drain(port: &mut SwitchPort) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut buffer = vec![0; 65536];
    while let Some(len) = port.recv(&mut buffer).unwrap() {
        frames.push(buffer[..len].to_vec());
    }
    frames
}

fn connect(dir: &Path, domain: u32, mac: Mac) -> SwitchPort {
    SwitchPort::connect(dir, domain, 0, mac).unwrap()
}

/// A connection that sends what the test says, hello or not.
fn raw(dir: &Path) -> OwnedFd {
    let socket = ffi::seqpacket_socket().unwrap();
    ffi::connect(socket.as_fd(), &dir.join(SOCKET_NAME)).unwrap();
    socket
}

fn log_text(log: &[u8]) -> String {
    String::from_utf8_lossy(log).into_owned()
}

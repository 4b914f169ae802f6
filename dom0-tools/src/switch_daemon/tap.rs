//! Dom0's port on the switch: a TAP interface (`keel0` by default).
//!
//! Opened with `IFF_TAP | IFF_NO_PI` and no `IFF_VNET_HDR`: every read
//! is one whole Ethernet frame and every write sends one, without a
//! prefix. Without a virtio header Linux cannot hand us segmentation or
//! checksum offloads, so the frames read are ready for a DomU whose NIC
//! offers none (keel-virtio's does not). The interface lives as long as
//! the descriptor (it is not persistent): Dom0's address on it
//! (`ip addr add 10.0.0.1/24 dev keel0`) has to be set again after the
//! switch restarts.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{ensure, Context, Result};

use super::ffi;
use crate::switch::Mac;

pub const TUN_DEVICE: &str = "/dev/net/tun";

/// Whether Linux accepts `name` for an interface: 1 to 15 bytes, not `.`
/// or `..`, without `/`, `:`, whitespace or NUL.
pub fn valid_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
}

/// An open TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    mac: Mac,
}

impl Tap {
    /// Creates (or attaches to) TAP `name`, non-blocking. Fails without
    /// the tun driver, without CAP_NET_ADMIN, or when `name` is another
    /// kind of interface or another process's TAP.
    pub fn open(name: &str) -> Result<Self> {
        ensure!(valid_interface_name(name), "`{name}` is not a valid interface name");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TUN_DEVICE)
            .with_context(|| format!("cannot open {TUN_DEVICE}"))?;
        ffi::attach_tap(file.as_fd(), name).with_context(|| format!("cannot create TAP {name} (TUNSETIFF)"))?;
        let mac = ffi::hardware_address(name).with_context(|| format!("cannot read {name}'s address"))?;
        Ok(Self {
            file,
            name: name.to_string(),
            mac,
        })
    }

    /// Brings the link up, as `ip link set NAME up` does.
    pub fn set_up(&self) -> io::Result<()> {
        ffi::set_link_up(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's address (Dom0's MAC on the switch) when opened.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// One frame from Dom0; `WouldBlock` when none is queued.
    pub fn read_frame(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.file.read(buffer)
    }

    /// One frame to Dom0 (the kernel takes it whole or not at all).
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.file.write(frame).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_linux() {
        for good in ["keel0", "k", "a-b_c.d", "fifteen-bytes-x"] {
            assert!(valid_interface_name(good), "{good}");
        }
        for bad in ["", ".", "..", "sixteen-bytes-xx", "a/b", "a:b", "a b", "a\tb", "a\0"] {
            assert!(!valid_interface_name(bad), "{bad:?}");
        }
        assert!(Tap::open("a/b")
            .unwrap_err()
            .to_string()
            .contains("not a valid interface name"));
    }
}

//! The switch's files in the run directory:
//!
//! - `switch.pid`: its pid, locked (flock, exclusive) for as long as it
//!   runs, like a backend's (`backend::runfiles`): a lock anyone can take
//!   means no switch runs, whatever the pid in it says;
//! - `switch.sock`: the listening socket (a stale one is removed once the
//!   lock is held);
//! - `switch.ports`: who is connected, rewritten (atomically) on every
//!   change, one line per port: `<port> tap <name> <mac>` for Dom0's TAP,
//!   `<port> <domain> <device> <mac>` for a DomU's NIC;
//! - `switch.log`: its stderr when [`super::ensure_running`] started it
//!   (appended to, kept after it exits).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use keel_abi::mgmt::DomainId;

use super::protocol::{mac_text, parse_mac};
use crate::backend::runfiles::PidLock;
use crate::switch::{Mac, Port};

/// The paths of a switch's files.
#[derive(Debug, Clone)]
pub struct SwitchFiles {
    pub dir: PathBuf,
}

impl SwitchFiles {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    pub fn pid(&self) -> PathBuf {
        self.dir.join("switch.pid")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join(super::SOCKET_NAME)
    }

    pub fn ports(&self) -> PathBuf {
        self.dir.join("switch.ports")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("switch.log")
    }
}

/// The switch's hold on its pid file ([`PidLock`]).
pub struct SwitchLock {
    _held: PidLock,
}

impl SwitchLock {
    /// Locks the pid file and writes this process's pid into it; refused
    /// while another switch holds it.
    pub fn acquire(files: &SwitchFiles) -> Result<Self> {
        let dir = files.dir.display().to_string();
        let held = PidLock::acquire_at(&files.pid(), |pid| {
            format!("a switch (pid {pid}) already runs in {dir}")
        })?;
        Ok(Self { _held: held })
    }
}

/// Dom0's TAP port, as `switch.ports` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRecord {
    pub port: Port,
    pub name: String,
    pub mac: Mac,
}

/// A DomU NIC's port, as `switch.ports` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    pub port: Port,
    pub domain: DomainId,
    pub device: usize,
    pub mac: Mac,
}

/// The ports file's text.
pub fn ports_text(tap: Option<&TapRecord>, ports: &[PortRecord]) -> String {
    let mut text = String::from("# keel switch ports: <port> tap <name> <mac> | <port> <domain> <device> <mac>\n");
    if let Some(tap) = tap {
        text += &format!("{} tap {} {}\n", tap.port, tap.name, mac_text(&tap.mac));
    }
    for port in ports {
        let mac = mac_text(&port.mac);
        text += &format!("{} {} {} {mac}\n", port.port, port.domain, port.device);
    }
    text
}

/// Writes the ports file: a temporary file renamed into place, so a
/// reader sees all of it or nothing.
pub fn write_ports(path: &Path, tap: Option<&TapRecord>, ports: &[PortRecord]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, ports_text(tap, ports))?;
    std::fs::rename(&temporary, path)
}

/// Parses the ports file's text.
pub fn parse_ports(text: &str) -> Result<(Option<TapRecord>, Vec<PortRecord>), String> {
    let mut tap = None;
    let mut ports = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: `{line}`", number + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [port, first, second, mac] = fields[..] else {
            return Err(bad());
        };
        let port: Port = port.parse().map_err(|_| bad())?;
        let mac = parse_mac(mac).ok_or_else(bad)?;
        if first == "tap" {
            tap = Some(TapRecord {
                port,
                name: second.to_string(),
                mac,
            });
        } else {
            ports.push(PortRecord {
                port,
                domain: first.parse().map_err(|_| bad())?,
                device: second.parse().map_err(|_| bad())?,
                mac,
            });
        }
    }
    Ok((tap, ports))
}

/// Reads the ports file; empty when there is none.
pub fn read_ports(path: &Path) -> Result<(Option<TapRecord>, Vec<PortRecord>)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(error) => return Err(anyhow!("{}: {error}", path.display())),
    };
    parse_ports(&text).map_err(|reason| anyhow!("{} is malformed: {reason}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::runfiles::{holder, Holder};

    #[test]
    fn the_ports_file_round_trips() {
        let tap = TapRecord {
            port: 0,
            name: "keel0".into(),
            mac: [0x02, 0, 0, 0, 0, 1],
        };
        let ports = vec![
            PortRecord {
                port: 1,
                domain: 3,
                device: 0,
                mac: [0x36, 0xfd, 0x18, 0xb4, 0x1a, 0x11],
            },
            PortRecord {
                port: 7,
                domain: 4,
                device: 2,
                mac: [0x02, 0, 0, 0, 0, 9],
            },
        ];
        let text = ports_text(Some(&tap), &ports);
        assert!(text.ends_with("0 tap keel0 02:00:00:00:00:01\n1 3 0 36:fd:18:b4:1a:11\n7 4 2 02:00:00:00:00:09\n"));
        assert_eq!(parse_ports(&text), Ok((Some(tap), ports)));
        assert_eq!(parse_ports(""), Ok((None, vec![])));
        assert_eq!(parse_ports("1 3 0\n").unwrap_err(), "line 1: `1 3 0`");
        assert!(parse_ports("x 3 0 02:00:00:00:00:01").is_err());
        assert!(parse_ports("1 3 0 02:00:00:00:00").is_err());
    }

    #[test]
    fn the_pid_lock_is_exclusive_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("keel-switch-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = SwitchFiles::new(&dir);
        let lock = SwitchLock::acquire(&files).unwrap();
        let pid = std::process::id() as i32;
        assert_eq!(holder(&files.pid()).unwrap(), Holder::Backend(Some(pid)));
        let error = SwitchLock::acquire(&files).err().unwrap().to_string();
        assert_eq!(error, format!("a switch (pid {pid}) already runs in {}", dir.display()));
        drop(lock);
        assert!(!files.pid().exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

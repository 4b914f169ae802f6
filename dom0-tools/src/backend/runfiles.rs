//! A backend's files in the run directory (`/run/keel`):
//!
//! - `backend-<id>.pid`: its pid, locked (flock, exclusive) for as long as
//!   it runs: a lock anyone can take means the backend is gone, whatever
//!   the pid in it now names;
//! - `backend-<id>.ready`: written (atomically) once it serves, JSON
//!   ([`ReadyInfo`]); `keel create` boots the domain once it appears and
//!   `keel block-list` reads the disks from it;
//! - `backend-<id>.log`: its stderr (kept after it exits).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use keel_abi::mgmt::DomainId;
use serde::{Deserialize, Serialize};

pub const RUN_DIR: &str = "/run/keel";

/// One disk in the ready file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRecord {
    pub index: usize,
    pub path: String,
    pub read_only: bool,
    pub sectors: u64,
}

/// One network interface in the ready file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicRecord {
    pub index: usize,
    /// `02:4b:45:00:00:0a`.
    pub mac: String,
    pub mtu: Option<u16>,
}

/// The virtio console in the ready file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleRecord {
    pub index: usize,
    /// The socket `keel console --hvc` connects to.
    pub socket: String,
}

/// The ready file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub domain: DomainId,
    pub pid: u32,
    /// The window slot.
    pub slot: u64,
    /// "uio" or "polling".
    pub notifications: String,
    pub disks: Vec<DiskRecord>,
    /// Absent in the files of backends from before network interfaces.
    #[serde(default)]
    pub nics: Vec<NicRecord>,
    #[serde(default)]
    pub console: Option<ConsoleRecord>,
}

/// What a backend was started to serve, as its command line gave it:
/// `keel backend-restart` starts the same again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesRecord {
    /// `<path>,<mode>` each.
    pub disks: Vec<String>,
    /// `mac=<mac>[,mtu=<mtu>]` each.
    pub vifs: Vec<String>,
    pub console: bool,
}

/// The run files of domain `id`'s backend.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub id: DomainId,
}

impl RunFiles {
    pub fn new(dir: &Path, id: DomainId) -> Self {
        Self {
            dir: dir.to_path_buf(),
            id,
        }
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("backend-{}.{suffix}", self.id))
    }

    pub fn pid(&self) -> PathBuf {
        self.file("pid")
    }

    pub fn ready(&self) -> PathBuf {
        self.file("ready")
    }

    pub fn log(&self) -> PathBuf {
        self.file("log")
    }

    /// What the backend was started for (kept after it dies, removed when
    /// it is stopped).
    pub fn devices(&self) -> PathBuf {
        self.file("devices")
    }

    pub fn write_devices(&self, record: &DevicesRecord) -> Result<()> {
        let text = serde_json::to_string_pretty(record).expect("plain data serializes") + "\n";
        std::fs::write(self.devices(), text).with_context(|| format!("writing {}", self.devices().display()))
    }

    pub fn read_devices(&self) -> Result<Option<DevicesRecord>> {
        read_json(&self.devices())
    }

    /// Removes the pid and ready files (not the log); missing ones are fine.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.ready());
        let _ = std::fs::remove_file(self.pid());
    }

    /// Writes the ready file: a temporary file renamed into place, so a
    /// reader sees all of it or nothing.
    pub fn write_ready(&self, info: &ReadyInfo) -> Result<()> {
        let temporary = self.file("ready.tmp");
        let text = serde_json::to_string_pretty(info).expect("plain data serializes") + "\n";
        std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, self.ready()).with_context(|| format!("writing {}", self.ready().display()))
    }

    /// The ready file, if the backend wrote one.
    pub fn read_ready(&self) -> Result<Option<ReadyInfo>> {
        read_json(&self.ready())
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("; ")
    }
}

/// Creates the run directory (root only may write it).
pub fn create_run_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// A process's hold on its pid file (a backend's, the switch's): released
/// (and the file removed) when dropped, or by the kernel when the process
/// dies.
pub struct PidLock {
    file: File,
    path: PathBuf,
}

impl PidLock {
    /// Locks `files.pid()` and writes this process's pid into it; refused
    /// while another backend holds it.
    pub fn acquire(files: &RunFiles) -> Result<Self> {
        let id = files.id;
        Self::acquire_at(&files.pid(), |pid| {
            format!("a backend (pid {pid}) already serves domain {id}")
        })
    }

    /// Locks `path` and writes this process's pid into it; while another
    /// process holds it, the error is `busy(its pid or "?")`.
    pub fn acquire_at(path: &Path, busy: impl Fn(&str) -> String) -> Result<Self> {
        // A stopper that found the file before we locked it took it for a
        // dead process's and removed it: then lock a new one.
        for _ in 0..3 {
            let mut lock = Self::try_acquire(path, &busy)?;
            let path_inode = std::fs::metadata(&lock.path).map(|meta| meta.ino()).ok();
            if path_inode == Some(lock.file.metadata()?.ino()) {
                return Ok(lock);
            }
            // Not ours to remove any more.
            lock.path = PathBuf::new();
        }
        bail!("{} keeps disappearing", path.display())
    }

    fn try_acquire(path: &Path, busy: &impl Fn(&str) -> String) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = read_pid(&mut file).map_or_else(|| "?".to_string(), |pid| pid.to_string());
                bail!(busy(&pid));
            }
            Err(TryLockError::Error(error)) => bail!("cannot lock {}: {error}", path.display()),
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id()).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Removed while still locked: a reader never sees our file unlocked.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|&pid| pid > 1)
}

/// Who holds a pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// No file, or a file nobody holds (its backend died).
    Nobody,
    /// A live backend; its pid once it has written it.
    Backend(Option<i32>),
}

/// Whether a backend holds `path`.
pub fn holder(path: &Path) -> Result<Holder> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Holder::Nobody),
        Err(error) => return Err(anyhow!("{}: {error}", path.display())),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Holder::Nobody),
        Err(TryLockError::WouldBlock) => Ok(Holder::Backend(read_pid(&mut file))),
        Err(TryLockError::Error(error)) => Err(anyhow!("cannot check {}: {error}", path.display())),
    }
}

/// A JSON run file: `None` when it does not exist, an error naming the
/// file when it cannot be read or is malformed.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(anyhow!("{}: {error}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| anyhow!("{} is malformed: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keel-tools-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_run_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn names_follow_the_domain_id() {
        let files = RunFiles::new(Path::new("/run/keel"), 7);
        assert_eq!(files.pid(), Path::new("/run/keel/backend-7.pid"));
        assert_eq!(files.ready(), Path::new("/run/keel/backend-7.ready"));
        assert_eq!(files.log(), Path::new("/run/keel/backend-7.log"));
    }

    #[test]
    fn the_pid_lock_is_exclusive_and_leaves_nothing_behind() {
        let dir = scratch("lock");
        let files = RunFiles::new(&dir, 3);
        assert_eq!(holder(&files.pid()).unwrap(), Holder::Nobody);
        let lock = PidLock::acquire(&files).unwrap();
        let pid = std::process::id() as i32;
        assert_eq!(holder(&files.pid()).unwrap(), Holder::Backend(Some(pid)));
        assert_eq!(
            PidLock::acquire(&files).err().unwrap().to_string(),
            format!("a backend (pid {pid}) already serves domain 3")
        );
        drop(lock);
        assert!(!files.pid().exists());
        // A stale file (its process gone) is nobody's.
        std::fs::write(files.pid(), "12345\n").unwrap();
        assert_eq!(holder(&files.pid()).unwrap(), Holder::Nobody);
        let lock = PidLock::acquire(&files).unwrap();
        assert_eq!(std::fs::read_to_string(files.pid()).unwrap(), format!("{pid}\n"));
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_ready_file_round_trips_and_bad_ones_are_named() {
        let dir = scratch("ready");
        let files = RunFiles::new(&dir, 4);
        assert_eq!(files.read_ready().unwrap(), None);
        let info = ReadyInfo {
            domain: 4,
            pid: 99,
            slot: 1,
            notifications: "uio".into(),
            disks: vec![DiskRecord {
                index: 0,
                path: "/srv/root.img".into(),
                read_only: false,
                sectors: 2048,
            }],
            nics: vec![NicRecord {
                index: 1,
                mac: "02:4b:45:00:00:0a".into(),
                mtu: Some(9000),
            }],
            console: Some(ConsoleRecord {
                index: 2,
                socket: "/run/keel/console-4.sock".into(),
            }),
        };
        files.write_ready(&info).unwrap();
        assert_eq!(files.read_ready().unwrap(), Some(info));
        std::fs::write(files.ready(), "{").unwrap();
        assert!(files
            .read_ready()
            .unwrap_err()
            .to_string()
            .starts_with(&format!("{} is malformed", files.ready().display())));
        files.remove();
        assert!(!files.ready().exists());
        std::fs::write(files.log(), "starting\n\nkeel: no such domain\n").unwrap();
        assert_eq!(files.log_tail(1), "keel: no such domain");
        assert_eq!(files.log_tail(5), "starting; keel: no such domain");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

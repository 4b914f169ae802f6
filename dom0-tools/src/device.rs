//! The real management device: found through sysfs, its BARs mapped from
//! `resource0`/`resource2`, calls serialized across processes with
//! [`LOCK_FILE`]. The mapping itself (the unsafe part) is in `sys`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use keel_abi::mgmt::{Request, Response, LOCK_FILE, PCI_DEVICE_ID, PCI_VENDOR_ID, REGISTER_BYTES, SHARED_BYTES};

use crate::sys::Mapping;
use crate::transport::{Bars, MmioTransport, Transport};

/// Where Linux lists PCI functions.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

const NOT_FOUND: &str = "no Keel management device found (is this Dom0 running on Keel?)";

/// The sysfs directory of the management function under `root`.
pub fn find_device(root: &Path) -> Result<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        bail!(NOT_FOUND);
    };
    let mut candidates: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    // Deterministic choice should a second function ever appear.
    candidates.sort();
    candidates
        .into_iter()
        .find(|dir| {
            read_id(&dir.join("vendor")) == Some(PCI_VENDOR_ID) && read_id(&dir.join("device")) == Some(PCI_DEVICE_ID)
        })
        .ok_or_else(|| anyhow!(NOT_FOUND))
}

/// Parses a sysfs id file ("0x4b45\n").
fn read_id(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    let hex = text.strip_prefix("0x").unwrap_or(text);
    u16::from_str_radix(hex, 16).ok()
}

/// Opening the device's files fails for anyone but root: say so plainly.
fn access_error(path: &Path, error: io::Error) -> anyhow::Error {
    if error.kind() == io::ErrorKind::PermissionDenied {
        anyhow!(
            "the management interface needs root: {}: Permission denied",
            path.display()
        )
    } else {
        anyhow!("{}: {error}", path.display())
    }
}

fn map_resource(dir: &Path, name: &str, len: u64) -> Result<Mapping> {
    map_resource_at(dir, name, 0, len)
}

/// Maps `len` bytes of the function's `name` resource file from `offset`
/// (the backend maps BAR 0 again for the notification registers, and
/// its domain's slot of the memory window in BAR 4).
pub(crate) fn map_resource_at(dir: &Path, name: &str, offset: u64, len: u64) -> Result<Mapping> {
    let path = dir.join(name);
    // O_SYNC: device memory must never be cached. Linux maps sysfs
    // `resourceN` files uncached anyway; the flag states the intent.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC)
        .open(&path)
        .map_err(|error| access_error(&path, error))?;
    let size = file.metadata().map_err(|error| access_error(&path, error))?.len();
    let end = offset.saturating_add(len);
    if size < end {
        bail!(
            "{}: the BAR is {size:#x} bytes, the management ABI needs {end:#x}",
            path.display()
        );
    }
    let len = usize::try_from(len).map_err(|_| anyhow!("{}: {len:#x} bytes do not fit in memory", path.display()))?;
    Mapping::new_at(&file, offset, len).map_err(|error| anyhow!("mapping {}: {error}", path.display()))
}

/// BAR 0 and BAR 2 mapped into this process.
pub struct PciBars {
    regs: Mapping,
    shared: Mapping,
}

impl Bars for PciBars {
    fn read_reg(&self, offset: u64) -> u32 {
        self.regs.read32(offset as usize)
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        self.regs.write32(offset as usize, value)
    }

    fn write_shared(&mut self, offset: usize, bytes: &[u8]) {
        self.shared.copy_in(offset, bytes)
    }

    fn read_shared(&self, offset: usize, out: &mut [u8]) {
        self.shared.copy_out(offset, out)
    }
}

/// The management device, ready for calls.
pub struct Device {
    transport: MmioTransport<PciBars>,
    lock: File,
    dir: PathBuf,
}

impl Device {
    /// Finds, maps and checks the device, and opens (creating) the lock file.
    pub fn open() -> Result<Self> {
        let dir = find_device(Path::new(SYSFS_PCI_DEVICES))?;
        let bars = PciBars {
            regs: map_resource(&dir, "resource0", REGISTER_BYTES)?,
            shared: map_resource(&dir, "resource2", SHARED_BYTES)?,
        };
        let transport = MmioTransport::new(bars, &dir.display().to_string())?;
        let lock = open_lock(Path::new(LOCK_FILE))?;
        Ok(Self { transport, lock, dir })
    }

    /// The function's sysfs directory (`/sys/bus/pci/devices/<bdf>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn open_lock(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| access_error(dir, error))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|error| access_error(path, error))
}

impl Transport for Device {
    /// The lock is held per call, not per process: a long `keel console`
    /// or `keel top` must not shut every other tool out, and the shared
    /// page only needs protecting while one request/response is in it.
    fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
        self.lock.lock().with_context(|| format!("locking {LOCK_FILE}"))?;
        let result = self.transport.call(request, input);
        // Closing would release it too; unlocking now lets others in sooner.
        let _ = self.lock.unlock();
        result
    }

    fn advertised_version(&self) -> Option<u32> {
        self.transport.advertised_version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(root: &Path, bdf: &str, vendor: &str, device: &str) {
        let dir = root.join(bdf);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vendor"), vendor).unwrap();
        std::fs::write(dir.join("device"), device).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keel-tools-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finds_the_function_by_vendor_and_device() {
        let root = scratch("pci");
        function(&root, "0000:00:00.0", "0x8086\n", "0x1237\n");
        function(&root, "0000:00:02.0", "0x4b45\n", "0x0002\n");
        function(&root, "0000:00:03.0", "0x4b45\n", "0x0001\n");
        assert_eq!(find_device(&root).unwrap(), root.join("0000:00:03.0"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_function_or_no_sysfs_says_so() {
        let root = scratch("nopci");
        function(&root, "0000:00:00.0", "0x8086\n", "0x1237\n");
        assert_eq!(find_device(&root).unwrap_err().to_string(), NOT_FOUND);
        assert_eq!(find_device(&root.join("missing")).unwrap_err().to_string(), NOT_FOUND);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn permission_errors_say_root_is_needed() {
        let error = access_error(
            Path::new("/sys/bus/pci/devices/0000:00:03.0/resource0"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            error.to_string(),
            "the management interface needs root: /sys/bus/pci/devices/0000:00:03.0/resource0: Permission denied"
        );
        let error = access_error(Path::new("/run/keel.lock"), io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(
            error.to_string(),
            "the management interface needs root: /run/keel.lock: Permission denied"
        );
    }

    #[test]
    fn the_lock_file_and_its_directory_are_created() {
        let root = scratch("lock");
        let path = root.join("run").join("keel.lock");
        let file = open_lock(&path).unwrap();
        file.lock().unwrap();
        // A second open file description conflicts while the first holds it.
        let other = open_lock(&path).unwrap();
        assert!(other.try_lock().is_err());
        file.unlock().unwrap();
        other.try_lock().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}

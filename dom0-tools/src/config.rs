//! Domain configuration files (TOML).
//!
//! The file is parsed by `toml` (through serde) into a table, and this
//! module then checks every key itself rather than deriving a struct: serde
//! derive reports "invalid type: string, expected u32" without the key or
//! the allowed range, and users need `web.toml: memory: must be between 16
//! and 1048576 MiB, got 0`.

use std::fmt;
use std::path::{Path, PathBuf};

use keel_abi::mgmt::virtio::MAX_DEVICES;
use keel_abi::mgmt::{CreateDomain, ImageKind, LifecycleAction, Name, PciAddress, NAME_MAX};
use toml::{Table, Value};

use crate::vif::{MacText, Vif};

pub const MIN_MEMORY_MIB: i64 = 16;
pub const MAX_MEMORY_MIB: i64 = 1 << 20;
pub const DEFAULT_CMDLINE: &str = "console=ttyS0";

const KEYS: [&str; 14] = [
    "name",
    "memory",
    "vcpus",
    "kernel",
    "initrd",
    "cmdline",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "pci",
    "pci_unconfined_dma",
    "disk",
    "vif",
    "virtio_console",
];

/// A virtio-blk disk: a raw image file (or block device) and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
}

impl Disk {
    /// `"rw"` or `"ro"`.
    pub fn mode(&self) -> &'static str {
        if self.read_only {
            "ro"
        } else {
            "rw"
        }
    }

    /// The `<path>,<mode>` form the config and `keel backend --disk` take.
    pub fn spec(&self) -> String {
        format!("{},{}", self.path.display(), self.mode())
    }

    /// Parses `<path>,rw` or `<path>,ro` (the mode is required; the path
    /// is everything before the last comma, so it may contain commas).
    /// Relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let Some((path, mode)) = text.rsplit_once(',') else {
            return Err(format!(
                "`{text}`: expected \"<path>,rw\" or \"<path>,ro\" (the mode is required)"
            ));
        };
        let read_only = match mode {
            "rw" => false,
            "ro" => true,
            _ => return Err(format!("`{text}`: the mode must be rw or ro, got `{mode}`")),
        };
        if path.is_empty() {
            return Err(format!("`{text}`: the path must not be empty"));
        }
        Ok(Self {
            path: base.join(path),
            read_only,
        })
    }
}

/// A checked configuration; paths are resolved against the file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
    /// PCI functions to hand to the domain, in the file's order.
    pub pci: Vec<PciAddress>,
    /// Attach them even when no IOMMU confines their DMA.
    pub pci_unconfined_dma: bool,
    /// virtio-blk disks, in the file's order (the guest sees them in this
    /// order: vda, vdb, ...).
    pub disks: Vec<Disk>,
    /// virtio-net interfaces, in the file's order (eth0, eth1, ... in a
    /// Linux guest), after the disks among the domain's virtio devices.
    pub vifs: Vec<Vif>,
    /// A virtio console (the guest's hvc0) besides the UART, after the
    /// interfaces among the domain's virtio devices.
    pub virtio_console: bool,
}

/// `<file>: <key>: <reason>` (or `<file>: <reason>` for file-wide problems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem with one key; the file name is added by [`Config::parse`].
struct Problem {
    key: Option<&'static str>,
    reason: String,
}

fn problem(key: &'static str, reason: impl Into<String>) -> Problem {
    Problem {
        key: Some(key),
        reason: reason.into(),
    }
}

/// "an integer", "a string", ...
fn a_kind(value: &Value) -> String {
    let kind = value.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

fn found(value: &Value) -> String {
    format!("found {}", a_kind(value))
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            file: file.clone(),
            key: None,
            reason: error.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &file, base)
    }

    /// Checks `text`; `file` names it in errors and relative paths are
    /// taken from `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, ConfigError> {
        let table: Table = text.parse().map_err(|error: toml::de::Error| ConfigError {
            file: file.to_string(),
            key: None,
            // toml's message names the line and column and shows the line.
            reason: error.to_string().trim_end().to_string(),
        })?;
        Self::from_table(&table, base).map_err(|problem| ConfigError {
            file: file.to_string(),
            key: problem.key.map(str::to_string),
            reason: problem.reason,
        })
    }

    fn from_table(table: &Table, base: &Path) -> Result<Self, Problem> {
        // Unknown keys first: a misspelt key otherwise shows up as a
        // confusing "missing" one.
        if let Some(key) = table.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(Problem {
                key: None,
                reason: format!("unknown key `{key}`"),
            });
        }
        let path = |key: &'static str| -> Result<Option<PathBuf>, Problem> {
            let Some(value) = table.get(key) else { return Ok(None) };
            let text = value
                .as_str()
                .ok_or_else(|| problem(key, format!("expected a path (string), {}", found(value))))?;
            if text.is_empty() {
                return Err(problem(key, "must not be empty"));
            }
            Ok(Some(base.join(text)))
        };
        let action = |key: &'static str, default: LifecycleAction| -> Result<LifecycleAction, Problem> {
            let Some(value) = table.get(key) else {
                return Ok(default);
            };
            let expected = "expected \"destroy\", \"restart\" or \"preserve\"";
            let text = value
                .as_str()
                .ok_or_else(|| problem(key, format!("{expected}, {}", found(value))))?;
            LifecycleAction::from_name(text).ok_or_else(|| problem(key, format!("{expected}, got \"{text}\"")))
        };

        let disks = disks(table.get("disk"), base)?;
        let vifs = vifs(table.get("vif"))?;
        let virtio_console = boolean("virtio_console", table.get("virtio_console"), false)?;
        if disks.len() + vifs.len() + usize::from(virtio_console) > MAX_DEVICES {
            return Err(problem(
                "vif",
                format!(
                    "{} disks, {} interfaces{}: a domain can have at most {MAX_DEVICES} virtio devices",
                    disks.len(),
                    vifs.len(),
                    if virtio_console { " and a console" } else { "" }
                ),
            ));
        }
        Ok(Self {
            name: name(table.get("name"))?,
            memory_mib: memory(table.get("memory"))?,
            vcpus: vcpus(table.get("vcpus"))?,
            kernel: path("kernel")?.ok_or_else(|| problem("kernel", "required key is missing"))?,
            initrd: path("initrd")?,
            cmdline: cmdline(table.get("cmdline"))?,
            on_poweroff: action("on_poweroff", LifecycleAction::Destroy)?,
            on_reboot: action("on_reboot", LifecycleAction::Restart)?,
            on_crash: action("on_crash", LifecycleAction::Destroy)?,
            pci: pci(table.get("pci"))?,
            pci_unconfined_dma: boolean("pci_unconfined_dma", table.get("pci_unconfined_dma"), false)?,
            disks,
            vifs,
            virtio_console,
        })
    }

    /// The Create call's input.
    pub fn create_request(&self) -> CreateDomain {
        CreateDomain {
            // Checked in `parse`.
            name: Name::new(&self.name).expect("validated name"),
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            on_poweroff: self.on_poweroff,
            on_reboot: self.on_reboot,
            on_crash: self.on_crash,
        }
    }
}

fn name(value: Option<&Value>) -> Result<String, Problem> {
    let value = value.ok_or_else(|| problem("name", "required key is missing"))?;
    let text = value
        .as_str()
        .ok_or_else(|| problem("name", format!("expected a string, {}", found(value))))?;
    let reason = if text.is_empty() {
        "must not be empty".to_string()
    } else if text.len() > NAME_MAX {
        format!("`{text}` is longer than {NAME_MAX} bytes")
    } else if text.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("`{text}` is all digits, which would read as a domain id")
    } else if Name::new(text).is_err() {
        format!("`{text}` contains a space, a slash or a control character")
    } else {
        return Ok(text.to_string());
    };
    Err(problem("name", reason))
}

fn integer(key: &'static str, value: &Value, unit: &str) -> Result<i64, Problem> {
    value
        .as_integer()
        .ok_or_else(|| problem(key, format!("expected an integer{unit}, {}", found(value))))
}

fn memory(value: Option<&Value>) -> Result<u32, Problem> {
    let value = value.ok_or_else(|| problem("memory", "required key is missing"))?;
    let mib = integer("memory", value, " (MiB)")?;
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
        return Err(problem(
            "memory",
            format!("must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, got {mib}"),
        ));
    }
    Ok(mib as u32)
}

fn vcpus(value: Option<&Value>) -> Result<u32, Problem> {
    let Some(value) = value else { return Ok(1) };
    match integer("vcpus", value, "")? {
        1 => Ok(1),
        _ => Err(problem(
            "vcpus",
            "only 1 vCPU per domain is supported until SMP guests land",
        )),
    }
}

fn cmdline(value: Option<&Value>) -> Result<String, Problem> {
    let Some(value) = value else {
        return Ok(DEFAULT_CMDLINE.to_string());
    };
    let text = value
        .as_str()
        .ok_or_else(|| problem("cmdline", format!("expected a string, {}", found(value))))?;
    let max = ImageKind::Cmdline.max_bytes();
    if text.len() as u64 > max {
        return Err(problem(
            "cmdline",
            format!("is {} bytes long, Keel takes at most {max}", text.len()),
        ));
    }
    if text.contains('\0') {
        return Err(problem("cmdline", "must not contain NUL characters"));
    }
    Ok(text.to_string())
}

/// `pci = ["0000:00:04.0", "00:05.0"]`: each a PCI address, none twice.
fn pci(value: Option<&Value>) -> Result<Vec<PciAddress>, Problem> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let expected = "expected an array of PCI addresses such as [\"0000:00:04.0\"]";
    let items = value
        .as_array()
        .ok_or_else(|| problem("pci", format!("{expected}, {}", found(value))))?;
    let mut addresses: Vec<PciAddress> = Vec::with_capacity(items.len());
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| problem("pci", format!("{expected}, found {} in the array", a_kind(item))))?;
        let address = PciAddress::parse(text).map_err(|error| problem("pci", format!("`{text}`: {error}")))?;
        if addresses.contains(&address) {
            return Err(problem("pci", format!("{address} is listed twice")));
        }
        addresses.push(address);
    }
    Ok(addresses)
}

/// `disk = ["images/root.img,rw", "/srv/iso.img,ro"]`: each a path and a
/// required mode, at most [`MAX_DEVICES`], no file twice.
fn disks(value: Option<&Value>, base: &Path) -> Result<Vec<Disk>, Problem> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let expected = "expected an array of disks such as [\"root.img,rw\", \"data.img,ro\"]";
    let items = value
        .as_array()
        .ok_or_else(|| problem("disk", format!("{expected}, {}", found(value))))?;
    if items.len() > MAX_DEVICES {
        return Err(problem(
            "disk",
            format!("{} disks listed, a domain can have at most {MAX_DEVICES}", items.len()),
        ));
    }
    let mut disks: Vec<Disk> = Vec::with_capacity(items.len());
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| problem("disk", format!("{expected}, found {} in the array", a_kind(item))))?;
        let disk = Disk::parse(text, base).map_err(|reason| problem("disk", reason))?;
        if disks.iter().any(|other| other.path == disk.path) {
            return Err(problem("disk", format!("{} is listed twice", disk.path.display())));
        }
        disks.push(disk);
    }
    Ok(disks)
}

/// `vif = ["mac=02:4b:45:00:00:0a", ""]`: each entry's settings (see
/// [`crate::vif`]), no address twice.
fn vifs(value: Option<&Value>) -> Result<Vec<Vif>, Problem> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let expected = "expected an array of interfaces such as [\"mac=02:4b:45:00:00:0a\", \"\"]";
    let items = value
        .as_array()
        .ok_or_else(|| problem("vif", format!("{expected}, {}", found(value))))?;
    let mut vifs: Vec<Vif> = Vec::with_capacity(items.len());
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| problem("vif", format!("{expected}, found {} in the array", a_kind(item))))?;
        let vif = Vif::parse(text).map_err(|reason| problem("vif", reason))?;
        if let Some(mac) = vif.mac.filter(|mac| vifs.iter().any(|other| other.mac == Some(*mac))) {
            return Err(problem("vif", format!("{} is given to two interfaces", MacText(&mac))));
        }
        vifs.push(vif);
    }
    Ok(vifs)
}

fn boolean(key: &'static str, value: Option<&Value>, default: bool) -> Result<bool, Problem> {
    let Some(value) = value else { return Ok(default) };
    value
        .as_bool()
        .ok_or_else(|| problem(key, format!("expected true or false, {}", found(value))))
}

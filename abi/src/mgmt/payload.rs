//! Structures that travel in the data area.

use super::{DecodeError, DomainId, Reader, Writer, NAME_MAX};

/// A domain's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DomainState {
    /// Created; images are being loaded, no vCPU yet.
    Building = 0,
    Running = 1,
    /// Its vCPU halted and waits for an interrupt.
    Blocked = 2,
    Paused = 3,
    /// Powered off; kept because `on_poweroff = "preserve"`.
    Shutdown = 4,
    /// Failed (triple fault, failed VM entry, unsupported operation).
    Crashed = 5,
    /// Being torn down.
    Dying = 6,
}

impl DomainState {
    pub const ALL: [Self; 7] = [
        Self::Building,
        Self::Running,
        Self::Blocked,
        Self::Paused,
        Self::Shutdown,
        Self::Crashed,
        Self::Dying,
    ];

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|state| *state as u32 == value)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::Crashed => "crashed",
            Self::Dying => "dying",
        }
    }
}

/// What to do when a domain powers off, reboots or crashes (xl's
/// `on_poweroff`/`on_reboot`/`on_crash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LifecycleAction {
    /// Return every resource; the domain disappears.
    Destroy = 0,
    /// Boot it again from the same images.
    Restart = 1,
    /// Keep it (state shutdown or crashed) until `keel destroy`.
    Preserve = 2,
}

impl LifecycleAction {
    pub const ALL: [Self; 3] = [Self::Destroy, Self::Restart, Self::Preserve];

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|action| *action as u32 == value)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::Preserve => "preserve",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }
}

/// Which staged image a [`super::Command::LoadImage`] chunk belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ImageKind {
    /// A Linux bzImage.
    Kernel = 0,
    Initrd = 1,
    /// The kernel command line (UTF-8, no NUL).
    Cmdline = 2,
}

impl ImageKind {
    pub fn from_u64(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Kernel),
            1 => Some(Self::Initrd),
            2 => Some(Self::Cmdline),
            _ => None,
        }
    }

    /// The largest image of this kind Keel accepts.
    pub fn max_bytes(self) -> u64 {
        match self {
            Self::Kernel => 64 << 20,
            Self::Initrd => 512 << 20,
            Self::Cmdline => 2047,
        }
    }
}

/// A domain name: 1 to [`NAME_MAX`] bytes of UTF-8 with no control
/// characters, no spaces or slashes, and not all digits (names and ids
/// must not be confused).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_MAX],
    len: u8,
}

impl Name {
    pub fn new(name: &str) -> Result<Self, DecodeError> {
        let valid = !name.is_empty()
            && name.len() <= NAME_MAX
            && !name.bytes().all(|byte| byte.is_ascii_digit())
            && name.chars().all(|c| !c.is_control() && !c.is_whitespace() && c != '/');
        if !valid {
            return Err(DecodeError::Invalid("name"));
        }
        let mut bytes = [0; NAME_MAX];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Built from a &str or validated UTF-8 by `decode`.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    fn encode(&self, writer: &mut Writer) -> Result<(), DecodeError> {
        writer.bytes(&self.bytes)
    }

    /// NUL-padded on the wire.
    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let raw = reader.take(NAME_MAX)?;
        let len = raw.iter().position(|&byte| byte == 0).unwrap_or(NAME_MAX);
        if raw[len..].iter().any(|&byte| byte != 0) {
            return Err(DecodeError::Invalid("name"));
        }
        let text = core::str::from_utf8(&raw[..len]).map_err(|_| DecodeError::Invalid("name"))?;
        Self::new(text)
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Input of [`super::Command::Create`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateDomain {
    pub name: Name,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}

impl CreateDomain {
    pub const BYTES: usize = NAME_MAX + 5 * 4;

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        let mut writer = Writer::new(out);
        self.name.encode(&mut writer)?;
        writer.u32(self.memory_mib)?;
        writer.u32(self.vcpus)?;
        writer.u32(self.on_poweroff as u32)?;
        writer.u32(self.on_reboot as u32)?;
        writer.u32(self.on_crash as u32)?;
        Ok(writer.position())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let name = Name::decode(&mut reader)?;
        let memory_mib = reader.u32()?;
        let vcpus = reader.u32()?;
        let mut action = |field| LifecycleAction::from_u32(reader.u32()?).ok_or(DecodeError::Invalid(field));
        Ok(Self {
            name,
            memory_mib,
            vcpus,
            on_poweroff: action("on_poweroff")?,
            on_reboot: action("on_reboot")?,
            on_crash: action("on_crash")?,
        })
    }
}

/// One record of [`super::Command::List`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub id: DomainId,
    pub state: DomainState,
    pub name: Name,
    pub memory_bytes: u64,
    pub vcpus: u32,
    /// Guest time its vCPUs ran, in nanoseconds.
    pub cpu_time_ns: u64,
    /// VM exits so far, all reasons together.
    pub exits: u64,
    /// Of which: port I/O, MMIO (EPT violations), MSR accesses, HLT,
    /// time-slice ends.
    pub exits_io: u64,
    pub exits_mmio: u64,
    pub exits_msr: u64,
    pub exits_halt: u64,
    pub exits_timer: u64,
    /// Host memory Keel holds for this domain beyond its RAM and images
    /// (EPT tables, VMCS, bitmaps, saved registers), in bytes.
    pub overhead_bytes: u64,
    /// Host memory holding the kernel, initramfs and command line Dom0 sent
    /// (kept for reboots), in bytes. Since ABI 1.1 (0 before).
    pub image_bytes: u64,
}

impl DomainInfo {
    pub const BYTES: usize = 4 + 4 + NAME_MAX + 8 + 4 + 4 + 9 * 8;

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        let mut writer = Writer::new(out);
        writer.u32(self.id)?;
        writer.u32(self.state as u32)?;
        self.name.encode(&mut writer)?;
        writer.u64(self.memory_bytes)?;
        writer.u32(self.vcpus)?;
        writer.u32(0)?;
        for value in [
            self.cpu_time_ns,
            self.exits,
            self.exits_io,
            self.exits_mmio,
            self.exits_msr,
            self.exits_halt,
            self.exits_timer,
            self.overhead_bytes,
            self.image_bytes,
        ] {
            writer.u64(value)?;
        }
        Ok(writer.position())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let id = reader.u32()?;
        let state = DomainState::from_u32(reader.u32()?).ok_or(DecodeError::Invalid("state"))?;
        let name = Name::decode(&mut reader)?;
        let memory_bytes = reader.u64()?;
        let vcpus = reader.u32()?;
        let _reserved = reader.u32()?;
        let mut next = || reader.u64();
        let info = Self {
            id,
            state,
            name,
            memory_bytes,
            vcpus,
            cpu_time_ns: next()?,
            exits: next()?,
            exits_io: next()?,
            exits_mmio: next()?,
            exits_msr: next()?,
            exits_halt: next()?,
            exits_timer: next()?,
            overhead_bytes: next()?,
            image_bytes: next()?,
        };
        Ok(info)
    }
}

/// Output of [`super::Command::Info`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Keel's ABI [`super::VERSION`].
    pub version: u32,
    pub physical_cpus: u32,
    /// Host memory Keel manages for guests and tables, in bytes.
    pub total_memory: u64,
    pub free_memory: u64,
    pub tsc_hz: u64,
    /// Bits of [`features`] in use.
    pub features: u64,
    pub domains: u32,
    /// The largest `memory_mib` a create can ask for now.
    pub max_domain_memory_mib: u32,
}

/// CPU features Keel uses (bits of [`HostInfo::features`]).
pub mod features {
    pub const VMX: u64 = 1 << 0;
    pub const EPT: u64 = 1 << 1;
    pub const VPID: u64 = 1 << 2;
    pub const UNRESTRICTED_GUEST: u64 = 1 << 3;
    pub const PREEMPTION_TIMER: u64 = 1 << 4;
    pub const SAVE_PREEMPTION_TIMER: u64 = 1 << 5;
    pub const NAMES: [(u64, &str); 6] = [
        (VMX, "vmx"),
        (EPT, "ept"),
        (VPID, "vpid"),
        (UNRESTRICTED_GUEST, "unrestricted-guest"),
        (PREEMPTION_TIMER, "preemption-timer"),
        (SAVE_PREEMPTION_TIMER, "save-preemption-timer"),
    ];
}

impl HostInfo {
    pub const BYTES: usize = 4 + 4 + 4 * 8 + 4 + 4;

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        let mut writer = Writer::new(out);
        writer.u32(self.version)?;
        writer.u32(self.physical_cpus)?;
        writer.u64(self.total_memory)?;
        writer.u64(self.free_memory)?;
        writer.u64(self.tsc_hz)?;
        writer.u64(self.features)?;
        writer.u32(self.domains)?;
        writer.u32(self.max_domain_memory_mib)?;
        Ok(writer.position())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        Ok(Self {
            version: reader.u32()?,
            physical_cpus: reader.u32()?,
            total_memory: reader.u64()?,
            free_memory: reader.u64()?,
            tsc_hz: reader.u64()?,
            features: reader.u64()?,
            domains: reader.u32()?,
            max_domain_memory_mib: reader.u32()?,
        })
    }
}

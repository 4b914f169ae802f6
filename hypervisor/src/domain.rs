//! A domain: one guest's memory (host RAM behind EPT, reached by Keel only
//! through its [`GuestRam`] map), its vCPU and the hypervisor-side state its
//! devices and hypercalls keep.

use keel_ept::{EptError, EptFlags, EptTables, MemoryType, PageSize};
use keel_memory::{ChunkPlan, GuestPhysAddr, HostPhysAddr, MapError, MemoryKind, PAGE_SIZE_2M};

use alloc::boxed::Box;

pub use crate::memory::GuestRam;
use crate::memory::{self, GuestRamError, HostFrames};
use crate::mmio::DecodeCache;
use crate::vplatform::VirtualPlatform;
use keel_hypervisor::console_line::ConsoleLine;
use keel_hypervisor::cpuid_policy::GuestCpu;

mod window;
pub use window::RamRuns;

/// Dom0's management shared memory: Keel's block, and where Dom0's BAR 2
/// maps it now.
#[derive(Clone, Copy)]
struct Management {
    shared: HostPhysAddr,
    len: u64,
    mapped_at: Option<u64>,
}

#[derive(Debug)]
pub enum DomainError {
    OutOfMemory {
        bytes: u64,
    },
    BadSize {
        bytes: u64,
    },
    /// A window slot that does not exist, or RAM that does not fit one.
    WindowSlot(usize),
    Ept(EptError),
    Memory(MapError),
    NoPlatform,
    Platform(keel_hypervisor::platform_devices::PlatformError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::OutOfMemory { bytes } => write!(f, "no {} MiB of host memory for guest RAM", bytes >> 20),
            Self::BadSize { bytes } => write!(f, "{bytes:#x} bytes of guest RAM is not a multiple of 4 KiB"),
            Self::WindowSlot(slot) => write!(f, "window slot {slot} does not exist or cannot hold the RAM"),
            Self::Ept(error) => write!(f, "building EPT tables: {error:?}"),
            Self::Memory(error) => write!(f, "guest memory map: {error}"),
            Self::NoPlatform => f.write_str("the domain has no virtual platform"),
            Self::Platform(error) => write!(f, "{error}"),
        }
    }
}

pub struct Domain {
    pub id: u16,
    /// Every guest-memory access goes through this; its RAM regions are
    /// the host blocks the domain owns (freed on destroy).
    memory: GuestRam,
    ram_size: u64,
    ept: Option<EptTables>,
    pub console: ConsoleLine,
    /// Time slices the domain has used up (VMX-preemption-timer expiries).
    pub timer_ticks: u64,
    /// Guest TSC minus host TSC: what the guest and its devices read as
    /// time is the host's TSC plus this.
    pub tsc_offset: u64,
    /// What the guest reported through `HC_SELFTEST_DONE`, if anything.
    pub selftest_report: Option<u64>,
    /// What CPUID tells the guest about its CPU.
    pub cpu: GuestCpu,
    /// Guest accesses to addresses with neither RAM nor a device.
    pub unbacked_accesses: u64,
    /// Emulated devices and interrupt controllers; test guests have none.
    pub platform: Option<Box<VirtualPlatform>>,
    /// Host PCI functions wired into this boot of the domain.
    pub assigned: alloc::vec::Vec<crate::passthrough::Wired>,
    mmio_decodes: DecodeCache,
    management: Option<Management>,
    /// Dom0's memory window onto DomUs' RAM.
    window: window::Window,
}

impl Domain {
    /// A domain with `ram_size` bytes (a multiple of 4 KiB; 2 MiB multiples
    /// map with 2 MiB pages) of zeroed RAM at guest-physical 0; everything
    /// above is unmapped. The RAM is one host block when one is free, else
    /// several (see [`Domain::with_max_chunk`]).
    pub fn new(id: u16, ram_size: u64) -> Result<Self, DomainError> {
        Self::with_max_chunk(id, ram_size, ram_size)
    }

    /// Like [`Domain::new`], with host blocks of at most `max_chunk` bytes.
    /// Blocks are tried largest first (the whole remainder, then powers of
    /// two down to 2 MiB), are 2 MiB aligned and map at consecutive
    /// guest-physical addresses. Every block and table is returned to the
    /// host if any step fails.
    pub fn with_max_chunk(id: u16, ram_size: u64, max_chunk: u64) -> Result<Self, DomainError> {
        let plan = ChunkPlan::new(ram_size, PAGE_SIZE_2M)
            .ok_or(DomainError::BadSize { bytes: ram_size })?
            .with_max_chunk(max_chunk);
        let phys = memory::phys_memory();
        let mut ram = GuestRam::new(phys);
        // RAM first, tables after: the blocks come straight from what is
        // free, not from around table frames taken just before.
        if let Err(error) = allocate_ram(&mut ram, plan) {
            memory::free_guest_ram(ram);
            return Err(error);
        }
        let ept = match map_ram(&ram) {
            Ok(ept) => ept,
            Err(error) => {
                memory::free_guest_ram(ram);
                return Err(error);
            }
        };
        let blocks = ram.regions().len();
        if blocks > 1 {
            log::info!("domain {id}: {} MiB of RAM in {blocks} host blocks", ram_size >> 20);
        }
        Ok(Self {
            id,
            memory: ram,
            ram_size,
            ept: Some(ept),
            console: ConsoleLine::default(),
            timer_ticks: 0,
            // The guest's TSC starts at zero now, like a machine's at reset.
            tsc_offset: 0u64.wrapping_sub(crate::arch::tsc::read()),
            selftest_report: None,
            cpu: GuestCpu::default(),
            platform: None,
            unbacked_accesses: 0,
            assigned: alloc::vec::Vec::new(),
            mmio_decodes: DecodeCache::default(),
            management: None,
            window: window::Window::default(),
        })
    }

    pub fn ram_size(&self) -> u64 {
        self.ram_size
    }

    /// The guest's physical memory: checked reads and writes of its RAM,
    /// and its region map.
    pub fn memory(&self) -> &GuestRam {
        &self.memory
    }

    /// As [`Domain::memory`], for writing (while the guest is not running).
    pub fn memory_mut(&mut self) -> &mut GuestRam {
        &mut self.memory
    }

    /// Guest memory and the debug console line at once (the test guests'
    /// string port I/O).
    pub fn memory_and_console(&mut self) -> (&mut GuestRam, &mut ConsoleLine) {
        (&mut self.memory, &mut self.console)
    }

    /// How many host blocks hold the guest's RAM.
    pub fn ram_blocks(&self) -> usize {
        self.memory
            .regions()
            .iter()
            .filter(|region| region.kind() == MemoryKind::Ram)
            .count()
    }

    /// What MMIO emulation needs at once: the platform, the decode cache
    /// and guest memory (instruction fetch, page walks, the memory side of
    /// string instructions). `None` without a platform.
    pub fn mmio_parts(&mut self) -> Option<(&mut VirtualPlatform, &mut DecodeCache, &mut GuestRam)> {
        Some((self.platform.as_deref_mut()?, &mut self.mmio_decodes, &mut self.memory))
    }

    /// Maps `len` bytes of host memory at `hpa` (Keel's shared memory, or a
    /// DomU's RAM in Dom0's window, shared with the
    /// guest) at guest-physical `gpa`, write-back cached whatever the
    /// guest's PAT says (Linux maps BARs uncached; this is RAM, which Keel
    /// and other guests access write-back). It is recorded as
    /// shared memory, not RAM: guest-memory accesses do not reach it, and
    /// it cannot overlap RAM or a device range.
    pub fn map_shared(&mut self, gpa: u64, hpa: HostPhysAddr, len: u64) -> Result<(), DomainError> {
        let ept = self.ept.as_mut().ok_or(DomainError::Ept(EptError::AddressOutOfRange))?;
        let start = GuestPhysAddr::new(gpa);
        self.memory.add_shared(start, hpa, len).map_err(DomainError::Memory)?;
        let mapped = ept.map_range(
            start,
            hpa,
            len,
            EptFlags::READ | EptFlags::WRITE | EptFlags::IGNORE_PAT,
            MemoryType::WriteBack,
            PageSize::Size2M,
            &mut HostFrames,
            &memory::phys_memory(),
        );
        mapped.map_err(|error| {
            self.memory.remove(start, MemoryKind::Shared);
            DomainError::Ept(error)
        })
    }

    /// Maps an assigned device's memory BAR (`len` bytes at host-physical
    /// `host`) at guest-physical `gpa`, uncached. It is recorded as device
    /// memory: it cannot overlap RAM or anything else the guest has, and
    /// guest-memory accesses never reach it.
    pub fn map_device(&mut self, gpa: u64, host: u64, len: u64) -> Result<(), DomainError> {
        let ept = self.ept.as_mut().ok_or(DomainError::Ept(EptError::AddressOutOfRange))?;
        let start = GuestPhysAddr::new(gpa);
        self.memory.add_mmio(start, len).map_err(DomainError::Memory)?;
        let mapped = ept.map_range(
            start,
            HostPhysAddr::new(host),
            len,
            EptFlags::READ | EptFlags::WRITE,
            MemoryType::Uncacheable,
            // Large BARs map (and move) in 2 MiB pages where aligned.
            PageSize::Size2M,
            &mut HostFrames,
            &memory::phys_memory(),
        );
        mapped.map_err(|error| {
            self.memory.remove(start, MemoryKind::Mmio);
            DomainError::Ept(error)
        })
    }

    /// The guest's RAM as (guest-physical, host-physical, length) runs, for
    /// an IOMMU domain that mirrors it.
    pub fn ram_runs(&self) -> RamRuns {
        self.memory
            .regions()
            .iter()
            .filter(|region| region.kind() == MemoryKind::Ram)
            .filter_map(|region| Some((region.start().as_u64(), region.host()?, region.len())))
            .collect()
    }

    /// Unmaps what [`Domain::map_shared`] mapped at `gpa` (nothing if no
    /// shared memory starts there). The caller invalidates the EPT
    /// translations (INVEPT) before the guest runs again.
    pub fn unmap_shared(&mut self, gpa: u64) {
        self.unmap_region(gpa, MemoryKind::Shared);
    }

    /// Unmaps what [`Domain::map_device`] mapped at `gpa`; the caller
    /// invalidates the EPT translations before the guest runs again.
    pub fn unmap_device(&mut self, gpa: u64) {
        self.unmap_region(gpa, MemoryKind::Mmio);
    }

    fn unmap_region(&mut self, gpa: u64, kind: MemoryKind) {
        let Some(region) = self.memory.remove(GuestPhysAddr::new(gpa), kind) else {
            return;
        };
        let Some(ept) = self.ept.as_mut() else { return };
        let mem = memory::phys_memory();
        let mut offset = 0;
        while offset < region.len() {
            let page = GuestPhysAddr::new(gpa + offset);
            let size = ept.translate(page, &mem).map_or(PageSize::Size4K, |t| t.size);
            let _ = ept.unmap(page, size, &mut HostFrames, &mem);
            offset += size.bytes();
        }
    }

    /// Gives this domain (Dom0) the management function: its registers
    /// emulated by the platform, its shared memory `shared` mapped at BAR 2.
    pub fn attach_management(&mut self, shared: HostPhysAddr, len: u64) -> Result<(), DomainError> {
        let platform = self.platform.as_deref_mut().ok_or(DomainError::NoPlatform)?;
        let layout = platform.attach_management().map_err(DomainError::Platform)?;
        if let Some(gpa) = layout.shared {
            self.map_shared(gpa, shared, len)?;
        }
        self.management = Some(Management {
            shared,
            len,
            mapped_at: layout.shared,
        });
        self.set_window_base(layout.window);
        Ok(())
    }

    /// Dom0 moved (or disabled) the management shared memory: maps it where
    /// it decodes now. The caller flushes the EPT translations.
    pub fn move_management(&mut self, now_at: Option<u64>) {
        let Some(management) = self.management else { return };
        if let Some(old) = management.mapped_at {
            self.unmap_shared(old);
        }
        let mapped_at = now_at.filter(|&gpa| match self.map_shared(gpa, management.shared, management.len) {
            Ok(()) => true,
            Err(error) => {
                log::warn!(
                    "domain {}: cannot map the management memory at {gpa:#x}: {error}",
                    self.id
                );
                false
            }
        });
        self.management = Some(Management {
            mapped_at,
            ..management
        });
    }

    /// The EPT pointer for this domain's VMCSs.
    pub fn eptp(&self) -> u64 {
        self.ept
            .as_ref()
            .map_or(0, |ept| ept.eptp(MemoryType::WriteBack, false))
    }

    /// Returns the domain's memory and tables to the host (the management
    /// memory is Keel's: it is only unmapped).
    pub fn destroy(mut self) {
        // Assigned devices go quiet (and their DMA is blocked) before the
        // memory they could write is freed.
        for wired in self.assigned.drain(..) {
            crate::passthrough::unwire(wired);
        }
        if let Some(ept) = self.ept.take() {
            ept.destroy(&mut HostFrames, &memory::phys_memory());
        }
        memory::free_guest_ram(self.memory);
    }
}

/// Allocates the host blocks `plan` asks for, each recorded in `ram` as RAM
/// at the next guest-physical address. On error, what was allocated is in
/// `ram` (for [`memory::free_guest_ram`]).
fn allocate_ram(ram: &mut GuestRam, mut plan: ChunkPlan) -> Result<(), DomainError> {
    while let Some(size) = plan.next_size() {
        match memory::allocate_guest_ram(ram, GuestPhysAddr::new(plan.placed()), size) {
            Ok(_) => plan.allocated(),
            Err(GuestRamError::OutOfMemory) if plan.shrink() => {}
            Err(GuestRamError::OutOfMemory) => return Err(DomainError::OutOfMemory { bytes: plan.total() }),
            Err(GuestRamError::Map(error)) => return Err(DomainError::Memory(error)),
        }
    }
    Ok(())
}

/// EPT tables mapping every RAM region of `ram` (read, write, execute,
/// write-back; 2 MiB pages where both sides are aligned); nothing else.
fn map_ram(ram: &GuestRam) -> Result<EptTables, DomainError> {
    let phys = memory::phys_memory();
    let mut ept = EptTables::new(&mut HostFrames, &phys).map_err(DomainError::Ept)?;
    for region in ram.regions() {
        let (MemoryKind::Ram, Some(host)) = (region.kind(), region.host()) else {
            continue;
        };
        let mapped = ept.map_range(
            region.start(),
            host,
            region.len(),
            EptFlags::READ | EptFlags::WRITE | EptFlags::EXECUTE,
            MemoryType::WriteBack,
            PageSize::Size2M,
            &mut HostFrames,
            &phys,
        );
        if let Err(error) = mapped {
            ept.destroy(&mut HostFrames, &phys);
            return Err(DomainError::Ept(error));
        }
    }
    Ok(ept)
}

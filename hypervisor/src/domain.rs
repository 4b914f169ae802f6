//! A domain: one guest's memory (host RAM behind EPT), its vCPU and the
//! hypervisor-side state its devices and hypercalls keep.

use keel_ept::{EptError, EptFlags, EptTables, MemoryType, PageSize};
use keel_memory::{GuestPhysAddr, HostPhysAddr, PAGE_SIZE_2M};

use alloc::boxed::Box;

use crate::memory::{self, HostFrames};
use crate::mmio::DecodeCache;
use crate::vplatform::VirtualPlatform;
use keel_hypervisor::console_line::ConsoleLine;
use keel_hypervisor::cpuid_policy::GuestCpu;

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
    OutOfMemory { bytes: u64 },
    Ept(EptError),
    NoPlatform,
    Platform(keel_hypervisor::platform_devices::PlatformError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::OutOfMemory { bytes } => write!(f, "no {} MiB of host memory for guest RAM", bytes >> 20),
            Self::Ept(error) => write!(f, "building EPT tables: {error:?}"),
            Self::NoPlatform => f.write_str("the domain has no virtual platform"),
            Self::Platform(error) => write!(f, "{error}"),
        }
    }
}

pub struct Domain {
    pub id: u16,
    ram: HostPhysAddr,
    ram_size: u64,
    ept: Option<EptTables>,
    pub console: ConsoleLine,
    /// Time slices the domain has used up (VMX-preemption-timer expiries).
    pub timer_ticks: u64,
    /// What the guest reported through `HC_SELFTEST_DONE`, if anything.
    pub selftest_report: Option<u64>,
    /// What CPUID tells the guest about its CPU.
    pub cpu: GuestCpu,
    /// Guest accesses to addresses with neither RAM nor a device.
    pub unbacked_accesses: u64,
    /// Emulated devices and interrupt controllers; test guests have none.
    pub platform: Option<Box<VirtualPlatform>>,
    mmio_decodes: DecodeCache,
    management: Option<Management>,
}

impl Domain {
    /// A domain with `ram_size` bytes (a multiple of 2 MiB) of zeroed RAM at
    /// guest-physical 0; everything above is unmapped.
    pub fn new(id: u16, ram_size: u64) -> Result<Self, DomainError> {
        let ram =
            memory::allocate_zeroed(ram_size, PAGE_SIZE_2M).ok_or(DomainError::OutOfMemory { bytes: ram_size })?;
        let mem = memory::phys_memory();
        let mapped = EptTables::new(&mut HostFrames, &mem).and_then(|mut ept| {
            let result = ept.map_range(
                GuestPhysAddr::new(0),
                ram,
                ram_size,
                EptFlags::READ | EptFlags::WRITE | EptFlags::EXECUTE,
                MemoryType::WriteBack,
                PageSize::Size2M,
                &mut HostFrames,
                &mem,
            );
            match result {
                Ok(()) => Ok(ept),
                Err(error) => {
                    ept.destroy(&mut HostFrames, &mem);
                    Err(error)
                }
            }
        });
        match mapped {
            Ok(ept) => Ok(Self {
                id,
                ram,
                ram_size,
                ept: Some(ept),
                console: ConsoleLine::default(),
                timer_ticks: 0,
                selftest_report: None,
                cpu: GuestCpu::default(),
                platform: None,
                unbacked_accesses: 0,
                mmio_decodes: DecodeCache::default(),
                management: None,
            }),
            Err(error) => {
                memory::free(ram, ram_size);
                Err(DomainError::Ept(error))
            }
        }
    }

    pub fn ram_size(&self) -> u64 {
        self.ram_size
    }

    /// The guest's RAM, indexed by guest-physical address.
    pub fn ram_mut(&mut self) -> &mut [u8] {
        // SAFETY: the block is owned by this domain for its lifetime and only
        // reached through this borrow while the guest is not running.
        unsafe { memory::block_bytes(self.ram, self.ram_size) }
    }

    /// What MMIO emulation needs at once: the platform, the decode cache
    /// and the RAM (read for instruction fetch). `None` without a platform.
    pub fn mmio_parts(&mut self) -> Option<(&mut VirtualPlatform, &mut DecodeCache, &[u8])> {
        // SAFETY: as for `ram_mut`; the platform, the cache and the RAM are
        // disjoint and the RAM is only read through this borrow.
        let ram = unsafe { memory::block_bytes(self.ram, self.ram_size) };
        Some((self.platform.as_deref_mut()?, &mut self.mmio_decodes, ram))
    }

    /// Maps `len` bytes of host memory at `hpa` (Keel's, shared with the
    /// guest) at guest-physical `gpa`, write-back cached.
    pub fn map_shared(&mut self, gpa: u64, hpa: HostPhysAddr, len: u64) -> Result<(), DomainError> {
        let ept = self.ept.as_mut().ok_or(DomainError::Ept(EptError::AddressOutOfRange))?;
        ept.map_range(
            GuestPhysAddr::new(gpa),
            hpa,
            len,
            EptFlags::READ | EptFlags::WRITE,
            MemoryType::WriteBack,
            PageSize::Size2M,
            &mut HostFrames,
            &memory::phys_memory(),
        )
        .map_err(DomainError::Ept)
    }

    /// Unmaps what [`Domain::map_shared`] mapped. The caller invalidates
    /// the EPT translations (INVEPT) before the guest runs again.
    pub fn unmap_shared(&mut self, gpa: u64, len: u64) {
        let Some(ept) = self.ept.as_mut() else { return };
        let mem = memory::phys_memory();
        let mut offset = 0;
        while offset < len {
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
        Ok(())
    }

    /// Dom0 moved (or disabled) the management shared memory: maps it where
    /// it decodes now. The caller flushes the EPT translations.
    pub fn move_management(&mut self, now_at: Option<u64>) {
        let Some(management) = self.management else { return };
        if let Some(old) = management.mapped_at {
            self.unmap_shared(old, management.len);
        }
        let mapped_at = now_at.filter(|&gpa| match self.map_shared(gpa, management.shared, management.len) {
            Ok(()) => true,
            Err(error) => {
                log::warn!("domain {}: cannot map the management memory at {gpa:#x}: {error}", self.id);
                false
            }
        });
        self.management = Some(Management { mapped_at, ..management });
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
        if let Some(ept) = self.ept.take() {
            ept.destroy(&mut HostFrames, &memory::phys_memory());
        }
        memory::free(self.ram, self.ram_size);
    }
}

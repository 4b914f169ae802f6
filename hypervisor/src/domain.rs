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

#[derive(Debug)]
pub enum DomainError {
    OutOfMemory { bytes: u64 },
    Ept(EptError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::OutOfMemory { bytes } => write!(f, "no {} MiB of host memory for guest RAM", bytes >> 20),
            Self::Ept(error) => write!(f, "building EPT tables: {error:?}"),
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
    /// Emulated devices and interrupt controllers; test guests have none.
    pub platform: Option<Box<VirtualPlatform>>,
    mmio_decodes: DecodeCache,
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
                mmio_decodes: DecodeCache::default(),
            }),
            Err(error) => {
                memory::free(ram, ram_size);
                Err(DomainError::Ept(error))
            }
        }
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

    /// The EPT pointer for this domain's VMCSs.
    pub fn eptp(&self) -> u64 {
        self.ept
            .as_ref()
            .map_or(0, |ept| ept.eptp(MemoryType::WriteBack, false))
    }

    /// Returns the domain's memory and tables to the host.
    pub fn destroy(mut self) {
        if let Some(ept) = self.ept.take() {
            ept.destroy(&mut HostFrames, &memory::phys_memory());
        }
        memory::free(self.ram, self.ram_size);
    }
}

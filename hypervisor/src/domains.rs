//! The domain table: every domain Keel runs (Dom0 and the DomUs Dom0
//! created), with its memory, vCPU, platform, images and settings.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use keel_abi::mgmt::{DomainId, DomainState, LifecycleAction, Name};
use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};

use crate::arch::unswitched::UnswitchedState;
use crate::domain::Domain;
use crate::linux_domain::LinuxImages;
use crate::memory;
use crate::vmx::VmxVcpu;

/// Bytes Dom0 may queue for a DomU's console before it reads them.
pub const CONSOLE_INPUT_LIMIT: usize = 4096;

/// An image Dom0 sends in chunks, staged in host memory until the domain
/// boots (and kept for reboots).
pub struct StagedImage {
    block: HostPhysAddr,
    capacity: u64,
    total: u64,
    received: u64,
}

impl StagedImage {
    /// Room for an image of `total` bytes; `None` when memory is short.
    pub fn new(total: u64) -> Option<Self> {
        let capacity = total.div_ceil(PAGE_SIZE_4K).max(1) * PAGE_SIZE_4K;
        let block = memory::allocate_zeroed(capacity, PAGE_SIZE_4K)?;
        Some(Self {
            block,
            capacity,
            total,
            received: 0,
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_complete(&self) -> bool {
        self.received == self.total
    }

    pub fn host_bytes(&self) -> u64 {
        self.capacity
    }

    /// Appends a chunk that must start where the last one ended.
    pub fn append(&mut self, offset: u64, chunk: &[u8]) -> Result<(), String> {
        if offset != self.received {
            return Err(alloc::format!(
                "chunk at offset {offset}: the image continues at {}",
                self.received
            ));
        }
        let end = offset
            .checked_add(chunk.len() as u64)
            .filter(|&end| end <= self.total)
            .ok_or("chunk runs past the image's length")?;
        // SAFETY: the block belongs to this image and `end <= total <= capacity`.
        let bytes = unsafe { memory::block_bytes(self.block, self.capacity) };
        bytes[offset as usize..end as usize].copy_from_slice(chunk);
        self.received = end;
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as for `append`; only read here, while nothing appends.
        let bytes = unsafe { memory::block_bytes(self.block, self.capacity) };
        &bytes[..self.received as usize]
    }
}

impl Drop for StagedImage {
    fn drop(&mut self) {
        memory::free(self.block, self.capacity);
    }
}

/// Where a domain's kernel, initrd and command line come from.
pub enum Images {
    /// Dom0: the multiboot2 modules, in memory Keel reserved at boot.
    Boot {
        kernel: &'static [u8],
        initrd: Option<&'static [u8]>,
        cmdline: String,
    },
    /// A DomU: what Dom0 sent through the management interface.
    Staged {
        kernel: Option<StagedImage>,
        initrd: Option<StagedImage>,
        cmdline: Option<StagedImage>,
    },
}

impl Images {
    /// The images to boot from, if they are complete.
    pub fn linux(&self) -> Result<LinuxImages<'_>, &'static str> {
        match self {
            Self::Boot {
                kernel,
                initrd,
                cmdline,
            } => Ok(LinuxImages {
                kernel,
                initrd: *initrd,
                cmdline,
            }),
            Self::Staged {
                kernel,
                initrd,
                cmdline,
            } => {
                let complete = |image: &Option<StagedImage>| image.as_ref().is_none_or(StagedImage::is_complete);
                if !(complete(kernel) && complete(initrd) && complete(cmdline)) {
                    return Err("an image is incomplete: not every chunk arrived");
                }
                let kernel = kernel.as_ref().ok_or("no kernel was loaded")?.bytes();
                let cmdline = match cmdline {
                    Some(image) => core::str::from_utf8(image.bytes()).map_err(|_| "the command line is not UTF-8")?,
                    None => "",
                };
                if cmdline.contains('\0') {
                    return Err("the command line contains a NUL byte");
                }
                Ok(LinuxImages {
                    kernel,
                    initrd: initrd.as_ref().map(StagedImage::bytes),
                    cmdline,
                })
            }
        }
    }

    /// Host memory the staged images hold.
    pub fn host_bytes(&self) -> u64 {
        match self {
            Self::Boot { .. } => 0,
            Self::Staged {
                kernel,
                initrd,
                cmdline,
            } => [kernel, initrd, cmdline]
                .into_iter()
                .flatten()
                .map(StagedImage::host_bytes)
                .sum(),
        }
    }
}

/// What to do at power-off, reboot and crash.
#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}

pub struct DomainEntry {
    pub id: DomainId,
    pub name: Name,
    pub state: DomainState,
    pub memory_bytes: u64,
    /// Its memory and platform; `None` once it shut down and released them.
    pub domain: Option<Domain>,
    pub vcpu: Option<VmxVcpu>,
    pub vpid: u16,
    /// Registers VMX does not switch, while another vCPU has the CPU.
    pub unswitched: Box<UnswitchedState>,
    pub images: Images,
    pub lifecycle: Lifecycle,
    /// Bytes Dom0 sent for this domain's console, not yet in its UART.
    pub console_input: VecDeque<u8>,
    /// Host memory for tables, VMCS and bitmaps beyond the guest's RAM.
    pub tables_bytes: u64,
    /// TSC cycles its vCPU held the CPU in the current boot (guest time
    /// plus Keel's work on its exits), for the time report.
    pub run_cycles: u64,
    /// Host PCI functions Dom0 attached, wired in at every boot.
    pub assignments: Vec<crate::passthrough::Assignment>,
    /// Paravirtual devices Dom0 attached (their transports in reset
    /// state), given a fresh copy at every boot.
    pub virtio: Vec<keel_virtio::pci::VirtioPciFunction>,
    /// Boots so far: paravirtual devices' generation (ABI 1.3).
    pub boots: u32,
}

impl DomainEntry {
    pub fn is_dom0(&self) -> bool {
        self.id == keel_abi::mgmt::DOM0
    }

    /// Keel's own memory for this domain beyond its RAM and images.
    pub fn overhead_bytes(&self) -> u64 {
        self.tables_bytes + core::mem::size_of::<UnswitchedState>() as u64
    }

    /// Releases the vCPU and the memory (the entry itself stays).
    pub fn release(&mut self) {
        if let Some(vcpu) = self.vcpu.take() {
            vcpu.destroy();
        }
        if let Some(domain) = self.domain.take() {
            domain.destroy();
        }
        self.tables_bytes = 0;
    }
}

#[derive(Default)]
pub struct DomainTable {
    entries: Vec<DomainEntry>,
}

impl DomainTable {
    pub fn get(&self, id: DomainId) -> Option<&DomainEntry> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    pub fn get_mut(&mut self, id: DomainId) -> Option<&mut DomainEntry> {
        self.entries.iter_mut().find(|entry| entry.id == id)
    }

    pub fn by_name(&self, name: &Name) -> Option<&DomainEntry> {
        self.entries.iter().find(|entry| entry.name == *name)
    }

    pub fn insert(&mut self, entry: DomainEntry) {
        self.entries.push(entry);
    }

    /// Takes the entry out of the table (the caller releases it).
    pub fn remove(&mut self, id: DomainId) -> Option<DomainEntry> {
        let index = self.entries.iter().position(|entry| entry.id == id)?;
        Some(self.entries.remove(index))
    }

    pub fn iter(&self) -> impl Iterator<Item = &DomainEntry> {
        self.entries.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut DomainEntry> {
        self.entries.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

//! Dom0's management calls: the shared memory behind the management
//! function's BAR 2, and the domain table operations behind
//! `keel_hypervisor::management::DomainControl`.

use alloc::string::String;
use alloc::vec::Vec;

use keel_abi::mgmt::{
    features, layout, CreateDomain, DomainId, DomainInfo, DomainState, HostInfo, ImageKind, Request, Response, Status,
    DOM0, SHARED_BYTES, VERSION,
};
use keel_hypervisor::console_ring::ReadResult;
use keel_hypervisor::management::{
    dispatch, DomainControl, Failure, Outcome, VirtioCompletion, VirtioSpec, WindowGrant,
};
use keel_memory::{HostPhysAddr, PAGE_SIZE_2M};
use keel_vmx::ExitReason;

use super::{vcpu_id, Scheduler};
use crate::arch::unswitched::UnswitchedState;
use crate::domain::Domain;
use crate::domains::{DomainEntry, Images, Lifecycle, StagedImage, CONSOLE_INPUT_LIMIT};
use crate::memory;

/// The smallest DomU Keel builds: Linux needs room for itself and its
/// initramfs.
const MIN_MEMORY_MIB: u32 = 16;
/// Domains at once, Dom0 included. Each DomU's platform and console ring
/// live on Keel's fixed 8 MiB heap (about 70 KiB each), so the count is
/// bounded whatever the host's RAM.
pub const MAX_DOMAINS: usize = 64;

/// Host memory behind the management interface: the page Dom0 shares with
/// Keel (mapped at BAR 2) and a private copy of each call's input, taken
/// before Keel looks at it (Dom0 may change the shared page at any time).
pub struct ManagementArea {
    shared: HostPhysAddr,
    scratch: HostPhysAddr,
}

impl ManagementArea {
    pub fn new() -> Option<Self> {
        let shared = memory::allocate_zeroed(SHARED_BYTES, PAGE_SIZE_2M)?;
        let Some(scratch) = memory::allocate_zeroed(layout::DATA_BYTES as u64, PAGE_SIZE_2M) else {
            memory::free(shared, SHARED_BYTES);
            return None;
        };
        Some(Self { shared, scratch })
    }

    /// Gives Dom0's platform the management function, backed by this
    /// shared memory.
    pub fn attach(&self, domain: &mut Domain) -> Result<(), String> {
        domain
            .attach_management(self.shared, SHARED_BYTES)
            .map_err(|error| alloc::format!("management interface: {error}"))
    }
}

impl Scheduler<'_> {
    /// Serves the call Dom0 just made by ringing the doorbell.
    pub(super) fn serve_management(&mut self) {
        // SAFETY: both blocks belong to the management area for Keel's
        // whole run; Dom0 (the only other user of the shared block) is not
        // running while Keel serves its call.
        let (shared, scratch) = unsafe {
            (
                memory::block_bytes(self.management.shared, SHARED_BYTES),
                memory::block_bytes(self.management.scratch, layout::DATA_BYTES as u64),
            )
        };
        let (head, data) = shared.split_at_mut(layout::DATA);
        let response = match Request::decode(&head[layout::REQUEST..layout::REQUEST + Request::BYTES]) {
            Ok(request) => {
                let len = request.data_len as usize;
                scratch[..len].copy_from_slice(&data[..len]);
                dispatch(&request, &scratch[..len], data, self)
            }
            Err(error) => {
                let message = alloc::format!("request: {error}");
                let len = message.len().min(data.len());
                data[..len].copy_from_slice(&message.as_bytes()[..len]);
                Response {
                    status: Status::InvalidArgument as u32,
                    data_len: len as u32,
                    values: [0; 4],
                }
            }
        };
        let _ = response.encode(&mut head[layout::RESPONSE..layout::RESPONSE + Response::BYTES]);
    }

    /// The DomU `id`, which Dom0 may act on.
    pub(super) fn domu(&mut self, id: DomainId) -> Outcome<&mut DomainEntry> {
        if id == DOM0 {
            return Err(Failure::new(Status::NotPermitted, "Dom0 cannot do that to itself"));
        }
        self.table
            .get_mut(id)
            .ok_or_else(|| Failure::new(Status::NoSuchDomain, alloc::format!("no domain {id}")))
    }

    fn domain_info(&self, entry: &DomainEntry) -> DomainInfo {
        let count = |reasons: &[ExitReason]| {
            entry
                .vcpu
                .as_ref()
                .map_or(0, |vcpu| reasons.iter().map(|&reason| vcpu.exit_count(reason)).sum())
        };
        DomainInfo {
            id: entry.id,
            state: self.state_of(entry),
            name: entry.name,
            memory_bytes: entry.memory_bytes,
            vcpus: 1,
            cpu_time_ns: self.cpu_time_ns(entry.id),
            exits: entry.vcpu.as_ref().map_or(0, |vcpu| vcpu.total_exits()),
            exits_io: count(&[ExitReason::IoInstruction]),
            exits_mmio: count(&[ExitReason::EptViolation]),
            exits_msr: count(&[ExitReason::Rdmsr, ExitReason::Wrmsr]),
            exits_halt: count(&[ExitReason::Hlt]),
            exits_timer: count(&[ExitReason::PreemptionTimer]),
            overhead_bytes: entry.overhead_bytes(),
            image_bytes: entry.images.host_bytes(),
        }
    }
}

/// A management address as `keel-pci` names host functions.
fn host_bdf(address: keel_abi::mgmt::PciAddress) -> Outcome<keel_pci::Bdf> {
    keel_pci::Bdf::new(address.bus(), address.device(), address.function()).ok_or_else(|| {
        Failure::new(
            Status::InvalidArgument,
            alloc::format!("{address} is not a PCI address"),
        )
    })
}

impl DomainControl for Scheduler<'_> {
    fn pci_functions(&self) -> Vec<keel_abi::mgmt::PciFunction> {
        use keel_abi::mgmt::{pci_function_flags as flags, PciAddress, PciFunction};
        crate::passthrough::list()
            .into_iter()
            .filter_map(|listing| {
                let bdf = listing.info.bdf;
                let mut bits = 0;
                if listing.assignable {
                    bits |= flags::ASSIGNABLE;
                }
                if listing.owner.is_some() {
                    bits |= flags::ATTACHED;
                }
                if listing.dma_confined {
                    bits |= flags::DMA_CONFINED;
                }
                if listing.host_bridge {
                    bits |= flags::HOST_BRIDGE;
                }
                Some(PciFunction {
                    address: PciAddress::new(bdf.bus, bdf.device, bdf.function)?,
                    vendor: listing.info.vendor,
                    device: listing.info.device,
                    class: listing.info.class & 0xff_ffff,
                    flags: bits,
                    owner: listing.owner.unwrap_or(0),
                })
            })
            .collect()
    }

    fn pci_assignable(
        &mut self,
        address: keel_abi::mgmt::PciAddress,
        assignable: bool,
        intx_gsi: Option<u32>,
    ) -> Outcome<()> {
        use crate::passthrough::AssignError;
        let bdf = host_bdf(address)?;
        crate::passthrough::set_assignable(bdf, assignable, intx_gsi).map_err(|error| match error {
            AssignError::NoSuchFunction => {
                Failure::new(Status::NoSuchDevice, alloc::format!("no host function {address}"))
            }
            AssignError::Bridge => Failure::new(
                Status::NotPermitted,
                alloc::format!("{address} is a bridge: the devices behind it are not Dom0's to give away"),
            ),
            AssignError::Busy(owner) => Failure::new(
                Status::BadState,
                alloc::format!("{address} is attached to domain {owner}: destroy it first"),
            ),
            AssignError::Unsupported(why) => Failure::new(Status::InvalidArgument, alloc::format!("{address}: {why}")),
            other => Failure::new(Status::InvalidArgument, alloc::format!("{address}: {other:?}")),
        })?;
        log::info!(
            "pci: {address} {}{}",
            if assignable {
                "is assignable"
            } else {
                "is no longer assignable"
            },
            match intx_gsi {
                Some(gsi) if assignable => alloc::format!(", its INTx at host GSI {gsi}"),
                _ => alloc::string::String::new(),
            }
        );
        Ok(())
    }

    fn pci_attach(
        &mut self,
        domain: DomainId,
        address: keel_abi::mgmt::PciAddress,
        unconfined_dma: bool,
    ) -> Outcome<()> {
        use crate::passthrough::{AssignError, Assignment};
        let bdf = host_bdf(address)?;
        let entry = self.domu(domain)?;
        if entry.state != DomainState::Building {
            return Err(Failure::new(
                Status::BadState,
                "devices are attached before the domain boots",
            ));
        }
        let assignment = Assignment {
            host: bdf,
            unconfined_dma,
        };
        crate::passthrough::attach(domain, assignment).map_err(|error| match error {
            AssignError::NoSuchFunction => Failure::new(Status::NoSuchDevice, alloc::format!("no host function {address}")),
            AssignError::NotAssignable | AssignError::Bridge => Failure::new(
                Status::NotPermitted,
                alloc::format!("{address} is not assignable: run `keel pci-assignable-add {address}` first"),
            ),
            AssignError::Busy(owner) => {
                Failure::new(Status::Busy, alloc::format!("{address} is attached to domain {owner}"))
            }
            AssignError::NotConfined => Failure::new(
                Status::NotConfined,
                alloc::format!("{address}: no IOMMU confines its DMA (not confined); set pci_unconfined_dma = true to assign it anyway"),
            ),
            AssignError::InterruptsNotRemapped => Failure::new(
                Status::NotConfined,
                alloc::format!("{address}: the IOMMU confines its DMA but does not remap interrupts, so the device could send any interrupt to the host; set pci_unconfined_dma = true to assign it anyway"),
            ),
            AssignError::Unsupported(why) => Failure::new(Status::Unsupported, why),
        })?;
        entry.assignments.push(assignment);
        log::info!(
            "domain {domain} ({}): {address} attached{}",
            entry.name.as_str(),
            if unconfined_dma { ", DMA unconfined allowed" } else { "" }
        );
        Ok(())
    }

    fn virtio_attach(&mut self, domain: DomainId, spec: &VirtioSpec<'_>) -> Outcome<usize> {
        self.attach_virtio(domain, spec)
    }

    fn window_map(&mut self, domain: DomainId) -> Outcome<WindowGrant> {
        self.map_window(domain)
    }

    fn virtio_state(&mut self, domain: DomainId, device: usize) -> Outcome<keel_abi::mgmt::VirtioDeviceState> {
        self.virtio_device_state(domain, device)
    }

    fn virtio_complete(&mut self, domain: DomainId, completion: &VirtioCompletion) -> Outcome<()> {
        self.complete_virtio(domain, completion)
    }

    fn host_info(&self) -> HostInfo {
        let free = memory::free_bytes();
        HostInfo {
            version: VERSION,
            physical_cpus: 1,
            total_memory: self.total_memory,
            free_memory: free,
            tsc_hz: self.tsc_hz.unwrap_or(0),
            features: features::VMX
                | features::EPT
                | features::VPID
                | features::UNRESTRICTED_GUEST
                | features::PREEMPTION_TIMER
                | if self.cpu.saves_preemption_timer() {
                    features::SAVE_PREEMPTION_TIMER
                } else {
                    0
                },
            domains: self.table.len() as u32,
            max_domain_memory_mib: u32::try_from(free >> 20).unwrap_or(u32::MAX) & !1,
        }
    }

    fn domains(&self) -> Vec<DomainInfo> {
        self.table.iter().map(|entry| self.domain_info(entry)).collect()
    }

    fn create(&mut self, request: &CreateDomain) -> Outcome<DomainId> {
        if request.vcpus != 1 {
            return Err(Failure::new(
                Status::Unsupported,
                alloc::format!(
                    "vcpus = {}: only 1 vCPU per domain until SMP guests land",
                    request.vcpus
                ),
            ));
        }
        if request.memory_mib < MIN_MEMORY_MIB {
            return Err(Failure::new(
                Status::InvalidArgument,
                alloc::format!("memory = {} MiB: at least {MIN_MEMORY_MIB} MiB", request.memory_mib),
            ));
        }
        if self.table.len() >= MAX_DOMAINS {
            return Err(Failure::new(
                Status::TooManyDomains,
                alloc::format!("at most {MAX_DOMAINS} domains at once"),
            ));
        }
        if self.table.by_name(&request.name).is_some() {
            return Err(Failure::new(
                Status::NameInUse,
                alloc::format!("a domain named `{}` exists", request.name.as_str()),
            ));
        }
        // Guest RAM sits below the PCI window the DSDT describes.
        let max_mib = crate::vplatform::PCI_ROOT.mmio_start >> 20;
        if request.memory_mib > max_mib {
            return Err(Failure::new(
                Status::InvalidArgument,
                alloc::format!("memory = {} MiB: at most {max_mib} MiB", request.memory_mib),
            ));
        }
        // RAM comes in 2 MiB pages.
        let memory_bytes = (u64::from(request.memory_mib) << 20).next_multiple_of(PAGE_SIZE_2M);
        let free = memory::free_bytes();
        if memory_bytes >= free {
            return Err(Failure::new(
                Status::OutOfMemory,
                alloc::format!("{} MiB asked, {} MiB free", request.memory_mib, free >> 20),
            ));
        }
        let id = self
            .domain_ids
            .allocate()
            .ok_or_else(|| Failure::new(Status::TooManyDomains, "no domain id left"))?;
        let Some(vpid) = self.allocate_vpid() else {
            self.domain_ids.release(id);
            return Err(Failure::new(Status::TooManyDomains, "no VPID left"));
        };
        self.table.insert(DomainEntry {
            id,
            name: request.name,
            state: DomainState::Building,
            memory_bytes,
            domain: None,
            vcpu: None,
            vpid,
            unswitched: alloc::boxed::Box::new(UnswitchedState::reset()),
            images: Images::Staged {
                kernel: None,
                initrd: None,
                cmdline: None,
            },
            lifecycle: Lifecycle {
                on_poweroff: request.on_poweroff,
                on_reboot: request.on_reboot,
                on_crash: request.on_crash,
            },
            console_input: Default::default(),
            tables_bytes: 0,
            run_cycles: 0,
            assignments: Vec::new(),
            virtio: Vec::new(),
            boots: 0,
        });
        log::info!(
            "domain {id} ({}): created, {} MiB",
            request.name.as_str(),
            memory_bytes >> 20
        );
        Ok(id)
    }

    fn load_image(&mut self, domain: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if entry.state != DomainState::Building {
            return Err(Failure::new(
                Status::BadState,
                "images load only before the domain boots",
            ));
        }
        let Images::Staged {
            kernel,
            initrd,
            cmdline,
        } = &mut entry.images
        else {
            return Err(Failure::new(Status::BadState, "this domain boots from its own modules"));
        };
        let slot = match kind {
            ImageKind::Kernel => kernel,
            ImageKind::Initrd => initrd,
            ImageKind::Cmdline => cmdline,
        };
        if offset == 0 {
            // A new first chunk starts the image over.
            *slot = None;
            *slot = Some(StagedImage::new(total).ok_or_else(|| {
                Failure::new(Status::OutOfMemory, alloc::format!("no memory to stage {total} bytes"))
            })?);
        }
        let image = slot
            .as_mut()
            .filter(|image| image.total() == total)
            .ok_or_else(|| Failure::new(Status::InvalidArgument, "chunk of an image that was not started"))?;
        image
            .append(offset, chunk)
            .map_err(|message| Failure::new(Status::InvalidArgument, message))
    }

    fn boot(&mut self, domain: DomainId, paused: bool) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if entry.state != DomainState::Building {
            return Err(Failure::new(Status::BadState, "the domain already booted"));
        }
        self.build(domain, paused).map_err(|message| {
            log::warn!("domain {domain}: cannot boot: {message}");
            if let Some(entry) = self.table.get_mut(domain) {
                entry.state = DomainState::Building;
            }
            Failure::new(Status::BadImage, message)
        })?;
        log::info!("domain {domain}: booted{}", if paused { " (paused)" } else { "" });
        Ok(())
    }

    fn pause(&mut self, domain: DomainId) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if !matches!(entry.state, DomainState::Running | DomainState::Paused) {
            return Err(Failure::new(Status::BadState, "only a running domain can be paused"));
        }
        entry.state = DomainState::Paused;
        let _ = self.queue.pause(vcpu_id(domain));
        Ok(())
    }

    fn unpause(&mut self, domain: DomainId) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if entry.state != DomainState::Paused {
            return Err(Failure::new(Status::BadState, "the domain is not paused"));
        }
        entry.state = DomainState::Running;
        let _ = self.queue.unpause(vcpu_id(domain));
        Ok(())
    }

    fn shutdown(&mut self, domain: DomainId) -> Outcome<()> {
        let entry = self.domu(domain)?;
        let platform = entry
            .domain
            .as_mut()
            .and_then(|domain| domain.platform.as_deref_mut())
            .filter(|_| matches!(entry.state, DomainState::Running | DomainState::Paused))
            .ok_or_else(|| Failure::new(Status::BadState, "the domain is not running"))?;
        // Like `xl shutdown`: the request is the button press; the guest
        // powers off when its OS has shut down (on_poweroff applies then).
        platform.press_power_button();
        if platform.pending_interrupt().is_some() {
            let _ = self.queue.wake(vcpu_id(domain));
        }
        log::info!("domain {domain}: power button pressed");
        Ok(())
    }

    fn reboot(&mut self, domain: DomainId) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if entry.state == DomainState::Building {
            return Err(Failure::new(Status::BadState, "the domain has not booted"));
        }
        log::info!("domain {domain}: rebooting");
        self.build(domain, false)
            .map_err(|message| Failure::new(Status::BadImage, message))
    }

    fn destroy(&mut self, domain: DomainId) -> Outcome<()> {
        self.domu(domain)?;
        self.remove_domain(domain);
        log::info!("domain {domain}: destroyed");
        Ok(())
    }

    fn console_read(&mut self, domain: DomainId, cursor: u64, out: &mut [u8]) -> Outcome<ReadResult> {
        let entry = self.domu(domain)?;
        let ring = entry
            .domain
            .as_ref()
            .and_then(|domain| domain.platform.as_deref())
            .and_then(|platform| platform.host().console_ring.as_ref());
        Ok(ring.map_or(
            ReadResult {
                start: cursor,
                end: cursor,
            },
            |ring| ring.read(cursor, out),
        ))
    }

    fn console_write(&mut self, domain: DomainId, bytes: &[u8]) -> Outcome<usize> {
        let entry = self.domu(domain)?;
        let room = CONSOLE_INPUT_LIMIT.saturating_sub(entry.console_input.len());
        let taken = bytes.len().min(room);
        entry.console_input.extend(&bytes[..taken]);
        Ok(taken)
    }

    fn dmesg(&mut self, cursor: u64, out: &mut [u8]) -> ReadResult {
        crate::console::read_log(cursor, out)
    }
}

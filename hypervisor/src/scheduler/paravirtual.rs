//! Paravirtual devices between DomUs and their backends in Dom0 (ABI 1.3):
//! Keel carries only notifications and memory mappings. A DomU's queue
//! kick or transport change becomes a bit in its window slot's
//! notification register in Dom0 (and Dom0's interrupt, if the slot is
//! armed); a backend's completion becomes the DomU's MSI-X interrupt; the
//! DomU's RAM appears in Dom0's memory window while the DomU holds it.

use keel_abi::mgmt::virtio::{control_bit, window, MAX_DEVICES};
use keel_abi::mgmt::{DomainId, DomainState, Status, VirtioDeviceState, VirtioQueueState, DOM0};
use keel_hypervisor::management::{Failure, Outcome, VirtioCompletion, VirtioSpec, WindowGrant};
use keel_virtio::pci::{FunctionConfig, VirtioPciFunction, MAX_MSIX_VECTORS};

use super::{vcpu_id, Scheduler};
use crate::vplatform::VirtualPlatform;

/// The DomU each slot of Dom0's memory window belongs to.
pub type WindowSlots = [Option<DomainId>; window::SLOTS as usize];

/// Guest PCI slots for assigned and paravirtual devices (4 to 31).
const DEVICE_SLOTS: usize = 28;

impl Scheduler<'_> {
    fn platform_of(&mut self, id: DomainId) -> Option<&mut VirtualPlatform> {
        self.table.get_mut(id)?.domain.as_mut()?.platform.as_deref_mut()
    }

    fn window_slot_of(&self, id: DomainId) -> Option<usize> {
        self.window_slots.iter().position(|owner| *owner == Some(id))
    }

    /// Passes what DomU `id`'s last access asked of its paravirtual
    /// devices to their backend (`VirtualPlatform::take_virtio_notifications`).
    pub(super) fn route_virtio(&mut self, id: DomainId) {
        let slot = self.window_slot_of(id);
        let Some(platform) = self.platform_of(id) else {
            return;
        };
        let bits = platform.take_virtio_notifications(slot.is_some());
        if let Some(slot) = slot.filter(|_| bits != 0) {
            self.notify_backend(slot, bits);
        }
    }

    /// DomU `id` booted with `devices` paravirtual devices: their backend
    /// learns of the new generation.
    pub(super) fn notify_backends_of_boot(&mut self, id: DomainId, devices: usize) {
        if let Some(slot) = self.window_slot_of(id) {
            let bits = (0..devices.min(MAX_DEVICES)).fold(0, |bits, index| bits | control_bit(index));
            self.notify_backend(slot, bits);
        }
    }

    /// Sets `bits` in window slot `slot` of Dom0's management function and
    /// wakes Dom0 if that raised its interrupt.
    fn notify_backend(&mut self, slot: usize, bits: u32) {
        let Some(dom0) = self.platform_of(DOM0) else {
            return;
        };
        dom0.notify_backend(slot, bits);
        if dom0.pending_interrupt().is_some() {
            let _ = self.queue.wake(vcpu_id(DOM0));
        }
    }

    /// Maps DomU `id`'s current RAM into its window slot (if it has one).
    pub(super) fn grant_window(&mut self, id: DomainId) {
        let Some(slot) = self.window_slot_of(id) else {
            return;
        };
        let Some(runs) = self
            .table
            .get(id)
            .and_then(|entry| entry.domain.as_ref())
            .map(|domain| domain.ram_runs())
        else {
            return;
        };
        let Some(dom0) = self.table.get_mut(DOM0).and_then(|entry| entry.domain.as_mut()) else {
            return;
        };
        if let Err(error) = dom0.map_window_slot(slot, runs) {
            log::warn!("domain {id}: its RAM is not in Dom0's window: {error}");
        }
        crate::vmx::invalidate_ept(dom0.eptp());
    }

    /// Takes DomU `id`'s RAM out of Dom0's window, and out of the CPU's
    /// cached translations, before that RAM goes back to the host.
    pub(super) fn revoke_window(&mut self, id: DomainId) {
        let Some(slot) = self.window_slot_of(id).filter(|_| id != DOM0) else {
            return;
        };
        if let Some(dom0) = self.table.get_mut(DOM0).and_then(|entry| entry.domain.as_mut()) {
            dom0.unmap_window_slot(slot);
            crate::vmx::invalidate_ept(dom0.eptp());
        }
    }

    /// DomU `id` is going away: its slot is revoked and freed.
    pub(super) fn free_window_slot(&mut self, id: DomainId) {
        self.revoke_window(id);
        if let Some(slot) = self.window_slot_of(id) {
            self.window_slots[slot] = None;
            if let Some(dom0) = self.platform_of(DOM0) {
                dom0.clear_backend_slot(slot);
            }
        }
    }

    /// Dom0 booted again: its window is empty and its backends are gone.
    pub(super) fn forget_window_slots(&mut self) {
        self.window_slots = Default::default();
    }

    pub(super) fn attach_virtio(&mut self, domain: DomainId, spec: &VirtioSpec<'_>) -> Outcome<usize> {
        let entry = self.domu(domain)?;
        if entry.state != DomainState::Building {
            return Err(Failure::new(
                Status::BadState,
                "paravirtual devices are attached before the domain boots",
            ));
        }
        if entry.virtio.len() >= MAX_DEVICES || entry.virtio.len() + entry.assignments.len() >= DEVICE_SLOTS {
            return Err(Failure::new(
                Status::InvalidArgument,
                alloc::format!("at most {MAX_DEVICES} paravirtual devices, {DEVICE_SLOTS} PCI devices in all"),
            ));
        }
        let config = FunctionConfig {
            device_type: spec.device_type,
            device_features: spec.features,
            num_queues: spec.num_queues,
            queue_max_size: spec.queue_max_size,
            // A vector per queue and one for configuration changes.
            msix_vectors: (spec.num_queues + 1).min(MAX_MSIX_VECTORS),
            notify_off_multiplier: 0,
        };
        let function = VirtioPciFunction::new(config, spec.config)
            .map_err(|error| Failure::new(Status::InvalidArgument, alloc::format!("virtio device: {error:?}")))?;
        entry.virtio.push(function);
        log::info!(
            "domain {domain}: paravirtual device {} (virtio type {}) attached",
            entry.virtio.len() - 1,
            spec.device_type
        );
        Ok(entry.virtio.len() - 1)
    }

    pub(super) fn map_window(&mut self, domain: DomainId) -> Outcome<WindowGrant> {
        let bytes = self.domu(domain)?.memory_bytes;
        let slot = match self.window_slot_of(domain) {
            Some(slot) => slot,
            None => {
                let slot = self.window_slots.iter().position(Option::is_none).ok_or_else(|| {
                    Failure::new(
                        Status::TooManyDomains,
                        alloc::format!("all {} window slots are in use", window::SLOTS),
                    )
                })?;
                self.window_slots[slot] = Some(domain);
                self.grant_window(domain);
                log::info!("domain {domain}: RAM mapped into Dom0's window slot {slot}");
                slot
            }
        };
        Ok(WindowGrant {
            slot: slot as u64,
            offset: slot as u64 * window::SLOT_BYTES,
            bytes,
        })
    }

    pub(super) fn virtio_device_state(&mut self, domain: DomainId, device: usize) -> Outcome<VirtioDeviceState> {
        let entry = self.domu(domain)?;
        let generation = entry.boots;
        let booted = entry
            .domain
            .as_mut()
            .and_then(|domain| domain.platform.as_deref_mut())
            .and_then(|platform| platform.virtio_transport(device));
        let function = match booted {
            Some(function) => &*function,
            None => entry.virtio.get(device).ok_or_else(|| no_device(domain, device))?,
        };
        Ok(device_state(function, generation))
    }

    pub(super) fn complete_virtio(&mut self, domain: DomainId, completion: &VirtioCompletion) -> Outcome<()> {
        let entry = self.domu(domain)?;
        if completion.device >= entry.virtio.len() {
            return Err(no_device(domain, completion.device));
        }
        if completion.generation != entry.boots {
            return Err(Failure::new(
                Status::BadState,
                alloc::format!(
                    "generation {} is over: the domain is in generation {}",
                    completion.generation,
                    entry.boots
                ),
            ));
        }
        let Some(platform) = entry.domain.as_mut().and_then(|domain| domain.platform.as_deref_mut()) else {
            return Err(Failure::new(Status::BadState, "the domain is not running"));
        };
        for queue in (0..32).filter(|queue| completion.queues & (1 << queue) != 0) {
            platform.signal_virtio(completion.device, queue);
        }
        if completion.needs_reset {
            platform.virtio_needs_reset(completion.device);
        }
        if completion.reset_done {
            if let Some(transport) = platform.virtio_transport(completion.device) {
                transport.complete_reset();
            }
        }
        if platform.pending_interrupt().is_some() {
            let _ = self.queue.wake(vcpu_id(domain));
        }
        Ok(())
    }
}

fn no_device(domain: DomainId, device: usize) -> Failure {
    Failure::new(
        Status::NoSuchDevice,
        alloc::format!("domain {domain} has no paravirtual device {device}"),
    )
}

/// What a backend needs to know of a transport.
fn device_state(function: &VirtioPciFunction, generation: u32) -> VirtioDeviceState {
    let config = function.function_config();
    let mut state = VirtioDeviceState {
        device_type: config.device_type,
        num_queues: config.num_queues,
        status: function.status(),
        reset_pending: function.reset_pending(),
        generation,
        driver_features: function.negotiated_features().unwrap_or(0),
        ..Default::default()
    };
    for (index, queue) in state.queues.iter_mut().enumerate().take(usize::from(config.num_queues)) {
        if let Some(layout) = function.queue_config(index as u16) {
            *queue = VirtioQueueState {
                enabled: true,
                size: layout.size,
                desc: layout.desc_table,
                driver: layout.avail_ring,
                device: layout.used_ring,
            };
        }
    }
    state
}

//! The scheduler of this physical CPU: runs the vCPUs of every domain in
//! time slices (the run-queue policy is `keel_sched::RunQueue`), switches
//! the state VMX does not switch, does the host's work between slices
//! (console, device timers) and carries out domains' power-offs, reboots
//! and crashes. Dom0's management calls are served here too, because they
//! need the whole domain table.

use keel_abi::mgmt::{DomainId, DomainState, DOM0};
use keel_devices::pci_host::PciAddress;
use keel_devices::PowerAction;
use keel_sched::{Decision, IdAllocator, RunQueue, VcpuId};

use crate::domains::{DomainEntry, DomainTable};
use crate::exits::{self, forward_console_input, report_stop, Next, StopReason, TimeSplit};
use crate::halt::Outcome;
use crate::vmx::{VmxCpu, VmxVcpu};

mod control;
mod lifecycle;
mod paravirtual;

/// How long the idle loop waits before it looks at the console again, in
/// TSC cycles: a person typing at Dom0's shell gets an answer quickly, and
/// the host UART's 16-byte FIFO does not overflow.
const IDLE_POLL_HZ: u64 = 1000;

pub struct Scheduler<'a> {
    cpu: &'a VmxCpu,
    tsc_hz: Option<u64>,
    table: DomainTable,
    queue: RunQueue,
    vpids: IdAllocator,
    domain_ids: IdAllocator,
    /// The domain whose registers VMX does not switch are live on the CPU.
    live_state_owner: Option<DomainId>,
    /// Dom0's management shared memory and the scratch copy of a call's input.
    management: control::ManagementArea,
    /// Host memory for guests when Keel started, for `keel info`.
    total_memory: u64,
    /// Dom0 crashes since its last clean boot (see `lifecycle::on_dom0_stop`).
    dom0_crashes: u32,
    /// The DomU whose RAM each slot of Dom0's memory window maps.
    window_slots: paravirtual::WindowSlots,
}

fn vcpu_id(domain: DomainId) -> VcpuId {
    VcpuId { domain, index: 0 }
}

impl<'a> Scheduler<'a> {
    pub fn new(cpu: &'a VmxCpu, tsc_hz: Option<u64>, total_memory: u64) -> Result<Self, &'static str> {
        Ok(Self {
            cpu,
            tsc_hz,
            table: DomainTable::default(),
            queue: RunQueue::new(crate::linux_domain::time_slice_tsc(tsc_hz)),
            // VPID 0 is VMX root's own.
            vpids: IdAllocator::lowest_free(1, u32::from(u16::MAX)),
            domain_ids: IdAllocator::cycling(1, u32::from(u16::MAX)),
            live_state_owner: None,
            management: control::ManagementArea::new().ok_or("no memory for the management interface")?,
            total_memory,
            dom0_crashes: 0,
            window_slots: Default::default(),
        })
    }

    /// Runs every domain until Dom0 powers off (or cannot run at all).
    pub fn run(&mut self, dom0: DomainEntry) -> Outcome {
        if let Err(error) = self.start_dom0(dom0) {
            log::error!("dom0: {error}");
            return Outcome::Failure;
        }
        loop {
            self.host_work();
            match self.queue.pick(crate::arch::tsc::read()) {
                Decision::Run { vcpu, slice } => {
                    if let Some(outcome) = self.run_vcpu(vcpu.domain, slice) {
                        self.destroy_all();
                        return outcome;
                    }
                }
                Decision::Idle { until } => self.idle(until),
            }
        }
    }

    /// Console output and input, and interrupts they raise.
    fn host_work(&mut self) {
        crate::console::pump();
        crate::iommu::poll_faults();
        let (table, queue) = (&mut self.table, &mut self.queue);
        crate::passthrough::forward_pending(|route| {
            let platform = table
                .get_mut(route.domain)
                .and_then(|entry| entry.domain.as_mut())
                .and_then(|domain| domain.platform.as_deref_mut());
            if let Some(platform) = platform {
                let function = |slot: Option<u8>| slot.and_then(|slot| PciAddress::new(0, slot, 0));
                if let (Some(function), Some(entry)) = (function(route.msi_slot), route.msix_entry) {
                    platform.passthrough_msix_fired(function, entry);
                    log_refused_msi(route.domain, platform);
                } else if let Some(function) = function(route.msi_slot) {
                    platform.passthrough_msi_fired(function);
                    log_refused_msi(route.domain, platform);
                } else if let Some(function) = function(route.intx_slot) {
                    platform.passthrough_intx_fired(function);
                } else {
                    platform.pulse_irq(route.guest_gsi);
                }
                if platform.pending_interrupt().is_some() {
                    let _ = queue.wake(vcpu_id(route.domain));
                }
            }
        });
        // Functions short of an MSI-X vector, now that one was given back.
        for (domain_id, guest) in crate::passthrough::msix_retries() {
            let Some(domain) = self.table.get_mut(domain_id).and_then(|entry| entry.domain.as_mut()) else {
                continue;
            };
            let request = domain
                .platform
                .as_deref_mut()
                .and_then(|platform| platform.passthrough_msix_request(guest));
            if let Some(request) = request {
                crate::passthrough::apply_msix(domain_id, &mut domain.assigned, guest, &request);
            }
        }
        for entry in self.table.iter_mut() {
            let Some(platform) = entry.domain.as_mut().and_then(|domain| domain.platform.as_deref_mut()) else {
                continue;
            };
            let forwarded = if entry.id == DOM0 {
                forward_console_input(platform, crate::console::try_read_byte)
            } else {
                forward_console_input(platform, || entry.console_input.pop_front())
            };
            if forwarded && platform.pending_interrupt().is_some() {
                let _ = self.queue.wake(vcpu_id(entry.id));
            }
        }
    }

    /// Nothing is runnable: wait for the earliest timer, the console, or
    /// the next look at the console.
    fn idle(&mut self, until: Option<u64>) {
        let now = crate::arch::tsc::read();
        let poll = now.saturating_add(self.tsc_hz.unwrap_or(1_000_000_000) / IDLE_POLL_HZ);
        let deadline = until.map_or(poll, |until| until.min(poll));
        if crate::arch::host_timer::sleep_until(deadline) {
            return;
        }
        while crate::arch::tsc::read() < deadline && !crate::console::input_waiting() {
            core::hint::spin_loop();
        }
    }

    /// Loads the registers VMX does not switch for `id`'s vCPU.
    fn switch_unswitched_state(&mut self, id: DomainId) {
        if self.live_state_owner == Some(id) {
            return;
        }
        if let Some(owner) = self.live_state_owner.and_then(|owner| self.table.get_mut(owner)) {
            owner.unswitched.save();
        }
        if let Some(entry) = self.table.get(id) {
            entry.unswitched.restore();
            self.live_state_owner = Some(id);
            // Another domain's vCPU ran last: its branch predictions must
            // not steer this one's.
            if self.cpu.mitigations.ibpb_on_switch {
                crate::arch::instructions::indirect_branch_prediction_barrier();
            }
        }
    }

    /// Runs `id`'s vCPU for up to `slice` TSC cycles of guest time. Returns
    /// the host's outcome when Dom0's end ends the run.
    fn run_vcpu(&mut self, id: DomainId, slice: u64) -> Option<Outcome> {
        let vcpu = vcpu_id(id);
        self.switch_unswitched_state(id);
        let Some((guest_before, wall_before)) = self.begin_slice(id, slice) else {
            let _ = self.queue.remove(vcpu);
            return None;
        };
        let next = loop {
            let Some(entry) = self.table.get_mut(id) else {
                let _ = self.queue.remove(vcpu);
                return None;
            };
            let (Some(domain), Some(cpu)) = (entry.domain.as_mut(), entry.vcpu.as_mut()) else {
                let _ = self.queue.remove(vcpu);
                return None;
            };
            match exits::run(domain, cpu) {
                Next::Serve => self.serve_management(),
                Next::Notify => self.route_virtio(id),
                Next::Resume => {}
                next => break next,
            }
        };
        self.charge(id, guest_before, wall_before);
        match next {
            Next::Block { wake_at } => {
                let _ = self.queue.block(vcpu, wake_at);
            }
            Next::Stop(reason) => {
                let _ = self.queue.remove(vcpu);
                return self.on_stop(id, reason);
            }
            _ => {
                let _ = self.queue.preempt(vcpu);
            }
        }
        None
    }

    /// Makes `id`'s VMCS current, starts its slice and fires its due
    /// timers; returns its guest time and the TSC at the start.
    fn begin_slice(&mut self, id: DomainId, slice: u64) -> Option<(Option<u64>, u64)> {
        let entry = self.table.get_mut(id)?;
        let (domain, vcpu) = (entry.domain.as_mut()?, entry.vcpu.as_mut()?);
        if let Err(error) = vcpu.make_current() {
            log::error!("domain {id}: {error}");
            return None;
        }
        vcpu.start_slice(slice);
        if let Some(platform) = domain.platform.as_deref_mut() {
            platform.on_time();
            vcpu.arm_timer(platform.timer_deadline());
        }
        Some((vcpu.guest_tsc_cycles(), crate::arch::tsc::read()))
    }

    /// Charges the guest time `id` used since `begin_slice`.
    fn charge(&mut self, id: DomainId, guest_before: Option<u64>, wall_before: u64) {
        let wall = crate::arch::tsc::read().wrapping_sub(wall_before);
        let Some(entry) = self.table.get_mut(id) else { return };
        entry.run_cycles += wall;
        let used = entry
            .vcpu
            .as_ref()
            .and_then(VmxVcpu::guest_tsc_cycles)
            .zip(guest_before)
            .map_or(wall, |(after, before)| after.saturating_sub(before));
        self.queue.charge(vcpu_id(id), used);
    }

    /// How `id` ended, with its exits and how its time on the CPU split
    /// between the guest and Keel (idle time and other domains' turns are
    /// not its time).
    fn report(&self, entry: &DomainEntry, reason: &StopReason) {
        if let Some(vcpu) = entry.vcpu.as_ref() {
            let total = entry.run_cycles;
            let time = TimeSplit {
                total,
                guest: vcpu.guest_tsc_cycles().map(|guest| guest.min(total)),
            };
            report_stop(entry.id as u16, reason, vcpu, &time);
        }
    }

    /// Stops and frees every domain (the host is stopping).
    fn destroy_all(&mut self) {
        let ids: alloc::vec::Vec<DomainId> = self.table.iter().map(|entry| entry.id).collect();
        for id in ids {
            self.remove_domain(id);
        }
    }

    /// Takes `id` off the CPU and out of the table, returning everything it held.
    fn remove_domain(&mut self, id: DomainId) {
        let _ = self.queue.remove(vcpu_id(id));
        crate::passthrough::detach_all(id);
        self.free_window_slot(id);
        if let Some(mut entry) = self.table.remove(id) {
            entry.state = DomainState::Dying;
            entry.release();
            self.vpids.release(u32::from(entry.vpid));
            if id != DOM0 {
                self.domain_ids.release(id);
            }
        }
        if self.live_state_owner == Some(id) {
            self.live_state_owner = None;
        }
    }

    /// The domain's state as `keel list` shows it.
    fn state_of(&self, entry: &DomainEntry) -> DomainState {
        match (entry.state, self.queue.state(vcpu_id(entry.id))) {
            (DomainState::Running, Some(keel_sched::VcpuState::Blocked { .. })) => DomainState::Blocked,
            (state, _) => state,
        }
    }

    fn cpu_time_ns(&self, id: DomainId) -> u64 {
        let cycles = self.queue.cpu_time(vcpu_id(id)).unwrap_or(0);
        let hz = self.tsc_hz.unwrap_or(1_000_000_000).max(1);
        (u128::from(cycles) * 1_000_000_000 / u128::from(hz)) as u64
    }
}

impl StopReason {
    /// Which lifecycle event this stop is.
    fn event(&self) -> lifecycle::Event {
        match self {
            Self::Power(PowerAction::PowerOff) | Self::Requested { status: 0 } => lifecycle::Event::PowerOff,
            Self::Power(PowerAction::Reset) => lifecycle::Event::Reboot,
            _ => lifecycle::Event::Crash,
        }
    }
}

/// A guest message an assigned function's MSI or MSI-X would have sent
/// but Keel refused (NMI, INIT, ...): logged, the first few and then every
/// power of two.
#[cold]
fn log_refused_msi(domain: u32, platform: &mut crate::vplatform::VirtualPlatform) {
    let Some((guest, why)) = platform.take_passthrough_msi_refusal() else {
        return;
    };
    let refused = platform.passthrough_msi_refused();
    if refused <= 4 || refused.is_power_of_two() {
        log::warn!(
            "domain {domain}: {:02x}:{:02x}.{}'s MSI not delivered ({why}; {refused} so far)",
            guest.bus(),
            guest.device(),
            guest.function()
        );
    }
}

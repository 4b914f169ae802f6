//! Building domains and carrying out what happens when they stop: Dom0
//! powers the host off or boots again; a DomU is destroyed, restarted or
//! preserved as its `on_poweroff`/`on_reboot`/`on_crash` settings say.

use alloc::string::{String, ToString};

use keel_abi::mgmt::{DomainId, DomainState, LifecycleAction, DOM0};
use keel_devices::PowerAction;

use super::{vcpu_id, Scheduler};
use crate::arch::unswitched::UnswitchedState;
use crate::domain::Domain;
use crate::domains::DomainEntry;
use crate::exits::StopReason;
use crate::halt::Outcome;
use crate::vmx::VmxVcpu;
use crate::vplatform::Host;
use crate::{linux_domain, memory, msr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    PowerOff,
    Reboot,
    Crash,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Self::PowerOff => "power-off",
            Self::Reboot => "reboot",
            Self::Crash => "crash",
        }
    }
}

impl Scheduler<'_> {
    pub(super) fn start_dom0(&mut self, mut dom0: DomainEntry) -> Result<(), String> {
        dom0.vpid = self.allocate_vpid().ok_or("no VPID left")?;
        self.table.insert(dom0);
        self.build(DOM0, false)
    }

    pub(super) fn allocate_vpid(&mut self) -> Option<u16> {
        self.vpids.allocate().and_then(|vpid| u16::try_from(vpid).ok())
    }

    /// (Re)builds domain `id` from its images: fresh zeroed RAM, platform,
    /// ACPI tables, kernel and vCPU; then queues it (paused if asked).
    pub(super) fn build(&mut self, id: DomainId, paused: bool) -> Result<(), String> {
        let (cpu, tsc_hz) = (self.cpu, self.tsc_hz);
        let _ = self.queue.remove(vcpu_id(id));
        if self.live_state_owner == Some(id) {
            self.live_state_owner = None;
        }
        // Dom0's window must not map RAM that goes back to the host.
        self.revoke_window(id);
        if id == DOM0 {
            self.forget_window_slots();
        }
        let entry = self.table.get_mut(id).ok_or("no such domain")?;
        entry.release();
        let free_before = memory::free_bytes();
        let mut domain = Domain::new(id as u16, entry.memory_bytes).map_err(|error| error.to_string())?;
        domain.cpu = cpu.guest_cpu(tsc_hz, 0);
        let host = if entry.is_dom0() {
            Host::console_domain(domain.tsc_offset)
        } else {
            Host::with_console_ring(domain.tsc_offset)
        };
        let prepared = entry
            .images
            .linux()
            .map_err(String::from)
            .and_then(|images| linux_domain::prepare(&mut domain, &images, host, tsc_hz));
        let start = match prepared {
            Ok(start) => start,
            Err(error) => {
                domain.destroy();
                return Err(error);
            }
        };
        if entry.is_dom0() {
            if let Err(error) = self.management.attach(&mut domain) {
                domain.destroy();
                return Err(error);
            }
        }
        let slice = linux_domain::time_slice_tsc(tsc_hz);
        let mut vcpu = match VmxVcpu::new(cpu, &start, domain.eptp(), entry.vpid, slice, domain.tsc_offset) {
            Ok(vcpu) => vcpu,
            Err(error) => {
                domain.destroy();
                return Err(alloc::format!("creating its vCPU: {error}"));
            }
        };
        msr::pass_through_msrs(&mut vcpu);
        for &assignment in &entry.assignments {
            match crate::passthrough::wire(id, &mut domain, &mut vcpu, assignment) {
                Ok(wired) => domain.assigned.push(wired),
                Err(error) => {
                    vcpu.destroy();
                    domain.destroy();
                    return Err(alloc::format!("assigning {}: {error}", assignment.host));
                }
            }
        }
        for function in &entry.virtio {
            let attached = domain
                .platform
                .as_deref_mut()
                .map(|platform| platform.attach_virtio(function.clone()));
            if let Some(Err(error)) = attached {
                vcpu.destroy();
                domain.destroy();
                return Err(alloc::format!("{error}"));
            }
        }
        entry.boots = entry.boots.wrapping_add(1);
        let devices = entry.virtio.len();
        entry.tables_bytes = free_before
            .saturating_sub(memory::free_bytes())
            .saturating_sub(entry.memory_bytes);
        entry.domain = Some(domain);
        entry.vcpu = Some(vcpu);
        *entry.unswitched = UnswitchedState::reset();
        entry.run_cycles = 0;
        entry.state = if paused {
            DomainState::Paused
        } else {
            DomainState::Running
        };
        self.queue
            .add(vcpu_id(id), paused)
            .map_err(|error| alloc::format!("queueing its vCPU: {error:?}"))?;
        self.grant_window(id);
        if devices != 0 {
            // A new generation of every device: the backend starts over.
            self.notify_backends_of_boot(id, devices);
        }
        Ok(())
    }

    /// Domain `id` stopped for `reason`. Returns the host's outcome when
    /// that ends Keel's run (Dom0 powered off or cannot go on).
    pub(super) fn on_stop(&mut self, id: DomainId, reason: StopReason) -> Option<Outcome> {
        let entry = self.table.get(id)?;
        if id == DOM0 && matches!(reason, StopReason::Power(PowerAction::PowerOff)) {
            log::info!("dom0 powered off");
        }
        self.report(entry, &reason);
        if id == DOM0 {
            return self.on_dom0_stop(reason);
        }
        let event = reason.event();
        let action = match event {
            Event::PowerOff => entry.lifecycle.on_poweroff,
            Event::Reboot => entry.lifecycle.on_reboot,
            Event::Crash => entry.lifecycle.on_crash,
        };
        log::info!(
            "domain {id} ({}): {}: {}",
            entry.name.as_str(),
            event.name(),
            action.name()
        );
        match action {
            LifecycleAction::Destroy => self.remove_domain(id),
            LifecycleAction::Restart => {
                if let Err(error) = self.build(id, false) {
                    log::warn!("domain {id}: restart failed: {error}");
                    self.preserve(id, DomainState::Crashed);
                }
            }
            LifecycleAction::Preserve => self.preserve(
                id,
                if event == Event::Crash {
                    DomainState::Crashed
                } else {
                    DomainState::Shutdown
                },
            ),
        }
        None
    }

    /// Keeps the domain listed in `state`, without its vCPU and memory.
    fn preserve(&mut self, id: DomainId, state: DomainState) {
        let _ = self.queue.remove(vcpu_id(id));
        self.revoke_window(id);
        if let Some(entry) = self.table.get_mut(id) {
            entry.release();
            entry.state = state;
        }
        if self.live_state_owner == Some(id) {
            self.live_state_owner = None;
        }
    }

    /// Dom0 powering off ends Keel's run. Anything else (a reset, a triple
    /// fault, a crash) boots Dom0 again from its modules while the DomUs
    /// keep running: the management domain failing is no reason to take
    /// every other domain down. A Dom0 that keeps crashing
    /// ([`DOM0_CRASH_LIMIT`] times in a row without a clean reset) or can
    /// no longer be built stops the host.
    fn on_dom0_stop(&mut self, reason: StopReason) -> Option<Outcome> {
        match reason {
            StopReason::Power(PowerAction::PowerOff) => return Some(Outcome::Success),
            StopReason::Power(PowerAction::Reset) => {
                self.dom0_crashes = 0;
                log::info!("dom0 reset: booting it again");
            }
            other => {
                self.dom0_crashes += 1;
                if self.dom0_crashes > DOM0_CRASH_LIMIT {
                    log::error!("dom0 crashed {} times in a row ({other}); stopping", self.dom0_crashes);
                    return Some(Outcome::Failure);
                }
                log::warn!("dom0 crashed ({other}): booting it again; the other domains keep running");
            }
        }
        match self.build(DOM0, false) {
            Ok(()) => None,
            Err(error) => {
                log::error!("dom0: {error}");
                Some(Outcome::Failure)
            }
        }
    }
}

/// Dom0 crashes in a row after which Keel gives up and stops.
pub(super) const DOM0_CRASH_LIMIT: u32 = 3;

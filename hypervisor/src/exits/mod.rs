//! The exit loop: runs a domain's vCPU and serves its exits until the
//! domain stops. Everything a guest does here is untrusted; the worst it can
//! achieve is stopping its own domain.

use keel_abi::hypercall::HC_ERR_INVALID;

use keel_devices::PowerAction;

use crate::domain::Domain;
use crate::string_emulation::StringError;
use crate::vcpu::{EntryError, GuestFault, MemoryFault, Vcpu, VcpuExit};
use crate::{mmio, msr};

mod handlers;

pub use handlers::forward_console_input;
use handlers::{emulate_cpuid, emulate_debug_port, halt, hypercall, port_io, DebugConsole};

/// Why a domain stopped running.
#[derive(Clone, Copy, Debug)]
pub enum StopReason {
    /// The guest asked to stop (`HC_DOMAIN_STOP`) with this status.
    Requested {
        status: u64,
    },
    /// The guest powered its machine off or reset it (ACPI, reset registers).
    Power(PowerAction),
    /// The guest triple-faulted (a reset on a PC; Keel treats it as a
    /// crash of a DomU and a reset of Dom0).
    TripleFault {
        rip: u64,
    },
    /// The guest halted with interrupts disabled: nothing can wake it.
    HaltedForever {
        rip: u64,
    },
    /// An MMIO access Keel could not emulate (unreadable or unsupported instruction).
    BadMmio {
        gpa: u64,
        rip: u64,
        reason: &'static str,
    },
    /// A string port instruction Keel could not perform.
    BadStringIo {
        port: u16,
        rip: u64,
        reason: &'static str,
    },
    /// The guest touched guest-physical memory that is not mapped for it.
    MemoryFault {
        fault: MemoryFault,
        rip: u64,
    },
    /// The guest caused an exit Keel does not handle.
    Unhandled {
        reason: &'static str,
        number: u32,
        qualification: u64,
        rip: u64,
    },
    EntryFailed(EntryError),
}

impl core::fmt::Display for StopReason {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Requested { status } => write!(f, "guest requested stop (status {status})"),
            Self::Power(PowerAction::PowerOff) => f.write_str("powered off"),
            Self::Power(PowerAction::Reset) => f.write_str("reset"),
            Self::TripleFault { rip } => write!(f, "triple fault at rip={rip:#x}"),
            Self::HaltedForever { rip } => write!(f, "halted with interrupts disabled at rip={rip:#x}"),
            Self::BadMmio { gpa, rip, reason } => write!(f, "MMIO access at GPA {gpa:#x} rip={rip:#x}: {reason}"),
            Self::BadStringIo { port, rip, reason } => {
                write!(f, "string I/O to port {port:#x} rip={rip:#x}: {reason}")
            }
            Self::MemoryFault { fault, rip } => write!(
                f,
                "EPT violation at GPA {:#x} ({}) rip={rip:#x}: no memory or device there",
                fault.gpa,
                fault.access_name()
            ),
            Self::Unhandled {
                reason,
                number,
                qualification,
                rip,
            } => write!(
                f,
                "unhandled exit {reason} (reason {number}), qualification {qualification:#x}, rip={rip:#x}"
            ),
            Self::EntryFailed(error) => write!(f, "VM entry failed: {error}"),
        }
    }
}

const CR4_OSXSAVE: u64 = 1 << 18;

/// MOV to CR8: the task priority class (bits 3:0; the rest are reserved).
fn set_task_priority(domain: &mut Domain, vcpu: &mut impl Vcpu, value: u64) -> Result<(), GuestFault> {
    if value > 0xf {
        return Err(GuestFault::GeneralProtection);
    }
    match domain.platform.as_deref_mut() {
        Some(platform) => platform.set_task_priority(value),
        None => vcpu.set_software_tpr(value),
    }
    Ok(())
}

/// What an exit handler wants next.
pub enum Next {
    /// Enter the guest again.
    Resume,
    /// The vCPU's time slice is over: let the scheduler pick.
    Yield,
    /// The vCPU halted: nothing to run until an interrupt is pending or
    /// `wake_at` (the host's TSC) passes.
    Block {
        wake_at: Option<u64>,
    },
    /// Dom0 rang the management doorbell: the scheduler serves the call
    /// (it needs the whole domain table) and lets Dom0 go on.
    Serve,
    /// A DomU's access left work for its paravirtual devices' backends:
    /// the scheduler passes it to Dom0 and lets the DomU go on.
    Notify,
    Stop(StopReason),
}

/// Time a domain ran and the part of it spent in the guest, in TSC cycles.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeSplit {
    pub total: u64,
    /// `None` when the CPU cannot measure guest time (see `VmxVcpu::guest_tsc_cycles`).
    pub guest: Option<u64>,
}

/// Runs a domain alone until it stops (the test guests, which have no
/// devices and never share the CPU): slices end without a switch, and HLT
/// completes at once.
pub fn run_until_stopped(
    domain: &mut Domain,
    vcpu: &mut impl Vcpu,
    slice_tsc: u64,
    time: &mut TimeSplit,
) -> StopReason {
    let start = crate::arch::tsc::read();
    crate::arch::unswitched::UnswitchedState::reset().restore();
    vcpu.start_slice(slice_tsc);
    let stop = loop {
        match run(domain, vcpu) {
            Next::Stop(reason) => break reason,
            Next::Yield => {
                crate::console::pump();
                vcpu.start_slice(slice_tsc);
            }
            Next::Resume | Next::Block { .. } | Next::Serve | Next::Notify => {}
        }
    };
    let total = crate::arch::tsc::read().wrapping_sub(start);
    time.total = total;
    time.guest = vcpu.guest_tsc_cycles().map(|guest| guest.min(total));
    stop
}

/// Runs the vCPU until an exit handler wants something other than to
/// resume: the end of its slice, a halt, a management call or a stop.
///
/// Guest time comes from the vCPU (the VMX-preemption timer only counts in
/// the guest), so the exit path needs no timestamps of its own.
pub fn run(domain: &mut Domain, vcpu: &mut impl Vcpu) -> Next {
    loop {
        if let Some(stop) = prepare_entry(domain, vcpu) {
            return Next::Stop(stop);
        }
        let next = match vcpu.run() {
            Ok(exit) => handle(domain, vcpu, exit),
            Err(error) => Next::Stop(StopReason::EntryFailed(error)),
        };
        if !matches!(next, Next::Resume) {
            return next;
        }
    }
}

/// Work before each VM entry of a domain with a virtual platform: power
/// requests, interrupt injection and the vCPU's timer.
#[inline(always)]
fn prepare_entry(domain: &mut Domain, vcpu: &mut impl Vcpu) -> Option<StopReason> {
    let id = domain.id;
    let platform = domain.platform.as_deref_mut()?;
    if let Some(action) = platform.take_power_request() {
        return Some(StopReason::Power(action));
    }
    if platform.has_intx_resamples() {
        resample_intx(id, platform);
    }
    if let Some(vector) = platform.pending_interrupt() {
        if vcpu.try_inject_interrupt(vector) {
            platform.start_delivery(vector);
        } else {
            vcpu.set_interrupt_window(true);
        }
    }
    if let Some(deadline) = platform.take_timer_change() {
        vcpu.arm_timer(deadline);
    }
    None
}

#[inline(always)]
fn handle(domain: &mut Domain, vcpu: &mut impl Vcpu, exit: VcpuExit) -> Next {
    match exit {
        VcpuExit::Cpuid => {
            emulate_cpuid(vcpu.regs(), &domain.cpu);
            vcpu.skip_instruction();
        }
        VcpuExit::Port(access) => {
            let mut notify = false;
            match domain.platform.as_deref_mut() {
                Some(platform) => {
                    port_io(platform, vcpu.regs(), access);
                    notify = platform.has_virtio_effects();
                    if let Some(layout) = platform.take_management_move() {
                        domain.move_management(layout.shared);
                        domain.move_window(layout.window);
                        vcpu.flush_guest_mappings();
                    } else if (PCI_CONFIG_DATA_PORTS..PCI_CONFIG_DATA_PORTS + 4).contains(&access.port)
                        && access.write
                        && !domain.assigned.is_empty()
                        && apply_passthrough_commands(domain)
                    {
                        vcpu.flush_guest_mappings();
                    }
                }
                None => emulate_debug_port(domain, vcpu.regs(), access),
            }
            vcpu.skip_instruction();
            if notify {
                return Next::Notify;
            }
        }
        VcpuExit::CacheFlush => vcpu.skip_instruction(),
        VcpuExit::Hypercall => {
            let result = if vcpu.privilege_level() == 0 {
                hypercall(domain, vcpu.regs())
            } else {
                // Only the guest kernel may call the hypervisor.
                Ok(HC_ERR_INVALID)
            };
            match result {
                Ok(value) => {
                    vcpu.regs().rax = value;
                    vcpu.skip_instruction();
                }
                Err(stop) => return Next::Stop(stop),
            }
        }
        VcpuExit::Halt => return halt(domain, vcpu),
        VcpuExit::TimerTick => {
            domain.timer_ticks += 1;
            if let Some(platform) = domain.platform.as_deref_mut() {
                platform.on_time();
            }
            if vcpu.slice_expired() {
                return Next::Yield;
            }
        }
        VcpuExit::HostInterrupt | VcpuExit::InterruptWindow | VcpuExit::GuestException => {}
        // The scheduler forwards it to its domain before anything else runs.
        VcpuExit::DeviceInterrupt => return Next::Yield,
        VcpuExit::MemoryFault(fault) => return memory_fault(domain, vcpu, fault),
        VcpuExit::StringPort { port, write } => return string_port(domain, vcpu, port, write),
        VcpuExit::MsrRead { msr } => match msr::read(domain, vcpu, msr) {
            Ok(value) => {
                let regs = vcpu.regs();
                regs.rax = value & 0xffff_ffff;
                regs.rdx = value >> 32;
                vcpu.skip_instruction();
            }
            Err(fault) => vcpu.inject_fault(fault),
        },
        VcpuExit::MsrWrite { msr, value } => match msr::write(domain, vcpu, msr, value) {
            Ok(()) => vcpu.skip_instruction(),
            Err(fault) => vcpu.inject_fault(fault),
        },
        VcpuExit::ControlRegisterWrite { cr: 8, value } => match set_task_priority(domain, vcpu, value) {
            Ok(()) => vcpu.skip_instruction(),
            Err(fault) => vcpu.inject_fault(fault),
        },
        VcpuExit::TaskPriorityRead { gpr } => {
            let priority = match domain.platform.as_deref() {
                Some(platform) => platform.task_priority(),
                None => vcpu.software_tpr(),
            };
            vcpu.set_gpr(usize::from(gpr), priority);
            vcpu.skip_instruction();
        }
        VcpuExit::Fault(fault) => vcpu.inject_fault(fault),
        VcpuExit::ControlRegisterWrite { cr, value } => match vcpu.set_control_register(cr, value) {
            Ok(()) => vcpu.skip_instruction(),
            Err(fault) => vcpu.inject_fault(fault),
        },
        // Keel hides XSAVE: without CR4.OSXSAVE the instruction is undefined,
        // and no XCR0 value is valid to set.
        VcpuExit::Xsetbv => vcpu.inject_fault(if vcpu.guest_cr4() & CR4_OSXSAVE == 0 {
            GuestFault::InvalidOpcode
        } else {
            GuestFault::GeneralProtection
        }),
        // A machine with a reset line (a platform) resets; the bare test
        // guests have none, so their triple fault is a plain failure.
        VcpuExit::TripleFault if domain.platform.is_some() => {
            return Next::Stop(StopReason::TripleFault { rip: vcpu.rip() });
        }
        VcpuExit::TripleFault => {
            return Next::Stop(StopReason::Unhandled {
                reason: "triple-fault",
                number: 2,
                qualification: 0,
                rip: vcpu.rip(),
            });
        }
        VcpuExit::Unhandled {
            reason,
            number,
            qualification,
        } => {
            return Next::Stop(StopReason::Unhandled {
                reason,
                number,
                qualification,
                rip: vcpu.rip(),
            });
        }
    }
    Next::Resume
}

/// An EPT violation: device MMIO, an access to a hole (all ones), or a
/// string instruction touching either. Kept out of line so that the exit
/// dispatch, which every exit runs, stays small.
#[inline(never)]
fn memory_fault(domain: &mut Domain, vcpu: &mut impl Vcpu, fault: MemoryFault) -> Next {
    let rip = vcpu.rip();
    let Some(is_device) = domain.platform.as_deref().map(|platform| platform.is_mmio(fault.gpa)) else {
        // The test guests have no platform: their stray access is
        // the check that a fault stops only their domain.
        return Next::Stop(StopReason::MemoryFault { fault, rip });
    };
    if !is_device && !fault.fetch {
        report_unbacked_access(domain.id, &mut domain.unbacked_accesses, fault, rip);
    }
    let Some((platform, cache, memory)) = domain.mmio_parts() else {
        return Next::Stop(StopReason::MemoryFault { fault, rip });
    };
    let result = if fault.fetch {
        Err(StringError::Stop("instruction fetch from an address with no memory"))
    } else {
        mmio::emulate(platform, cache, memory, vcpu, fault, is_device)
    };
    let doorbell = result.is_ok() && platform.take_doorbell();
    let notify = platform.has_virtio_effects();
    if platform.has_passthrough_msix_changes() && apply_passthrough_commands(domain) {
        vcpu.flush_guest_mappings();
    }
    match result {
        Ok(()) if doorbell => Next::Serve,
        Ok(()) if notify => Next::Notify,
        Ok(()) => Next::Resume,
        Err(StringError::Fault(guest_fault)) => {
            vcpu.inject_fault(guest_fault);
            Next::Resume
        }
        Err(StringError::Stop(reason)) => Next::Stop(StopReason::BadMmio {
            gpa: fault.gpa,
            rip,
            reason,
        }),
    }
}

/// CONFIG_DATA: only its writes change an assigned function's
/// configuration.
const PCI_CONFIG_DATA_PORTS: u16 = 0xcfc;

/// The guest acknowledged an assigned function's INTx (or re-enabled it):
/// its host input is unmasked.
#[cold]
fn resample_intx(id: u16, platform: &mut crate::vplatform::VirtualPlatform) {
    for function in platform.take_intx_resamples() {
        crate::passthrough::resample(u32::from(id), function);
    }
}

/// The guest wrote an assigned device's configuration: writes for the
/// real device, and memory BARs to map elsewhere. Returns whether the EPT
/// changed (the caller flushes the guest's cached translations).
#[cold]
fn apply_passthrough_commands(domain: &mut Domain) -> bool {
    let Some(platform) = domain.platform.as_deref_mut() else {
        return false;
    };
    for (guest, write) in platform.take_passthrough_writes() {
        crate::passthrough::apply_write(&domain.assigned, guest, write);
    }
    apply_message_interrupts(u32::from(domain.id), platform, &mut domain.assigned);
    let Some(platform) = domain.platform.as_deref_mut() else {
        return false;
    };
    let moves = platform.take_passthrough_bar_moves();
    let remapped = !moves.is_empty();
    for (guest, change) in moves {
        crate::passthrough::move_bar(domain, guest, change);
    }
    remapped
}

/// The guest changed an assigned function's MSI or MSI-X: the real
/// device's follow (MSI-X wins where the guest enabled both).
fn apply_message_interrupts(
    domain: u32,
    platform: &mut crate::vplatform::VirtualPlatform,
    assigned: &mut [crate::passthrough::Wired],
) {
    let mut changed = platform.take_passthrough_msix_changes();
    for (guest, _) in platform.take_passthrough_msi_changes() {
        if !changed.contains(&guest) {
            changed.push(guest);
        }
    }
    for guest in changed {
        let msix = platform.passthrough_msix_request(guest);
        if let Some(request) = &msix {
            crate::passthrough::apply_msix(domain, assigned, guest, request);
        }
        let msix_on = msix.is_some_and(|request| request.enabled);
        let msi_on = platform.passthrough_msi_state(guest).is_some_and(|state| state.enabled);
        crate::passthrough::apply_msi(domain, assigned, guest, msi_on && !msix_on);
    }
}

/// INS/OUTS. The test guests (no platform) have only the debug console.
#[cold]
fn string_port(domain: &mut Domain, vcpu: &mut impl Vcpu, port: u16, write: bool) -> Next {
    let rip = vcpu.rip();
    let result = match domain.mmio_parts() {
        Some((platform, _, memory)) => mmio::emulate_string_port(platform, memory, vcpu, port, write),
        None => {
            let id = domain.id;
            let (memory, console) = domain.memory_and_console();
            mmio::emulate_string_port(&mut DebugConsole { id, console }, memory, vcpu, port, write)
        }
    };
    match result {
        Ok(()) => Next::Resume,
        Err(StringError::Fault(fault)) => {
            vcpu.inject_fault(fault);
            Next::Resume
        }
        Err(StringError::Stop(reason)) => Next::Stop(StopReason::BadStringIo { port, rip, reason }),
    }
}

/// Says (rate-limited: the first few, then at powers of two) that a guest
/// touched a guest-physical address with neither RAM nor a device.
#[cold]
fn report_unbacked_access(id: u16, count: &mut u64, fault: MemoryFault, rip: u64) {
    *count += 1;
    if *count <= 4 || count.is_power_of_two() {
        log::warn!(
            "domain {id}: {} of GPA {:#x} (rip={rip:#x}): no memory or device there; reads all ones ({} so far)",
            fault.access_name(),
            fault.gpa,
            count
        );
    }
}

/// Prints how a domain ended: the stop reason, exits by reason and where
/// its time went.
pub fn report_stop(id: u16, stop: &StopReason, vcpu: &impl Vcpu, time: &TimeSplit) {
    use core::fmt::Write;
    log::info!("domain {id} stopped: {stop}");
    let mut counts = alloc::string::String::new();
    let mut total = 0;
    for (name, count) in vcpu.exit_counts() {
        total += count;
        let _ = write!(counts, " {name}={count}");
    }
    log::info!("domain {id} exits:{counts} total={total}");
    let total = time.total.max(1);
    match time.guest {
        Some(guest) => log::info!(
            "domain {id} time: guest {}% hypervisor {}% ({} M TSC cycles)",
            guest * 100 / total,
            (total - guest) * 100 / total,
            total / 1_000_000
        ),
        None => log::info!(
            "domain {id} time: {} M TSC cycles (no guest/hypervisor split on this CPU)",
            total / 1_000_000
        ),
    }
}

//! The exit loop: runs a domain's vCPU and serves its exits until the
//! domain stops. Everything a guest does here is untrusted; the worst it can
//! achieve is stopping its own domain.

use core::arch::x86_64::__cpuid_count;

use keel_abi::hypercall::{
    BenchKind, ABI_VERSION, HC_BENCH_REPORT, HC_DOMAIN_STOP, HC_ERR_INVALID, HC_ERR_UNKNOWN, HC_SELFTEST_DONE,
    HC_TIMER_TICKS, HC_VERSION,
};
use keel_abi::DEBUG_CONSOLE_PORT;
use keel_hypervisor::cpuid_policy::{self, CpuidResult};

use crate::domain::Domain;
use crate::vcpu::{EntryError, GuestRegisters, MemoryFault, PortAccess, VcpuExit};
use crate::vmx::VmxVcpu as Vcpu;

/// Why a domain stopped running.
#[derive(Clone, Copy, Debug)]
pub enum StopReason {
    /// The guest asked to stop (`HC_DOMAIN_STOP`) with this status.
    Requested { status: u64 },
    /// The guest touched guest-physical memory that is not mapped for it.
    MemoryFault { fault: MemoryFault, rip: u64 },
    /// The guest caused an exit Keel does not handle.
    Unhandled { reason: &'static str, number: u32, qualification: u64, rip: u64 },
    EntryFailed(EntryError),
}

impl core::fmt::Display for StopReason {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Requested { status } => write!(f, "guest requested stop (status {status})"),
            Self::MemoryFault { fault, rip } => write!(
                f,
                "EPT violation at GPA {:#x} ({}) rip={rip:#x}: no memory or device there",
                fault.gpa,
                fault.access_name()
            ),
            Self::Unhandled { reason, number, qualification, rip } => write!(
                f,
                "unhandled exit {reason} (reason {number}), qualification {qualification:#x}, rip={rip:#x}"
            ),
            Self::EntryFailed(error) => write!(f, "VM entry failed: {error}"),
        }
    }
}

/// What an exit handler wants next.
enum Next {
    Resume,
    Stop(StopReason),
}

/// Runs the vCPU until its domain stops.
pub fn run_until_stopped(domain: &mut Domain, vcpu: &mut Vcpu) -> StopReason {
    loop {
        let next = match vcpu.run() {
            Ok(exit) => handle(domain, vcpu, exit),
            Err(error) => Next::Stop(StopReason::EntryFailed(error)),
        };
        if let Next::Stop(reason) = next {
            return reason;
        }
    }
}

#[inline(always)]
fn handle(domain: &mut Domain, vcpu: &mut Vcpu, exit: VcpuExit) -> Next {
    match exit {
        VcpuExit::Cpuid => {
            emulate_cpuid(vcpu.regs());
            vcpu.skip_instruction();
        }
        VcpuExit::Port(access) => {
            emulate_port(domain, vcpu.regs(), access);
            vcpu.skip_instruction();
        }
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
        // No interrupt sources exist for guests yet, so there is nothing to
        // wait for: HLT completes at once.
        VcpuExit::Halt => vcpu.skip_instruction(),
        VcpuExit::TimerTick => domain.timer_ticks += 1,
        VcpuExit::HostInterrupt => {}
        VcpuExit::MemoryFault(fault) => {
            return Next::Stop(StopReason::MemoryFault { fault, rip: vcpu.rip() });
        }
        VcpuExit::Unhandled { reason, number, qualification } => {
            return Next::Stop(StopReason::Unhandled { reason, number, qualification, rip: vcpu.rip() });
        }
    }
    Next::Resume
}

fn emulate_cpuid(regs: &mut GuestRegisters) {
    let leaf = regs.rax as u32;
    let subleaf = regs.rcx as u32;
    let answer = if cpuid_policy::is_hypervisor_leaf(leaf) {
        cpuid_policy::hypervisor_leaf(leaf)
    } else {
        let host = __cpuid_count(leaf, subleaf);
        cpuid_policy::filter_host_leaf(leaf, CpuidResult { eax: host.eax, ebx: host.ebx, ecx: host.ecx, edx: host.edx })
    };
    regs.rax = u64::from(answer.eax);
    regs.rbx = u64::from(answer.ebx);
    regs.rcx = u64::from(answer.ecx);
    regs.rdx = u64::from(answer.edx);
}

/// Port I/O. The debug console is the only device so far; every other port
/// behaves like an empty bus: reads return all ones, writes are dropped.
fn emulate_port(domain: &mut Domain, regs: &mut GuestRegisters, access: PortAccess) {
    if access.write {
        if access.port == DEBUG_CONSOLE_PORT {
            if let Some(line) = domain.console.push(regs.rax as u8) {
                crate::console_println!("guest{}: {line}", domain.id);
            }
        }
        return;
    }
    let value: u32 = if access.port == DEBUG_CONSOLE_PORT { u32::from(DEBUG_CONSOLE_PORT as u8) } else { u32::MAX };
    // IN writes AL/AX/EAX; a 32-bit IN zeroes the upper half of RAX.
    regs.rax = match access.size {
        1 => (regs.rax & !0xff) | u64::from(value & 0xff),
        2 => (regs.rax & !0xffff) | u64::from(value & 0xffff),
        _ => u64::from(value),
    };
}

fn hypercall(domain: &mut Domain, regs: &GuestRegisters) -> Result<u64, StopReason> {
    Ok(match regs.rax {
        HC_VERSION => ABI_VERSION,
        HC_TIMER_TICKS => domain.timer_ticks,
        HC_BENCH_REPORT => match BenchKind::from_u64(regs.rdi) {
            Some(kind) => {
                crate::console_println!("exit-cost {} {}", kind.name(), regs.rsi);
                0
            }
            None => HC_ERR_INVALID,
        },
        HC_SELFTEST_DONE => {
            domain.selftest_report = Some(regs.rdi);
            0
        }
        HC_DOMAIN_STOP => return Err(StopReason::Requested { status: regs.rdi }),
        _ => HC_ERR_UNKNOWN,
    })
}

//! The exit handlers that emulate instructions and devices for a domain:
//! CPUID, port I/O, hypercalls and HLT.

use core::arch::x86_64::__cpuid_count;

use keel_abi::hypercall::{
    BenchKind, ABI_VERSION, HC_BENCH_REPORT, HC_DOMAIN_STOP, HC_ERR_INVALID, HC_ERR_UNKNOWN, HC_SELFTEST_DONE,
    HC_TIMER_TICKS, HC_VERSION,
};
use keel_abi::DEBUG_CONSOLE_PORT;
use keel_hypervisor::cpuid_policy::{self, CpuidResult, GuestCpu};

use super::{Next, StopReason};
use crate::domain::Domain;
use crate::string_emulation::Devices;
use crate::vcpu::{GuestRegisters, PortAccess, Vcpu};
use crate::vplatform::VirtualPlatform;
use keel_hypervisor::console_line::ConsoleLine;

#[inline(always)]
pub(super) fn emulate_cpuid(regs: &mut GuestRegisters, cpu: &GuestCpu) {
    let leaf = regs.rax as u32;
    let subleaf = regs.rcx as u32;
    let answer = if cpuid_policy::is_hypervisor_leaf(leaf) {
        cpuid_policy::hypervisor_leaf(leaf)
    } else {
        let host = __cpuid_count(leaf, subleaf);
        let host = CpuidResult {
            eax: host.eax,
            ebx: host.ebx,
            ecx: host.ecx,
            edx: host.edx,
        };
        cpuid_policy::guest_leaf(leaf, subleaf, host, cpu)
    };
    regs.rax = u64::from(answer.eax);
    regs.rbx = u64::from(answer.ebx);
    regs.rcx = u64::from(answer.ecx);
    regs.rdx = u64::from(answer.edx);
}

/// HLT. In a domain with interrupt controllers the vCPU blocks until an
/// interrupt is pending or its timer's deadline; without them (the test
/// guests) nothing could wake it, so HLT completes at once.
pub(super) fn halt(domain: &mut Domain, vcpu: &mut impl Vcpu) -> Next {
    let Some(platform) = domain.platform.as_deref_mut() else {
        vcpu.skip_instruction();
        return Next::Resume;
    };
    if platform.pending_interrupt().is_some() {
        vcpu.skip_instruction();
        return Next::Resume;
    }
    if !vcpu.interrupts_enabled() {
        return Next::Stop(StopReason::HaltedForever { rip: vcpu.rip() });
    }
    // Completing HLT ends any STI shadow, so the interrupt that wakes the
    // vCPU is taken right after the HLT, as on hardware.
    vcpu.skip_instruction();
    Next::Block {
        wake_at: platform
            .timer_deadline()
            .map(|guest| guest.wrapping_sub(domain.tsc_offset)),
    }
}

/// Hands bytes from `next_byte` (Keel's console for Dom0, the queue of
/// bytes Dom0 sent for a DomU) to the domain's serial port; returns whether
/// any went in.
pub fn forward_console_input(platform: &mut VirtualPlatform, mut next_byte: impl FnMut() -> Option<u8>) -> bool {
    let mut forwarded = false;
    // Bytes stay where they are until the guest's FIFO has room for them.
    while platform.can_accept_console_input() {
        let Some(byte) = next_byte() else {
            break;
        };
        platform.console_input(byte);
        forwarded = true;
    }
    forwarded
}

#[inline(always)]
pub(super) fn port_io(platform: &mut VirtualPlatform, regs: &mut GuestRegisters, access: PortAccess) {
    if access.write {
        platform.port_write(access.port, access.size, regs.rax);
    } else {
        let value = platform.port_read(access.port, access.size) as u32;
        regs.rax = merge_in(regs.rax, value, access.size);
    }
}

/// IN writes AL/AX/EAX; a 32-bit IN zeroes the upper half of RAX.
fn merge_in(rax: u64, value: u32, size: u8) -> u64 {
    match size {
        1 => (rax & !0xff) | u64::from(value & 0xff),
        2 => (rax & !0xffff) | u64::from(value & 0xffff),
        _ => u64::from(value),
    }
}

/// Port I/O of the test guests: the debug console is their only device;
/// every other port behaves like an empty bus.
#[inline(always)]
pub(super) fn emulate_debug_port(domain: &mut Domain, regs: &mut GuestRegisters, access: PortAccess) {
    if access.write {
        if access.port == DEBUG_CONSOLE_PORT {
            print_debug_byte(domain.id, &mut domain.console, regs.rax as u8);
        }
        return;
    }
    let value: u32 = if access.port == DEBUG_CONSOLE_PORT {
        u32::from(DEBUG_CONSOLE_PORT as u8)
    } else {
        u32::MAX
    };
    regs.rax = merge_in(regs.rax, value, access.size);
}

fn print_debug_byte(id: u16, console: &mut ConsoleLine, byte: u8) {
    if let Some(line) = console.push(byte) {
        crate::console_println!("guest{id}: {line}");
    }
}

/// The test guests' only device: the debug console port, which prints
/// whole lines as `guestN: ...`; no device memory.
pub(super) struct DebugConsole<'a> {
    pub id: u16,
    pub console: &'a mut ConsoleLine,
}

impl Devices for DebugConsole<'_> {
    fn is_mmio(&self, _gpa: u64) -> bool {
        false
    }
    fn mmio_read(&mut self, _gpa: u64, size: u8) -> u64 {
        keel_devices::all_ones(size)
    }
    fn mmio_write(&mut self, _gpa: u64, _size: u8, _value: u64) {}
    fn port_read(&mut self, port: u16, size: u8) -> u64 {
        if port == DEBUG_CONSOLE_PORT {
            u64::from(DEBUG_CONSOLE_PORT as u8)
        } else {
            keel_devices::all_ones(size)
        }
    }
    fn port_write(&mut self, port: u16, _size: u8, value: u64) {
        if port == DEBUG_CONSOLE_PORT {
            print_debug_byte(self.id, self.console, value as u8);
        }
    }
}

#[inline(always)]
pub(super) fn hypercall(domain: &mut Domain, regs: &GuestRegisters) -> Result<u64, StopReason> {
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

//! The host IDT: every exception prints a diagnostic (vector, error code,
//! RIP, CR2, registers) and stops the machine instead of triple-faulting.

use core::arch::{asm, global_asm};

use super::gdt::CODE_SELECTOR;

global_asm!(include_str!("exceptions.s"));

extern "C" {
    static exception_stub_table: [u64; 32];
}

const DOUBLE_FAULT: usize = 8;

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl IdtEntry {
    const MISSING: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt_gate(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: CODE_SELECTOR,
            ist,
            type_attributes: 0x8E, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static mut IDT: [IdtEntry; 256] = [IdtEntry::MISSING; 256];

/// The frame `exception_common` builds: saved registers, then vector and
/// error code, then what the CPU pushed.
#[repr(C)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

#[derive(Clone, Copy)]
pub struct HostIdt {
    pub base: u64,
}

/// Installs the exception handlers on the boot CPU.
pub fn init() -> HostIdt {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    // SAFETY: runs once on the boot CPU with interrupts disabled before any
    // exception can be delivered; the stub table is a static of 32 code
    // addresses emitted by exceptions.s.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (vector, &stub) in exception_stub_table.iter().enumerate() {
            let ist = if vector == DOUBLE_FAULT { 1 } else { 0 };
            idt[vector] = IdtEntry::interrupt_gate(stub, ist);
        }
        idt[usize::from(super::host_timer::TIMER_VECTOR)] =
            IdtEntry::interrupt_gate(super::host_timer::timer_handler_address(), 0);
        for (vector, handler) in super::device_interrupts::handlers() {
            idt[usize::from(vector)] = IdtEntry::interrupt_gate(handler, 0);
        }
        idt[usize::from(super::host_timer::SPURIOUS_VECTOR)] =
            IdtEntry::interrupt_gate(super::host_timer::spurious_handler_address(), 0);
        let pointer = Pointer {
            limit: (core::mem::size_of::<[IdtEntry; 256]>() - 1) as u16,
            base: idt.as_ptr() as u64,
        };
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
        HostIdt { base: pointer.base }
    }
}

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

#[no_mangle]
extern "C" fn keel_exception(frame: &ExceptionFrame) -> ! {
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("unknown");
    crate::console::write_fmt_emergency(format_args!(
        "keel: CPU exception {name} (vector {}) error=0x{:x} rip=0x{:x} cr2=0x{:x} rsp=0x{:x} rflags=0x{:x}\n\
         keel:   rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}\n\
         keel:   r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}\n",
        frame.vector,
        frame.error_code,
        frame.rip,
        super::instructions::read_cr2(),
        frame.rsp,
        frame.rflags,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
    ));
    crate::halt::stop(crate::halt::Outcome::Failure)
}

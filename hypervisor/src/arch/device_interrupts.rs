//! Interrupts from host devices (through the I/O APIC or MSI, remapped by
//! the IOMMU where there is one): vectors [`FIRST_VECTOR`]..=[`LAST_VECTOR`].
//! Each arrival is counted per vector and acknowledged at the local APIC;
//! whoever owns a vector waits for or polls its count: 0x40 the IOMMU
//! self-test, 0x41..=0x7e forwarded host interrupts (`host_irq`), 0x7f the
//! IOMMU's fault events (`host_irq::IOMMU_FAULT_VECTOR`). Keel runs with interrupts off
//! except where it waits for one, so a handler never interrupts Keel's own
//! work half-way.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

pub const FIRST_VECTOR: u8 = 0x40;
pub const LAST_VECTOR: u8 = 0x7f;
const COUNT: usize = (LAST_VECTOR - FIRST_VECTOR + 1) as usize;
const _: () = assert!(
    keel_hypervisor::host_irq::FIRST_VECTOR > FIRST_VECTOR
        && keel_hypervisor::host_irq::LAST_VECTOR < keel_hypervisor::host_irq::IOMMU_FAULT_VECTOR
        && keel_hypervisor::host_irq::IOMMU_FAULT_VECTOR <= LAST_VECTOR,
    "forwarded interrupts and the IOMMU's fault events share the device vectors without overlap"
);

const XAPIC_BASE: u64 = 0xfee0_0000;
const X2APIC_EOI: u32 = 0x80b;
const XAPIC_EOI: u64 = 0xb0;
const XAPIC_SPURIOUS: u64 = 0xf0;
const APIC_SOFTWARE_ENABLE: u32 = 1 << 8;

static ARRIVALS: [AtomicU64; COUNT] = [const { AtomicU64::new(0) }; COUNT];
/// Level-triggered inputs per vector, masked as they fire (before the EOI,
/// or the still-asserted line would fire again at once): 0 for none, else
/// the I/O APIC's base address (bits 63:32), the input (bits 15:8) and bit 0 set.
static LEVEL_INPUTS: [AtomicU64; COUNT] = [const { AtomicU64::new(0) }; COUNT];
/// Vectors that arrived since the last [`take_pending`], one bit each.
static PENDING: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
.macro DEVICE_STUB vector
keel_device_stub_\vector:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov edi, \vector
    call keel_device_interrupt
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    iretq
.endm
.section .text
.irp vector, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127
DEVICE_STUB \vector
.endr
.section .rodata
.balign 8
.global keel_device_stub_table
keel_device_stub_table:
.irp vector, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127
    .quad keel_device_stub_\vector
.endr
.section .text
"#
);

extern "C" {
    static keel_device_stub_table: [u64; COUNT];
}

/// (vector, handler address) for the IDT.
pub fn handlers() -> impl Iterator<Item = (u8, u64)> {
    // SAFETY: a static table of code addresses emitted above.
    let table = unsafe { &keel_device_stub_table };
    (FIRST_VECTOR..=LAST_VECTOR).zip(table.iter().copied())
}

#[no_mangle]
extern "C" fn keel_device_interrupt(vector: u64) {
    record(vector as u8);
    end_of_interrupt();
}

/// Makes `vector` mask I/O APIC input `input` at `base` whenever it fires
/// (`None`: an edge-triggered input, nothing to mask).
pub fn set_level_input(vector: u8, input: Option<(u64, u32)>) {
    let Some(slot) = vector
        .checked_sub(FIRST_VECTOR)
        .and_then(|index| LEVEL_INPUTS.get(usize::from(index)))
    else {
        return;
    };
    let encoded = input
        .filter(|&(base, input)| base <= u64::from(u32::MAX) && input <= 0xff)
        .map_or(0, |(base, input)| base << 32 | u64::from(input) << 8 | 1);
    slot.store(encoded, Ordering::Relaxed);
}

fn record(vector: u8) -> bool {
    let Some(index) = vector
        .checked_sub(FIRST_VECTOR)
        .filter(|&index| usize::from(index) < COUNT)
    else {
        return false;
    };
    let level = LEVEL_INPUTS[usize::from(index)].load(Ordering::Relaxed);
    if level & 1 != 0 {
        super::ioapic::set_masked(level >> 32, ((level >> 8) & 0xff) as u32, true);
    }
    ARRIVALS[usize::from(index)].fetch_add(1, Ordering::Relaxed);
    PENDING.fetch_or(1 << index, Ordering::Relaxed);
    true
}

/// A host interrupt a VM exit acknowledged ("acknowledge interrupt on
/// exit"): a device vector is recorded like one taken in Keel; every
/// vector but the spurious one gets its EOI. Returns whether it was a
/// device's.
pub fn acknowledge(vector: u8) -> bool {
    let device = record(vector);
    if vector != super::host_timer::SPURIOUS_VECTOR {
        end_of_interrupt();
    }
    device
}

/// Forgets an arrival on `vector` not yet taken (its route is going, or a
/// new one starts): it must not be forwarded to the vector's next owner.
pub fn forget_pending(vector: u8) {
    if let Some(index) = vector
        .checked_sub(FIRST_VECTOR)
        .filter(|&index| usize::from(index) < COUNT)
    {
        PENDING.fetch_and(!(1 << index), Ordering::Relaxed);
    }
}

/// Device vectors that arrived since the last call, as a bit set (bit `n`
/// is vector [`FIRST_VECTOR`] + `n`).
pub fn take_pending() -> u64 {
    PENDING.swap(0, Ordering::Relaxed)
}

/// Whether the local APIC is in x2APIC mode (Keel's host timer turns it
/// on where the CPU has it).
pub fn x2apic() -> bool {
    const IA32_APIC_BASE: u32 = 0x1b;
    const X2APIC_ENABLE: u64 = 1 << 10;
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC.
    unsafe { super::instructions::rdmsr(IA32_APIC_BASE) & X2APIC_ENABLE != 0 }
}

fn end_of_interrupt() {
    if x2apic() {
        // SAFETY: x2APIC mode is on; EOI only retires the interrupt in service.
        unsafe { super::instructions::wrmsr(X2APIC_EOI, 0) };
    } else {
        // SAFETY: the xAPIC page is identity-mapped; writing EOI only
        // retires the interrupt in service.
        unsafe { core::ptr::write_volatile((XAPIC_BASE + XAPIC_EOI) as *mut u32, 0) };
    }
}

/// Makes sure the local APIC accepts interrupts (xAPIC mode: software
/// enable in the spurious-vector register; x2APIC: the host timer did it).
pub fn enable_local_apic() {
    if x2apic() {
        return;
    }
    let register = (XAPIC_BASE + XAPIC_SPURIOUS) as *mut u32;
    // SAFETY: the xAPIC page is identity-mapped; only the enable bit and
    // the spurious vector (0xff, whose handler needs no EOI) change.
    unsafe {
        let value = core::ptr::read_volatile(register);
        core::ptr::write_volatile(register, value | APIC_SOFTWARE_ENABLE | 0xff);
    }
}

/// This CPU's local APIC ID (where its interrupts are sent).
pub fn local_apic_id() -> u32 {
    const X2APIC_ID: u32 = 0x802;
    const XAPIC_ID: u64 = 0x20;
    if x2apic() {
        // SAFETY: the x2APIC ID MSR exists in x2APIC mode.
        unsafe { super::instructions::rdmsr(X2APIC_ID) as u32 }
    } else {
        // SAFETY: the xAPIC page is identity-mapped; the ID register reads
        // without side effects.
        unsafe { core::ptr::read_volatile((XAPIC_BASE + XAPIC_ID) as *const u32) >> 24 }
    }
}

/// How many interrupts arrived on `vector` so far.
pub fn arrivals(vector: u8) -> u64 {
    vector
        .checked_sub(FIRST_VECTOR)
        .and_then(|index| ARRIVALS.get(usize::from(index)))
        .map_or(0, |count| count.load(Ordering::Relaxed))
}

/// Takes interrupts until one more than `seen` arrived on `vector` or the
/// TSC reaches `deadline`; interrupts are off again afterwards.
pub fn wait_for(vector: u8, seen: u64, deadline: u64) -> bool {
    loop {
        // SAFETY: handlers for every vector Keel programs are installed;
        // the window lets pending interrupts in, then closes.
        unsafe { asm!("sti", "nop", "nop", "cli", options(nomem, nostack)) };
        if arrivals(vector) > seen {
            return true;
        }
        if super::tsc::read() >= deadline {
            return false;
        }
        core::hint::spin_loop();
    }
}

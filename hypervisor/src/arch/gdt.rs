//! The host GDT and TSS. VMX requires a non-null host TR, so every CPU needs
//! its own TSS even though Keel never switches privilege levels.

use core::arch::asm;
use core::mem::size_of;

pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;
pub const TSS_SELECTOR: u16 = 0x18;

/// The 64-bit TSS (Intel SDM vol. 3A §8.7). Only IST1 is used: a known-good
/// stack for double faults.
#[repr(C, packed(4))]
pub struct TaskStateSegment {
    reserved0: u32,
    privilege_stacks: [u64; 3],
    reserved1: u64,
    interrupt_stacks: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    io_map_base: u16,
}

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);

static mut DOUBLE_FAULT_STACK: Stack = Stack([0; 16 * 1024]);

static mut TSS: TaskStateSegment = TaskStateSegment {
    reserved0: 0,
    privilege_stacks: [0; 3],
    reserved1: 0,
    interrupt_stacks: [0; 7],
    reserved2: 0,
    reserved3: 0,
    io_map_base: size_of::<TaskStateSegment>() as u16,
};

static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// What the VMCS host-state area needs to know about the host descriptors.
#[derive(Clone, Copy)]
pub struct HostDescriptors {
    pub gdt_base: u64,
    pub tss_base: u64,
}

/// Loads the GDT and TSS on the boot CPU. Call once, before VMX is enabled.
pub fn init() -> HostDescriptors {
    let tss_base = core::ptr::addr_of!(TSS) as u64;
    let tss_limit = size_of::<TaskStateSegment>() as u64 - 1;
    let gdt_base = core::ptr::addr_of!(GDT) as u64;
    // SAFETY: runs once on the boot CPU before anything else reads the GDT or
    // TSS statics, so the writes cannot race; the descriptors follow the SDM
    // layout for an available 64-bit TSS (type 9, present).
    unsafe {
        let stack_top = core::ptr::addr_of!(DOUBLE_FAULT_STACK) as u64 + size_of::<Stack>() as u64;
        (*core::ptr::addr_of_mut!(TSS)).interrupt_stacks[0] = stack_top;
        let low = (tss_limit & 0xffff)
            | ((tss_base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((tss_limit >> 16) & 0xf) << 48)
            | (((tss_base >> 24) & 0xff) << 56);
        let gdt = &mut *core::ptr::addr_of_mut!(GDT);
        gdt[3] = low;
        gdt[4] = tss_base >> 32;
        let pointer = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt_base,
        };
        asm!(
            "lgdt [{pointer}]",
            "push {code}",
            "lea {scratch}, [rip + 2f]",
            "push {scratch}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            code = in(reg) u64::from(CODE_SELECTOR),
            data = in(reg) u64::from(DATA_SELECTOR),
            tss = in(reg) u64::from(TSS_SELECTOR),
            scratch = out(reg) _,
        );
    }
    HostDescriptors { gdt_base, tss_base }
}

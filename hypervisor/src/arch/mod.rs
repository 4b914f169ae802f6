//! The hardware-facing pieces of the x86-64 host: boot entry, descriptor
//! tables, exception reporting, port I/O and MSR access.

pub mod device_interrupts;
pub mod gdt;
pub mod host_timer;
pub mod idt;
pub mod instructions;
pub mod ioapic;
pub mod pci;
pub mod phys;
pub mod rtc;
pub mod stack_guard;
pub mod tsc;
pub mod unswitched;

core::arch::global_asm!(include_str!("boot.s"));

/// Where the host's descriptor tables live, for the VMCS host-state area.
#[derive(Clone, Copy)]
pub struct HostTables {
    pub gdt_base: u64,
    pub tss_base: u64,
    pub idt_base: u64,
}

/// Loads the GDT, TSS and IDT on the boot CPU and masks the legacy PIC:
/// Keel runs with interrupts off and polls, and a host interrupt taken as a
/// VM exit would otherwise stay unacknowledged in the PIC.
pub fn init() -> HostTables {
    let descriptors = gdt::init();
    let idt = idt::init();
    // SAFETY: writing the 8259 interrupt-mask registers only masks IRQ lines.
    unsafe {
        instructions::outb(0x21, 0xff);
        instructions::outb(0xa1, 0xff);
    }
    HostTables {
        gdt_base: descriptors.gdt_base,
        tss_base: descriptors.tss_base,
        idt_base: idt.base,
    }
}

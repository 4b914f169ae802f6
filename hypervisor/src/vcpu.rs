//! The vendor-neutral vCPU interface: what domain logic and exit handlers
//! see of a virtual CPU. The VMX backend (`vmx::VmxVcpu`) implements
//! [`Vcpu`]; an AMD-V backend would decode its own exits into the same
//! [`VcpuExit`] and implement the same trait, leaving exit handlers, device
//! models and domain logic untouched.

/// The guest's general-purpose registers that the CPU does not save on a VM
/// exit. RSP lives in the VMCS; its slot keeps the layout `vmx/entry.s` uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegisters {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub unused_rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// A port I/O instruction the guest executed (non-string form).
#[derive(Clone, Copy, Debug)]
pub struct PortAccess {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    pub write: bool,
}

/// What a guest did to an address the hypervisor has not mapped for it.
#[derive(Clone, Copy, Debug)]
pub struct MemoryFault {
    pub gpa: u64,
    pub read: bool,
    pub write: bool,
    pub fetch: bool,
    /// The access came from the CPU delivering an event (pushing an
    /// exception frame, reading the IDT), not from an instruction.
    pub during_event_delivery: bool,
    /// The CPU was reading the guest's own page tables there.
    pub guest_page_walk: bool,
}

impl MemoryFault {
    pub fn access_name(&self) -> &'static str {
        if self.fetch {
            "fetch"
        } else if self.write {
            "write"
        } else if self.read {
            "read"
        } else {
            "access"
        }
    }
}

/// Why the guest stopped running, decoded from the vendor's exit format.
#[derive(Clone, Copy, Debug)]
pub enum VcpuExit {
    Cpuid,
    Port(PortAccess),
    /// INVD or WBINVD: completed without flushing the host's caches.
    CacheFlush,
    /// INS/OUTS (with or without REP): Keel decodes and performs it.
    StringPort {
        port: u16,
        write: bool,
    },
    Hypercall,
    Halt,
    /// The vCPU's time slice (the VMX preemption timer) ran out.
    TimerTick,
    /// A host interrupt arrived while the guest ran.
    HostInterrupt,
    /// A host device's interrupt (for a guest that was assigned the
    /// device) arrived while the guest ran.
    DeviceInterrupt,
    MemoryFault(MemoryFault),
    /// RDMSR: the handler sets EDX:EAX or injects #GP.
    MsrRead {
        msr: u32,
    },
    /// WRMSR of EDX:EAX.
    MsrWrite {
        msr: u32,
        value: u64,
    },
    /// A write to a control-register bit the hypervisor owns (MOV to CR0/CR4,
    /// LMSW, CLTS) or to CR8, with the value the guest wants the register to hold.
    ControlRegisterWrite {
        cr: u8,
        value: u64,
    },
    /// MOV from CR8 (the task priority) into general-purpose register `gpr`
    /// (CR0/CR4 reads never exit: the guest reads their shadows).
    TaskPriorityRead {
        gpr: u8,
    },
    /// An instruction the guest may not execute here: raise this fault.
    Fault(GuestFault),
    /// XSETBV (XCR0 = EDX:EAX, index in ECX).
    Xsetbv,
    /// The guest can take an interrupt now (it asked for a window).
    InterruptWindow,
    /// An exception of the guest's own that Keel intercepted and reflected
    /// back to it (#DB, #AC): nothing left to do.
    GuestException,
    /// The guest triple-faulted: on a PC that resets the machine.
    TripleFault,
    /// An exit Keel does not handle; the domain is stopped.
    Unhandled {
        reason: &'static str,
        number: u32,
        qualification: u64,
    },
}

/// A fault to raise in the guest instead of completing its instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFault {
    InvalidOpcode,
    GeneralProtection,
    /// #PF at `linear` (the guest's CR2) with this error code.
    PageFault {
        linear: u64,
        error_code: u32,
    },
}

/// The VM entry itself failed: the guest never ran.
#[derive(Clone, Copy, Debug)]
pub enum EntryError {
    /// The VM-instruction error (VMfailValid) or VMfailInvalid, as text.
    Instruction(keel_vmx::VmInstructionError),
    NoCurrentVmcs,
    /// The CPU checked the guest state and refused it (exit reason 33/34/41).
    GuestState {
        reason: &'static str,
        qualification: u64,
    },
}

impl core::fmt::Display for EntryError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Instruction(error) => write!(f, "{error}"),
            Self::NoCurrentVmcs => f.write_str("VMfailInvalid (no current VMCS)"),
            Self::GuestState { reason, qualification } => {
                write!(f, "{reason} (qualification {qualification:#x})")
            }
        }
    }
}

/// Where a 64-bit guest starts: the state the Linux 64-bit boot protocol
/// (and Keel's built-in test guest) expects at entry.
#[derive(Clone, Copy, Debug)]
pub struct LongModeEntry {
    pub rip: u64,
    pub rsp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub state: keel_guest_loader::long_mode::LongModeState,
}

/// A virtual CPU as the exit handlers drive it. Only creating one is
/// vendor-specific.
pub trait Vcpu {
    /// Enters the guest and returns when it exits.
    fn run(&mut self) -> Result<VcpuExit, EntryError>;
    fn regs(&mut self) -> &mut GuestRegisters;
    /// A general-purpose register by its encoding number (4 is RSP).
    fn gpr(&self, number: usize) -> u64;
    fn set_gpr(&mut self, number: usize, value: u64);
    fn rip(&self) -> u64;
    /// Completes the instruction that caused the current exit.
    fn skip_instruction(&mut self);
    /// After one iteration of a REP string instruction Keel performs (RIP
    /// stays on it): the single-step #DB RFLAGS.TF asks for.
    fn single_step_iteration(&mut self);
    /// Completes an instruction of `len` bytes the hypervisor decoded itself.
    fn advance_rip(&mut self, len: u64);
    /// The guest's current privilege level.
    fn privilege_level(&self) -> u8;
    /// CR0, CR3, CR4 and EFER as the CPU uses them for the guest's paging.
    fn paging_registers(&self) -> (u64, u64, u64, u64);
    /// The mode the guest's code runs in (CR0.PE, EFER.LMA, CS.L/D).
    fn code_bitness(&self) -> keel_insn::mmio::CodeBitness;
    /// The base of a segment register (what a linear address adds to an
    /// offset through it; only FS and GS have one in 64-bit mode).
    fn segment_base(&self, segment: keel_insn::string::Segment) -> u64;
    fn rflags(&self) -> u64;
    /// RDMSR/WRMSR of IA32_SPEC_CTRL or IA32_PRED_CMD (`None` for others).
    fn speculation_msr_read(&self, msr: u32) -> Option<Result<u64, GuestFault>>;
    fn speculation_msr_write(&mut self, msr: u32, value: u64) -> Option<Result<(), GuestFault>>;
    /// Raises `fault` at the current instruction instead of completing it.
    fn inject_fault(&mut self, fault: GuestFault);
    /// Injects external interrupt `vector` if the guest can take it now.
    fn try_inject_interrupt(&mut self, vector: u8) -> bool;
    /// Asks for an exit as soon as the guest can take an interrupt.
    fn set_interrupt_window(&mut self, enabled: bool);
    fn interrupts_enabled(&self) -> bool;
    /// The guest's view of CR4.
    fn guest_cr4(&self) -> u64;
    /// MOV to CR0/CR4: checks `value` and makes it the guest's.
    fn set_control_register(&mut self, cr: u8, value: u64) -> Result<(), GuestFault>;
    fn efer(&self) -> u64;
    fn set_efer(&mut self, value: u64) -> Result<(), GuestFault>;
    /// Makes the guest exit at the end of its time slice or at `deadline_tsc`
    /// (in the guest's TSC).
    fn arm_timer(&mut self, deadline_tsc: Option<u64>);
    /// Drops the CPU's cached guest-physical translations (after an EPT
    /// mapping was removed or moved).
    fn flush_guest_mappings(&mut self);
    /// Starts a time slice of `slice_tsc` TSC cycles of guest time.
    fn start_slice(&mut self, slice_tsc: u64);
    /// Whether the current time slice is used up.
    fn slice_expired(&self) -> bool;
    /// CR8 for a guest without a local APIC.
    fn software_tpr(&self) -> u64;
    fn set_software_tpr(&mut self, value: u64);
    /// Guest time in TSC cycles, where the CPU can measure it.
    fn guest_tsc_cycles(&self) -> Option<u64>;
    /// Exit counts by reason name, for reasons that occurred.
    fn exit_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_;
}

//! Guest state the generic exit handlers change through the vCPU: control
//! registers and EFER, event injection, interrupt windows and halting.

use keel_vmx::caps::fixed_cr;
use keel_vmx::controls::PrimaryControls;
use keel_vmx::exit::{InterruptionInfo, InterruptionType};
use keel_vmx::VmcsField as F;

use keel_hypervisor::cr_policy;

use super::vcpu::{read, write, VmxVcpu};
use crate::vcpu::GuestFault;

const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_TF: u64 = 1 << 8;
/// Pending debug exceptions: single step (BS).
const PENDING_DEBUG_BS: u64 = 1 << 14;
/// Interruptibility: blocking by STI (bit 0) and by MOV SS (bit 1).
const BLOCKING_STI_OR_MOV_SS: u64 = 0b11;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// EFER bits a guest may set: SCE, LME, LMA (read-only), NXE.
const EFER_WRITABLE: u64 = 1 | EFER_LME | EFER_LMA | (1 << 11);

impl VmxVcpu {
    /// Raises `fault` in the guest at the current instruction.
    pub fn inject_fault(&mut self, fault: GuestFault) {
        // Real mode (CR0.PE clear) has no error codes.
        let protected_mode = read(F::GuestCr0) & 1 != 0;
        let (vector, error_code) = match fault {
            GuestFault::InvalidOpcode => (6, None),
            GuestFault::GeneralProtection => (13, Some(0).filter(|_| protected_mode)),
            GuestFault::PageFault { linear, error_code } => {
                // The guest's CR2 is live in the CPU while Keel serves its
                // exits (`arch::unswitched` switches it between domains).
                crate::arch::instructions::write_cr2(linear);
                (14, Some(u64::from(error_code)))
            }
        };
        let info = InterruptionInfo::injection(vector, InterruptionType::HardwareException, error_code.is_some());
        write(F::EntryInterruptionInfo, u64::from(info.to_raw()));
        if let Some(code) = error_code {
            write(F::EntryExceptionErrorCode, code);
        }
    }

    /// Injects external interrupt `vector` if the guest can take it now
    /// (RFLAGS.IF set, no STI/MOV-SS shadow, nothing else being injected).
    pub fn try_inject_interrupt(&mut self, vector: u8) -> bool {
        let pending = InterruptionInfo::from_raw(read(F::EntryInterruptionInfo) as u32);
        if pending.valid
            || read(F::GuestRflags) & RFLAGS_IF == 0
            || read(F::GuestInterruptibility) & BLOCKING_STI_OR_MOV_SS != 0
        {
            return false;
        }
        write(
            F::EntryInterruptionInfo,
            u64::from(InterruptionInfo::external_interrupt(vector).to_raw()),
        );
        true
    }

    /// Asks for an exit as soon as the guest can take an interrupt.
    pub fn set_interrupt_window(&mut self, enabled: bool) {
        let mut controls = PrimaryControls::from_bits_retain(read(F::PrimaryProcessorControls) as u32);
        controls.set(PrimaryControls::INTERRUPT_WINDOW_EXITING, enabled);
        write(F::PrimaryProcessorControls, u64::from(controls.bits()));
    }

    /// Whether the guest has interrupts enabled (RFLAGS.IF).
    pub fn interrupts_enabled(&self) -> bool {
        read(F::GuestRflags) & RFLAGS_IF != 0
    }

    /// Whether the guest executes 64-bit code (IA-32e mode and CS.L).
    fn in_64bit_code(&self) -> bool {
        const CS_L: u64 = 1 << 13;
        self.efer() & EFER_LMA != 0 && read(F::GuestCsAccessRights) & CS_L != 0
    }

    /// The guest's view of CR4 (its read shadow).
    pub fn guest_cr4(&self) -> u64 {
        read(F::Cr4ReadShadow)
    }

    /// Sets CR0 or CR4 to the value the guest asked for: the guest sees its
    /// value through the read shadow while the CPU runs with VMX's fixed
    /// bits applied. Bits VMX does not allow at all raise #GP.
    pub fn set_control_register(&mut self, cr: u8, value: u64) -> Result<(), GuestFault> {
        let (fixed0, fixed1, guest, shadow) = match cr {
            0 => (self.cr0_fixed0, self.cr0_fixed1, F::GuestCr0, F::Cr0ReadShadow),
            4 => (self.cr4_fixed0, self.cr4_fixed1, F::GuestCr4, F::Cr4ReadShadow),
            _ => return Err(GuestFault::GeneralProtection),
        };
        let valid = match cr {
            0 => cr_policy::cr0_valid(value, self.in_64bit_code()),
            _ => cr_policy::cr4_valid(value, self.cr4_allowed, self.efer()),
        };
        if value & !fixed1 != 0 || !valid {
            return Err(GuestFault::GeneralProtection);
        }
        write(shadow, value);
        write(guest, fixed_cr(value, fixed0, fixed1));
        Ok(())
    }

    /// Programs the preemption timer to fire at the end of the time slice or
    /// at `deadline_tsc` (the guest's TSC), whichever comes first.
    pub fn arm_timer(&mut self, deadline_tsc: Option<u64>) {
        let mut ticks = self.slice_ticks_left();
        if let Some(deadline) = deadline_tsc.map(|guest| guest.wrapping_sub(self.tsc_offset)) {
            let now = crate::arch::tsc::read();
            // Never below the minimum: a guest whose timer is always due
            // (a one-tick periodic APIC timer) must still make progress.
            let until_deadline = (deadline.saturating_sub(now) >> self.preemption_rate).max(self.min_timer_ticks);
            ticks = ticks.min(until_deadline);
        }
        write(F::PreemptionTimerValue, ticks);
        self.timer_at_entry = ticks;
    }

    pub fn efer(&self) -> u64 {
        read(F::GuestIa32Efer)
    }

    /// WRMSR to EFER: only architecturally writable bits; LMA stays as the
    /// CPU computed it.
    pub fn set_efer(&mut self, value: u64) -> Result<(), GuestFault> {
        if value & !EFER_WRITABLE != 0 {
            return Err(GuestFault::GeneralProtection);
        }
        let current = self.efer();
        if (value ^ current) & EFER_LME != 0 && read(F::GuestCr0) & (1 << 31) != 0 {
            return Err(GuestFault::GeneralProtection);
        }
        write(F::GuestIa32Efer, (value & !EFER_LMA) | (current & EFER_LMA));
        Ok(())
    }

    /// Re-queues an event whose delivery a VM exit interrupted (IDT-vectoring
    /// information), so the guest does not lose it; returns whether there was one.
    pub(super) fn reinject_interrupted_event(&mut self) -> bool {
        let raw = read(F::IdtVectoringInfo) as u32;
        let info = InterruptionInfo::from_raw(raw);
        if !info.valid {
            return false;
        }
        write(F::EntryInterruptionInfo, u64::from(raw & !(1 << 12)));
        if info.error_code_valid {
            write(F::EntryExceptionErrorCode, read(F::IdtVectoringErrorCode));
        }
        if info.kind.needs_instruction_length() {
            write(F::EntryInstructionLength, read(F::ExitInstructionLength));
        }
        true
    }

    /// A general-purpose register by its encoding number (RSP from the VMCS).
    pub fn gpr(&self, number: usize) -> u64 {
        if number == 4 {
            return read(F::GuestRsp);
        }
        let regs = self.registers();
        [
            regs.rax, regs.rcx, regs.rdx, regs.rbx, 0, regs.rbp, regs.rsi, regs.rdi, regs.r8, regs.r9, regs.r10,
            regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
        ]
        .get(number)
        .copied()
        .unwrap_or(0)
    }

    /// Sets a general-purpose register by its encoding number.
    pub fn set_gpr(&mut self, number: usize, value: u64) {
        let regs = self.regs();
        let slot = match number {
            0 => &mut regs.rax,
            1 => &mut regs.rcx,
            2 => &mut regs.rdx,
            3 => &mut regs.rbx,
            4 => return write(F::GuestRsp, value),
            5 => &mut regs.rbp,
            6 => &mut regs.rsi,
            7 => &mut regs.rdi,
            8 => &mut regs.r8,
            9 => &mut regs.r9,
            10 => &mut regs.r10,
            11 => &mut regs.r11,
            12 => &mut regs.r12,
            13 => &mut regs.r13,
            14 => &mut regs.r14,
            15 => &mut regs.r15,
            _ => return,
        };
        *slot = value;
    }

    /// CR0, CR3, CR4 and EFER as the CPU uses them for the guest's paging.
    pub fn paging_registers(&self) -> (u64, u64, u64, u64) {
        (
            read(F::GuestCr0),
            read(F::GuestCr3),
            read(F::GuestCr4),
            read(F::GuestIa32Efer),
        )
    }

    pub fn code_bitness(&self) -> keel_insn::mmio::CodeBitness {
        keel_insn::mmio::CodeBitness::from_guest(
            read(F::GuestCr0),
            read(F::GuestIa32Efer),
            read(F::GuestRflags),
            read(F::GuestCsAccessRights),
        )
    }

    pub fn segment_base(&self, segment: keel_insn::string::Segment) -> u64 {
        use keel_insn::string::Segment;
        read(match segment {
            Segment::Es => F::GuestEsBase,
            Segment::Cs => F::GuestCsBase,
            Segment::Ss => F::GuestSsBase,
            Segment::Ds => F::GuestDsBase,
            Segment::Fs => F::GuestFsBase,
            Segment::Gs => F::GuestGsBase,
        })
    }

    pub fn rflags(&self) -> u64 {
        read(F::GuestRflags)
    }

    /// One iteration of a REP string instruction Keel performed while
    /// RFLAGS.TF is set: the CPU would raise a single-step #DB after it,
    /// with RIP still on the instruction.
    pub fn single_step_iteration(&mut self) {
        if read(F::GuestRflags) & RFLAGS_TF != 0 {
            write(
                F::GuestPendingDebugExceptions,
                read(F::GuestPendingDebugExceptions) | PENDING_DEBUG_BS,
            );
        }
    }

    /// Moves RIP past an instruction the hypervisor decoded itself.
    /// Completing an instruction also ends an STI or MOV-SS shadow it sat in.
    pub fn advance_rip(&mut self, len: u64) {
        write(F::GuestRip, read(F::GuestRip).wrapping_add(len));
        let interruptibility = read(F::GuestInterruptibility);
        if interruptibility & BLOCKING_STI_OR_MOV_SS != 0 {
            write(F::GuestInterruptibility, interruptibility & !BLOCKING_STI_OR_MOV_SS);
        }
        // An instruction completed with RFLAGS.TF set ends in a single-step
        // #DB; Keel completed it, so it tells the CPU to raise that trap
        // right after the next VM entry (pending debug exception BS).
        if read(F::GuestRflags) & RFLAGS_TF != 0 {
            write(
                F::GuestPendingDebugExceptions,
                read(F::GuestPendingDebugExceptions) | PENDING_DEBUG_BS,
            );
        }
    }
}

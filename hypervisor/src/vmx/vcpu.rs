//! A vCPU on a VMCS: VM entry, exit decoding into [`VcpuExit`], register
//! access. The exit path is the hot path: decode with as few VMREADs as the
//! exit kind needs and return to the generic handlers.

use keel_hypervisor::speculation::{Mitigations, IA32_PRED_CMD, IA32_SPEC_CTRL};
use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};
use keel_vmx::caps::ControlKind;
use keel_vmx::controls::ExitControls;
use keel_vmx::exit::{
    CrAccess, CrAccessType, EptViolation, InterruptionInfo, InterruptionType, IoDirection, IoQualification,
};
use keel_vmx::instructions::{invept, invvpid, vmclear, vmptrld, InveptKind, InvvpidKind};
use keel_vmx::{ExitInfo, ExitReason, VmFail, VmInstructionError, VmcsField as F};

use super::vmcs::{self, FieldError, VmcsResources};
pub(super) use super::vmcs_access::{read, write};
use super::{allocate_vmx_region, VmxCpu};
use crate::memory;
use crate::vcpu::{EntryError, GuestFault, GuestRegisters, LongModeEntry, MemoryFault, PortAccess, VcpuExit};

core::arch::global_asm!(include_str!("entry.s"));

/// Shared with `entry.s`: guest registers, then the cached HOST_RSP and
/// whether VMLAUNCH already happened.
#[repr(C)]
struct RunState {
    regs: GuestRegisters,
    host_rsp: u64,
    launched: u64,
    /// What `keel_vmx_run` does right before entering and after exiting:
    /// [`ENTRY_L1D_FLUSH`], [`ENTRY_VERW`], [`ENTRY_SPEC_CTRL`].
    entry_flags: u64,
    /// The guest's IA32_SPEC_CTRL, loaded around its entries while
    /// [`ENTRY_SPEC_CTRL`] is set (Keel's own value is zero).
    spec_ctrl: u64,
}

/// Flush the L1 data cache (IA32_FLUSH_CMD) before each VM entry.
const ENTRY_L1D_FLUSH: u64 = 1 << 0;
/// Clear the CPU's buffers (VERW) before each VM entry.
const ENTRY_VERW: u64 = 1 << 1;
/// Load the guest's SPEC_CTRL before entry and zero it after the exit.
const ENTRY_SPEC_CTRL: u64 = 1 << 2;

const IO_BITMAPS_SIZE: u64 = 2 * PAGE_SIZE_4K;
const DEBUG_VECTOR: u8 = 1;
const ALIGNMENT_CHECK_VECTOR: u8 = 17;
const MACHINE_CHECK_VECTOR: u8 = 18;

#[derive(Debug)]
pub enum VcpuError {
    OutOfMemory,
    Vmptrld(VmFail),
    Field(FieldError),
    Invalidate(&'static str, VmFail),
}

impl core::fmt::Display for VcpuError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of memory for the VMCS and bitmaps"),
            Self::Vmptrld(fail) => write!(f, "VMPTRLD failed: {fail:?}"),
            Self::Field(error) => write!(f, "VMWRITE of {} failed: {:?}", error.field.name(), error.fail),
            Self::Invalidate(what, fail) => write!(f, "{what} failed: {fail:?}"),
        }
    }
}

pub struct VmxVcpu {
    state: RunState,
    vmcs: HostPhysAddr,
    io_bitmaps: HostPhysAddr,
    msr_bitmap: HostPhysAddr,
    exit_counts: [u64; ExitReason::COUNT],
    /// Preemption-timer ticks in one time slice; re-armed when it expires
    /// (the timer value is saved on exit, so slices span exits).
    pub(super) time_slice: u64,
    pub(super) preemption_rate: u8,
    /// The shortest timer Keel arms, in preemption-timer ticks.
    pub(super) min_timer_ticks: u64,
    /// CR8 of a guest without a local APIC (the test guests).
    pub(super) cr8: u64,
    /// Guest TSC minus host TSC (the VMCS TSC offset).
    pub(super) tsc_offset: u64,
    mitigations: Mitigations,
    /// Preemption-timer value at the last VM entry; the timer counts only
    /// while the guest runs, so what it lost by the next exit is guest time.
    pub(super) timer_at_entry: u64,
    /// Guest time so far, in preemption-timer ticks.
    guest_timer_ticks: u64,
    /// `guest_timer_ticks` at which the current time slice ends: the timer
    /// is never armed past it, so nothing the guest does extends its slice.
    slice_end_ticks: u64,
    /// Whether VM exits save the remaining timer value.
    saves_timer: bool,
    pub(super) cr0_fixed0: u64,
    pub(super) cr0_fixed1: u64,
    pub(super) cr4_fixed0: u64,
    pub(super) cr4_fixed1: u64,
    pub(super) cr4_allowed: u64,
}

impl VmxVcpu {
    /// Creates the vCPU's VMCS (left current on this CPU) for a 64-bit guest.
    /// `time_slice_tsc` is how long the guest runs, in TSC cycles, before
    /// Keel looks at its timers and console again (a VMX-preemption-timer exit).
    pub fn new(
        cpu: &VmxCpu,
        entry: &LongModeEntry,
        eptp: u64,
        vpid: u16,
        time_slice_tsc: u64,
        tsc_offset: u64,
    ) -> Result<Self, VcpuError> {
        let vmcs = allocate_vmx_region(cpu.revision_id()).ok_or(VcpuError::OutOfMemory)?;
        let Some(io_bitmaps) = memory::allocate_zeroed(IO_BITMAPS_SIZE, PAGE_SIZE_4K) else {
            memory::free(vmcs, PAGE_SIZE_4K);
            return Err(VcpuError::OutOfMemory);
        };
        let Some(msr_bitmap) = memory::allocate_zeroed(PAGE_SIZE_4K, PAGE_SIZE_4K) else {
            memory::free(vmcs, PAGE_SIZE_4K);
            memory::free(io_bitmaps, IO_BITMAPS_SIZE);
            return Err(VcpuError::OutOfMemory);
        };
        // Every port and MSR exits until a device model claims it.
        // SAFETY: both blocks were just allocated to this vCPU and are identity-mapped.
        unsafe {
            memory::block_bytes(io_bitmaps, IO_BITMAPS_SIZE).fill(0xff);
            memory::block_bytes(msr_bitmap, PAGE_SIZE_4K).fill(0xff);
        }
        let regs = GuestRegisters {
            rdi: entry.rdi,
            rsi: entry.rsi,
            ..GuestRegisters::default()
        };
        let mut vcpu = Self {
            state: RunState {
                regs,
                host_rsp: 0,
                launched: 0,
                entry_flags: entry_flags(&cpu.mitigations),
                spec_ctrl: 0,
            },
            vmcs,
            io_bitmaps,
            msr_bitmap,
            exit_counts: [0; ExitReason::COUNT],
            time_slice: cpu
                .misc
                .tsc_to_preemption_ticks(time_slice_tsc)
                .max(1)
                .min(u64::from(u32::MAX)),
            preemption_rate: cpu.misc.preemption_timer_rate,
            min_timer_ticks: (cpu.misc.tsc_to_preemption_ticks(time_slice_tsc) / 20).max(1),
            cr8: 0,
            tsc_offset,
            mitigations: cpu.mitigations,
            timer_at_entry: 0,
            guest_timer_ticks: 0,
            slice_end_ticks: 0,
            saves_timer: cpu
                .caps
                .allowed_controls(ControlKind::Exit)
                .supports(ExitControls::SAVE_PREEMPTION_TIMER.bits()),
            cr0_fixed0: vmcs::guest_cr0_fixed0(cpu),
            cr0_fixed1: cpu.caps.cr0_fixed1,
            cr4_fixed0: cpu.caps.cr4_fixed0,
            cr4_fixed1: cpu.caps.cr4_fixed1,
            cr4_allowed: cpu.cr4_allowed,
        };
        // Creating a vCPU loads its VMCS; whichever vCPU was being served
        // (Dom0, when the management interface creates a domain) must find
        // its own VMCS current again afterwards.
        let previous = super::current_vmcs();
        // Dropping `vcpu` on the error paths below would leak; destroy() frees.
        let result = vcpu.initialize(cpu, entry, eptp, vpid);
        super::restore_current_vmcs(previous);
        match result {
            Ok(()) => Ok(vcpu),
            Err(error) => {
                vcpu.destroy();
                Err(error)
            }
        }
    }

    /// Makes this vCPU's VMCS the current one on this CPU (VMPTRLD when it
    /// is not already): every VMREAD/VMWRITE of the exit path acts on it.
    pub fn make_current(&mut self) -> Result<(), VcpuError> {
        if super::current_vmcs() != Some(self.vmcs) {
            // SAFETY: in VMX root operation; the VMCS frame belongs to this
            // vCPU and was initialized (VMCLEAR) when it was created.
            unsafe { vmptrld(self.vmcs.as_u64()) }.map_err(VcpuError::Vmptrld)?;
            super::set_current_vmcs(Some(self.vmcs));
        }
        Ok(())
    }

    /// INVEPT of this vCPU's EPT tables.
    pub fn flush_guest_mappings(&mut self) {
        // SAFETY: single-context INVEPT support was checked at VMXON; the
        // EPT pointer is this vCPU's own.
        if let Err(fail) = unsafe { invept(InveptKind::SingleContext, read(F::EptPointer)) } {
            log::error!("INVEPT failed ({fail:?})");
        }
    }

    /// Starts a time slice of `slice_tsc` TSC cycles of guest time.
    pub fn start_slice(&mut self, slice_tsc: u64) {
        let ticks = (slice_tsc >> self.preemption_rate).clamp(1, u64::from(u32::MAX));
        self.slice_end_ticks = self.guest_timer_ticks + ticks;
    }

    /// Whether the current time slice is used up.
    pub fn slice_expired(&self) -> bool {
        self.guest_timer_ticks >= self.slice_end_ticks
    }

    /// Preemption-timer ticks left in the current slice (at least 1).
    pub(super) fn slice_ticks_left(&self) -> u64 {
        self.slice_end_ticks.saturating_sub(self.guest_timer_ticks).max(1)
    }

    fn initialize(&mut self, cpu: &VmxCpu, entry: &LongModeEntry, eptp: u64, vpid: u16) -> Result<(), VcpuError> {
        // SAFETY: in VMX root operation; the VMCS frame holds the revision
        // id and belongs to this vCPU for its whole life.
        unsafe {
            vmclear(self.vmcs.as_u64()).map_err(VcpuError::Vmptrld)?;
            vmptrld(self.vmcs.as_u64()).map_err(VcpuError::Vmptrld)?;
        }
        super::set_current_vmcs(Some(self.vmcs));
        let resources = VmcsResources {
            io_bitmaps: self.io_bitmaps.as_u64(),
            msr_bitmap: self.msr_bitmap.as_u64(),
            eptp,
            vpid,
            preemption_timer: self.time_slice as u32,
            tsc_offset: self.tsc_offset,
        };
        vmcs::configure(cpu, entry, &resources).map_err(VcpuError::Field)?;
        self.timer_at_entry = self.time_slice;
        self.slice_end_ticks = self.time_slice;
        // The EPT root and VPID may have belonged to an earlier domain: drop
        // any translations the CPU still caches for them.
        // SAFETY: single-context INVEPT/INVVPID support was checked at VMXON.
        unsafe {
            invept(InveptKind::SingleContext, eptp).map_err(|fail| VcpuError::Invalidate("INVEPT", fail))?;
            invvpid(InvvpidKind::SingleContext, vpid, 0).map_err(|fail| VcpuError::Invalidate("INVVPID", fail))?;
        }
        Ok(())
    }

    /// Enters the guest and returns when it exits.
    pub fn run(&mut self) -> Result<VcpuExit, EntryError> {
        if super::current_vmcs() != Some(self.vmcs) {
            // A caller forgot make_current: entering would run another vCPU.
            return Err(EntryError::NoCurrentVmcs);
        }
        let status: u64;
        // SAFETY: the VMCS is current (new() loaded it and only one vCPU runs
        // on this CPU at a time); its host state points at keel_vmx_exit and
        // the RunState outlives the call. keel_vmx_run preserves only RBX,
        // RBP and RSP, so every other register is declared clobbered.
        unsafe {
            core::arch::asm!(
                "call keel_vmx_run",
                inout("rdi") &raw mut self.state => _,
                lateout("rax") status,
                lateout("rcx") _, lateout("rdx") _, lateout("rsi") _,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            );
        }
        if status != 0 {
            return Err(entry_failure(status));
        }
        let remaining = read(F::PreemptionTimerValue);
        self.guest_timer_ticks += self.timer_at_entry.saturating_sub(remaining);
        self.timer_at_entry = remaining;
        let raw = read(F::ExitReason) as u32;
        // Counted by the basic number itself (reserved numbers get unused
        // slots, larger ones share the last): cheaper than decoding first.
        let slot = usize::from(raw as u16).min(ExitReason::UNKNOWN_INDEX);
        if let Some(count) = self.exit_counts.get_mut(slot) {
            *count += 1;
        }
        let info = ExitInfo::from_raw(raw);
        let reason = info.reason;
        if info.entry_failure {
            return Err(EntryError::GuestState {
                reason: reason.name(),
                qualification: read(F::ExitQualification),
            });
        }
        // Exits caused by executing an instruction come after any event
        // delivery finished; the others may have interrupted one, which must
        // be delivered again (IDT-vectoring information).
        Ok(match reason {
            ExitReason::Cpuid => VcpuExit::Cpuid,
            ExitReason::Vmcall => VcpuExit::Hypercall,
            ExitReason::IoInstruction => decode_io(read(F::ExitQualification)),
            ExitReason::Hlt => VcpuExit::Halt,
            ExitReason::PreemptionTimer => {
                self.reinject_interrupted_event();
                // The rest of the slice (the scheduler ends an expired one
                // and starts the next); the platform re-arms for its
                // device deadlines before the next entry.
                let ticks = self.slice_ticks_left();
                write(F::PreemptionTimerValue, ticks);
                self.timer_at_entry = ticks;
                VcpuExit::TimerTick
            }
            ExitReason::ExternalInterrupt => {
                self.reinject_interrupted_event();
                // Acknowledged on exit: retire it at the host's APIC. A
                // device's interrupt is for a guest: the scheduler forwards it.
                let info = InterruptionInfo::from_raw(read(F::ExitInterruptionInfo) as u32);
                if crate::arch::device_interrupts::acknowledge(info.vector) {
                    VcpuExit::DeviceInterrupt
                } else {
                    VcpuExit::HostInterrupt
                }
            }
            ExitReason::EptViolation => {
                let during_event_delivery = self.reinject_interrupted_event();
                let violation = EptViolation::from_raw(read(F::ExitQualification));
                VcpuExit::MemoryFault(MemoryFault {
                    gpa: read(F::GuestPhysicalAddress),
                    read: violation.read,
                    write: violation.write,
                    fetch: violation.fetch,
                    during_event_delivery,
                    guest_page_walk: violation.guest_linear_valid && !violation.caused_by_translation,
                })
            }
            ExitReason::Mwait | ExitReason::Monitor => VcpuExit::Fault(GuestFault::InvalidOpcode),
            // INVD would throw away dirty cache lines of Keel and of every
            // other domain: both it and WBINVD complete without touching
            // the caches (guest RAM is write-back and no device writes it
            // behind the CPU's back).
            ExitReason::Invd | ExitReason::Wbinvd => VcpuExit::CacheFlush,
            ExitReason::Rdpmc => VcpuExit::Fault(GuestFault::GeneralProtection),
            ExitReason::ExceptionOrNmi => self.decode_exception_or_nmi(),
            ExitReason::Rdmsr => VcpuExit::MsrRead {
                msr: self.state.regs.rcx as u32,
            },
            ExitReason::Wrmsr => VcpuExit::MsrWrite {
                msr: self.state.regs.rcx as u32,
                value: (self.state.regs.rdx << 32) | (self.state.regs.rax & 0xffff_ffff),
            },
            ExitReason::CrAccess => self.decode_cr_access(read(F::ExitQualification)),
            ExitReason::Xsetbv => VcpuExit::Xsetbv,
            ExitReason::TripleFault => VcpuExit::TripleFault,
            ExitReason::InterruptWindow => {
                self.reinject_interrupted_event();
                self.set_interrupt_window(false);
                VcpuExit::InterruptWindow
            }
            other => {
                self.reinject_interrupted_event();
                VcpuExit::Unhandled {
                    reason: other.name(),
                    number: u32::from(other.number()),
                    qualification: read(F::ExitQualification),
                }
            }
        })
    }

    /// NMIs arrive here (NMI exiting), machine checks (the host's problem,
    /// never the guest's), and #DB and #AC, which Keel intercepts only so
    /// that their delivery cannot loop inside the CPU: it reflects them.
    fn decode_exception_or_nmi(&mut self) -> VcpuExit {
        let info = InterruptionInfo::from_raw(read(F::ExitInterruptionInfo) as u32);
        self.reinject_interrupted_event();
        match (info.kind, info.vector) {
            (InterruptionType::Nmi, _) => VcpuExit::HostInterrupt,
            (_, DEBUG_VECTOR) => {
                self.reflect_debug_exception(info);
                VcpuExit::GuestException
            }
            (_, ALIGNMENT_CHECK_VECTOR) => {
                // #AC always pushes an error code of 0. A fault during the
                // delivery of another event (benign class) is delivered
                // instead of it, as the CPU would.
                let injection =
                    InterruptionInfo::injection(ALIGNMENT_CHECK_VECTOR, InterruptionType::HardwareException, true);
                write(F::EntryInterruptionInfo, u64::from(injection.to_raw()));
                write(F::EntryExceptionErrorCode, 0);
                VcpuExit::GuestException
            }
            (_, MACHINE_CHECK_VECTOR) => {
                crate::arch::instructions::clear_machine_check_in_progress();
                VcpuExit::Unhandled {
                    reason: "machine-check",
                    number: 0,
                    qualification: u64::from(info.vector),
                }
            }
            (_, vector) => VcpuExit::Unhandled {
                reason: "exception",
                number: 0,
                qualification: u64::from(vector),
            },
        }
    }

    /// A #DB the guest raised: the exit saved its causes in the
    /// qualification instead of DR6, so put them in the guest's DR6 (live:
    /// Keel switches it per vCPU) and deliver the #DB as the CPU would have.
    fn reflect_debug_exception(&mut self, info: InterruptionInfo) {
        // B0-B3 (bits 3:0), BD (13), BS (14) and RTM (16, active low).
        const DR6_CAUSES: u64 = 0xf | (1 << 13) | (1 << 14);
        const DR6_RTM: u64 = 1 << 16;
        let qualification = read(F::ExitQualification);
        let dr6 = crate::arch::instructions::read_dr6();
        let updated = (dr6 & !(DR6_CAUSES | DR6_RTM)) | (qualification & DR6_CAUSES) | (!qualification & DR6_RTM);
        crate::arch::instructions::write_dr6(updated);
        // INT1 (ICEBP) is a privileged software exception: it needs the
        // instruction length to return past it.
        let kind = match info.kind {
            InterruptionType::PrivilegedSoftwareException => InterruptionType::PrivilegedSoftwareException,
            _ => InterruptionType::HardwareException,
        };
        let injection = InterruptionInfo::injection(DEBUG_VECTOR, kind, false);
        write(F::EntryInterruptionInfo, u64::from(injection.to_raw()));
        if kind.needs_instruction_length() {
            write(F::EntryInstructionLength, read(F::ExitInstructionLength));
        }
        // An instruction breakpoint is a fault: the guest's handler returns
        // to the same instruction, so the frame must carry RF=1 or the
        // breakpoint fires again forever (the CPU sets it when it delivers
        // the #DB itself).
        if instruction_breakpoint_hit(qualification, read(F::GuestDr7)) {
            const RFLAGS_RF: u64 = 1 << 16;
            write(F::GuestRflags, read(F::GuestRflags) | RFLAGS_RF);
        }
    }

    fn decode_cr_access(&self, qualification: u64) -> VcpuExit {
        let access = CrAccess::from_raw(qualification);
        if access.cr == 8 {
            return match access.access {
                CrAccessType::MovToCr => VcpuExit::ControlRegisterWrite {
                    cr: 8,
                    value: self.gpr(usize::from(access.gpr)),
                },
                CrAccessType::MovFromCr => VcpuExit::TaskPriorityRead { gpr: access.gpr },
                _ => VcpuExit::Unhandled {
                    reason: "cr-access",
                    number: 28,
                    qualification,
                },
            };
        }
        // The guest's view of CR0: its own bits from CR0, Keel's from the shadow.
        let guest_cr0 = || {
            let mask = read(F::Cr0GuestHostMask);
            (read(F::GuestCr0) & !mask) | (read(F::Cr0ReadShadow) & mask)
        };
        let value = match access.access {
            CrAccessType::MovToCr => self.gpr(usize::from(access.gpr)),
            // CLTS clears CR0.TS; LMSW loads CR0 bits 3:0 but cannot clear PE.
            CrAccessType::Clts => guest_cr0() & !(1 << 3),
            CrAccessType::Lmsw => {
                let old = guest_cr0();
                let source = u64::from(access.lmsw_source);
                (old & !0xe) | (source & 0xf) | (old & 1)
            }
            CrAccessType::MovFromCr => {
                return VcpuExit::Unhandled {
                    reason: "cr-access (read)",
                    number: 28,
                    qualification,
                };
            }
        };
        match access.cr {
            0 | 4 => VcpuExit::ControlRegisterWrite { cr: access.cr, value },
            _ => VcpuExit::Unhandled {
                reason: "cr-access",
                number: 28,
                qualification,
            },
        }
    }

    /// Time spent in the guest, in TSC cycles (to the timer's resolution);
    /// `None` when the CPU cannot save the timer value on exits.
    pub fn guest_tsc_cycles(&self) -> Option<u64> {
        self.saves_timer
            .then_some(self.guest_timer_ticks << self.preemption_rate)
    }

    pub(super) fn registers(&self) -> &GuestRegisters {
        &self.state.regs
    }

    pub fn regs(&mut self) -> &mut GuestRegisters {
        &mut self.state.regs
    }

    pub fn rip(&self) -> u64 {
        read(F::GuestRip)
    }

    /// Moves the guest past the instruction that caused the current exit.
    pub fn skip_instruction(&mut self) {
        self.advance_rip(read(F::ExitInstructionLength));
    }

    /// The guest's current privilege level (SS.DPL).
    pub fn privilege_level(&self) -> u8 {
        ((read(F::GuestSsAccessRights) >> 5) & 3) as u8
    }

    /// Lets the guest read and/or write `msr` without an exit. Only for MSRs
    /// whose guest value the CPU keeps apart from the host's (VMCS fields,
    /// or registers the hypervisor itself never uses).
    pub fn pass_through_msr(&mut self, msr: u32, read: bool, write: bool) {
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
            _ => return,
        };
        // SAFETY: the MSR bitmap page belongs to this vCPU.
        let bitmap = unsafe { memory::block_bytes(self.msr_bitmap, PAGE_SIZE_4K) };
        let byte = (index / 8) as usize;
        let bit = 1u8 << (index % 8);
        for (enabled, offset) in [(read, base), (write, base + 2048)] {
            if let Some(slot) = bitmap.get_mut(offset + byte).filter(|_| enabled) {
                *slot &= !bit;
            }
        }
    }

    /// Lets the guest use ports `first..first + count` without exits (an
    /// assigned device's registers).
    pub fn pass_through_ports(&mut self, first: u16, count: u16) {
        // SAFETY: the I/O bitmaps (A then B, 4 KiB each) belong to this vCPU.
        let bitmap = unsafe { memory::block_bytes(self.io_bitmaps, IO_BITMAPS_SIZE) };
        for port in first..first.saturating_add(count) {
            if let Some(byte) = bitmap.get_mut(usize::from(port / 8)) {
                *byte &= !(1 << (port % 8));
            }
        }
    }

    /// How many exits of `reason` this vCPU took.
    pub fn exit_count(&self, reason: ExitReason) -> u64 {
        self.exit_counts.get(usize::from(reason.number())).copied().unwrap_or(0)
    }

    /// Exits of every reason together.
    pub fn total_exits(&self) -> u64 {
        self.exit_counts.iter().sum()
    }

    /// Exit counts by reason name, for reasons that occurred.
    pub fn exit_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        // Slot n counts basic reason n; reserved and too-large numbers read
        // as "unknown".
        self.exit_counts
            .iter()
            .enumerate()
            .filter(|(_, &count)| count > 0)
            .map(|(slot, &count)| {
                let name = u16::try_from(slot).map_or("unknown", |number| ExitReason::from_basic(number).name());
                (name, count)
            })
    }

    /// Releases the VMCS and bitmaps.
    pub fn destroy(self) {
        // SAFETY: VMCLEAR flushes the VMCS out of the CPU so its frame can be reused.
        if let Err(fail) = unsafe { vmclear(self.vmcs.as_u64()) } {
            log::error!("VMCLEAR failed ({fail:?}); leaking the VMCS frame");
        } else {
            if super::current_vmcs() == Some(self.vmcs) {
                super::set_current_vmcs(None);
            }
            memory::free(self.vmcs, PAGE_SIZE_4K);
        }
        memory::free(self.io_bitmaps, IO_BITMAPS_SIZE);
        memory::free(self.msr_bitmap, PAGE_SIZE_4K);
    }
}

fn entry_flags(mitigations: &Mitigations) -> u64 {
    let mut flags = 0;
    if mitigations.l1d_flush_on_entry {
        flags |= ENTRY_L1D_FLUSH;
    }
    if mitigations.verw_on_entry {
        flags |= ENTRY_VERW;
    }
    flags
}

impl VmxVcpu {
    /// RDMSR of a speculation control: `None` for other MSRs.
    pub fn speculation_msr_read(&self, msr: u32) -> Option<Result<u64, GuestFault>> {
        match msr {
            IA32_SPEC_CTRL if self.mitigations.guest_spec_ctrl != 0 => Some(Ok(self.state.spec_ctrl)),
            // PRED_CMD is write-only.
            IA32_SPEC_CTRL | IA32_PRED_CMD => Some(Err(GuestFault::GeneralProtection)),
            _ => None,
        }
    }

    /// WRMSR of a speculation control: `None` for other MSRs.
    pub fn speculation_msr_write(&mut self, msr: u32, value: u64) -> Option<Result<(), GuestFault>> {
        match msr {
            IA32_SPEC_CTRL => Some(match self.mitigations.check_spec_ctrl(value) {
                Some(value) => {
                    // Only bits CPUID shows reach the MSR (entry.s).
                    self.state.spec_ctrl = value;
                    if value == 0 {
                        self.state.entry_flags &= !ENTRY_SPEC_CTRL;
                    } else {
                        self.state.entry_flags |= ENTRY_SPEC_CTRL;
                    }
                    Ok(())
                }
                None => Err(GuestFault::GeneralProtection),
            }),
            IA32_PRED_CMD => Some(match self.mitigations.check_pred_cmd(value) {
                Some(true) => {
                    crate::arch::instructions::indirect_branch_prediction_barrier();
                    Ok(())
                }
                Some(false) => Ok(()),
                None => Err(GuestFault::GeneralProtection),
            }),
            _ => None,
        }
    }
}

/// Whether a #DB's causes (`qualification` bits 3:0) include a breakpoint
/// that DR7 configures as an instruction breakpoint (R/W bits 00).
fn instruction_breakpoint_hit(qualification: u64, dr7: u64) -> bool {
    (0..4).any(|index| qualification & (1 << index) != 0 && (dr7 >> (16 + 4 * index)) & 0b11 == 0)
}

fn decode_io(qualification: u64) -> VcpuExit {
    match IoQualification::from_raw(qualification) {
        Ok(io) if !io.string => VcpuExit::Port(PortAccess {
            port: io.port,
            size: io.size,
            write: io.direction == IoDirection::Out,
        }),
        Ok(io) => VcpuExit::StringPort {
            port: io.port,
            write: io.direction == IoDirection::Out,
        },
        Err(_) => VcpuExit::Unhandled {
            reason: "io (malformed qualification)",
            number: 30,
            qualification,
        },
    }
}

fn entry_failure(status: u64) -> EntryError {
    if status == 1 {
        return EntryError::NoCurrentVmcs;
    }
    EntryError::Instruction(VmInstructionError::from_u32(read(F::VmInstructionError) as u32))
}

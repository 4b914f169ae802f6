//! A vCPU on a VMCS: VM entry, exit decoding into [`VcpuExit`], register
//! access. The exit path is the hot path: decode with as few VMREADs as the
//! exit kind needs and return to the generic handlers.

use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};
use keel_vmx::exit::{EptViolation, IoDirection, IoQualification};
use keel_vmx::instructions::{invept, invvpid, vmclear, vmptrld, vmread, vmwrite, InveptKind, InvvpidKind};
use keel_vmx::{ExitInfo, ExitReason, VmFail, VmInstructionError, VmcsField as F};

use super::vmcs::{self, FieldError, VmcsResources};
use super::{allocate_vmx_region, VmxCpu};
use crate::memory;
use crate::vcpu::{EntryError, GuestRegisters, LongModeEntry, MemoryFault, PortAccess, VcpuExit};

core::arch::global_asm!(include_str!("entry.s"));

/// Shared with `entry.s`: guest registers, then the cached HOST_RSP and
/// whether VMLAUNCH already happened.
#[repr(C)]
struct RunState {
    regs: GuestRegisters,
    host_rsp: u64,
    launched: u64,
}

extern "C" {
    fn keel_vmx_run(state: *mut RunState) -> u64;
}

const IO_BITMAPS_SIZE: u64 = 2 * PAGE_SIZE_4K;
/// VMX-preemption-timer slice, in TSC cycles (about 1 ms at 2 GHz; on Bochs
/// the TSC counts instructions, so it is 2 million guest instructions).
const TIME_SLICE_TSC: u64 = 2_000_000;

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
    time_slice: u64,
}

impl VmxVcpu {
    /// Creates the vCPU's VMCS (left current on this CPU) for a 64-bit guest.
    pub fn new(cpu: &VmxCpu, entry: &LongModeEntry, eptp: u64, vpid: u16) -> Result<Self, VcpuError> {
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
        let mut regs = GuestRegisters::default();
        regs.rdi = entry.rdi;
        regs.rsi = entry.rsi;
        let vcpu = Self {
            state: RunState { regs, host_rsp: 0, launched: 0 },
            vmcs,
            io_bitmaps,
            msr_bitmap,
            exit_counts: [0; ExitReason::COUNT],
            time_slice: cpu.misc.tsc_to_preemption_ticks(TIME_SLICE_TSC).min(u64::from(u32::MAX)),
        };
        // Dropping `vcpu` on the error paths below would leak; destroy() frees.
        match vcpu.initialize(cpu, entry, eptp, vpid) {
            Ok(()) => Ok(vcpu),
            Err(error) => {
                vcpu.destroy();
                Err(error)
            }
        }
    }

    fn initialize(&self, cpu: &VmxCpu, entry: &LongModeEntry, eptp: u64, vpid: u16) -> Result<(), VcpuError> {
        // SAFETY: in VMX root operation; the VMCS frame holds the revision
        // id and belongs to this vCPU for its whole life.
        unsafe {
            vmclear(self.vmcs.as_u64()).map_err(VcpuError::Vmptrld)?;
            vmptrld(self.vmcs.as_u64()).map_err(VcpuError::Vmptrld)?;
        }
        let resources = VmcsResources {
            io_bitmaps: self.io_bitmaps.as_u64(),
            msr_bitmap: self.msr_bitmap.as_u64(),
            eptp,
            vpid,
            preemption_timer: self.time_slice as u32,
        };
        vmcs::configure(cpu, entry, &resources).map_err(VcpuError::Field)?;
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
        // SAFETY: the VMCS is current (new() loaded it and only one vCPU runs
        // on this CPU at a time); its host state points at keel_vmx_exit and
        // the RunState outlives the call.
        let status = unsafe { keel_vmx_run(&mut self.state) };
        if status != 0 {
            return Err(entry_failure(status));
        }
        let info = ExitInfo::from_raw(read(F::ExitReason) as u32);
        let reason = info.reason;
        if let Some(count) = self.exit_counts.get_mut(reason.index()) {
            *count += 1;
        }
        if info.entry_failure {
            return Err(EntryError::GuestState { reason: reason.name(), qualification: read(F::ExitQualification) });
        }
        Ok(match reason {
            ExitReason::Cpuid => VcpuExit::Cpuid,
            ExitReason::Vmcall => VcpuExit::Hypercall,
            ExitReason::IoInstruction => decode_io(read(F::ExitQualification)),
            ExitReason::Hlt => VcpuExit::Halt,
            ExitReason::PreemptionTimer => {
                write(F::PreemptionTimerValue, self.time_slice);
                VcpuExit::TimerTick
            }
            ExitReason::ExternalInterrupt => VcpuExit::HostInterrupt,
            ExitReason::EptViolation => {
                let violation = EptViolation::from_raw(read(F::ExitQualification));
                VcpuExit::MemoryFault(MemoryFault {
                    gpa: read(F::GuestPhysicalAddress),
                    read: violation.read,
                    write: violation.write,
                    fetch: violation.fetch,
                })
            }
            other => VcpuExit::Unhandled {
                reason: other.name(),
                number: u32::from(other.number()),
                qualification: read(F::ExitQualification),
            },
        })
    }

    pub fn regs(&mut self) -> &mut GuestRegisters {
        &mut self.state.regs
    }

    pub fn rip(&self) -> u64 {
        read(F::GuestRip)
    }

    /// Moves the guest past the instruction that caused the current exit.
    pub fn skip_instruction(&mut self) {
        let next = read(F::GuestRip).wrapping_add(read(F::ExitInstructionLength));
        write(F::GuestRip, next);
    }

    /// The guest's current privilege level (SS.DPL).
    pub fn privilege_level(&self) -> u8 {
        ((read(F::GuestSsAccessRights) >> 5) & 3) as u8
    }

    /// Exit counts by reason name, for reasons that occurred.
    pub fn exit_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ExitReason::KNOWN
            .iter()
            .filter_map(|reason| {
                let count = *self.exit_counts.get(reason.index())?;
                (count > 0).then_some((reason.name(), count))
            })
            .chain(
                self.exit_counts
                    .get(ExitReason::UNKNOWN_INDEX)
                    .filter(|&&count| count > 0)
                    .map(|&count| ("unknown", count)),
            )
    }

    /// Releases the VMCS and bitmaps.
    pub fn destroy(self) {
        // SAFETY: VMCLEAR flushes the VMCS out of the CPU so its frame can be reused.
        if let Err(fail) = unsafe { vmclear(self.vmcs.as_u64()) } {
            log::error!("VMCLEAR failed ({fail:?}); leaking the VMCS frame");
        } else {
            memory::free(self.vmcs, PAGE_SIZE_4K);
        }
        memory::free(self.io_bitmaps, IO_BITMAPS_SIZE);
        memory::free(self.msr_bitmap, PAGE_SIZE_4K);
    }
}

fn decode_io(qualification: u64) -> VcpuExit {
    match IoQualification::from_raw(qualification) {
        Ok(io) if !io.string => VcpuExit::Port(PortAccess {
            port: io.port,
            size: io.size,
            write: io.direction == IoDirection::Out,
        }),
        _ => VcpuExit::Unhandled { reason: "io (string or malformed)", number: 30, qualification },
    }
}

fn entry_failure(status: u64) -> EntryError {
    if status == 1 {
        return EntryError::NoCurrentVmcs;
    }
    EntryError::Instruction(VmInstructionError::from_u32(read(F::VmInstructionError) as u32))
}

/// VMREAD of a field the current VMCS always has; a failure would mean no
/// current VMCS, which `run` already rules out, so it reads as 0.
#[inline(always)]
fn read(field: F) -> u64 {
    // SAFETY: only called while this vCPU's VMCS is current in VMX root operation.
    unsafe { vmread(field) }.unwrap_or(0)
}

#[inline(always)]
fn write(field: F, value: u64) {
    // SAFETY: as for `read`; the fields written here are guest state.
    if let Err(fail) = unsafe { vmwrite(field, value) } {
        log::error!("VMWRITE {} failed: {fail:?}", field.name());
    }
}

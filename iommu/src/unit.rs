//! A driver for one remapping unit, written against [`RegisterAccess`] and
//! [`TableMemory`] so it runs unchanged on hardware and against the fake
//! register file in the tests. Every wait for hardware is a bounded poll
//! that ends in [`UnitError::Timeout`].
//!
//! [`RemappingUnit::enable`] is the bring-up sequence (what the TE field of
//! the Global Command register, VT-d §10.4.4, requires before translation
//! is enabled, plus queued invalidation and interrupt remapping):
//! 1. check the configuration against CAP/ECAP;
//! 2. latch the root table (SRTP) and flush the write buffer if CAP.RWBF;
//! 3. switch to this crate's invalidation queue (waiting for firmware's to
//!    drain first), when one is configured;
//! 4. invalidate the context cache and IOTLB globally;
//! 5. latch the interrupt remapping table (SIRTP), invalidate the interrupt
//!    entry cache, block compatibility-format interrupts (CFI clear) and
//!    enable interrupt remapping (IRE), when configured;
//! 6. enable translation (TE);
//! 7. turn off firmware's protected memory regions, now that translation
//!    protects memory.
//!
//! If firmware left translation on (pre-boot DMA protection), it stays on:
//! the new root replaces firmware's tables in step 2 and step 4 drops
//! anything cached from them, so no DMA window opens.

use core::fmt;

use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};

use crate::caps::{Capabilities, ExtendedCapabilities, Version};
use crate::fault::{
    fsts, FaultEventMessage, FaultRecord, FaultStatus, FAULT_RECORD_LEN, F_CLEAR_OFFSET, F_CLEAR_VALUE,
};
use crate::invalidation::{iqa_value, Descriptor, Drain, InvalidationError, QueueRing, QueueSize};
use crate::irte::{ApicMode, InterruptRemappingTable};
use crate::regs::{ccmd, event_control, gcmd_complete, gcmd_value, iotlb, offset, pmen, GlobalCommand};
use crate::{RegisterAccess, SourceId, TableMemory};

/// Polls before giving up; with [`RegisterAccess::relax`] waiting about a
/// microsecond this is about a second, far beyond what hardware needs.
pub const DEFAULT_POLL_LIMIT: u32 = 1_000_000;

/// What the driver was waiting for when it gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Command(GlobalCommand),
    ContextInvalidation,
    IotlbInvalidation,
    /// An invalidation wait descriptor's status write.
    InvalidationWait,
    /// Room in the invalidation queue, or firmware's queue draining.
    QueueSpace,
    ProtectedMemoryDisable,
}

/// A capability the configuration needs and the unit lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    QueuedInvalidation,
    InterruptRemapping,
    /// x2APIC destinations (ECAP.EIM), in interrupt remapping entries or
    /// the fault event message.
    ExtendedInterruptMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitError {
    /// Hardware did not finish within the poll limit.
    Timeout(Operation),
    Unsupported(Feature),
    /// Hardware stopped at a descriptor it rejected (FSTS.IQE), or reported
    /// a device-TLB invalidation completion error or time-out (ICE, ITE).
    /// The error bits are acknowledged; hardware resumes at `head`, the
    /// rejected descriptor, so the caller must replace it (with a wait
    /// descriptor, as Linux does) or stop using the queue. The driver does
    /// not recover by itself.
    InvalidationFailed {
        fault_status: u32,
        head: u64,
    },
    /// A queue operation while queued invalidation is off, or interrupt
    /// remapping without a queue.
    NoQueue,
    /// A table or queue address that is not suitably aligned.
    Misaligned,
    Queue(InvalidationError),
    /// The fault event registers did not keep the message written to them,
    /// or the interrupt would not unmask; it is left masked.
    FaultEventNotProgrammed,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(operation) => write!(f, "remapping unit timed out: {operation:?}"),
            Self::Unsupported(feature) => write!(f, "remapping unit lacks {feature:?}"),
            Self::InvalidationFailed { fault_status, head } => {
                write!(f, "invalidation failed (FSTS {fault_status:#x}, IQH {head:#x})")
            }
            Self::NoQueue => f.write_str("queued invalidation is not enabled"),
            Self::Misaligned => f.write_str("misaligned table address"),
            Self::Queue(error) => write!(f, "invalidation queue: {error:?}"),
            Self::FaultEventNotProgrammed => f.write_str("the fault event registers did not take the message"),
        }
    }
}

impl From<InvalidationError> for UnitError {
    fn from(error: InvalidationError) -> Self {
        Self::Queue(error)
    }
}

/// Memory for the invalidation queue: `size.bytes()` contiguous bytes at a
/// 4 KiB aligned `base`, and an 8-byte aligned word for wait statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub base: HostPhysAddr,
    pub size: QueueSize,
    pub status: HostPhysAddr,
}

/// What [`RemappingUnit::enable`] sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnableConfig {
    /// From [`RootTable::address`](crate::tables::RootTable::address).
    pub root_table: HostPhysAddr,
    /// Queued invalidation; without it, invalidation uses the registers.
    pub invalidation_queue: Option<QueueConfig>,
    /// Interrupt remapping; needs the queue.
    pub interrupt_remapping: Option<InterruptRemappingTable>,
}

/// Which cached context entries and translations to drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationScope {
    Global,
    Domain(u16),
    /// One device's context entry and its domain's translations.
    Device {
        domain: u16,
        source: SourceId,
    },
}

#[derive(Debug)]
struct Queue {
    base: HostPhysAddr,
    ring: QueueRing,
    status: HostPhysAddr,
    sequence: u32,
}

/// One remapping unit (one DRHD).
#[derive(Debug)]
pub struct RemappingUnit<R: RegisterAccess> {
    regs: R,
    version: Version,
    cap: Capabilities,
    ecap: ExtendedCapabilities,
    poll_limit: u32,
    queue: Option<Queue>,
}

impl<R: RegisterAccess> RemappingUnit<R> {
    /// Reads the version and capability registers; changes nothing.
    pub fn new(mut regs: R) -> Self {
        let version = Version::from_raw(regs.read32(offset::VER));
        let cap = Capabilities::from_raw(regs.read64(offset::CAP));
        let ecap = ExtendedCapabilities::from_raw(regs.read64(offset::ECAP));
        Self {
            regs,
            version,
            cap,
            ecap,
            poll_limit: DEFAULT_POLL_LIMIT,
            queue: None,
        }
    }

    pub fn with_poll_limit(mut self, polls: u32) -> Self {
        self.poll_limit = polls;
        self
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn capabilities(&self) -> Capabilities {
        self.cap
    }

    pub fn extended_capabilities(&self) -> ExtendedCapabilities {
        self.ecap
    }

    /// The register access, for anything this driver does not cover.
    pub fn registers(&mut self) -> &mut R {
        &mut self.regs
    }

    /// GSTS.
    pub fn global_status(&mut self) -> u32 {
        self.regs.read32(offset::GSTS)
    }

    /// Polls `done` up to the poll limit.
    fn poll(&mut self, operation: Operation, mut done: impl FnMut(&mut R) -> bool) -> Result<(), UnitError> {
        for _ in 0..self.poll_limit {
            if done(&mut self.regs) {
                return Ok(());
            }
            self.regs.relax();
        }
        if done(&mut self.regs) {
            return Ok(());
        }
        Err(UnitError::Timeout(operation))
    }

    /// Issues one global command and waits for GSTS to show it done.
    pub fn command(&mut self, command: GlobalCommand, enable: bool) -> Result<(), UnitError> {
        let gsts = self.global_status();
        self.regs.write32(offset::GCMD, gcmd_value(gsts, command, enable));
        self.poll(Operation::Command(command), |regs| {
            gcmd_complete(regs.read32(offset::GSTS), command, enable)
        })
    }

    fn status_bit(&mut self, command: GlobalCommand) -> bool {
        self.global_status() & command.bit() != 0
    }

    /// Latches `root` (legacy mode) as the root table. With translation on,
    /// a global invalidation must follow.
    pub fn set_root_table(&mut self, root: HostPhysAddr) -> Result<(), UnitError> {
        if !root.is_aligned(PAGE_SIZE_4K) {
            return Err(UnitError::Misaligned);
        }
        self.regs.write64(offset::RTADDR, root.as_u64());
        self.command(GlobalCommand::SetRootTablePointer, true)
    }

    /// Flushes the write buffer where CAP.RWBF asks for it; otherwise does
    /// nothing.
    pub fn flush_write_buffer(&mut self) -> Result<(), UnitError> {
        if self.cap.requires_write_buffer_flush() {
            self.command(GlobalCommand::WriteBufferFlush, true)?;
        }
        Ok(())
    }

    /// Turns on queued invalidation with a fresh queue. A queue left on by
    /// firmware is first waited on until empty and turned off.
    pub fn enable_queued_invalidation(
        &mut self,
        config: QueueConfig,
        mem: &mut impl TableMemory,
    ) -> Result<(), UnitError> {
        if !self.ecap.queued_invalidation() {
            return Err(UnitError::Unsupported(Feature::QueuedInvalidation));
        }
        if !config.status.is_aligned(8) {
            return Err(UnitError::Misaligned);
        }
        let iqa = iqa_value(config.base, config.size)?;
        self.disable_queued_invalidation()?;
        mem.write_u64(config.status, 0);
        self.regs.write64(offset::IQT, 0);
        self.regs.write64(offset::IQA, iqa);
        self.command(GlobalCommand::QueuedInvalidation, true)?;
        self.queue = Some(Queue {
            base: config.base,
            ring: QueueRing::new(config.size),
            status: config.status,
            sequence: 0,
        });
        Ok(())
    }

    /// Waits for the queue to drain (IQH == IQT), then turns it off.
    pub fn disable_queued_invalidation(&mut self) -> Result<(), UnitError> {
        if self.status_bit(GlobalCommand::QueuedInvalidation) {
            self.poll(Operation::QueueSpace, |regs| {
                regs.read64(offset::IQH) == regs.read64(offset::IQT)
            })?;
            self.command(GlobalCommand::QueuedInvalidation, false)?;
        }
        self.queue = None;
        Ok(())
    }

    /// Appends descriptors to the queue and publishes them (IQT), waiting
    /// for room where the queue is full. Does not wait for completion.
    pub fn submit(&mut self, descriptors: &[Descriptor], mem: &mut impl TableMemory) -> Result<(), UnitError> {
        for descriptor in descriptors {
            let slot = self.claim_slot()?;
            let queue = self.queue.as_ref().ok_or(UnitError::NoQueue)?;
            let address = queue.ring.slot_address(queue.base, slot);
            mem.write_u64(address, descriptor.low);
            mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), descriptor.high);
        }
        let tail = self.queue.as_ref().ok_or(UnitError::NoQueue)?.ring.tail_register();
        self.regs.write64(offset::IQT, tail);
        Ok(())
    }

    /// A free slot, publishing what was written so far and waiting for
    /// hardware to consume some if the queue is full.
    fn claim_slot(&mut self) -> Result<u32, UnitError> {
        let poll_limit = self.poll_limit;
        for _ in 0..=poll_limit {
            let queue = self.queue.as_mut().ok_or(UnitError::NoQueue)?;
            if let Some(slot) = queue.ring.push() {
                return Ok(slot);
            }
            let tail = queue.ring.tail_register();
            self.regs.write64(offset::IQT, tail);
            self.check_invalidation_errors()?;
            let head = self.regs.read64(offset::IQH);
            self.queue.as_mut().ok_or(UnitError::NoQueue)?.ring.update_head(head)?;
            self.regs.relax();
        }
        Err(UnitError::Timeout(Operation::QueueSpace))
    }

    fn check_invalidation_errors(&mut self) -> Result<(), UnitError> {
        let status = FaultStatus::from_raw(self.regs.read32(offset::FSTS));
        if status.invalidation_queue_error() || status.invalidation_completion_error() || status.invalidation_timeout()
        {
            let head = self.regs.read64(offset::IQH);
            // Acknowledge the invalidation errors (not the fault bits, which
            // `take_faults` owns) so a recovery can proceed.
            let invalidation = fsts::IQE | fsts::ICE | fsts::ITE;
            self.regs.write32(offset::FSTS, status.raw() & invalidation);
            return Err(UnitError::InvalidationFailed {
                fault_status: status.raw(),
                head,
            });
        }
        Ok(())
    }

    /// Submits `descriptors` followed by a wait descriptor with a status
    /// write, and polls the status word until hardware has completed them.
    pub fn submit_and_wait(&mut self, descriptors: &[Descriptor], mem: &mut impl TableMemory) -> Result<(), UnitError> {
        let queue = self.queue.as_mut().ok_or(UnitError::NoQueue)?;
        queue.sequence = queue.sequence.wrapping_add(1).max(1);
        let (sequence, status) = (queue.sequence, queue.status);
        let wait = Descriptor::wait(Some((status, sequence)), false, true)?;
        self.submit(descriptors, mem)?;
        self.submit(&[wait], mem)?;
        for _ in 0..=self.poll_limit {
            if mem.read_u64(status) as u32 == sequence {
                let head = self.regs.read64(offset::IQH);
                if let Some(queue) = self.queue.as_mut() {
                    queue.ring.update_head(head)?;
                }
                return Ok(());
            }
            self.check_invalidation_errors()?;
            self.regs.relax();
        }
        Err(UnitError::Timeout(Operation::InvalidationWait))
    }

    fn drain(&self) -> Drain {
        Drain {
            reads: self.cap.read_draining(),
            writes: self.cap.write_draining(),
        }
    }

    /// Drops cached context entries and translations in `scope`, through
    /// the queue when it is on and through CCMD/IOTLB_REG otherwise.
    pub fn invalidate(&mut self, scope: InvalidationScope, mem: &mut impl TableMemory) -> Result<(), UnitError> {
        let drain = self.drain();
        if self.queue.is_some() {
            let descriptors = match scope {
                InvalidationScope::Global => [Descriptor::context_cache_global(), Descriptor::iotlb_global(drain)],
                InvalidationScope::Domain(domain) => [
                    Descriptor::context_cache_domain(domain),
                    Descriptor::iotlb_domain(domain, drain),
                ],
                InvalidationScope::Device { domain, source } => [
                    Descriptor::context_cache_device(domain, source, 0)?,
                    Descriptor::iotlb_domain(domain, drain),
                ],
            };
            return self.submit_and_wait(&descriptors, mem);
        }
        let (context, tlb) = match scope {
            InvalidationScope::Global => (ccmd::GLOBAL, iotlb::GLOBAL),
            InvalidationScope::Domain(domain) => (
                ccmd::DOMAIN | u64::from(domain),
                iotlb::DOMAIN | u64::from(domain) << iotlb::DID_SHIFT,
            ),
            InvalidationScope::Device { domain, source } => (
                ccmd::DEVICE | u64::from(domain) | u64::from(source.raw()) << 16,
                iotlb::DOMAIN | u64::from(domain) << iotlb::DID_SHIFT,
            ),
        };
        self.regs.write64(offset::CCMD, ccmd::ICC | context);
        self.poll(Operation::ContextInvalidation, |regs| {
            regs.read64(offset::CCMD) & ccmd::ICC == 0
        })?;
        let iotlb_reg = self.ecap.iotlb_register_offset() + offset::IOTLB_FROM_IRO;
        let drain_bits =
            if drain.reads { iotlb::DRAIN_READS } else { 0 } | if drain.writes { iotlb::DRAIN_WRITES } else { 0 };
        self.regs.write64(iotlb_reg, iotlb::IVT | tlb | drain_bits);
        self.poll(Operation::IotlbInvalidation, |regs| {
            regs.read64(iotlb_reg) & iotlb::IVT == 0
        })
    }

    /// Latches `table` (SIRTP) and drops every cached interrupt entry.
    pub fn set_interrupt_remapping_table(
        &mut self,
        table: &InterruptRemappingTable,
        mem: &mut impl TableMemory,
    ) -> Result<(), UnitError> {
        self.check_interrupt_remapping(table)?;
        self.regs.write64(offset::IRTA, table.irta());
        self.command(GlobalCommand::SetInterruptRemapTablePointer, true)?;
        self.submit_and_wait(&[Descriptor::interrupt_entry_cache_global()], mem)
    }

    fn check_interrupt_remapping(&self, table: &InterruptRemappingTable) -> Result<(), UnitError> {
        if !self.ecap.interrupt_remapping() {
            return Err(UnitError::Unsupported(Feature::InterruptRemapping));
        }
        if table.mode() == ApicMode::X2Apic && !self.ecap.extended_interrupt_mode() {
            return Err(UnitError::Unsupported(Feature::ExtendedInterruptMode));
        }
        if self.queue.is_none() {
            return Err(UnitError::NoQueue);
        }
        Ok(())
    }

    /// Enables interrupt remapping with compatibility-format interrupts
    /// blocked.
    pub fn enable_interrupt_remapping(&mut self) -> Result<(), UnitError> {
        if self.status_bit(GlobalCommand::CompatibilityFormatInterrupts) {
            self.command(GlobalCommand::CompatibilityFormatInterrupts, false)?;
        }
        self.command(GlobalCommand::InterruptRemapping, true)
    }

    pub fn disable_interrupt_remapping(&mut self) -> Result<(), UnitError> {
        self.command(GlobalCommand::InterruptRemapping, false)
    }

    pub fn enable_translation(&mut self) -> Result<(), UnitError> {
        self.command(GlobalCommand::TranslationEnable, true)
    }

    pub fn disable_translation(&mut self) -> Result<(), UnitError> {
        self.command(GlobalCommand::TranslationEnable, false)
    }

    /// Turns off the protected low/high memory regions firmware may have
    /// enabled (they block DMA regardless of the tables).
    pub fn disable_protected_memory(&mut self) -> Result<(), UnitError> {
        if !self.cap.protected_low_memory_region() && !self.cap.protected_high_memory_region() {
            return Ok(());
        }
        let pmen = self.regs.read32(offset::PMEN);
        if pmen & pmen::EPM == 0 {
            return Ok(());
        }
        self.regs.write32(offset::PMEN, pmen & !pmen::EPM);
        self.poll(Operation::ProtectedMemoryDisable, |regs| {
            regs.read32(offset::PMEN) & pmen::PRS == 0
        })
    }

    /// The whole bring-up sequence (see the module documentation).
    pub fn enable(&mut self, config: &EnableConfig, mem: &mut impl TableMemory) -> Result<(), UnitError> {
        if config.invalidation_queue.is_some() && !self.ecap.queued_invalidation() {
            return Err(UnitError::Unsupported(Feature::QueuedInvalidation));
        }
        if let Some(table) = &config.interrupt_remapping {
            if !self.ecap.interrupt_remapping() {
                return Err(UnitError::Unsupported(Feature::InterruptRemapping));
            }
            if table.mode() == ApicMode::X2Apic && !self.ecap.extended_interrupt_mode() {
                return Err(UnitError::Unsupported(Feature::ExtendedInterruptMode));
            }
            if config.invalidation_queue.is_none() {
                return Err(UnitError::NoQueue);
            }
        }
        if !config.root_table.is_aligned(PAGE_SIZE_4K) {
            return Err(UnitError::Misaligned);
        }

        self.set_root_table(config.root_table)?;
        self.flush_write_buffer()?;
        match config.invalidation_queue {
            Some(queue) => self.enable_queued_invalidation(queue, mem)?,
            None => self.disable_queued_invalidation()?,
        }
        self.invalidate(InvalidationScope::Global, mem)?;
        match &config.interrupt_remapping {
            Some(table) => {
                self.set_interrupt_remapping_table(table, mem)?;
                self.enable_interrupt_remapping()?;
            }
            None if self.status_bit(GlobalCommand::InterruptRemapping) => self.disable_interrupt_remapping()?,
            None => {}
        }
        self.enable_translation()?;
        self.disable_protected_memory()
    }

    pub fn fault_status(&mut self) -> FaultStatus {
        FaultStatus::from_raw(self.regs.read32(offset::FSTS))
    }

    /// Hands every recorded fault to `sink`, oldest first from FSTS.FRI,
    /// clearing each register, then acknowledges a fault overflow. Returns
    /// the status seen on entry.
    ///
    /// This is also what re-arms the fault event interrupt: hardware raises
    /// it only for a fault recorded while FSTS shows no earlier condition
    /// (PPF, PFO, IQE, ICE, ITE all clear; VT-d §10.4.10, FECTL.IP), and
    /// clears a held FECTL.IP once software has cleared them. So every F
    /// bit is cleared and PFO written back; a fault recorded while the
    /// registers are being drained keeps PPF set without a new interrupt,
    /// which is why FSTS is read again and the registers swept until PPF
    /// reads clear (a bounded number of sweeps of CAP.NFR registers each).
    /// The invalidation error bits belong to the invalidation that caused
    /// them ([`UnitError::InvalidationFailed`]) and are left alone here.
    pub fn take_faults(&mut self, mut sink: impl FnMut(FaultRecord)) -> FaultStatus {
        let status = self.fault_status();
        let count = self.cap.fault_recording_count();
        let first = self.cap.fault_recording_offset();
        let mut pending = status;
        let mut index = status.fault_record_index() % count;
        for sweep in 0..FAULT_SWEEPS {
            if !pending.primary_pending() {
                break;
            }
            for _ in 0..count {
                let register = first + index * FAULT_RECORD_LEN;
                let upper = self.regs.read64(register + 8);
                if upper & FaultRecord::F == 0 {
                    // The first sweep follows hardware's order from FRI and
                    // stops at the first empty register; later sweeps look
                    // at all of them (FRI does not move while PPF stays set).
                    if sweep == 0 {
                        break;
                    }
                } else {
                    let lower = self.regs.read64(register);
                    if let Some(record) = FaultRecord::decode(lower, upper) {
                        sink(record);
                    }
                    self.regs.write32(register + F_CLEAR_OFFSET, F_CLEAR_VALUE);
                }
                index = (index + 1) % count;
            }
            pending = self.fault_status();
        }
        if status.primary_overflow() || pending.primary_overflow() {
            self.regs.write32(offset::FSTS, fsts::PFO);
        }
        status
    }

    /// Programs the fault event interrupt and unmasks it: masked first, the
    /// message written and read back, then unmasked (a condition held
    /// pending while masked, FECTL.IP, is delivered at that moment). When
    /// the unit cannot send the message or does not keep what was written,
    /// the interrupt stays masked and faults are only seen by polling
    /// [`take_faults`](Self::take_faults).
    pub fn enable_fault_event(&mut self, message: &FaultEventMessage) -> Result<(), UnitError> {
        self.mask_fault_event();
        if message.upper_address != 0 && !self.ecap.extended_interrupt_mode() {
            return Err(UnitError::Unsupported(Feature::ExtendedInterruptMode));
        }
        self.regs.write32(offset::FEDATA, message.data);
        self.regs.write32(offset::FEADDR, message.address);
        if self.ecap.extended_interrupt_mode() {
            // Without EIM the register is reserved; there is nothing to set.
            self.regs.write32(offset::FEUADDR, message.upper_address);
        }
        // FEDATA bits 31:16 (extended data) and FEADDR bits 1:0 may read 0.
        let data = self.regs.read32(offset::FEDATA) & 0xffff;
        let address = self.regs.read32(offset::FEADDR) & !0x3;
        if data != message.data & 0xffff || address != message.address & !0x3 {
            return Err(UnitError::FaultEventNotProgrammed);
        }
        self.regs.write32(offset::FECTL, 0);
        if self.regs.read32(offset::FECTL) & event_control::IM != 0 {
            self.mask_fault_event();
            return Err(UnitError::FaultEventNotProgrammed);
        }
        Ok(())
    }

    /// Masks the fault event interrupt (IP, read-only, is written as 0).
    pub fn mask_fault_event(&mut self) {
        self.regs.write32(offset::FECTL, event_control::IM);
    }

    /// FECTL: whether the fault event interrupt is masked (IM) and whether
    /// one is held pending (IP).
    pub fn fault_event_control(&mut self) -> FaultEventControl {
        let fectl = self.regs.read32(offset::FECTL);
        FaultEventControl {
            masked: fectl & event_control::IM != 0,
            pending: fectl & event_control::IP != 0,
        }
    }
}

/// Sweeps of the fault recording registers in one
/// [`RemappingUnit::take_faults`]: faults keep arriving only as fast as a
/// device misbehaves, and what is left is found by the next call.
const FAULT_SWEEPS: u32 = 4;

/// The Fault Event Control register, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEventControl {
    pub masked: bool,
    pub pending: bool,
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

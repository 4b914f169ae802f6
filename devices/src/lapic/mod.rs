//! A local APIC, one per vCPU, reachable in either of its two modes.
//!
//! - x2APIC: MSRs 0x800–0x8FF ([`LocalApic::rdmsr`]/[`LocalApic::wrmsr`]).
//! - xAPIC: the 4 KiB MMIO page at IA32_APIC_BASE, normally 0xFEE00000
//!   ([`LocalApic::mmio_read`]/[`LocalApic::mmio_write`]), which Linux uses
//!   when it cannot enable x2APIC (no interrupt remapping).
//!
//! Both share IA32_TSC_DEADLINE ([`LocalApic::tsc_deadline`]/
//! [`LocalApic::set_tsc_deadline`]). Register semantics live in the `access`
//! and `registers` modules, keyed by register index (MMIO offset / 16 = MSR
//! − 0x800); the `msr` and `mmio` front ends only validate values and
//! translate the few registers whose formats differ (ID, LDR, DFR, ICR).
//! The model does not track which mode the guest enabled: the hypervisor
//! routes only the interface it exposes (IA32_APIC_BASE is its business).
//!
//! How the hypervisor drives it:
//! - interrupts from the I/O APIC, MSIs and other vCPUs' IPIs go to
//!   [`LocalApic::accept`];
//! - before entering the guest, if [`LocalApic::pending_interrupt`] returns a
//!   vector and the guest can take it, inject it and call
//!   [`LocalApic::start_delivery`];
//! - program the preemption timer from [`LocalApic::next_timer_deadline`]
//!   and call [`LocalApic::on_time`] when it expires;
//! - act on the [`ApicEffect`] a `wrmsr`/`mmio_write` returns: forward
//!   level-triggered EOIs to the I/O APIC, route IPIs to other vCPUs
//!   (matching each with [`LocalApic::accepts_destination`]).
//!
//! Effects are returned rather than sent through [`crate::Platform`]
//! because they need per-vCPU routing that only the hypervisor knows.

mod access;
mod ipi;
mod mmio;
mod msr;
mod registers;
mod timer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mmio;
#[cfg(test)]
mod tests_timer;

pub use ipi::{IpiDeliveryMode, IpiDestination};
pub use mmio::XAPIC_MMIO_SIZE;
pub use msr::{is_x2apic_msr, IA32_TSC_DEADLINE};
pub use timer::TimerClock;

use registers::{LocalVectorTable, LvtEntry, VectorSet, DFR_FLAT, ESR_RECEIVE_ILLEGAL_VECTOR, SVR_SOFTWARE_ENABLE};
use timer::Countdown;

/// Version register: version 0x14 (integrated APIC), max LVT entry 5
/// (six entries: timer, thermal, performance, LINT0, LINT1, error), no
/// EOI-broadcast suppression.
pub const APIC_VERSION: u32 = 0x0005_0014;

/// Why an x2APIC access must raise #GP(0) in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicFault {
    /// Not an implemented x2APIC register (reserved index, or not an x2APIC
    /// MSR at all).
    ReservedRegister,
    /// WRMSR to a read-only register.
    ReadOnlyRegister,
    /// RDMSR of a write-only register (EOI, SELF IPI).
    WriteOnlyRegister,
    /// WRMSR that sets reserved bits or a reserved encoding (SDM 11.12.1.3).
    ReservedBits,
}

/// Something a guest register write needs the hypervisor to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicEffect {
    /// The guest retired in-service `vector`. When `level_triggered`, pass it
    /// to the I/O APIC's `end_of_interrupt` (EOI broadcast) so it clears
    /// Remote IRR; edge-triggered EOIs need nothing.
    Eoi { vector: u8, level_triggered: bool },
    /// Deliver an IPI to other vCPUs: those whose APIC
    /// [`LocalApic::accepts_destination`] `destination`. For
    /// `Fixed`/`LowestPriority` this APIC has already taken its own share, so
    /// never deliver those back to the sender; x2APIC destinations already
    /// leave it out, but xAPIC logical ones ([`IpiDestination::LogicalFlat`],
    /// [`IpiDestination::LogicalCluster`]) are passed as written because
    /// other APICs may share the sender's logical ID bits. Other modes name
    /// the destination exactly as written, which may include the sender.
    Ipi {
        destination: IpiDestination,
        vector: u8,
        mode: IpiDeliveryMode,
    },
}

/// The state of one local APIC.
#[derive(Clone, Debug)]
pub struct LocalApic {
    id: u32,
    clock: TimerClock,
    task_priority: u32,
    spurious_vector: u32,
    in_service: VectorSet,
    trigger_mode: VectorSet,
    requested: VectorSet,
    /// ESR as the guest reads it: latched from `pending_errors` by a write.
    error_status: u32,
    /// Errors detected since the last ESR write.
    pending_errors: u32,
    lvt: LocalVectorTable,
    /// x2APIC: the whole ICR. xAPIC: ICR low in bits 31:0, ICR high (the
    /// destination in its bits 31:24) in bits 63:32.
    interrupt_command: u64,
    /// xAPIC LDR: logical APIC ID in bits 31:24, the rest reserved (0).
    /// x2APIC derives its LDR from the ID instead ([`Self::logical_id`]).
    xapic_logical_destination: u32,
    /// xAPIC DFR: model in bits 31:28 (0xF flat, 0x0 cluster), bits 27:0
    /// read as 1s.
    destination_format: u32,
    timer_initial_count: u32,
    timer_divide_config: u32,
    /// Running one-shot/periodic countdown; never set in TSC-deadline mode.
    countdown: Option<Countdown>,
    /// Armed TSC deadline, 0 when disarmed; only non-zero in TSC-deadline mode.
    tsc_deadline: u64,
}

impl LocalApic {
    /// An APIC in its reset state (software-disabled, all LVTs masked) with
    /// x2APIC ID `apic_id`, whose timer relates to the TSC through `clock`.
    pub fn new(apic_id: u32, clock: TimerClock) -> Self {
        Self {
            id: apic_id,
            clock,
            task_priority: 0,
            spurious_vector: 0xff,
            in_service: VectorSet::default(),
            trigger_mode: VectorSet::default(),
            requested: VectorSet::default(),
            error_status: 0,
            pending_errors: 0,
            lvt: LocalVectorTable::RESET,
            interrupt_command: 0,
            xapic_logical_destination: 0,
            destination_format: DFR_FLAT,
            timer_initial_count: 0,
            timer_divide_config: 0,
            countdown: None,
            tsc_deadline: 0,
        }
    }

    /// The APIC ID. In xAPIC mode the ID register shows its low 8 bits, so
    /// IDs above 255 cannot be addressed through the MMIO interface.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// x2APIC logical ID, derived from the ID (SDM 11.12.10.2): cluster
    /// `id[19:4]` in bits 31:16, member bit `1 << id[3:0]`.
    pub fn logical_id(&self) -> u32 {
        ((self.id >> 4) << 16) | (1 << (self.id & 0xf))
    }

    /// The xAPIC logical APIC ID: LDR bits 31:24, as the guest last wrote
    /// them through MMIO (0 at reset).
    fn xapic_logical_id(&self) -> u8 {
        (self.xapic_logical_destination >> 24) as u8
    }

    /// Whether the xAPIC DFR selects the cluster model (model 0x0) rather
    /// than the flat model (0xF, the reset value).
    fn xapic_cluster_model(&self) -> bool {
        self.destination_format >> 28 == 0
    }

    /// SVR bit 8.
    pub fn software_enabled(&self) -> bool {
        self.spurious_vector & SVR_SOFTWARE_ENABLE != 0
    }

    /// The processor-priority register: the TPR, or the priority class of
    /// the highest in-service vector if that is higher.
    pub fn processor_priority(&self) -> u32 {
        let in_service_class = u32::from(self.in_service.highest().unwrap_or(0) & 0xf0);
        if self.task_priority & 0xf0 >= in_service_class {
            self.task_priority
        } else {
            in_service_class
        }
    }

    /// Accepts a fixed interrupt from the I/O APIC, an MSI or an IPI into
    /// IRR, recording its trigger mode in TMR. Vectors 0–15 are illegal:
    /// they set ESR "receive illegal vector" and are dropped. A
    /// software-disabled APIC drops fixed interrupts.
    pub fn accept(&mut self, vector: u8, level_triggered: bool) {
        if !self.software_enabled() {
            return;
        }
        if vector < 16 {
            self.record_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.requested.insert(vector);
        if level_triggered {
            self.trigger_mode.insert(vector);
        } else {
            self.trigger_mode.remove(vector);
        }
    }

    /// The vector to inject next: the highest requested vector whose
    /// priority class is above the processor priority's, if the APIC is
    /// software-enabled.
    pub fn pending_interrupt(&self) -> Option<u8> {
        if !self.software_enabled() {
            return None;
        }
        let vector = self.requested.highest()?;
        (u32::from(vector >> 4) > self.processor_priority() >> 4).then_some(vector)
    }

    /// The hypervisor injected `vector`: move it from IRR to ISR. Returns
    /// false (and changes nothing) if `vector` was not requested.
    pub fn start_delivery(&mut self, vector: u8) -> bool {
        if !self.requested.contains(vector) {
            return false;
        }
        self.requested.remove(vector);
        self.in_service.insert(vector);
        true
    }

    /// Retires the highest in-service vector (what an EOI write does).
    fn end_of_interrupt(&mut self) -> Option<ApicEffect> {
        let vector = self.in_service.highest()?;
        self.in_service.remove(vector);
        Some(ApicEffect::Eoi {
            vector,
            level_triggered: self.trigger_mode.contains(vector),
        })
    }

    /// Raises a locally generated interrupt (timer, error, self IPI path)
    /// as edge-triggered.
    fn raise_local(&mut self, vector: u8) {
        self.accept(vector, false);
    }

    /// Records an error for the next ESR write to latch, and signals it
    /// through the LVT error entry if that is unmasked.
    fn record_error(&mut self, error: u32) {
        self.pending_errors |= error;
        let Some(vector) = self.lvt.unmasked_vector(LvtEntry::Error) else {
            return;
        };
        if vector < 16 {
            // Reporting through an illegal vector is itself an error; record
            // it without signalling again, which would recurse.
            self.pending_errors |= ESR_RECEIVE_ILLEGAL_VECTOR;
            return;
        }
        if self.software_enabled() {
            self.requested.insert(vector);
            self.trigger_mode.remove(vector);
        }
    }
}

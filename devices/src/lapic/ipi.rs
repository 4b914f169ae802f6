//! Interrupt-command register (ICR) and SELF IPI sends.
//!
//! Fixed and lowest-priority IPIs that target this APIC are delivered here
//! directly; everything that must reach another vCPU (or needs the
//! hypervisor, like INIT/SIPI/NMI) comes back as an [`ApicEffect::Ipi`].

use super::registers::ESR_SEND_ILLEGAL_VECTOR;
use super::{ApicEffect, LocalApic};

/// The x2APIC destination that addresses every APIC, in either
/// destination mode.
const BROADCAST: u32 = u32::MAX;
/// The xAPIC destination that addresses every APIC, in physical mode and
/// in both logical models.
const XAPIC_BROADCAST: u8 = 0xff;

/// ICR bits that are reserved in x2APIC mode: 12 (delivery status no longer
/// exists), 13, 16–17 and 20–31. Setting any of them faults.
pub(crate) const ICR_RESERVED: u64 = 0xfff3_3000;

/// How an IPI is delivered (ICR bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiDeliveryMode {
    Fixed,
    /// Arbitration picks one target; this APIC picks itself when it is one.
    LowestPriority,
    Smi,
    Nmi,
    /// INIT assert (INIT level de-assert is a no-op and never reported).
    Init,
    /// Start-up IPI; the vector is the start page number.
    StartUp,
}

/// Who an IPI is for. Match a receiving APIC with
/// [`LocalApic::accepts_destination`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiDestination {
    /// An APIC ID: 32-bit from x2APIC, 8-bit (never 0xFF) from xAPIC.
    Physical(u32),
    /// A logical x2APIC destination: cluster in bits 31:16, member bitmap in
    /// bits 15:0.
    Logical(u32),
    /// An xAPIC logical destination sent under the flat model (DFR 0xF):
    /// every APIC whose LDR bits 31:24 share a bit with the mask.
    LogicalFlat(u8),
    /// An xAPIC logical destination sent under the cluster model (DFR 0x0):
    /// cluster in bits 7:4, member bitmap in bits 3:0, matched against LDR
    /// bits 31:28 and 27:24.
    LogicalCluster(u8),
    AllIncludingSelf,
    AllExcludingSelf,
}

/// The destination field of an ICR, in the format of the mode that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// ICR bits 63:32 written through MSR 0x830.
    X2apic(u32),
    /// ICR high (MMIO 0x310) bits 31:24.
    Xapic(u8),
}

/// Which targets an ICR write names, split into "this APIC" and "the rest".
struct Targets {
    includes_self: bool,
    others: Option<IpiDestination>,
}

impl LocalApic {
    /// Whether this APIC is one of the targets `destination` names, by its
    /// own ID and logical ID (x2APIC `Logical`: the ID-derived LDR; xAPIC
    /// `LogicalFlat`/`LogicalCluster`: the LDR written through MMIO). It
    /// says nothing about who sent the IPI: `AllExcludingSelf` matches every
    /// APIC, and the hypervisor must skip the sender itself.
    pub fn accepts_destination(&self, destination: IpiDestination) -> bool {
        match destination {
            IpiDestination::Physical(id) => id == self.id,
            IpiDestination::Logical(destination) => {
                let own = self.logical_id();
                destination >> 16 == own >> 16 && destination & own & 0xffff != 0
            }
            IpiDestination::LogicalFlat(mask) => self.xapic_logical_id() & mask != 0,
            IpiDestination::LogicalCluster(destination) => {
                let own = self.xapic_logical_id();
                destination >> 4 == own >> 4 && destination & own & 0xf != 0
            }
            IpiDestination::AllIncludingSelf | IpiDestination::AllExcludingSelf => true,
        }
    }

    /// Sends the IPI described by ICR bits 31:0 (`icr_low`, the same layout
    /// in both modes) and the destination field. Reserved bits were checked
    /// or dropped by the caller.
    pub(crate) fn send_ipi(&mut self, icr_low: u32, destination: Destination) -> Option<ApicEffect> {
        let vector = (icr_low & 0xff) as u8;
        let logical = icr_low & (1 << 11) != 0;
        let level_asserted = icr_low & (1 << 14) != 0;
        let level_triggered = icr_low & (1 << 15) != 0;
        let shorthand = (icr_low >> 18) & 0b11;

        let mode = match (icr_low >> 8) & 0b111 {
            0b000 => IpiDeliveryMode::Fixed,
            0b001 => IpiDeliveryMode::LowestPriority,
            0b010 => IpiDeliveryMode::Smi,
            0b100 => IpiDeliveryMode::Nmi,
            // Linux still sends INIT de-assert after INIT when booting APs;
            // modern APICs ignore it, and so do we.
            0b101 if level_triggered && !level_asserted => return None,
            0b101 => IpiDeliveryMode::Init,
            0b110 => IpiDeliveryMode::StartUp,
            // 0b011 and 0b111 are reserved encodings: nothing is sent.
            _ => return None,
        };

        match mode {
            IpiDeliveryMode::Fixed | IpiDeliveryMode::LowestPriority => {
                if vector < 16 {
                    self.record_error(ESR_SEND_ILLEGAL_VECTOR);
                    return None;
                }
                let targets = self.split_targets(shorthand, logical, destination);
                if targets.includes_self {
                    // IPIs are delivered edge-triggered: the trigger bit only
                    // matters for the obsolete level-triggered IPI protocol.
                    self.accept(vector, false);
                    if mode == IpiDeliveryMode::LowestPriority {
                        return None;
                    }
                }
                targets.others.map(|destination| ApicEffect::Ipi {
                    destination,
                    vector,
                    mode,
                })
            }
            _ => {
                // The self shorthand is only valid with fixed delivery.
                let destination = match shorthand {
                    0b01 => return None,
                    0b10 => IpiDestination::AllIncludingSelf,
                    0b11 => IpiDestination::AllExcludingSelf,
                    _ => self.resolve(destination, logical),
                };
                Some(ApicEffect::Ipi {
                    destination,
                    vector,
                    mode,
                })
            }
        }
    }

    /// What a destination field names, without shorthand.
    fn resolve(&self, destination: Destination, logical: bool) -> IpiDestination {
        match destination {
            Destination::X2apic(BROADCAST) | Destination::Xapic(XAPIC_BROADCAST) => IpiDestination::AllIncludingSelf,
            Destination::X2apic(destination) if logical => IpiDestination::Logical(destination),
            Destination::X2apic(destination) => IpiDestination::Physical(destination),
            Destination::Xapic(destination) if !logical => IpiDestination::Physical(u32::from(destination)),
            Destination::Xapic(destination) if self.xapic_cluster_model() => {
                IpiDestination::LogicalCluster(destination)
            }
            Destination::Xapic(destination) => IpiDestination::LogicalFlat(destination),
        }
    }

    fn split_targets(&self, shorthand: u32, logical: bool, destination: Destination) -> Targets {
        let named = match shorthand {
            0b01 => IpiDestination::Physical(self.id),
            0b10 => IpiDestination::AllIncludingSelf,
            0b11 => IpiDestination::AllExcludingSelf,
            _ => self.resolve(destination, logical),
        };
        let includes_self = named != IpiDestination::AllExcludingSelf && self.accepts_destination(named);
        let others = match named {
            IpiDestination::AllIncludingSelf | IpiDestination::AllExcludingSelf => {
                Some(IpiDestination::AllExcludingSelf)
            }
            // x2APIC logical IDs are unique (derived from the ID): only this
            // APIC answers to its member bit.
            IpiDestination::Logical(destination) if includes_self => {
                let rest = destination & !(self.logical_id() & 0xffff);
                (rest & 0xffff != 0).then_some(IpiDestination::Logical(rest))
            }
            // Only this APIC has its ID.
            IpiDestination::Physical(_) if includes_self => None,
            // xAPIC logical IDs are software-assigned and may be shared, so
            // the destination goes out as written even when it names this
            // APIC; the hypervisor skips the sender.
            other => Some(other),
        };
        Targets { includes_self, others }
    }

    /// A write to the x2APIC SELF IPI register: a fixed, edge-triggered IPI
    /// to this APIC.
    pub(crate) fn send_self_ipi(&mut self, vector: u8) {
        if vector < 16 {
            self.record_error(ESR_SEND_ILLEGAL_VECTOR);
        } else {
            self.accept(vector, false);
        }
    }
}

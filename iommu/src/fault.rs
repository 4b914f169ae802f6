//! Fault reporting (VT-d chapter 7): the fault status register and the
//! primary Fault Recording Registers (§10.4.14; the record format is §9.9),
//! decoded.

use core::fmt;

use crate::SourceId;

/// Fault Status register bits (VT-d §10.4.9).
pub mod fsts {
    /// Primary fault overflow (RW1C).
    pub const PFO: u32 = 1 << 0;
    /// Primary pending fault: some recording register has F set (RO).
    pub const PPF: u32 = 1 << 1;
    /// Advanced fault overflow (RW1C).
    pub const AFO: u32 = 1 << 2;
    /// Advanced pending fault (RW1C).
    pub const APF: u32 = 1 << 3;
    /// Invalidation queue error: hardware stopped at a bad descriptor (RW1C).
    pub const IQE: u32 = 1 << 4;
    /// Invalidation completion error (RW1C).
    pub const ICE: u32 = 1 << 5;
    /// Invalidation time-out error (RW1C).
    pub const ITE: u32 = 1 << 6;
    pub const FRI_SHIFT: u32 = 8;
    pub const FRI_MASK: u32 = 0xff << FRI_SHIFT;
    /// The bits software clears by writing them back as 1.
    pub const WRITE_ONE_TO_CLEAR: u32 = PFO | AFO | APF | IQE | ICE | ITE;
}

/// Each fault recording register is 16 bytes.
pub const FAULT_RECORD_LEN: u32 = 16;
/// Writing [`F_CLEAR_VALUE`] to the 32-bit register this far into a fault
/// recording register clears its F bit (bit 127).
pub const F_CLEAR_OFFSET: u32 = 12;
pub const F_CLEAR_VALUE: u32 = 1 << 31;

/// FSTS, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultStatus(u32);

impl FaultStatus {
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    pub const fn raw(self) -> u32 {
        self.0
    }

    pub const fn primary_overflow(self) -> bool {
        self.0 & fsts::PFO != 0
    }

    pub const fn primary_pending(self) -> bool {
        self.0 & fsts::PPF != 0
    }

    pub const fn invalidation_queue_error(self) -> bool {
        self.0 & fsts::IQE != 0
    }

    pub const fn invalidation_completion_error(self) -> bool {
        self.0 & fsts::ICE != 0
    }

    pub const fn invalidation_timeout(self) -> bool {
        self.0 & fsts::ITE != 0
    }

    /// FRI: the recording register hardware wrote most recently (valid
    /// while [`primary_pending`](Self::primary_pending)).
    pub const fn fault_record_index(self) -> u32 {
        (self.0 & fsts::FRI_MASK) >> fsts::FRI_SHIFT
    }

    /// The value to write to FSTS to acknowledge the error conditions this
    /// status shows.
    pub const fn clear_value(self) -> u32 {
        self.0 & fsts::WRITE_ONE_TO_CLEAR
    }
}

/// The fault event interrupt's message (VT-d §10.4.10-13: FEDATA, FEADDR,
/// FEUADDR). The remapping unit sends it itself, in compatibility format:
/// fault events are never subject to interrupt remapping, so the message
/// names the destination APIC and vector directly (fixed delivery, edge,
/// physical destination mode, no redirection hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultEventMessage {
    /// FEDATA: the vector in bits 7:0; delivery mode fixed (0), edge.
    pub data: u32,
    /// FEADDR: 0xFEE in bits 31:20, destination ID bits 7:0 in 19:12.
    pub address: u32,
    /// FEUADDR: destination ID bits 31:8 (x2APIC destinations above 255,
    /// which only units with ECAP.EIM deliver); 0 otherwise.
    pub upper_address: u32,
}

/// Why a fault event message cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultEventError {
    /// Vectors 0..=15 are reserved for exceptions; an APIC refuses them as
    /// interrupt vectors (illegal vector error).
    ReservedVector(u8),
    /// A destination above 255 needs x2APIC destinations (ECAP.EIM) and the
    /// unit lacks them.
    DestinationTooWide(u32),
}

impl fmt::Display for FaultEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedVector(vector) => write!(f, "vector {vector:#x} is reserved for exceptions"),
            Self::DestinationTooWide(id) => write!(
                f,
                "APIC ID {id:#x} needs x2APIC destinations, which the remapping unit lacks"
            ),
        }
    }
}

/// The MSI address window (bits 31:20 = 0xFEE).
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;

impl FaultEventMessage {
    /// A message delivering `vector` to the local APIC `destination`.
    /// `x2apic_destinations` is ECAP.EIM: whether the unit sends FEUADDR's
    /// upper destination bits.
    pub fn new(vector: u8, destination: u32, x2apic_destinations: bool) -> Result<Self, FaultEventError> {
        if vector < 16 {
            return Err(FaultEventError::ReservedVector(vector));
        }
        if destination > 0xff && !x2apic_destinations {
            return Err(FaultEventError::DestinationTooWide(destination));
        }
        Ok(Self {
            data: u32::from(vector),
            address: MSI_ADDRESS_BASE | (destination & 0xff) << 12,
            upper_address: destination >> 8,
        })
    }

    /// The vector the message delivers.
    pub fn vector(&self) -> u8 {
        self.data as u8
    }
}

/// Fault reasons (VT-d Appendix A, "Non-Recoverable Fault Reason
/// Encodings"), named for the legacy-mode DMA and interrupt remapping
/// faults; scalable-mode and other codes stay numeric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultReason {
    RootEntryNotPresent,
    ContextEntryNotPresent,
    InvalidContextEntry,
    AddressBeyondMgaw,
    WriteNotPermitted,
    ReadNotPermitted,
    PagingEntryAccessFailed,
    RootTableAccessFailed,
    ContextTableAccessFailed,
    RootEntryReservedBits,
    ContextEntryReservedBits,
    PagingEntryReservedBits,
    TranslationTypeBlocked,
    InterruptRequestReservedBits,
    InterruptIndexTooLarge,
    IrteNotPresent,
    InterruptTableAccessFailed,
    IrteReservedBits,
    CompatibilityFormatBlocked,
    SourceIdCheckFailed,
    Other(u8),
}

impl FaultReason {
    const NAMED: [(u8, Self, &'static str); 20] = [
        (0x01, Self::RootEntryNotPresent, "root entry not present"),
        (0x02, Self::ContextEntryNotPresent, "context entry not present"),
        (0x03, Self::InvalidContextEntry, "invalid context entry"),
        (0x04, Self::AddressBeyondMgaw, "address beyond the guest address width"),
        (0x05, Self::WriteNotPermitted, "write not permitted"),
        (0x06, Self::ReadNotPermitted, "read not permitted"),
        (0x07, Self::PagingEntryAccessFailed, "paging entry access failed"),
        (0x08, Self::RootTableAccessFailed, "root table access failed"),
        (0x09, Self::ContextTableAccessFailed, "context table access failed"),
        (0x0a, Self::RootEntryReservedBits, "reserved bits set in root entry"),
        (
            0x0b,
            Self::ContextEntryReservedBits,
            "reserved bits set in context entry",
        ),
        (0x0c, Self::PagingEntryReservedBits, "reserved bits set in paging entry"),
        (
            0x0d,
            Self::TranslationTypeBlocked,
            "request blocked by translation type",
        ),
        (
            0x20,
            Self::InterruptRequestReservedBits,
            "reserved bits set in interrupt request",
        ),
        (0x21, Self::InterruptIndexTooLarge, "interrupt index beyond the table"),
        (0x22, Self::IrteNotPresent, "interrupt remapping entry not present"),
        (
            0x23,
            Self::InterruptTableAccessFailed,
            "interrupt remapping table access failed",
        ),
        (
            0x24,
            Self::IrteReservedBits,
            "reserved bits set in interrupt remapping entry",
        ),
        (
            0x25,
            Self::CompatibilityFormatBlocked,
            "compatibility-format interrupt blocked",
        ),
        (0x26, Self::SourceIdCheckFailed, "interrupt source-id check failed"),
    ];

    pub fn from_code(code: u8) -> Self {
        Self::NAMED
            .iter()
            .find(|&&(named, _, _)| named == code)
            .map_or(Self::Other(code), |&(_, reason, _)| reason)
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Other(code) => code,
            named => Self::NAMED
                .iter()
                .find(|&&(_, reason, _)| reason == named)
                .map_or(0, |&(code, _, _)| code),
        }
    }

    pub fn description(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|&&(_, reason, _)| reason == self)
            .map_or("unnamed fault reason", |&(_, _, text)| text)
    }

    /// Codes 0x20..=0x2f are interrupt remapping faults.
    pub fn is_interrupt_remapping(self) -> bool {
        (0x20..=0x2f).contains(&self.code())
    }
}

/// T (bit 126): the kind of request that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    Write,
    /// A read, or an atomic operation.
    Read,
}

/// One primary fault recording register (VT-d §10.4.14, §9.9), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultRecord {
    pub source: SourceId,
    pub reason: FaultReason,
    pub request: RequestType,
    /// FI (bits 63:12): the page address of a DMA fault; for interrupt
    /// remapping faults bits 63:48 hold the interrupt index instead.
    pub fault_info: u64,
    /// PV (bits 123:104) when PP (bit 95) is set.
    pub pasid: Option<u32>,
    /// EXE (bit 94).
    pub execute: bool,
    /// PRIV (bit 93).
    pub privileged: bool,
    /// AT (bits 125:124): the PCIe address type of the request.
    pub address_type: u8,
}

impl FaultRecord {
    /// Bit 127 (bit 63 of the upper quadword): the register holds a fault.
    pub const F: u64 = 1 << 63;

    /// Decodes a register read as its lower and upper quadwords; `None` if
    /// F is clear (the register holds no fault).
    pub fn decode(lower: u64, upper: u64) -> Option<Self> {
        if upper & Self::F == 0 {
            return None;
        }
        let pasid_present = upper >> 31 & 1 != 0;
        Some(Self {
            source: SourceId::from_raw(upper as u16),
            reason: FaultReason::from_code((upper >> 32) as u8),
            request: if upper >> 62 & 1 != 0 {
                RequestType::Read
            } else {
                RequestType::Write
            },
            fault_info: lower & !0xfff,
            pasid: pasid_present.then_some(((upper >> 40) & 0xf_ffff) as u32),
            execute: upper >> 30 & 1 != 0,
            privileged: upper >> 29 & 1 != 0,
            address_type: ((upper >> 60) & 0x3) as u8,
        })
    }

    /// The faulting page for DMA faults.
    pub fn address(&self) -> Option<u64> {
        (!self.reason.is_interrupt_remapping()).then_some(self.fault_info)
    }

    /// The interrupt index for interrupt remapping faults.
    pub fn interrupt_index(&self) -> Option<u16> {
        self.reason
            .is_interrupt_remapping()
            .then_some((self.fault_info >> 48) as u16)
    }
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.request {
            RequestType::Write => "write",
            RequestType::Read => "read",
        };
        match self.interrupt_index() {
            Some(index) => write!(f, "interrupt from {} index {index:#x}", self.source)?,
            None => write!(f, "DMA {access} from {} at {:#x}", self.source, self.fault_info)?,
        }
        write!(
            f,
            ": {} (reason {:#04x})",
            self.reason.description(),
            self.reason.code()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(reason: u8, source: u16, read: bool) -> u64 {
        FaultRecord::F | u64::from(read) << 62 | u64::from(reason) << 32 | u64::from(source)
    }

    #[test]
    fn a_dma_fault_decodes() {
        let record = FaultRecord::decode(0x1234_5678_9abc, upper(0x05, 0x0010, false)).unwrap();
        assert_eq!(record.source, SourceId::new(0, 2, 0).unwrap());
        assert_eq!(record.reason, FaultReason::WriteNotPermitted);
        assert_eq!(record.request, RequestType::Write);
        assert_eq!(record.address(), Some(0x1234_5678_9000));
        assert_eq!(record.interrupt_index(), None);
        assert_eq!(record.pasid, None);
        assert_eq!(
            record.to_string(),
            "DMA write from 00:02.0 at 0x123456789000: write not permitted (reason 0x05)"
        );
    }

    #[test]
    fn an_interrupt_remapping_fault_carries_the_index() {
        let record = FaultRecord::decode(0x002a_u64 << 48, upper(0x22, 0xf8f8, true)).unwrap();
        assert!(record.reason.is_interrupt_remapping());
        assert_eq!(record.interrupt_index(), Some(0x2a));
        assert_eq!(record.address(), None);
        assert_eq!(record.request, RequestType::Read);
        assert_eq!(
            record.to_string(),
            "interrupt from f8:1f.0 index 0x2a: interrupt remapping entry not present (reason 0x22)"
        );
    }

    #[test]
    fn pasid_and_request_attributes_decode() {
        let upper = upper(0x06, 0x0100, true) | 1 << 31 | 0x1_2345 << 40 | 1 << 30 | 1 << 29 | 2 << 60;
        let record = FaultRecord::decode(0, upper).unwrap();
        assert_eq!(record.pasid, Some(0x1_2345));
        assert!(record.execute && record.privileged);
        assert_eq!(record.address_type, 2);
    }

    #[test]
    fn an_empty_register_is_no_fault() {
        assert_eq!(FaultRecord::decode(u64::MAX, !FaultRecord::F), None);
    }

    #[test]
    fn reason_codes_round_trip() {
        for code in 0..=u8::MAX {
            assert_eq!(FaultReason::from_code(code).code(), code);
        }
        assert_eq!(FaultReason::from_code(0x58), FaultReason::Other(0x58));
        assert_eq!(FaultReason::Other(0x58).description(), "unnamed fault reason");
    }

    #[test]
    fn status_bits_decode() {
        let status = FaultStatus::from_raw(fsts::PFO | fsts::PPF | fsts::IQE | 3 << 8);
        assert!(status.primary_overflow() && status.primary_pending());
        assert!(status.invalidation_queue_error());
        assert!(!status.invalidation_timeout() && !status.invalidation_completion_error());
        assert_eq!(status.fault_record_index(), 3);
        assert_eq!(status.clear_value(), fsts::PFO | fsts::IQE);
    }

    #[test]
    fn fault_event_messages_are_compatibility_format_msis() {
        let message = FaultEventMessage::new(0x4f, 0, false).unwrap();
        assert_eq!(
            (message.address, message.data, message.upper_address),
            (0xfee0_0000, 0x4f, 0)
        );
        assert_eq!(message.vector(), 0x4f);
        let message = FaultEventMessage::new(0x4f, 0x12, false).unwrap();
        assert_eq!(message.address, 0xfee1_2000);
        let wide = FaultEventMessage::new(0x40, 0x1_2345, true).unwrap();
        assert_eq!((wide.address, wide.upper_address), (0xfee4_5000, 0x123));
        assert_eq!(
            FaultEventMessage::new(0x40, 0x100, false),
            Err(FaultEventError::DestinationTooWide(0x100))
        );
        assert_eq!(
            FaultEventMessage::new(0x0f, 0, true),
            Err(FaultEventError::ReservedVector(0x0f))
        );
    }
}

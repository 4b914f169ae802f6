//! Register layout of the local APIC, independent of the access path.
//!
//! Registers are named by their *index*: the xAPIC MMIO offset divided by 16,
//! which is also the x2APIC MSR number minus 0x800. An MMIO front end can
//! decode `offset >> 4` with [`Register::from_index`] exactly as the MSR path
//! decodes `msr - 0x800`.

/// Bit 16 of every LVT entry: the interrupt is masked.
pub(crate) const LVT_MASKED: u32 = 1 << 16;
/// Bit 12 of LVT entries: delivery status, read-only (always idle here,
/// because delivery to the vCPU is immediate).
const LVT_DELIVERY_STATUS: u32 = 1 << 12;
/// Bit 14 of LINT0/LINT1: remote IRR, read-only.
const LVT_REMOTE_IRR: u32 = 1 << 14;
const LVT_VECTOR: u32 = 0xff;
const LVT_DELIVERY_MODE: u32 = 0x700;
const LVT_PIN_POLARITY: u32 = 1 << 13;
const LVT_TRIGGER_MODE: u32 = 1 << 15;
/// Bits 18:17 of the LVT timer entry.
pub(crate) const LVT_TIMER_MODE_SHIFT: u32 = 17;
const LVT_TIMER_MODE: u32 = 0b11 << LVT_TIMER_MODE_SHIFT;

/// SVR bits 7:0 (spurious vector), 8 (software enable), 9 (focus processor
/// checking, which Linux sets). Bit 12 (EOI-broadcast suppression) stays
/// reserved because the version register does not advertise it: the I/O
/// APIC (version 0x11, no EOI register) relies on EOI broadcasts.
pub(crate) const SVR_WRITABLE: u32 = 0x3ff;
pub(crate) const SVR_SOFTWARE_ENABLE: u32 = 1 << 8;
/// TPR bits 7:0; the rest are reserved.
pub(crate) const TPR_WRITABLE: u32 = 0xff;
/// Divide configuration bits 0, 1 and 3; bit 2 is reserved.
pub(crate) const DIVIDE_WRITABLE: u32 = 0b1011;

/// xAPIC DFR at reset and after selecting the flat model: model 0xF in bits
/// 31:28; bits 27:0 are reserved and read as 1s.
pub(crate) const DFR_FLAT: u32 = 0xffff_ffff;
/// DFR bits 31:28, the only writable ones.
pub(crate) const DFR_MODEL: u32 = 0xf000_0000;

/// Error-status bit 5: this APIC tried to send an IPI with a vector below 16.
pub(crate) const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// Error-status bit 6: this APIC received an interrupt with a vector below 16.
pub(crate) const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
/// Error-status bit 7: xAPIC-mode software accessed a reserved register
/// (set by MMIO writes only; x2APIC raises #GP instead).
pub(crate) const ESR_ILLEGAL_REGISTER_ADDRESS: u32 = 1 << 7;

/// The local vector table entries this APIC implements. The version register
/// reports max LVT entry 5, i.e. these six; CMCI (index 0x2F) would be a
/// seventh and is therefore absent, as on CPUs without CMCI (Linux only
/// touches it when max LVT >= 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LvtEntry {
    Timer,
    Thermal,
    PerformanceCounter,
    Lint0,
    Lint1,
    Error,
}

impl LvtEntry {
    /// Bits software may change. Bits outside this set and
    /// [`Self::read_only_bits`] are reserved: setting them faults.
    fn writable_bits(self) -> u32 {
        match self {
            LvtEntry::Timer => LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE,
            LvtEntry::Thermal | LvtEntry::PerformanceCounter => LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
            LvtEntry::Lint0 | LvtEntry::Lint1 => {
                LVT_VECTOR | LVT_DELIVERY_MODE | LVT_PIN_POLARITY | LVT_TRIGGER_MODE | LVT_MASKED
            }
            LvtEntry::Error => LVT_VECTOR | LVT_MASKED,
        }
    }

    /// Status bits the guest may write back (read-modify-write) but cannot
    /// change; they are not reserved, so writing them must not fault.
    fn read_only_bits(self) -> u32 {
        match self {
            LvtEntry::Lint0 | LvtEntry::Lint1 => LVT_DELIVERY_STATUS | LVT_REMOTE_IRR,
            _ => LVT_DELIVERY_STATUS,
        }
    }

    /// The value to store for a guest write, or `None` when it sets
    /// reserved bits.
    pub(crate) fn sanitize(self, value: u32) -> Option<u32> {
        if value & !(self.writable_bits() | self.read_only_bits()) != 0 {
            return None;
        }
        Some(value & self.writable_bits())
    }

    /// The value to store for an xAPIC write, which cannot fault: reserved
    /// bits are dropped instead of rejected.
    pub(crate) fn truncate(self, value: u32) -> u32 {
        value & self.writable_bits()
    }
}

/// The six LVT registers. All reset to masked (only bit 16 set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalVectorTable {
    timer: u32,
    thermal: u32,
    performance_counter: u32,
    lint0: u32,
    lint1: u32,
    error: u32,
}

impl LocalVectorTable {
    pub(crate) const RESET: Self = Self {
        timer: LVT_MASKED,
        thermal: LVT_MASKED,
        performance_counter: LVT_MASKED,
        lint0: LVT_MASKED,
        lint1: LVT_MASKED,
        error: LVT_MASKED,
    };

    pub(crate) fn get(&self, entry: LvtEntry) -> u32 {
        match entry {
            LvtEntry::Timer => self.timer,
            LvtEntry::Thermal => self.thermal,
            LvtEntry::PerformanceCounter => self.performance_counter,
            LvtEntry::Lint0 => self.lint0,
            LvtEntry::Lint1 => self.lint1,
            LvtEntry::Error => self.error,
        }
    }

    pub(crate) fn set(&mut self, entry: LvtEntry, value: u32) {
        let slot = match entry {
            LvtEntry::Timer => &mut self.timer,
            LvtEntry::Thermal => &mut self.thermal,
            LvtEntry::PerformanceCounter => &mut self.performance_counter,
            LvtEntry::Lint0 => &mut self.lint0,
            LvtEntry::Lint1 => &mut self.lint1,
            LvtEntry::Error => &mut self.error,
        };
        *slot = value;
    }

    /// Masks every entry: what software-disabling the APIC does.
    pub(crate) fn mask_all(&mut self) {
        for entry in [
            LvtEntry::Timer,
            LvtEntry::Thermal,
            LvtEntry::PerformanceCounter,
            LvtEntry::Lint0,
            LvtEntry::Lint1,
            LvtEntry::Error,
        ] {
            self.set(entry, self.get(entry) | LVT_MASKED);
        }
    }

    /// The vector of an entry if it is unmasked.
    pub(crate) fn unmasked_vector(&self, entry: LvtEntry) -> Option<u8> {
        let value = self.get(entry);
        if value & LVT_MASKED != 0 {
            return None;
        }
        Some((value & LVT_VECTOR) as u8)
    }
}

/// A local APIC register, by index (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Register {
    Id,
    Version,
    TaskPriority,
    ProcessorPriority,
    EndOfInterrupt,
    LogicalDestination,
    SpuriousVector,
    /// ISR bits `32 * n ..= 32 * n + 31`, `n` in 0..8.
    InService(usize),
    /// TMR bits `32 * n ..= 32 * n + 31`, `n` in 0..8.
    TriggerMode(usize),
    /// IRR bits `32 * n ..= 32 * n + 31`, `n` in 0..8.
    InterruptRequest(usize),
    ErrorStatus,
    InterruptCommand,
    Lvt(LvtEntry),
    TimerInitialCount,
    TimerCurrentCount,
    TimerDivideConfig,
    /// x2APIC only.
    SelfIpi,
}

impl Register {
    /// Decodes a register index. Indices the x2APIC architecture leaves
    /// reserved (APR, RRD, DFR, ICR high half, CMCI here) decode to `None`;
    /// the xAPIC front end decodes APR, DFR and the ICR high half itself.
    pub(crate) fn from_index(index: u32) -> Option<Self> {
        let register = match index {
            0x02 => Register::Id,
            0x03 => Register::Version,
            0x08 => Register::TaskPriority,
            0x0a => Register::ProcessorPriority,
            0x0b => Register::EndOfInterrupt,
            0x0d => Register::LogicalDestination,
            0x0f => Register::SpuriousVector,
            0x10..=0x17 => Register::InService(bank(index, 0x10)),
            0x18..=0x1f => Register::TriggerMode(bank(index, 0x18)),
            0x20..=0x27 => Register::InterruptRequest(bank(index, 0x20)),
            0x28 => Register::ErrorStatus,
            0x30 => Register::InterruptCommand,
            0x32 => Register::Lvt(LvtEntry::Timer),
            0x33 => Register::Lvt(LvtEntry::Thermal),
            0x34 => Register::Lvt(LvtEntry::PerformanceCounter),
            0x35 => Register::Lvt(LvtEntry::Lint0),
            0x36 => Register::Lvt(LvtEntry::Lint1),
            0x37 => Register::Lvt(LvtEntry::Error),
            0x38 => Register::TimerInitialCount,
            0x39 => Register::TimerCurrentCount,
            0x3e => Register::TimerDivideConfig,
            0x3f => Register::SelfIpi,
            _ => return None,
        };
        Some(register)
    }
}

/// Which 32-bit bank of a 256-bit register an index names (callers pass an
/// index within `first..first + 8`).
fn bank(index: u32, first: u32) -> usize {
    index.saturating_sub(first) as usize
}

/// A 256-bit set of vectors: the layout of ISR, TMR and IRR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VectorSet([u32; 8]);

impl VectorSet {
    fn locate(vector: u8) -> (usize, u32) {
        (usize::from(vector >> 5), 1 << (vector & 31))
    }

    pub(crate) fn insert(&mut self, vector: u8) {
        let (word, bit) = Self::locate(vector);
        if let Some(word) = self.0.get_mut(word) {
            *word |= bit;
        }
    }

    pub(crate) fn remove(&mut self, vector: u8) {
        let (word, bit) = Self::locate(vector);
        if let Some(word) = self.0.get_mut(word) {
            *word &= !bit;
        }
    }

    pub(crate) fn contains(&self, vector: u8) -> bool {
        let (word, bit) = Self::locate(vector);
        self.0.get(word).is_some_and(|word| word & bit != 0)
    }

    pub(crate) fn highest(&self) -> Option<u8> {
        let (index, word) = self.0.iter().enumerate().rev().find(|(_, word)| **word != 0)?;
        let bit = 31 - word.leading_zeros() as usize;
        u8::try_from(index * 32 + bit).ok()
    }

    /// Bank `index` (0..8) as the guest reads it; out of range reads 0.
    pub(crate) fn bank(&self, index: usize) -> u32 {
        self.0.get(index).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_set_tracks_highest_across_banks() {
        let mut set = VectorSet::default();
        assert_eq!(set.highest(), None);
        set.insert(0x31);
        set.insert(0xfe);
        set.insert(0xff);
        assert_eq!(set.highest(), Some(0xff));
        set.remove(0xff);
        assert_eq!(set.highest(), Some(0xfe));
        assert!(set.contains(0x31));
        assert_eq!(set.bank(1), 1 << 0x11);
        assert_eq!(set.bank(7), 1 << 30);
        assert_eq!(set.bank(8), 0, "out-of-range bank reads zero");
    }

    #[test]
    fn lvt_sanitize_ignores_status_bits_but_rejects_reserved() {
        // Delivery status (12) and remote IRR (14) are read-only, not reserved.
        assert_eq!(LvtEntry::Lint0.sanitize(0x0001_5700), Some(0x0001_0700));
        // Timer has no delivery mode field.
        assert_eq!(LvtEntry::Timer.sanitize(0x0000_0400), None);
        assert_eq!(LvtEntry::Error.sanitize(0x0008_00fe), None);
        assert_eq!(LvtEntry::Timer.sanitize(0x0004_00ec), Some(0x0004_00ec));
    }

    #[test]
    fn reserved_indices_do_not_decode() {
        for reserved in [0x00, 0x09, 0x0c, 0x0e, 0x2f, 0x31, 0x3a, 0x40, 0xff] {
            assert_eq!(Register::from_index(reserved), None, "{reserved:#x}");
        }
        assert_eq!(Register::from_index(0x17), Some(Register::InService(7)));
        assert_eq!(Register::from_index(0x20), Some(Register::InterruptRequest(0)));
    }
}

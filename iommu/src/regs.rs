//! The remapping unit's register map (VT-d §10.4) and the global
//! command/status handshake as pure functions.

/// MMIO access to one remapping unit's register set. Offsets are from the
/// DRHD's register base; 32-bit registers are read and written with 32-bit
/// accesses and 64-bit registers with 64-bit ones, as VT-d §10.2 requires.
pub trait RegisterAccess {
    fn read32(&mut self, offset: u32) -> u32;
    fn read64(&mut self, offset: u32) -> u64;
    fn write32(&mut self, offset: u32, value: u32);
    fn write64(&mut self, offset: u32, value: u64);

    /// Called between two polls of a status the driver waits for. With a
    /// fixed delay here (a few microseconds), the driver's poll limit bounds
    /// the wait in time; the default spins once.
    fn relax(&mut self) {
        core::hint::spin_loop();
    }
}

/// Register offsets (VT-d §10.4, table "Address Mapping for Remapping
/// Hardware Registers").
pub mod offset {
    pub const VER: u32 = 0x00;
    pub const CAP: u32 = 0x08;
    pub const ECAP: u32 = 0x10;
    pub const GCMD: u32 = 0x18;
    pub const GSTS: u32 = 0x1c;
    pub const RTADDR: u32 = 0x20;
    pub const CCMD: u32 = 0x28;
    pub const FSTS: u32 = 0x34;
    pub const FECTL: u32 = 0x38;
    pub const FEDATA: u32 = 0x3c;
    pub const FEADDR: u32 = 0x40;
    pub const FEUADDR: u32 = 0x44;
    pub const AFLOG: u32 = 0x58;
    pub const PMEN: u32 = 0x64;
    pub const PLMBASE: u32 = 0x68;
    pub const PLMLIMIT: u32 = 0x6c;
    pub const PHMBASE: u32 = 0x70;
    pub const PHMLIMIT: u32 = 0x78;
    pub const IQH: u32 = 0x80;
    pub const IQT: u32 = 0x88;
    pub const IQA: u32 = 0x90;
    pub const ICS: u32 = 0x9c;
    pub const IECTL: u32 = 0xa0;
    pub const IEDATA: u32 = 0xa4;
    pub const IEADDR: u32 = 0xa8;
    pub const IEUADDR: u32 = 0xac;
    pub const IQERCD: u32 = 0xb0;
    pub const IRTA: u32 = 0xb8;
    /// The IOTLB invalidate register, this far past ECAP.IRO (the IVA
    /// register sits at IRO itself).
    pub const IOTLB_FROM_IRO: u32 = 0x8;
}

/// Context Command register bits (VT-d §10.4.7).
pub mod ccmd {
    /// Invalidate context cache; hardware clears it when done.
    pub const ICC: u64 = 1 << 63;
    pub const GLOBAL: u64 = 1 << 61;
    pub const DOMAIN: u64 = 2 << 61;
    pub const DEVICE: u64 = 3 << 61;
}

/// IOTLB Invalidate register bits (VT-d §10.4.8.1).
pub mod iotlb {
    /// Invalidate IOTLB; hardware clears it when done.
    pub const IVT: u64 = 1 << 63;
    pub const GLOBAL: u64 = 1 << 60;
    pub const DOMAIN: u64 = 2 << 60;
    pub const PAGE: u64 = 3 << 60;
    pub const DRAIN_READS: u64 = 1 << 49;
    pub const DRAIN_WRITES: u64 = 1 << 48;
    pub const DID_SHIFT: u32 = 32;
}

/// Protected Memory Enable register bits (VT-d §10.4, "Protected Memory
/// Enable Register").
pub mod pmen {
    pub const EPM: u32 = 1 << 31;
    /// Protected region status.
    pub const PRS: u32 = 1 << 0;
}

/// Fault Event Control and Invalidation Event Control register bits (VT-d
/// §10.4): interrupt mask and interrupt pending.
pub mod event_control {
    pub const IM: u32 = 1 << 31;
    pub const IP: u32 = 1 << 30;
}

/// Invalidation completion status register: invalidation wait descriptor
/// complete (VT-d §10.4, "Invalidation Completion Status Register").
pub const ICS_IWC: u32 = 1 << 0;

/// The commands of the Global Command register (VT-d §10.4.4). Each has a
/// status bit at the same position in the Global Status register (§10.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlobalCommand {
    /// TE / TES.
    TranslationEnable,
    /// SRTP / RTPS: latch RTADDR.
    SetRootTablePointer,
    /// SFL / FLS: latch the advanced fault log pointer.
    SetFaultLog,
    /// EAFL / AFLS.
    AdvancedFaultLogging,
    /// WBF / WBFS: flush the write buffer.
    WriteBufferFlush,
    /// QIE / QIES.
    QueuedInvalidation,
    /// IRE / IRES.
    InterruptRemapping,
    /// SIRTP / IRTPS: latch IRTA.
    SetInterruptRemapTablePointer,
    /// CFI / CFIS: let compatibility-format interrupts bypass remapping.
    CompatibilityFormatInterrupts,
}

impl GlobalCommand {
    pub const fn bit(self) -> u32 {
        match self {
            Self::TranslationEnable => 1 << 31,
            Self::SetRootTablePointer => 1 << 30,
            Self::SetFaultLog => 1 << 29,
            Self::AdvancedFaultLogging => 1 << 28,
            Self::WriteBufferFlush => 1 << 27,
            Self::QueuedInvalidation => 1 << 26,
            Self::InterruptRemapping => 1 << 25,
            Self::SetInterruptRemapTablePointer => 1 << 24,
            Self::CompatibilityFormatInterrupts => 1 << 23,
        }
    }

    /// One-shot commands act when written as 1 and have no state to keep;
    /// writing them again repeats the action.
    pub const fn is_one_shot(self) -> bool {
        matches!(
            self,
            Self::SetRootTablePointer
                | Self::SetFaultLog
                | Self::WriteBufferFlush
                | Self::SetInterruptRemapTablePointer
        )
    }
}

/// Status bits that mirror a persistent command: TES, AFLS, QIES, IRES and
/// CFIS. GCMD is write-only, so the next GCMD value is these bits of GSTS
/// with one bit changed.
pub const PERSISTENT_STATUS: u32 = GlobalCommand::TranslationEnable.bit()
    | GlobalCommand::AdvancedFaultLogging.bit()
    | GlobalCommand::QueuedInvalidation.bit()
    | GlobalCommand::InterruptRemapping.bit()
    | GlobalCommand::CompatibilityFormatInterrupts.bit();

/// The GCMD value that issues `command` (turning a persistent feature on or
/// off per `enable`; one-shot commands ignore `enable`) without changing
/// any other feature: the persistent bits of the current GSTS, never a
/// one-shot bit that happens to read as 1 in GSTS (RTPS stays set after the
/// root pointer latched, and writing SRTP again would re-latch it).
/// This is the procedure the Global Command register's description gives:
/// keep `GSTS & 0x96FF_FFFF`, set or clear the one bit, write, then poll
/// GSTS (see [`gcmd_complete`]).
pub const fn gcmd_value(gsts: u32, command: GlobalCommand, enable: bool) -> u32 {
    let keep = gsts & PERSISTENT_STATUS;
    if command.is_one_shot() || enable {
        keep | command.bit()
    } else {
        keep & !command.bit()
    }
}

/// Whether GSTS shows `command` done: latches set their status bit, the
/// write-buffer flush clears WBFS when finished, persistent features show
/// the requested state.
pub const fn gcmd_complete(gsts: u32, command: GlobalCommand, enable: bool) -> bool {
    let status = gsts & command.bit() != 0;
    match command {
        GlobalCommand::WriteBufferFlush => !status,
        GlobalCommand::SetRootTablePointer
        | GlobalCommand::SetFaultLog
        | GlobalCommand::SetInterruptRemapTablePointer => status,
        _ => status == enable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TES: u32 = 1 << 31;
    const RTPS: u32 = 1 << 30;
    const QIES: u32 = 1 << 26;
    const IRES: u32 = 1 << 25;
    const IRTPS: u32 = 1 << 24;

    #[test]
    fn command_bits_follow_the_spec() {
        assert_eq!(GlobalCommand::TranslationEnable.bit(), 0x8000_0000);
        assert_eq!(GlobalCommand::SetInterruptRemapTablePointer.bit(), 0x0100_0000);
        assert_eq!(GlobalCommand::CompatibilityFormatInterrupts.bit(), 0x0080_0000);
        // Linux masks GSTS with 0x96ffffff before deriving GCMD; the same
        // bits of the command range survive here.
        assert_eq!(PERSISTENT_STATUS, 0x96ff_ffff & 0xff80_0000);
    }

    #[test]
    fn enabling_translation_keeps_features_but_not_latches() {
        let gsts = RTPS | QIES | IRES | IRTPS;
        let value = gcmd_value(gsts, GlobalCommand::TranslationEnable, true);
        assert_eq!(value, TES | QIES | IRES);
    }

    #[test]
    fn disabling_clears_only_that_feature() {
        let gsts = TES | RTPS | QIES | IRES;
        assert_eq!(gcmd_value(gsts, GlobalCommand::InterruptRemapping, false), TES | QIES);
        assert_eq!(gcmd_value(gsts, GlobalCommand::TranslationEnable, false), QIES | IRES);
    }

    #[test]
    fn one_shot_commands_set_their_bit_once() {
        let gsts = TES | RTPS | IRTPS;
        assert_eq!(gcmd_value(gsts, GlobalCommand::SetRootTablePointer, false), TES | RTPS);
        assert_eq!(
            gcmd_value(gsts, GlobalCommand::WriteBufferFlush, true),
            TES | GlobalCommand::WriteBufferFlush.bit()
        );
    }

    #[test]
    fn completion_depends_on_the_command() {
        assert!(gcmd_complete(TES, GlobalCommand::TranslationEnable, true));
        assert!(!gcmd_complete(0, GlobalCommand::TranslationEnable, true));
        assert!(gcmd_complete(0, GlobalCommand::TranslationEnable, false));
        assert!(gcmd_complete(RTPS, GlobalCommand::SetRootTablePointer, true));
        assert!(!gcmd_complete(TES, GlobalCommand::SetRootTablePointer, true));
        let wbfs = GlobalCommand::WriteBufferFlush.bit();
        assert!(!gcmd_complete(wbfs, GlobalCommand::WriteBufferFlush, true));
        assert!(gcmd_complete(0, GlobalCommand::WriteBufferFlush, true));
    }
}

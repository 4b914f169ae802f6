//! Basic exit reasons (SDM Vol. 3 Appendix C).

use core::fmt;

macro_rules! exit_reasons {
    ($($name:ident = $number:literal => $label:literal,)*) => {
        /// The basic exit reason (bits 15:0 of the exit-reason field).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ExitReason {
            $($name,)*
            /// A number this crate does not know (reserved or newer than the SDM
            /// revision it was written against).
            Unknown(u16),
        }

        impl ExitReason {
            /// Every known reason, in numeric order.
            pub const KNOWN: &'static [ExitReason] = &[$(ExitReason::$name,)*];

            #[inline]
            pub fn from_basic(number: u16) -> Self {
                match number {
                    $($number => ExitReason::$name,)*
                    other => ExitReason::Unknown(other),
                }
            }

            /// The SDM number of this reason.
            #[inline]
            pub fn number(self) -> u16 {
                match self {
                    $(ExitReason::$name => $number,)*
                    ExitReason::Unknown(number) => number,
                }
            }

            /// Short kebab-case name for logs and statistics.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ExitReason::$name => $label,)*
                    ExitReason::Unknown(_) => "unknown",
                }
            }
        }
    };
}

exit_reasons! {
    ExceptionOrNmi = 0 => "exception-or-nmi",
    ExternalInterrupt = 1 => "external-interrupt",
    TripleFault = 2 => "triple-fault",
    Init = 3 => "init",
    Sipi = 4 => "sipi",
    IoSmi = 5 => "io-smi",
    OtherSmi = 6 => "other-smi",
    InterruptWindow = 7 => "interrupt-window",
    NmiWindow = 8 => "nmi-window",
    TaskSwitch = 9 => "task-switch",
    Cpuid = 10 => "cpuid",
    Getsec = 11 => "getsec",
    Hlt = 12 => "hlt",
    Invd = 13 => "invd",
    Invlpg = 14 => "invlpg",
    Rdpmc = 15 => "rdpmc",
    Rdtsc = 16 => "rdtsc",
    Rsm = 17 => "rsm",
    Vmcall = 18 => "vmcall",
    Vmclear = 19 => "vmclear",
    Vmlaunch = 20 => "vmlaunch",
    Vmptrld = 21 => "vmptrld",
    Vmptrst = 22 => "vmptrst",
    Vmread = 23 => "vmread",
    Vmresume = 24 => "vmresume",
    Vmwrite = 25 => "vmwrite",
    Vmxoff = 26 => "vmxoff",
    Vmxon = 27 => "vmxon",
    CrAccess = 28 => "cr-access",
    DrAccess = 29 => "dr-access",
    IoInstruction = 30 => "io",
    Rdmsr = 31 => "rdmsr",
    Wrmsr = 32 => "wrmsr",
    EntryFailInvalidGuestState = 33 => "entry-fail-guest-state",
    EntryFailMsrLoading = 34 => "entry-fail-msr-loading",
    Mwait = 36 => "mwait",
    MonitorTrapFlag = 37 => "monitor-trap-flag",
    Monitor = 39 => "monitor",
    Pause = 40 => "pause",
    EntryFailMachineCheck = 41 => "entry-fail-machine-check",
    TprBelowThreshold = 43 => "tpr-below-threshold",
    ApicAccess = 44 => "apic-access",
    VirtualizedEoi = 45 => "virtualized-eoi",
    GdtrIdtrAccess = 46 => "gdtr-idtr-access",
    LdtrTrAccess = 47 => "ldtr-tr-access",
    EptViolation = 48 => "ept-violation",
    EptMisconfig = 49 => "ept-misconfig",
    Invept = 50 => "invept",
    Rdtscp = 51 => "rdtscp",
    PreemptionTimer = 52 => "preemption-timer",
    Invvpid = 53 => "invvpid",
    Wbinvd = 54 => "wbinvd",
    Xsetbv = 55 => "xsetbv",
    ApicWrite = 56 => "apic-write",
    Rdrand = 57 => "rdrand",
    Invpcid = 58 => "invpcid",
    Vmfunc = 59 => "vmfunc",
    Encls = 60 => "encls",
    Rdseed = 61 => "rdseed",
    PmlFull = 62 => "pml-full",
    Xsaves = 63 => "xsaves",
    Xrstors = 64 => "xrstors",
    Pconfig = 65 => "pconfig",
    SppEvent = 66 => "spp-event",
    Umwait = 67 => "umwait",
    Tpause = 68 => "tpause",
    Loadiwkey = 69 => "loadiwkey",
    Enclv = 70 => "enclv",
    EnqcmdPasidTranslation = 72 => "enqcmd-pasid",
    EnqcmdsPasidTranslation = 73 => "enqcmds-pasid",
    BusLock = 74 => "bus-lock",
    InstructionTimeout = 75 => "instruction-timeout",
}

/// Highest basic reason number with its own counter slot.
const MAX_KNOWN_NUMBER: usize = 75;

impl ExitReason {
    /// Slots needed for a per-reason counter array: one per number up to
    /// 75 (reserved numbers simply stay unused) plus one shared by all
    /// [`ExitReason::Unknown`] values.
    pub const COUNT: usize = MAX_KNOWN_NUMBER + 2;
    /// The slot [`ExitReason::index`] gives every unknown reason.
    pub const UNKNOWN_INDEX: usize = MAX_KNOWN_NUMBER + 1;

    /// Index into a `[T; ExitReason::COUNT]` array; always `< COUNT`.
    #[inline]
    pub fn index(&self) -> usize {
        match self {
            ExitReason::Unknown(_) => Self::UNKNOWN_INDEX,
            known => usize::from(known.number()),
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Unknown(number) => write!(f, "unknown exit reason {number}"),
            known => write!(f, "{} ({})", known.name(), known.number()),
        }
    }
}

/// The full 32-bit exit-reason field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub reason: ExitReason,
    /// Bit 31: VM entry failed; guest state was not loaded.
    pub entry_failure: bool,
    /// Bit 27: the exit happened from enclave mode.
    pub from_enclave: bool,
    pub raw: u32,
}

impl ExitInfo {
    #[inline]
    pub fn from_raw(raw: u32) -> Self {
        Self {
            reason: ExitReason::from_basic(raw as u16),
            entry_failure: raw & (1 << 31) != 0,
            from_enclave: raw & (1 << 27) != 0,
            raw,
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry_failure {
            write!(f, "VM-entry failure: {}", self.reason)
        } else {
            write!(f, "VM exit: {}", self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_reasons() {
        assert_eq!(ExitReason::from_basic(0), ExitReason::ExceptionOrNmi);
        assert_eq!(ExitReason::from_basic(10), ExitReason::Cpuid);
        assert_eq!(ExitReason::from_basic(30), ExitReason::IoInstruction);
        assert_eq!(ExitReason::from_basic(48), ExitReason::EptViolation);
        assert_eq!(ExitReason::from_basic(52), ExitReason::PreemptionTimer);
        assert_eq!(ExitReason::from_basic(64), ExitReason::Xrstors);
        assert_eq!(ExitReason::from_basic(75), ExitReason::InstructionTimeout);
    }

    #[test]
    fn reserved_and_future_numbers_are_unknown() {
        for number in [35, 38, 42, 71, 76, 0xFFFF] {
            assert_eq!(ExitReason::from_basic(number), ExitReason::Unknown(number));
            assert_eq!(ExitReason::from_basic(number).index(), ExitReason::UNKNOWN_INDEX);
        }
    }

    #[test]
    fn number_round_trips_and_index_fits() {
        assert_eq!(ExitReason::KNOWN.len(), 72);
        for reason in ExitReason::KNOWN {
            assert_eq!(ExitReason::from_basic(reason.number()), *reason);
            assert_eq!(reason.index(), usize::from(reason.number()));
            assert!(reason.index() < ExitReason::COUNT);
            assert_ne!(reason.name(), "unknown");
        }
    }

    #[test]
    fn names_are_kebab_case() {
        assert_eq!(ExitReason::Cpuid.name(), "cpuid");
        assert_eq!(ExitReason::IoInstruction.name(), "io");
        assert_eq!(ExitReason::EptViolation.name(), "ept-violation");
        assert_eq!(ExitReason::PreemptionTimer.name(), "preemption-timer");
        assert_eq!(ExitReason::TripleFault.name(), "triple-fault");
        assert_eq!(ExitReason::ExternalInterrupt.name(), "external-interrupt");
        for reason in ExitReason::KNOWN {
            let name = reason.name();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
    }

    #[test]
    fn exit_info_entry_failure_bit() {
        let info = ExitInfo::from_raw(0x8000_0021);
        assert_eq!(info.reason, ExitReason::EntryFailInvalidGuestState);
        assert!(info.entry_failure);
        assert_eq!(info.to_string(), "VM-entry failure: entry-fail-guest-state (33)");

        let info = ExitInfo::from_raw(12);
        assert_eq!(info.reason, ExitReason::Hlt);
        assert!(!info.entry_failure && !info.from_enclave);
        assert_eq!(info.to_string(), "VM exit: hlt (12)");
    }

    #[test]
    fn unknown_display_names_the_number() {
        assert_eq!(ExitReason::Unknown(99).to_string(), "unknown exit reason 99");
    }
}

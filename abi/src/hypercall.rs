//! Hypercalls: `VMCALL` with the call number in RAX and arguments in RDI,
//! RSI, RDX; the result comes back in RAX. Negative results are errors.

/// Returns the ABI version in RAX.
pub const HC_VERSION: u64 = 0;
/// Returns how many VMX-preemption-timer ticks the calling domain has seen.
pub const HC_TIMER_TICKS: u64 = 1;
/// Reports a benchmark figure: RDI = [`BenchKind`] as u64, RSI = emulated
/// instructions per round trip. Keel prints it as `exit-cost <kind> <n>`.
pub const HC_BENCH_REPORT: u64 = 2;
/// Reports that the guest's self-test finished: RDI = 0 for pass, else the
/// number of the first failed check.
pub const HC_SELFTEST_DONE: u64 = 3;

/// Stops the calling domain voluntarily: RDI = exit status (0 = success).
/// The call does not return.
pub const HC_DOMAIN_STOP: u64 = 4;

/// The current ABI version returned by [`HC_VERSION`].
pub const ABI_VERSION: u64 = 1;

/// Result for an unknown hypercall number.
pub const HC_ERR_UNKNOWN: u64 = u64::MAX; // -1
/// Result for a known hypercall with a bad argument.
pub const HC_ERR_INVALID: u64 = u64::MAX - 1; // -2

/// The exit kinds the `bench` guest measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum BenchKind {
    Cpuid = 0,
    Vmcall = 1,
    Io = 2,
}

impl BenchKind {
    pub const fn from_u64(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Cpuid),
            1 => Some(Self::Vmcall),
            2 => Some(Self::Io),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpuid => "cpuid",
            Self::Vmcall => "vmcall",
            Self::Io => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_kinds_round_trip() {
        for kind in [BenchKind::Cpuid, BenchKind::Vmcall, BenchKind::Io] {
            assert_eq!(BenchKind::from_u64(kind as u64), Some(kind));
        }
        assert_eq!(BenchKind::from_u64(3), None);
        assert_eq!(BenchKind::Io.name(), "io");
    }
}

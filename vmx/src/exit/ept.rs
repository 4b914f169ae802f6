//! Exit qualification for EPT violations (SDM Vol. 3 Table 28-7).

use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptViolation {
    /// The access was a data read.
    pub read: bool,
    /// The access was a data write.
    pub write: bool,
    /// The access was an instruction fetch.
    pub fetch: bool,
    /// The guest-physical address was readable under the EPT entries walked.
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    /// `GUEST_LINEAR_ADDRESS` holds the faulting linear address.
    pub guest_linear_valid: bool,
    /// With `guest_linear_valid`: the access was to the final translated
    /// address, not to a guest paging-structure entry.
    pub caused_by_translation: bool,
    /// The violation was during an IRET that unblocked NMIs; the hypervisor
    /// must re-block NMIs before resuming (SDM 28.2.3).
    pub nmi_unblocking: bool,
}

impl EptViolation {
    pub fn from_raw(raw: u64) -> Self {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        let guest_linear_valid = bit(7);
        Self {
            read: bit(0),
            write: bit(1),
            fetch: bit(2),
            readable: bit(3),
            writable: bit(4),
            executable: bit(5),
            guest_linear_valid,
            // Bit 8 is undefined unless bit 7 is set.
            caused_by_translation: guest_linear_valid && bit(8),
            nmi_unblocking: bit(12),
        }
    }

    /// The entry was not present at all (no read, write or execute).
    pub fn not_present(&self) -> bool {
        !(self.readable || self.writable || self.executable)
    }
}

impl fmt::Display for EptViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        write!(
            f,
            "EPT violation: access {}{}{}, allowed {}{}{}",
            flag(self.read, 'r'),
            flag(self.write, 'w'),
            flag(self.fetch, 'x'),
            flag(self.readable, 'r'),
            flag(self.writable, 'w'),
            flag(self.executable, 'x'),
        )?;
        if self.guest_linear_valid {
            f.write_str(if self.caused_by_translation {
                ", linear address translation"
            } else {
                ", guest paging-structure access"
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_to_read_only_page() {
        let v = EptViolation::from_raw(0x18A);
        assert!(v.write && !v.read && !v.fetch);
        assert!(v.readable && !v.writable && !v.executable);
        assert!(v.guest_linear_valid && v.caused_by_translation);
        assert!(!v.not_present());
        assert_eq!(
            v.to_string(),
            "EPT violation: access -w-, allowed r--, linear address translation"
        );
    }

    #[test]
    fn fetch_from_unmapped_page() {
        let v = EptViolation::from_raw(0x84);
        assert!(v.fetch && v.not_present());
        assert!(v.guest_linear_valid && !v.caused_by_translation);
        assert_eq!(
            v.to_string(),
            "EPT violation: access --x, allowed ---, guest paging-structure access"
        );
    }

    #[test]
    fn translation_bit_ignored_without_linear_address() {
        let v = EptViolation::from_raw(0x101);
        assert!(v.read);
        assert!(!v.guest_linear_valid && !v.caused_by_translation);
    }

    #[test]
    fn nmi_unblocking_bit() {
        assert!(EptViolation::from_raw(1 << 12).nmi_unblocking);
    }
}

//! CR0/CR4 fixed-bit handling (SDM A.7, A.8).
//!
//! In VMX operation, bits set in `FIXED0` must be 1 and bits clear in
//! `FIXED1` must be 0, both for the host before VMXON and for the guest at
//! VM entry.

/// CR0.PE: with unrestricted guest the guest may run with it clear.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.PG: with unrestricted guest the guest may run with it clear.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.VMXE: must be set before VMXON.
pub const CR4_VMXE: u64 = 1 << 13;

/// Forces `value` into the form VMX operation requires.
pub fn fixed_cr(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

/// Whether `value` already satisfies the fixed bits.
pub fn cr_is_valid(value: u64, fixed0: u64, fixed1: u64) -> bool {
    fixed_cr(value, fixed0, fixed1) == value
}

/// The guest's CR0 FIXED0 when the "unrestricted guest" control is used, which
/// exempts PE and PG so real-mode and unpaged guests can run directly.
pub fn cr0_fixed0_unrestricted(fixed0: u64) -> u64 {
    fixed0 & !(CR0_PE | CR0_PG)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Typical values: CR0 must have PE, NE, PG; CR4 must have VMXE.
    const CR0_FIXED0: u64 = 0x8000_0021;
    const CR0_FIXED1: u64 = 0xFFFF_FFFF;
    const CR4_FIXED0: u64 = 0x2000;
    const CR4_FIXED1: u64 = 0x0037_27FF;

    #[test]
    fn sets_required_bits_and_clears_forbidden_ones() {
        assert_eq!(fixed_cr(0x11, CR0_FIXED0, CR0_FIXED1), 0x8000_0031);
        // Bit 32 and above are clear in FIXED1, so they are removed.
        assert_eq!(fixed_cr(1 << 40, CR4_FIXED0, CR4_FIXED1), CR4_VMXE);
    }

    #[test]
    fn validity_check() {
        assert!(cr_is_valid(0x8005_0033, CR0_FIXED0, CR0_FIXED1));
        assert!(!cr_is_valid(0x0000_0033, CR0_FIXED0, CR0_FIXED1));
        assert!(!cr_is_valid(CR4_VMXE | (1 << 14), CR4_FIXED0, CR4_FIXED1));
        assert!(cr_is_valid(CR4_VMXE | 0x20, CR4_FIXED0, CR4_FIXED1));
    }

    #[test]
    fn unrestricted_guest_exempts_pe_and_pg() {
        let fixed0 = cr0_fixed0_unrestricted(CR0_FIXED0);
        assert_eq!(fixed0, 0x20);
        assert!(cr_is_valid(0x20, fixed0, CR0_FIXED1));
    }
}

use super::{AccessSize, Extend};

/// The new value of a destination register after a load of `size` bytes
/// whose device data was `loaded`, following the x86 partial-register rules:
/// a 32-bit write zero-extends into bits 63:32, 8/16-bit writes leave the
/// other bits alone, and a high-byte write (AH..BH) replaces bits 15:8 only.
///
/// Bits of `loaded` above `size` are ignored. `high_byte` only applies to a
/// byte-wide destination (no extending load targets AH..BH).
pub const fn apply_load(old_reg_value: u64, loaded: u64, size: AccessSize, extend: Extend, high_byte: bool) -> u64 {
    let loaded = loaded & size.mask();
    let (value, dest_size) = match extend {
        Extend::None => (loaded, size),
        Extend::Zero { to } => (loaded, to),
        Extend::Sign { to } => (sign_extend(loaded, size), to),
    };
    let value = value & dest_size.mask();
    match dest_size {
        AccessSize::Qword | AccessSize::Dword => value,
        AccessSize::Word => (old_reg_value & !0xFFFF) | value,
        AccessSize::Byte if high_byte => (old_reg_value & !0xFF00) | (value << 8),
        AccessSize::Byte => (old_reg_value & !0xFF) | value,
    }
}

/// The `size`-byte value a store from a register holding `reg_value` writes;
/// for AH..BH that is bits 15:8.
pub const fn store_value(reg_value: u64, size: AccessSize, high_byte: bool) -> u64 {
    match size {
        AccessSize::Byte if high_byte => (reg_value >> 8) & 0xFF,
        _ => reg_value & size.mask(),
    }
}

/// Sign-extends the low `size` bytes of `value` to 64 bits.
const fn sign_extend(value: u64, size: AccessSize) -> u64 {
    match size {
        AccessSize::Byte => value as u8 as i8 as i64 as u64,
        AccessSize::Word => value as u16 as i16 as i64 as u64,
        AccessSize::Dword => value as u32 as i32 as i64 as u64,
        AccessSize::Qword => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: u64 = 0x1122_3344_5566_7788;

    #[test]
    fn qword_load_replaces_whole_register() {
        let new = apply_load(OLD, 0xDEAD_BEEF_CAFE_F00D, AccessSize::Qword, Extend::None, false);
        assert_eq!(new, 0xDEAD_BEEF_CAFE_F00D);
    }

    #[test]
    fn dword_load_zero_extends_into_upper_half() {
        let new = apply_load(OLD, 0xFFFF_FFFF_8000_0001, AccessSize::Dword, Extend::None, false);
        assert_eq!(new, 0x0000_0000_8000_0001);
    }

    #[test]
    fn word_load_preserves_bits_above_15() {
        let new = apply_load(OLD, 0xABCD, AccessSize::Word, Extend::None, false);
        assert_eq!(new, 0x1122_3344_5566_ABCD);
    }

    #[test]
    fn low_byte_load_preserves_bits_above_7() {
        let new = apply_load(OLD, 0x1FF, AccessSize::Byte, Extend::None, false);
        assert_eq!(new, 0x1122_3344_5566_77FF);
    }

    #[test]
    fn high_byte_load_replaces_only_bits_15_to_8() {
        let new = apply_load(OLD, 0xAB, AccessSize::Byte, Extend::None, true);
        assert_eq!(new, 0x1122_3344_5566_AB88);
    }

    #[test]
    fn movzx_to_32_bit_clears_upper_half() {
        let to = AccessSize::Dword;
        let new = apply_load(OLD, 0xFFFF, AccessSize::Word, Extend::Zero { to }, false);
        assert_eq!(new, 0x0000_0000_0000_FFFF);
    }

    #[test]
    fn movzx_to_16_bit_preserves_upper_bits() {
        let to = AccessSize::Word;
        let new = apply_load(OLD, 0x80, AccessSize::Byte, Extend::Zero { to }, false);
        assert_eq!(new, 0x1122_3344_5566_0080);
    }

    #[test]
    fn movsx_to_64_bit_fills_with_sign() {
        let to = AccessSize::Qword;
        let new = apply_load(OLD, 0x80, AccessSize::Byte, Extend::Sign { to }, false);
        assert_eq!(new, 0xFFFF_FFFF_FFFF_FF80);
    }

    #[test]
    fn movsx_to_32_bit_sign_fills_low_half_then_zero_extends() {
        let to = AccessSize::Dword;
        let new = apply_load(OLD, 0x8000, AccessSize::Word, Extend::Sign { to }, false);
        assert_eq!(new, 0x0000_0000_FFFF_8000);
    }

    #[test]
    fn movsxd_of_positive_value_clears_upper_half() {
        let to = AccessSize::Qword;
        let new = apply_load(OLD, 0x7FFF_FFFF, AccessSize::Dword, Extend::Sign { to }, false);
        assert_eq!(new, 0x0000_0000_7FFF_FFFF);
    }

    #[test]
    fn store_value_truncates_to_access_size() {
        assert_eq!(store_value(OLD, AccessSize::Dword, false), 0x5566_7788);
        assert_eq!(store_value(OLD, AccessSize::Word, false), 0x7788);
        assert_eq!(store_value(OLD, AccessSize::Byte, false), 0x88);
        assert_eq!(store_value(OLD, AccessSize::Qword, false), OLD);
    }

    #[test]
    fn store_value_of_high_byte_register_takes_bits_15_to_8() {
        assert_eq!(store_value(OLD, AccessSize::Byte, true), 0x77);
    }
}

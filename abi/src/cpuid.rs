//! CPUID leaves Keel presents to guests.

/// The first hypervisor leaf: EAX holds the highest hypervisor leaf, and
/// EBX:ECX:EDX the vendor signature.
pub const HYPERVISOR_LEAF_BASE: u32 = 0x4000_0000;

/// Highest hypervisor leaf Keel answers.
pub const HYPERVISOR_LEAF_MAX: u32 = 0x4000_0000;

/// The 12-byte signature in EBX, ECX, EDX of leaf 0x4000_0000.
pub const SIGNATURE: [u8; 12] = *b"KeelKeelKeel";

/// The signature split into the three registers, as a guest reads them.
pub const fn signature_registers() -> [u32; 3] {
    let s = SIGNATURE;
    [
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    ]
}

/// CPUID.1:ECX bit telling software it runs under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX bit advertising VMX, hidden from guests.
pub const LEAF1_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX bit advertising SMX, hidden from guests.
pub const LEAF1_ECX_SMX: u32 = 1 << 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_registers_spell_keel() {
        let [ebx, ecx, edx] = signature_registers();
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&ecx.to_le_bytes());
        bytes[8..12].copy_from_slice(&edx.to_le_bytes());
        assert_eq!(&bytes, b"KeelKeelKeel");
        assert_eq!(ebx, 0x6c65_654b);
    }
}

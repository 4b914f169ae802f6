//! The boot GDT required by the Linux 64-bit boot protocol: `__BOOT_CS` at
//! selector 0x10 and `__BOOT_DS` at 0x18, both flat.

/// VMX access rights of the 64-bit code segment: access byte 0x9B (present,
/// DPL 0, code, execute/read, accessed) with G=1 and L=1 in bits 12..16.
/// Must agree with the GDT descriptor because the guest reloads CS from it.
pub const CODE64_ACCESS_RIGHTS: u32 = 0xA09B;

/// VMX access rights of the flat data segments: access byte 0x93 (present,
/// DPL 0, data, read/write, accessed) with G=1 and D/B=1.
pub const DATA_ACCESS_RIGHTS: u32 = 0xC093;

/// VMX access rights for TR: present, type 11 (busy 64-bit TSS). VM entry
/// requires a busy TSS in TR even though the boot GDT holds no TSS descriptor.
pub const TSS_ACCESS_RIGHTS: u32 = 0x8B;

/// Selector of `__BOOT_CS`, the flat 64-bit code segment.
pub const BOOT_CODE_SELECTOR: u16 = 0x10;

/// Selector of `__BOOT_DS`, the flat data segment.
pub const BOOT_DATA_SELECTOR: u16 = 0x18;

/// Bytes of the GDT: null, unused, code, data.
pub const GDT_SIZE: u64 = 4 * 8;

/// Byte alignment the loader requires of the GDT; misaligned GDTs work but
/// cost a split access on every segment load.
pub const GDT_ALIGNMENT: u64 = 8;

/// A flat (base 0, limit 4 GiB) descriptor built from VMX-format access
/// rights, so the GDT and the VMCS segment state cannot disagree.
const fn flat_descriptor(access_rights: u32) -> u64 {
    let access_byte = (access_rights & 0xFF) as u64;
    let flags = ((access_rights >> 12) & 0xF) as u64;
    let limit_low = 0xFFFF;
    let limit_high = 0xF;
    limit_low | (access_byte << 40) | (limit_high << 48) | (flags << 52)
}

/// The GDT as it lies in guest memory.
pub(crate) fn gdt_bytes() -> [u8; GDT_SIZE as usize] {
    let descriptors = [
        0,
        0,
        flat_descriptor(CODE64_ACCESS_RIGHTS),
        flat_descriptor(DATA_ACCESS_RIGHTS),
    ];
    let mut bytes = [0u8; GDT_SIZE as usize];
    for (slot, descriptor) in bytes.chunks_exact_mut(8).zip(descriptors) {
        slot.copy_from_slice(&descriptor.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_the_canonical_linux_boot_gdt() {
        // The values Linux's own boot code uses for __BOOT_CS / __BOOT_DS.
        assert_eq!(flat_descriptor(CODE64_ACCESS_RIGHTS), 0x00AF_9B00_0000_FFFF);
        assert_eq!(flat_descriptor(DATA_ACCESS_RIGHTS), 0x00CF_9300_0000_FFFF);
    }

    #[test]
    fn selectors_index_the_code_and_data_descriptors() {
        let gdt = gdt_bytes();
        let descriptor_at = |selector: u16| {
            let offset = usize::from(selector);
            u64::from_le_bytes(gdt[offset..offset + 8].try_into().unwrap())
        };
        assert_eq!(descriptor_at(0), 0);
        assert_eq!(descriptor_at(8), 0);
        assert_eq!(descriptor_at(BOOT_CODE_SELECTOR), 0x00AF_9B00_0000_FFFF);
        assert_eq!(descriptor_at(BOOT_DATA_SELECTOR), 0x00CF_9300_0000_FFFF);
    }
}

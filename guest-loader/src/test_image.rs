//! Synthetic bzImages for tests: a minimal but protocol-conformant header
//! whose fields individual tests then break.

use crate::bzimage::header::*;

pub const SETUP_SECTORS: u8 = 4;
pub const SETUP_BYTES: usize = (SETUP_SECTORS as usize + 1) * 512;
pub const KERNEL_LEN: usize = 0x3000;
pub const SIXTEEN_MIB: u64 = 16 << 20;
pub const TWO_MIB: u32 = 2 << 20;
/// Header through `kernel_info_offset` (protocol 2.15): 0x202 + 0x6A = 0x26C.
pub const JUMP_OFFSET_VALUE: u8 = 0x6A;

pub struct SyntheticImage {
    pub bytes: Vec<u8>,
}

impl SyntheticImage {
    /// A 64-bit relocatable kernel, protocol 2.15, `KERNEL_LEN` bytes of
    /// protected-mode code filled with a recognisable pattern.
    pub fn new() -> Self {
        let mut image = Self {
            bytes: vec![0; SETUP_BYTES + KERNEL_LEN],
        };
        for (index, byte) in image.bytes[SETUP_BYTES..].iter_mut().enumerate() {
            *byte = (index % 251) as u8;
        }
        image.set_u8(SETUP_SECTS, SETUP_SECTORS);
        image.set_u32(SYSSIZE, (KERNEL_LEN / 16) as u32);
        image.set_u16(BOOT_FLAG, BOOT_FLAG_VALUE);
        image.set_u8(0x200, 0xEB);
        image.set_u8(JUMP_OFFSET, JUMP_OFFSET_VALUE);
        image.set_u32(HEADER_MAGIC, HEADER_MAGIC_VALUE);
        image.set_u16(VERSION, 0x020F);
        image.set_u8(LOADFLAGS, LOADED_HIGH);
        image.set_u32(INITRD_ADDR_MAX, 0x7FFF_FFFF);
        image.set_u32(KERNEL_ALIGNMENT, TWO_MIB);
        image.set_u8(RELOCATABLE_KERNEL, 1);
        image.set_u8(MIN_ALIGNMENT, 21);
        image.set_u16(XLOADFLAGS, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
        image.set_u32(CMDLINE_SIZE, 2047);
        image.set_u32(PAYLOAD_OFFSET, 0x100);
        image.set_u32(PAYLOAD_LENGTH, 0x1000);
        image.set_u64(PREF_ADDRESS, SIXTEEN_MIB);
        image.set_u32(INIT_SIZE, 0x80_0000);
        image
    }

    pub fn set_u8(&mut self, offset: usize, value: u8) -> &mut Self {
        self.bytes[offset] = value;
        self
    }

    pub fn set_u16(&mut self, offset: usize, value: u16) -> &mut Self {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
        self
    }

    pub fn set_u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        self
    }

    pub fn set_u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        self
    }
}

//! Input of the `bzimage` target: a guest memory layout, where the loader's
//! structures go, an initrd size and a command line, then the image bytes.
//!
//! ```text
//! u16 ram_mib          RAM is [0, ram_mib MiB) (up to 8 GiB) ...
//! u16 hole_start_mib   ... minus an unbacked hole (an MMIO window) of
//! u16 hole_pages       hole_pages 4 KiB pages at hole_start_mib MiB
//! u8  reserved_count   the first reserved_count (at most 4) of:
//! 4 × { u32 start_page, u32 pages, u8 kind }   e820 reserved ranges
//! u32 zero_page_gpa, u32 cmdline_gpa, u32 page_tables_gpa, u32 gdt_gpa
//! u32 identity_map_mib
//! u32 acpi_rsdp_gpa    0: none
//! u32 initrd_len       bytes (at most 1 MiB), generated
//! u16 cmdline_len      then that many bytes of command line (lossy UTF-8)
//! ...                  the bzImage
//! ```

use keel_guest_loader::{E820Type, GuestMemoryLayout, LinuxLayout, LongModeLayout, ReservedRange};

use crate::{Input, Output};

const MIB: u64 = 1 << 20;
pub const MAX_RESERVED: usize = 4;
pub const MAX_INITRD: usize = 1 << 20;
const MAX_RAM_MIB: u64 = 8 << 10;

const KINDS: [E820Type; 6] = [
    E820Type::Reserved,
    E820Type::Acpi,
    E820Type::Nvs,
    E820Type::Unusable,
    E820Type::Persistent,
    E820Type::Ram,
];

#[derive(Clone, Debug)]
pub struct Case<'a> {
    pub ram_bytes: u64,
    /// Guest-physical range inside RAM that is not backed.
    pub hole: std::ops::Range<u64>,
    pub reserved: Vec<ReservedRange>,
    pub zero_page_gpa: u64,
    pub cmdline_gpa: u64,
    pub page_tables_gpa: u64,
    pub gdt_gpa: u64,
    pub identity_map_bytes: u64,
    pub acpi_rsdp_gpa: Option<u64>,
    pub initrd_len: usize,
    pub cmdline: String,
    pub image: &'a [u8],
}

impl<'a> Case<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let mut input = Input::new(data);
        let ram_bytes = u64::from(input.u16()).min(MAX_RAM_MIB) * MIB;
        let hole_start = u64::from(input.u16()) * MIB;
        let hole_len = u64::from(input.u16()) * 4096;
        let reserved_count = usize::from(input.u8()).min(MAX_RESERVED);
        let mut reserved = Vec::new();
        for index in 0..MAX_RESERVED {
            let range = ReservedRange {
                start: u64::from(input.u32()) << 12,
                size: u64::from(input.u32()) << 12,
                kind: KINDS[usize::from(input.u8()) % KINDS.len()],
            };
            if index < reserved_count {
                reserved.push(range);
            }
        }
        let zero_page_gpa = u64::from(input.u32());
        let cmdline_gpa = u64::from(input.u32());
        let page_tables_gpa = u64::from(input.u32());
        let gdt_gpa = u64::from(input.u32());
        let identity_map_bytes = u64::from(input.u32()) * MIB;
        let acpi_rsdp_gpa = Some(u64::from(input.u32())).filter(|&gpa| gpa != 0);
        let initrd_len = (input.u32() as usize).min(MAX_INITRD);
        let cmdline_len = usize::from(input.u16());
        let cmdline = String::from_utf8_lossy(input.take(cmdline_len)).into_owned();
        Self {
            ram_bytes,
            hole: hole_start..hole_start + hole_len,
            reserved,
            zero_page_gpa,
            cmdline_gpa,
            page_tables_gpa,
            gdt_gpa,
            identity_map_bytes,
            acpi_rsdp_gpa,
            initrd_len,
            cmdline,
            image: input.rest(),
        }
    }

    /// The guest's RAM: [0, ram_bytes) without the hole.
    pub fn ram_ranges(&self) -> [std::ops::Range<u64>; 2] {
        let hole_start = self.hole.start.min(self.ram_bytes);
        let hole_end = self.hole.end.clamp(hole_start, self.ram_bytes);
        [0..hole_start, hole_end..self.ram_bytes]
    }

    pub fn layout(&self) -> LinuxLayout<'_> {
        LinuxLayout {
            memory: GuestMemoryLayout {
                ram_bytes: self.ram_bytes,
                reserved: &self.reserved,
            },
            zero_page_gpa: self.zero_page_gpa,
            cmdline_gpa: self.cmdline_gpa,
            long_mode: LongModeLayout {
                page_tables_gpa: self.page_tables_gpa,
                gdt_gpa: self.gdt_gpa,
                identity_map_bytes: self.identity_map_bytes,
            },
            acpi_rsdp_gpa: self.acpi_rsdp_gpa,
        }
    }

    /// The initrd's bytes: a pattern, never all zeros (made once).
    pub fn initrd(&self) -> &'static [u8] {
        static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let pattern = PATTERN.get_or_init(|| (0..MAX_INITRD).map(|index| (index % 251) as u8 + 1).collect());
        &pattern[..self.initrd_len]
    }
}

/// The encoder for seeds; the inverse of [`Case::parse`] for the values
/// it can represent (`ram_bytes` etc. in the units the format uses).
pub struct Seed<'a> {
    pub ram_mib: u16,
    pub hole_start_mib: u16,
    pub hole_pages: u16,
    /// (start, size, kind index into the format's kind list: 0 reserved, 1 ACPI)
    pub reserved: &'a [(u64, u64, u8)],
    pub zero_page_gpa: u32,
    pub cmdline_gpa: u32,
    pub page_tables_gpa: u32,
    pub gdt_gpa: u32,
    pub identity_map_mib: u32,
    pub acpi_rsdp_gpa: u32,
    pub initrd_len: u32,
    pub cmdline: &'a str,
    pub image: &'a [u8],
}

impl Seed<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Output::default();
        out.u16(self.ram_mib).u16(self.hole_start_mib).u16(self.hole_pages);
        out.u8(self.reserved.len() as u8);
        for index in 0..MAX_RESERVED {
            let (start, size, kind) = self.reserved.get(index).copied().unwrap_or_default();
            out.u32((start >> 12) as u32).u32((size >> 12) as u32).u8(kind);
        }
        out.u32(self.zero_page_gpa)
            .u32(self.cmdline_gpa)
            .u32(self.page_tables_gpa)
            .u32(self.gdt_gpa)
            .u32(self.identity_map_mib)
            .u32(self.acpi_rsdp_gpa)
            .u32(self.initrd_len)
            .u16(self.cmdline.len() as u16)
            .bytes(self.cmdline.as_bytes())
            .bytes(self.image);
        out.bytes
    }
}

/// A minimal protocol-conformant bzImage (as guest-loader's own tests
/// build): 64-bit, relocatable, protocol 2.15, `kernel_len` bytes of
/// protected-mode code after 4 setup sectors.
pub fn synthetic_image(kernel_len: usize, pref_address: u64, relocatable: bool) -> Vec<u8> {
    const SETUP_BYTES: usize = 5 * 512;
    let mut image = vec![0u8; SETUP_BYTES + kernel_len];
    for (index, byte) in image[SETUP_BYTES..].iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    let mut put = |offset: usize, bytes: &[u8]| image[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(0x1F1, &[4]); // setup_sects
    put(0x1F4, &((kernel_len / 16) as u32).to_le_bytes()); // syssize
    put(0x1FE, &0xAA55u16.to_le_bytes()); // boot_flag
    put(0x200, &[0xEB, 0x6A]); // jump over the header to 0x26C
    put(0x202, b"HdrS");
    put(0x206, &0x020Fu16.to_le_bytes()); // version
    put(0x211, &[1]); // loadflags: LOADED_HIGH
    put(0x22C, &0x7FFF_FFFFu32.to_le_bytes()); // initrd_addr_max
    put(0x230, &(2u32 << 20).to_le_bytes()); // kernel_alignment
    put(0x234, &[u8::from(relocatable), 21]); // relocatable_kernel, min_alignment
    put(0x236, &3u16.to_le_bytes()); // xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G
    put(0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(0x248, &0x100u32.to_le_bytes()); // payload_offset
    put(0x24C, &((kernel_len as u32).saturating_sub(0x100)).to_le_bytes()); // payload_length
    put(0x258, &pref_address.to_le_bytes());
    put(0x260, &0x80_0000u32.to_le_bytes()); // init_size
    image
}

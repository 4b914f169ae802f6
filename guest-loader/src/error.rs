//! The single error type of the loader: every malformed image, bad layout or
//! out-of-range placement ends up here instead of in a panic.

use core::fmt;

use keel_memory::GuestMemoryError;

/// What a guest-physical region holds; used to name the parties of a range
/// or overlap error so the message says which placement is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// The protected-mode kernel including its `init_size` working area.
    Kernel,
    /// The initial ramdisk.
    Initrd,
    /// The 4 KiB `boot_params` structure.
    ZeroPage,
    /// The NUL-terminated kernel command line.
    CommandLine,
    /// The identity-mapping page tables (PML4, PDPT and page directories).
    PageTables,
    /// The boot GDT.
    Gdt,
    /// A range the memory layout marks as not usable (e820 reserved, ACPI...).
    Reserved,
    /// RAM the memory layout (and so the e820 map) offers the guest.
    UsableRam,
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::ZeroPage => "zero page",
            Self::CommandLine => "command line",
            Self::PageTables => "page tables",
            Self::Gdt => "GDT",
            Self::Reserved => "reserved region",
            Self::UsableRam => "usable RAM",
        })
    }
}

/// A half-open guest-physical range `[start, end)` together with what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRegion {
    pub kind: RegionKind,
    pub start: u64,
    pub end: u64,
}

impl GuestRegion {
    /// Builds `[start, start + len)`, failing instead of wrapping around the
    /// top of the address space.
    pub fn new(kind: RegionKind, start: u64, len: u64) -> Result<Self, LoadError> {
        let end = start
            .checked_add(len)
            .ok_or(LoadError::AddressOverflow { kind, start, len })?;
        Ok(Self { kind, start, end })
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn overlaps(&self, other: &GuestRegion) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for GuestRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{:#x}, {:#x})", self.kind, self.start, self.end)
    }
}

/// Why an image could not be turned into a runnable guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// `start + len` does not fit in 64 bits.
    AddressOverflow { kind: RegionKind, start: u64, len: u64 },
    /// A region extends past the end of guest RAM.
    OutOfRange { region: GuestRegion, ram_bytes: u64 },
    /// A region does not start on the boundary the hardware or protocol requires.
    Misaligned {
        kind: RegionKind,
        address: u64,
        alignment: u64,
    },
    /// Two placements claim the same guest-physical bytes.
    Overlap { first: GuestRegion, second: GuestRegion },
    /// The identity map would need more than the single PDPT we build.
    IdentityMapTooLarge { requested: u64, max: u64 },
    /// Part of a region is not guest RAM in the guest memory written to (a
    /// hole, device memory, past the end): e.g. the layout declares RAM that
    /// does not exist. Detected before anything is written.
    NotBacked {
        region: GuestRegion,
        error: GuestMemoryError,
    },

    /// The image is shorter than the setup header it must contain.
    TooSmall { len: u64, needed: u64 },
    /// The word at 0x1FE is not the 0xAA55 boot flag.
    BadBootFlag { found: u16 },
    /// The dword at 0x202 is not "HdrS".
    BadHeaderMagic { found: u32 },
    /// The boot protocol predates the features we rely on.
    ProtocolTooOld { found: u16, required: u16 },
    /// `xloadflags` lacks XLF_KERNEL_64, so there is no 64-bit entry point.
    Not64BitCapable,
    /// `loadflags` lacks LOADED_HIGH, so the kernel expects to live at 0x10000.
    NotLoadedHigh,
    /// The setup code claims more bytes than the image has, leaving no kernel.
    MissingProtectedModeKernel { setup_bytes: u64, image_len: u64 },
    /// The protected-mode kernel is shorter than `syssize` says.
    TruncatedKernel { expected: u64, found: u64 },
    /// `kernel_alignment` is not a power of two.
    BadKernelAlignment { found: u32 },
    /// `min_alignment` (a log2) exceeds `kernel_alignment` or 63.
    BadMinAlignment { log2: u8, kernel_alignment: u32 },
    /// The compressed payload lies outside the protected-mode kernel.
    BadPayload { offset: u32, length: u32, kernel_len: u64 },
    /// The setup header (0x202 + byte at 0x201) overruns its slot in `boot_params`.
    SetupHeaderTooLong { end: u64, max: u64 },
    /// The setup header ends before the fields the loader reads from it, so
    /// the copy in `boot_params` would lack them (the magic, the version...).
    SetupHeaderTooShort { end: u64, min: u64 },

    /// Too many e820 entries for the `boot_params` table.
    TooManyE820Entries { max: usize },
    /// A reserved range is empty or wraps around the address space.
    BadReservedRange { start: u64, size: u64 },

    /// The kernel's `init_size` footprint at its load address exceeds RAM.
    KernelDoesNotFit { need: u64, have: u64 },
    /// No page-aligned gap below the initrd limit can hold the initrd.
    InitrdDoesNotFit { size: u64, limit: u64 },
    /// The command line is longer than the kernel's `cmdline_size`.
    CommandLineTooLong { len: u64, max: u64 },
    /// The command line contains a NUL byte, which would truncate it.
    CommandLineContainsNul,
    /// The kernel cannot accept this structure above 4 GiB
    /// (`xloadflags` lacks XLF_CAN_BE_LOADED_ABOVE_4G).
    AboveFourGiB { region: GuestRegion },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::AddressOverflow { kind, start, len } => write!(
                f,
                "{kind} at {start:#x} with length {len:#x} wraps around the address space"
            ),
            Self::OutOfRange { region, ram_bytes } => write!(
                f,
                "{region} extends past the end of guest RAM ({ram_bytes:#x} bytes)"
            ),
            Self::Misaligned {
                kind,
                address,
                alignment,
            } => write!(
                f,
                "{kind} at {address:#x} is not aligned to {alignment:#x} bytes"
            ),
            Self::Overlap { first, second } => write!(f, "{first} overlaps {second}"),
            Self::IdentityMapTooLarge { requested, max } => write!(
                f,
                "identity map of {requested:#x} bytes exceeds the supported maximum of {max:#x}"
            ),
            Self::NotBacked { region, error } => {
                write!(f, "{region} is not backed by guest RAM: {error}")
            }
            Self::TooSmall { len, needed } => write!(
                f,
                "image is {len} bytes, too small for a bzImage setup header ({needed} bytes needed)"
            ),
            Self::BadBootFlag { found } => {
                write!(f, "boot flag at 0x1FE is {found:#06x}, expected 0xaa55")
            }
            Self::BadHeaderMagic { found } => write!(
                f,
                "setup header magic at 0x202 is {found:#010x}, expected \"HdrS\" (0x53726448)"
            ),
            Self::ProtocolTooOld { found, required } => write!(
                f,
                "boot protocol {}.{:02} is too old, {}.{:02} or newer is required for the 64-bit entry",
                found >> 8,
                found & 0xFF,
                required >> 8,
                required & 0xFF
            ),
            Self::Not64BitCapable => {
                f.write_str("kernel has no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags)")
            }
            Self::NotLoadedHigh => f.write_str(
                "kernel is not a bzImage loaded at 1 MiB or above (LOADED_HIGH not set in loadflags)",
            ),
            Self::MissingProtectedModeKernel {
                setup_bytes,
                image_len,
            } => write!(
                f,
                "setup code takes {setup_bytes} bytes but the image is only {image_len} bytes, leaving no protected-mode kernel"
            ),
            Self::TruncatedKernel { expected, found } => write!(
                f,
                "protected-mode kernel is truncated: syssize says {expected} bytes, image holds {found}"
            ),
            Self::BadKernelAlignment { found } => {
                write!(f, "kernel_alignment {found:#x} is not a power of two")
            }
            Self::BadMinAlignment {
                log2,
                kernel_alignment,
            } => write!(
                f,
                "min_alignment 2^{log2} is invalid for kernel_alignment {kernel_alignment:#x}"
            ),
            Self::BadPayload {
                offset,
                length,
                kernel_len,
            } => write!(
                f,
                "compressed payload [{offset:#x} + {length:#x}] lies outside the {kernel_len:#x}-byte protected-mode kernel"
            ),
            Self::SetupHeaderTooLong { end, max } => write!(
                f,
                "setup header ends at {end:#x}, past its slot in boot_params (ends at {max:#x})"
            ),
            Self::SetupHeaderTooShort { end, min } => write!(
                f,
                "setup header ends at {end:#x}, before the fields the loader reads (up to {min:#x})"
            ),
            Self::TooManyE820Entries { max } => {
                write!(f, "memory layout needs more than {max} e820 entries")
            }
            Self::BadReservedRange { start, size } => write!(
                f,
                "reserved range at {start:#x} with size {size:#x} is empty or wraps around"
            ),
            Self::KernelDoesNotFit { need, have } => write!(
                f,
                "kernel needs guest RAM up to {need:#x} but only {have:#x} bytes exist"
            ),
            Self::InitrdDoesNotFit { size, limit } => write!(
                f,
                "no free page-aligned gap below {limit:#x} holds the {size:#x}-byte initrd"
            ),
            Self::CommandLineTooLong { len, max } => write!(
                f,
                "command line is {len} bytes, the kernel accepts at most {max}"
            ),
            Self::CommandLineContainsNul => {
                f.write_str("command line contains a NUL byte, which would truncate it")
            }
            Self::AboveFourGiB { region } => write!(
                f,
                "{region} lies above 4 GiB but the kernel lacks XLF_CAN_BE_LOADED_ABOVE_4G"
            ),
        }
    }
}

impl core::error::Error for LoadError {}

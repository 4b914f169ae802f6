//! Parsing and validating a bzImage per the Linux x86 boot protocol.

pub mod header;

use crate::error::LoadError;
use header::*;

/// The validated fields of a bzImage setup header, borrowing the image bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImage<'a> {
    image: &'a [u8],
    /// Sectors of real-mode setup code after the boot sector (0 already mapped to 4).
    pub setup_sects: u8,
    /// Size of the protected-mode code in 16-byte paragraphs.
    pub syssize: u32,
    /// Boot protocol version, major in the high byte.
    pub protocol_version: u16,
    pub loadflags: u8,
    /// Highest address the initrd may occupy (inclusive).
    pub initrd_addr_max: u32,
    /// Alignment a relocatable kernel wants; a power of two.
    pub kernel_alignment: u32,
    pub relocatable_kernel: bool,
    /// log2 of the smallest alignment a relocatable kernel accepts.
    pub min_alignment_log2: u8,
    pub xloadflags: u16,
    /// Maximum command-line length, excluding the terminating NUL.
    pub cmdline_size: u32,
    /// Offset of the compressed payload within the protected-mode kernel.
    pub payload_offset: u32,
    pub payload_length: u32,
    /// Address the kernel prefers to be loaded at (0 if it has no preference).
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address while it decompresses.
    pub init_size: u32,
}

impl<'a> BzImage<'a> {
    /// Parses and validates the setup header of `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, LoadError> {
        let reader = ImageReader { image };
        if image.len() < MIN_IMAGE_LEN {
            return Err(LoadError::TooSmall {
                len: reader.len(),
                needed: MIN_IMAGE_LEN as u64,
            });
        }

        let boot_flag = reader.u16(BOOT_FLAG)?;
        if boot_flag != BOOT_FLAG_VALUE {
            return Err(LoadError::BadBootFlag { found: boot_flag });
        }
        let magic = reader.u32(HEADER_MAGIC)?;
        if magic != HEADER_MAGIC_VALUE {
            return Err(LoadError::BadHeaderMagic { found: magic });
        }
        let protocol_version = reader.u16(VERSION)?;
        if protocol_version < MIN_PROTOCOL_VERSION {
            return Err(LoadError::ProtocolTooOld {
                found: protocol_version,
                required: MIN_PROTOCOL_VERSION,
            });
        }
        let xloadflags = reader.u16(XLOADFLAGS)?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LoadError::Not64BitCapable);
        }
        let loadflags = reader.u8(LOADFLAGS)?;
        if loadflags & LOADED_HIGH == 0 {
            return Err(LoadError::NotLoadedHigh);
        }

        let setup_sects = match reader.u8(SETUP_SECTS)? {
            0 => LEGACY_SETUP_SECTS,
            sectors => sectors,
        };
        let parsed = Self {
            image,
            setup_sects,
            syssize: reader.u32(SYSSIZE)?,
            protocol_version,
            loadflags,
            initrd_addr_max: reader.u32(INITRD_ADDR_MAX)?,
            kernel_alignment: reader.u32(KERNEL_ALIGNMENT)?,
            relocatable_kernel: reader.u8(RELOCATABLE_KERNEL)? != 0,
            min_alignment_log2: reader.u8(MIN_ALIGNMENT)?,
            xloadflags,
            cmdline_size: reader.u32(CMDLINE_SIZE)?,
            payload_offset: reader.u32(PAYLOAD_OFFSET)?,
            payload_length: reader.u32(PAYLOAD_LENGTH)?,
            pref_address: reader.u64(PREF_ADDRESS)?,
            init_size: reader.u32(INIT_SIZE)?,
        };
        parsed.validate_sizes(&reader)?;
        parsed.validate_alignment()?;
        Ok(parsed)
    }

    fn validate_sizes(&self, reader: &ImageReader<'_>) -> Result<(), LoadError> {
        let setup_bytes = self.setup_bytes();
        let image_len = reader.len();
        let kernel_len = match image_len.checked_sub(setup_bytes) {
            Some(len) if len > 0 => len,
            _ => return Err(LoadError::MissingProtectedModeKernel { setup_bytes, image_len }),
        };
        // Signed kernels carry their signature after the kernel, so only a
        // shortfall against syssize is an error, not a surplus.
        let expected = u64::from(self.syssize) * 16;
        if kernel_len < expected {
            return Err(LoadError::TruncatedKernel {
                expected,
                found: kernel_len,
            });
        }
        let header_end = self.setup_header_end()?;
        // The fields read above must be part of the header the kernel gets
        // back in boot_params; a shorter one would hand it zeros for them.
        if header_end < MIN_IMAGE_LEN as u64 {
            return Err(LoadError::SetupHeaderTooShort {
                end: header_end,
                min: MIN_IMAGE_LEN as u64,
            });
        }
        let header_limit = (SETUP_HEADER_LIMIT as u64).min(setup_bytes);
        if header_end > header_limit {
            return Err(LoadError::SetupHeaderTooLong {
                end: header_end,
                max: header_limit,
            });
        }
        let payload_end = u64::from(self.payload_offset) + u64::from(self.payload_length);
        if payload_end > kernel_len {
            return Err(LoadError::BadPayload {
                offset: self.payload_offset,
                length: self.payload_length,
                kernel_len,
            });
        }
        Ok(())
    }

    fn validate_alignment(&self) -> Result<(), LoadError> {
        if !self.kernel_alignment.is_power_of_two() {
            return Err(LoadError::BadKernelAlignment {
                found: self.kernel_alignment,
            });
        }
        let min_alignment_fits = 1u64
            .checked_shl(u32::from(self.min_alignment_log2))
            .is_some_and(|min| min <= u64::from(self.kernel_alignment));
        if self.relocatable_kernel && !min_alignment_fits {
            return Err(LoadError::BadMinAlignment {
                log2: self.min_alignment_log2,
                kernel_alignment: self.kernel_alignment,
            });
        }
        Ok(())
    }

    /// Bytes of the boot sector plus real-mode setup code.
    pub fn setup_bytes(&self) -> u64 {
        (u64::from(self.setup_sects) + 1) * SECTOR_SIZE
    }

    /// The protected-mode kernel: everything after the setup code.
    pub fn protected_mode_kernel(&self) -> &'a [u8] {
        usize::try_from(self.setup_bytes())
            .ok()
            .and_then(|start| self.image.get(start..))
            .unwrap_or_default()
    }

    /// Image offset one past the setup header: 0x202 plus the jump offset at 0x201.
    pub fn setup_header_end(&self) -> Result<u64, LoadError> {
        let reader = ImageReader { image: self.image };
        Ok(HEADER_MAGIC as u64 + u64::from(reader.u8(JUMP_OFFSET)?))
    }

    /// The raw setup header (0x1F1 up to its end) to copy into `boot_params`.
    pub fn setup_header_bytes(&self) -> Result<&'a [u8], LoadError> {
        let end = self.setup_header_end()?;
        let too_small = LoadError::TooSmall {
            len: ImageReader { image: self.image }.len(),
            needed: end,
        };
        let end = usize::try_from(end).map_err(|_| too_small)?;
        self.image.get(SETUP_HEADER_START..end).ok_or(too_small)
    }

    /// Whether XLF_CAN_BE_LOADED_ABOVE_4G is set.
    pub fn can_be_loaded_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }
}

/// Little-endian reads from the image that fail with `TooSmall` past its end.
struct ImageReader<'a> {
    image: &'a [u8],
}

impl ImageReader<'_> {
    fn len(&self) -> u64 {
        u64::try_from(self.image.len()).unwrap_or(u64::MAX)
    }

    fn bytes<const N: usize>(&self, offset: usize) -> Result<[u8; N], LoadError> {
        let end = offset.saturating_add(N);
        let too_small = LoadError::TooSmall {
            len: self.len(),
            needed: u64::try_from(end).unwrap_or(u64::MAX),
        };
        let slice = self.image.get(offset..end).ok_or(too_small)?;
        slice.try_into().map_err(|_| too_small)
    }

    fn u8(&self, offset: usize) -> Result<u8, LoadError> {
        self.bytes::<1>(offset).map(|[byte]| byte)
    }

    fn u16(&self, offset: usize) -> Result<u16, LoadError> {
        self.bytes(offset).map(u16::from_le_bytes)
    }

    fn u32(&self, offset: usize) -> Result<u32, LoadError> {
        self.bytes(offset).map(u32::from_le_bytes)
    }

    fn u64(&self, offset: usize) -> Result<u64, LoadError> {
        self.bytes(offset).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests;

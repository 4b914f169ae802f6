use super::header::*;
use super::*;
use crate::test_image::*;

fn parse(image: &SyntheticImage) -> Result<BzImage<'_>, LoadError> {
    BzImage::parse(&image.bytes)
}

#[test]
fn good_image_parses_every_field() {
    let image = SyntheticImage::new();
    let parsed = parse(&image).unwrap();
    assert_eq!(parsed.setup_sects, 4);
    assert_eq!(parsed.setup_bytes(), 5 * 512);
    assert_eq!(parsed.syssize, (KERNEL_LEN / 16) as u32);
    assert_eq!(parsed.protocol_version, 0x020F);
    assert_eq!(parsed.loadflags, LOADED_HIGH);
    assert_eq!(parsed.initrd_addr_max, 0x7FFF_FFFF);
    assert_eq!(parsed.kernel_alignment, 2 << 20);
    assert!(parsed.relocatable_kernel);
    assert_eq!(parsed.min_alignment_log2, 21);
    assert!(parsed.can_be_loaded_above_4g());
    assert_eq!(parsed.cmdline_size, 2047);
    assert_eq!(parsed.payload_offset, 0x100);
    assert_eq!(parsed.payload_length, 0x1000);
    assert_eq!(parsed.pref_address, 16 << 20);
    assert_eq!(parsed.init_size, 0x80_0000);
    assert_eq!(parsed.protected_mode_kernel(), &image.bytes[SETUP_BYTES..]);
    assert_eq!(parsed.setup_header_end(), Ok(0x26C));
    assert_eq!(parsed.setup_header_bytes(), Ok(&image.bytes[0x1F1..0x26C]));
}

#[test]
fn zero_setup_sects_means_four() {
    let mut image = SyntheticImage::new();
    image.set_u8(SETUP_SECTS, 0);
    assert_eq!(parse(&image).unwrap().setup_sects, 4);
}

#[test]
fn truncated_header_is_too_small() {
    let image = SyntheticImage::new();
    let truncated = &image.bytes[..0x200];
    assert_eq!(
        BzImage::parse(truncated),
        Err(LoadError::TooSmall {
            len: 0x200,
            needed: 0x264
        })
    );
    assert!(matches!(BzImage::parse(&[]), Err(LoadError::TooSmall { len: 0, .. })));
}

#[test]
fn wrong_boot_flag_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u16(BOOT_FLAG, 0x55AA);
    assert_eq!(parse(&image), Err(LoadError::BadBootFlag { found: 0x55AA }));
}

#[test]
fn wrong_header_magic_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u32(HEADER_MAGIC, u32::from_le_bytes(*b"HdrZ"));
    assert_eq!(
        parse(&image),
        Err(LoadError::BadHeaderMagic {
            found: u32::from_le_bytes(*b"HdrZ")
        })
    );
}

#[test]
fn protocol_2_10_is_too_old() {
    let mut image = SyntheticImage::new();
    image.set_u16(VERSION, 0x020A);
    let err = parse(&image).unwrap_err();
    assert_eq!(
        err,
        LoadError::ProtocolTooOld {
            found: 0x020A,
            required: 0x020C
        }
    );
    assert_eq!(
        err.to_string(),
        "boot protocol 2.10 is too old, 2.12 or newer is required for the 64-bit entry"
    );
}

#[test]
fn missing_64_bit_entry_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u16(XLOADFLAGS, XLF_CAN_BE_LOADED_ABOVE_4G);
    assert_eq!(parse(&image), Err(LoadError::Not64BitCapable));
}

#[test]
fn kernel_not_loaded_high_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u8(LOADFLAGS, CAN_USE_HEAP);
    assert_eq!(parse(&image), Err(LoadError::NotLoadedHigh));
}

#[test]
fn setup_code_covering_the_whole_image_leaves_no_kernel() {
    let mut image = SyntheticImage::new();
    image.set_u8(SETUP_SECTS, 200);
    assert_eq!(
        parse(&image),
        Err(LoadError::MissingProtectedModeKernel {
            setup_bytes: 201 * 512,
            image_len: (SETUP_BYTES + KERNEL_LEN) as u64
        })
    );
    // Exactly the setup code and nothing else is just as bad.
    let image = SyntheticImage::new();
    assert!(matches!(
        BzImage::parse(&image.bytes[..SETUP_BYTES]),
        Err(LoadError::MissingProtectedModeKernel { .. })
    ));
}

#[test]
fn kernel_shorter_than_syssize_is_truncated() {
    let image = SyntheticImage::new();
    let cut = &image.bytes[..image.bytes.len() - 16];
    assert_eq!(
        BzImage::parse(cut),
        Err(LoadError::TruncatedKernel {
            expected: KERNEL_LEN as u64,
            found: (KERNEL_LEN - 16) as u64
        })
    );
}

#[test]
fn trailing_signature_after_the_kernel_is_accepted() {
    let mut image = SyntheticImage::new();
    image.bytes.extend_from_slice(&[0xEE; 600]);
    let parsed = parse(&image).unwrap();
    assert_eq!(parsed.protected_mode_kernel().len(), KERNEL_LEN + 600);
}

#[test]
fn alignment_must_be_a_power_of_two() {
    let mut image = SyntheticImage::new();
    image.set_u32(KERNEL_ALIGNMENT, 0x30_0000);
    assert_eq!(parse(&image), Err(LoadError::BadKernelAlignment { found: 0x30_0000 }));
    image.set_u32(KERNEL_ALIGNMENT, 0);
    assert_eq!(parse(&image), Err(LoadError::BadKernelAlignment { found: 0 }));
}

#[test]
fn min_alignment_above_kernel_alignment_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u8(MIN_ALIGNMENT, 22);
    assert!(matches!(
        parse(&image),
        Err(LoadError::BadMinAlignment { log2: 22, .. })
    ));
    image.set_u8(MIN_ALIGNMENT, 200);
    assert!(matches!(
        parse(&image),
        Err(LoadError::BadMinAlignment { log2: 200, .. })
    ));
}

#[test]
fn payload_outside_the_kernel_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u32(PAYLOAD_OFFSET, 0x2F00).set_u32(PAYLOAD_LENGTH, 0x200);
    assert_eq!(
        parse(&image),
        Err(LoadError::BadPayload {
            offset: 0x2F00,
            length: 0x200,
            kernel_len: KERNEL_LEN as u64
        })
    );
    // Offsets near u32::MAX must not wrap into range.
    image.set_u32(PAYLOAD_OFFSET, u32::MAX).set_u32(PAYLOAD_LENGTH, 2);
    assert!(matches!(parse(&image), Err(LoadError::BadPayload { .. })));
}

#[test]
fn setup_header_overrunning_boot_params_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u8(JUMP_OFFSET, 0xFF);
    assert_eq!(
        parse(&image),
        Err(LoadError::SetupHeaderTooLong { end: 0x301, max: 0x290 })
    );
}

/// Found by the `bzimage` fuzz target: a jump offset of 0 (header ending
/// at 0x202) was accepted, and `boot_params` got a header without the
/// magic, the version or `loadflags` the loader had validated.
#[test]
fn setup_header_ending_before_the_fields_read_is_rejected() {
    let mut image = SyntheticImage::new();
    for jump in [0, 4, 0x61] {
        image.set_u8(JUMP_OFFSET, jump);
        assert_eq!(
            parse(&image),
            Err(LoadError::SetupHeaderTooShort {
                end: 0x202 + u64::from(jump),
                min: 0x264
            })
        );
    }
    image.set_u8(JUMP_OFFSET, 0x62);
    assert!(parse(&image).is_ok(), "a header through init_size is enough");
}

#[test]
fn errors_explain_themselves() {
    assert_eq!(
        LoadError::BadBootFlag { found: 0x1234 }.to_string(),
        "boot flag at 0x1FE is 0x1234, expected 0xaa55"
    );
    assert!(LoadError::Not64BitCapable.to_string().contains("XLF_KERNEL_64"));
    assert!(LoadError::NotLoadedHigh.to_string().contains("LOADED_HIGH"));
}

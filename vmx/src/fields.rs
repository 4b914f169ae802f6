//! VMCS field encodings (SDM Vol. 3 Appendix B).
//!
//! An encoding packs the access type (bit 0), index (bits 9:1), field type
//! (bits 11:10) and width (bits 14:13). [`VmcsField`] lists the fields Keel
//! uses; [`VmcsField::width`] and [`VmcsField::field_type`] decode the
//! encoding so generic code (VMCS dumps, checked writes) need no side tables.
//! 64-bit fields are listed by their "full" encoding, which covers all 64 bits
//! on x86_64.

/// Bits 14:13 of a field encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldWidth {
    Bits16,
    Bits64,
    Bits32,
    /// 64 bits on a 64-bit processor.
    Natural,
}

/// Bits 11:10 of a field encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Control,
    ReadOnlyData,
    GuestState,
    HostState,
}

macro_rules! vmcs_fields {
    ($($(#[$doc:meta])* $name:ident = $encoding:literal,)*) => {
        /// A VMCS field, represented by its encoding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum VmcsField {
            $($(#[$doc])* $name = $encoding,)*
        }

        impl VmcsField {
            /// Every field, in encoding order; for VMCS dumps and tests.
            pub const ALL: &'static [VmcsField] = &[$(VmcsField::$name,)*];

            /// The variant name, for diagnostics.
            pub fn name(self) -> &'static str {
                match self {
                    $(VmcsField::$name => stringify!($name),)*
                }
            }
        }
    };
}

vmcs_fields! {
    // 16-bit control fields.
    VirtualProcessorId = 0x0000,
    PostedInterruptNotificationVector = 0x0002,
    EptpIndex = 0x0004,
    // 16-bit guest-state fields.
    GuestEsSelector = 0x0800,
    GuestCsSelector = 0x0802,
    GuestSsSelector = 0x0804,
    GuestDsSelector = 0x0806,
    GuestFsSelector = 0x0808,
    GuestGsSelector = 0x080A,
    GuestLdtrSelector = 0x080C,
    GuestTrSelector = 0x080E,
    GuestInterruptStatus = 0x0810,
    PmlIndex = 0x0812,
    // 16-bit host-state fields.
    HostEsSelector = 0x0C00,
    HostCsSelector = 0x0C02,
    HostSsSelector = 0x0C04,
    HostDsSelector = 0x0C06,
    HostFsSelector = 0x0C08,
    HostGsSelector = 0x0C0A,
    HostTrSelector = 0x0C0C,
    // 64-bit control fields.
    IoBitmapA = 0x2000,
    IoBitmapB = 0x2002,
    MsrBitmap = 0x2004,
    ExitMsrStoreAddress = 0x2006,
    ExitMsrLoadAddress = 0x2008,
    EntryMsrLoadAddress = 0x200A,
    ExecutiveVmcsPointer = 0x200C,
    PmlAddress = 0x200E,
    TscOffset = 0x2010,
    VirtualApicAddress = 0x2012,
    ApicAccessAddress = 0x2014,
    PostedInterruptDescriptorAddress = 0x2016,
    VmFunctionControls = 0x2018,
    EptPointer = 0x201A,
    EoiExitBitmap0 = 0x201C,
    EoiExitBitmap1 = 0x201E,
    EoiExitBitmap2 = 0x2020,
    EoiExitBitmap3 = 0x2022,
    EptpListAddress = 0x2024,
    VmreadBitmap = 0x2026,
    VmwriteBitmap = 0x2028,
    VirtualizationExceptionInfoAddress = 0x202A,
    XssExitingBitmap = 0x202C,
    EnclsExitingBitmap = 0x202E,
    TscMultiplier = 0x2032,
    TertiaryControls = 0x2034,
    // 64-bit read-only data fields.
    GuestPhysicalAddress = 0x2400,
    // 64-bit guest-state fields.
    VmcsLinkPointer = 0x2800,
    GuestIa32Debugctl = 0x2802,
    GuestIa32Pat = 0x2804,
    GuestIa32Efer = 0x2806,
    GuestIa32PerfGlobalCtrl = 0x2808,
    GuestPdpte0 = 0x280A,
    GuestPdpte1 = 0x280C,
    GuestPdpte2 = 0x280E,
    GuestPdpte3 = 0x2810,
    GuestIa32Bndcfgs = 0x2812,
    // 64-bit host-state fields.
    HostIa32Pat = 0x2C00,
    HostIa32Efer = 0x2C02,
    HostIa32PerfGlobalCtrl = 0x2C04,
    // 32-bit control fields.
    PinBasedControls = 0x4000,
    PrimaryProcessorControls = 0x4002,
    ExceptionBitmap = 0x4004,
    PageFaultErrorCodeMask = 0x4006,
    PageFaultErrorCodeMatch = 0x4008,
    Cr3TargetCount = 0x400A,
    ExitControls = 0x400C,
    ExitMsrStoreCount = 0x400E,
    ExitMsrLoadCount = 0x4010,
    EntryControls = 0x4012,
    EntryMsrLoadCount = 0x4014,
    EntryInterruptionInfo = 0x4016,
    EntryExceptionErrorCode = 0x4018,
    EntryInstructionLength = 0x401A,
    TprThreshold = 0x401C,
    SecondaryProcessorControls = 0x401E,
    PleGap = 0x4020,
    PleWindow = 0x4022,
    // 32-bit read-only data fields.
    VmInstructionError = 0x4400,
    ExitReason = 0x4402,
    ExitInterruptionInfo = 0x4404,
    ExitInterruptionErrorCode = 0x4406,
    IdtVectoringInfo = 0x4408,
    IdtVectoringErrorCode = 0x440A,
    ExitInstructionLength = 0x440C,
    ExitInstructionInfo = 0x440E,
    // 32-bit guest-state fields.
    GuestEsLimit = 0x4800,
    GuestCsLimit = 0x4802,
    GuestSsLimit = 0x4804,
    GuestDsLimit = 0x4806,
    GuestFsLimit = 0x4808,
    GuestGsLimit = 0x480A,
    GuestLdtrLimit = 0x480C,
    GuestTrLimit = 0x480E,
    GuestGdtrLimit = 0x4810,
    GuestIdtrLimit = 0x4812,
    GuestEsAccessRights = 0x4814,
    GuestCsAccessRights = 0x4816,
    GuestSsAccessRights = 0x4818,
    GuestDsAccessRights = 0x481A,
    GuestFsAccessRights = 0x481C,
    GuestGsAccessRights = 0x481E,
    GuestLdtrAccessRights = 0x4820,
    GuestTrAccessRights = 0x4822,
    GuestInterruptibility = 0x4824,
    GuestActivityState = 0x4826,
    GuestSmbase = 0x4828,
    GuestSysenterCs = 0x482A,
    PreemptionTimerValue = 0x482E,
    // 32-bit host-state fields.
    HostSysenterCs = 0x4C00,
    // Natural-width control fields.
    Cr0GuestHostMask = 0x6000,
    Cr4GuestHostMask = 0x6002,
    Cr0ReadShadow = 0x6004,
    Cr4ReadShadow = 0x6006,
    Cr3Target0 = 0x6008,
    Cr3Target1 = 0x600A,
    Cr3Target2 = 0x600C,
    Cr3Target3 = 0x600E,
    // Natural-width read-only data fields.
    ExitQualification = 0x6400,
    IoRcx = 0x6402,
    IoRsi = 0x6404,
    IoRdi = 0x6406,
    IoRip = 0x6408,
    GuestLinearAddress = 0x640A,
    // Natural-width guest-state fields.
    GuestCr0 = 0x6800,
    GuestCr3 = 0x6802,
    GuestCr4 = 0x6804,
    GuestEsBase = 0x6806,
    GuestCsBase = 0x6808,
    GuestSsBase = 0x680A,
    GuestDsBase = 0x680C,
    GuestFsBase = 0x680E,
    GuestGsBase = 0x6810,
    GuestLdtrBase = 0x6812,
    GuestTrBase = 0x6814,
    GuestGdtrBase = 0x6816,
    GuestIdtrBase = 0x6818,
    GuestDr7 = 0x681A,
    GuestRsp = 0x681C,
    GuestRip = 0x681E,
    GuestRflags = 0x6820,
    GuestPendingDebugExceptions = 0x6822,
    GuestSysenterEsp = 0x6824,
    GuestSysenterEip = 0x6826,
    // Natural-width host-state fields.
    HostCr0 = 0x6C00,
    HostCr3 = 0x6C02,
    HostCr4 = 0x6C04,
    HostFsBase = 0x6C06,
    HostGsBase = 0x6C08,
    HostTrBase = 0x6C0A,
    HostGdtrBase = 0x6C0C,
    HostIdtrBase = 0x6C0E,
    HostSysenterEsp = 0x6C10,
    HostSysenterEip = 0x6C12,
    HostRsp = 0x6C14,
    HostRip = 0x6C16,
}

impl VmcsField {
    pub fn encoding(self) -> u32 {
        self as u32
    }

    pub fn width(self) -> FieldWidth {
        match (self.encoding() >> 13) & 0b11 {
            0 => FieldWidth::Bits16,
            1 => FieldWidth::Bits64,
            2 => FieldWidth::Bits32,
            _ => FieldWidth::Natural,
        }
    }

    pub fn field_type(self) -> FieldType {
        match (self.encoding() >> 10) & 0b11 {
            0 => FieldType::Control,
            1 => FieldType::ReadOnlyData,
            2 => FieldType::GuestState,
            _ => FieldType::HostState,
        }
    }

    /// VM-exit information fields; VMWRITE to them fails unless
    /// `IA32_VMX_MISC[29]` is set.
    pub fn is_read_only(self) -> bool {
        self.field_type() == FieldType::ReadOnlyData
    }

    /// Largest value the field can hold, for rejecting truncating writes.
    pub fn max_value(self) -> u64 {
        match self.width() {
            FieldWidth::Bits16 => u64::from(u16::MAX),
            FieldWidth::Bits32 => u64::from(u32::MAX),
            FieldWidth::Bits64 | FieldWidth::Natural => u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(VmcsField::GuestRip.encoding(), 0x681E);
        assert_eq!(VmcsField::HostRip.encoding(), 0x6C16);
        assert_eq!(VmcsField::EptPointer.encoding(), 0x201A);
        assert_eq!(VmcsField::ExitReason.encoding(), 0x4402);
        assert_eq!(VmcsField::ExitQualification.encoding(), 0x6400);
        assert_eq!(VmcsField::VmInstructionError.encoding(), 0x4400);
        assert_eq!(VmcsField::PinBasedControls.encoding(), 0x4000);
        assert_eq!(VmcsField::GuestActivityState.encoding(), 0x4826);
        assert_eq!(VmcsField::PreemptionTimerValue.encoding(), 0x482E);
        assert_eq!(VmcsField::VmcsLinkPointer.encoding(), 0x2800);
        assert_eq!(VmcsField::SecondaryProcessorControls.encoding(), 0x401E);
    }

    #[test]
    fn width_decoding() {
        assert_eq!(VmcsField::VirtualProcessorId.width(), FieldWidth::Bits16);
        assert_eq!(VmcsField::HostTrSelector.width(), FieldWidth::Bits16);
        assert_eq!(VmcsField::EptPointer.width(), FieldWidth::Bits64);
        assert_eq!(VmcsField::GuestIa32Efer.width(), FieldWidth::Bits64);
        assert_eq!(VmcsField::ExitReason.width(), FieldWidth::Bits32);
        assert_eq!(VmcsField::GuestRip.width(), FieldWidth::Natural);
        assert_eq!(VmcsField::GuestTrSelector.max_value(), 0xFFFF);
        assert_eq!(VmcsField::GuestCsLimit.max_value(), 0xFFFF_FFFF);
    }

    #[test]
    fn read_only_fields_are_exactly_the_exit_information() {
        let read_only: Vec<_> = VmcsField::ALL.iter().filter(|f| f.is_read_only()).copied().collect();
        assert!(read_only.contains(&VmcsField::ExitReason));
        assert!(read_only.contains(&VmcsField::ExitQualification));
        assert!(read_only.contains(&VmcsField::GuestPhysicalAddress));
        assert!(read_only.contains(&VmcsField::VmInstructionError));
        assert!(!VmcsField::GuestRip.is_read_only());
        assert!(!VmcsField::PinBasedControls.is_read_only());
        assert_eq!(read_only.len(), 15);
    }

    #[test]
    fn field_types_match_name_prefixes() {
        for field in VmcsField::ALL {
            let name = field.name();
            if name.starts_with("Host") {
                assert_eq!(field.field_type(), FieldType::HostState, "{name}");
            }
            if name.starts_with("Guest")
                && !matches!(field, VmcsField::GuestPhysicalAddress | VmcsField::GuestLinearAddress)
            {
                assert_eq!(field.field_type(), FieldType::GuestState, "{name}");
            }
        }
    }

    #[test]
    fn encodings_are_unique_full_access_and_sorted() {
        for pair in VmcsField::ALL.windows(2) {
            assert!(pair[0].encoding() < pair[1].encoding(), "{:?} / {:?}", pair[0], pair[1]);
        }
        // Bit 0 selects the high half of 64-bit fields; we only use full access.
        assert!(VmcsField::ALL.iter().all(|f| f.encoding() & 1 == 0));
    }
}

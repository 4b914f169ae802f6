use super::*;
use crate::SourceId;

const UNIT_A: u64 = 0xfed9_0000;
const UNIT_B: u64 = 0xfed9_1000;
/// The first structure's offset, and the first scope's in a DRHD there.
const FIRST: usize = HEADER_LEN;
const FIRST_DRHD_SCOPE: usize = HEADER_LEN + 16;

fn sid(bus: u8, device: u8, function: u8) -> SourceId {
    SourceId::new(bus, device, function).unwrap()
}

/// A client-like platform: graphics on its own unit, everything else on the
/// catch-all unit, a USB RMRR, and one of each other structure.
fn platform() -> Vec<u8> {
    DmarBuilder::new(39)
        .flags(DmarFlags::INTR_REMAP.union(DmarFlags::X2APIC_OPT_OUT))
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .drhd(
            DrhdSpec::new(UNIT_B)
                .include_pci_all()
                .size(1)
                .scope(ScopeSpec::ioapic(2, 0xf0, &[(0x1f, 0)]))
                .scope(ScopeSpec::hpet(0, 0, &[(0x1f, 0)])),
        )
        .rmrr(RmrrSpec::new(0, 0x7c00_0000, 0x7c01_ffff).scope(ScopeSpec::endpoint(0, &[(0x14, 0)])))
        .atsr(AtsrSpec::new(0).scope(ScopeSpec::sub_hierarchy(0, &[(0x1c, 0)])))
        .rhsa(UNIT_B, 1)
        .andd(1, b"\\_SB.PCI0.UA00")
        .satc(SatcSpec::new(0).atc_required().scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .sidp(0, &[ScopeSpec::endpoint(0, &[(2, 0)]).flags(0x3)])
        .build()
}

#[test]
fn an_ioapic_is_found_by_its_apic_id_with_its_unit_and_requester_id() {
    let table = platform();
    let dmar = parse(&table).unwrap();
    let (unit, source) = dmar.ioapic(2, &NoBridges).unwrap();
    assert_eq!(unit.register_base().as_u64(), UNIT_B);
    assert_eq!(source, sid(0xf0, 0x1f, 0));
    assert!(dmar.ioapic(3, &NoBridges).is_none(), "no such I/O APIC");
    assert!(
        dmar.ioapic(0, &NoBridges).is_none(),
        "the HPET's enumeration ID is not an I/O APIC's"
    );
}

fn parse(table: &[u8]) -> Result<Dmar<'_>, DmarError> {
    parse_dmar(table)
}

fn one_unit(scopes: &[ScopeSpec]) -> Vec<u8> {
    let drhd = scopes.iter().cloned().fold(DrhdSpec::new(UNIT_A), DrhdSpec::scope);
    DmarBuilder::new(46).drhd(drhd).build()
}

#[test]
fn header_fields_are_decoded() {
    let table = platform();
    let dmar = parse(&table).unwrap();
    assert_eq!(dmar.bytes().len(), table.len());
    assert_eq!(dmar.host_address_width(), 39);
    assert!(dmar.flags().contains(DmarFlags::INTR_REMAP));
    assert!(dmar.flags().contains(DmarFlags::X2APIC_OPT_OUT));
    assert!(!dmar.flags().contains(DmarFlags::DMA_CTRL_PLATFORM_OPT_IN));
    assert_eq!(dmar.revision(), 1);
    assert_eq!(&dmar.oem_id(), b"KEEL  ");
    assert_eq!(&dmar.oem_table_id(), b"KEELDMAR");
}

#[test]
fn every_structure_type_is_decoded() {
    let table = platform();
    let dmar = parse(&table).unwrap();
    assert_eq!(dmar.structures().count(), 8);

    let units: Vec<_> = dmar.drhds().collect();
    assert_eq!(units.len(), 2);
    assert_eq!(units[0].register_base().as_u64(), UNIT_A);
    assert!(!units[0].include_pci_all());
    assert_eq!(units[0].register_set_size(), 0x1000);
    assert_eq!(units[0].offset(), FIRST);
    let graphics: Vec<_> = units[0].scopes().collect();
    assert_eq!(graphics.len(), 1);
    assert_eq!(graphics[0].kind(), ScopeKind::PciEndpoint);
    assert_eq!(graphics[0].direct_source_id(), Some(sid(0, 2, 0)));
    assert_eq!(graphics[0].offset(), FIRST_DRHD_SCOPE);

    assert!(units[1].include_pci_all());
    assert_eq!(units[1].register_set_size(), 0x2000);
    let platform_devices: Vec<_> = units[1]
        .scopes()
        .map(|scope| (scope.kind(), scope.enumeration_id(), scope.start_bus()))
        .collect();
    assert_eq!(
        platform_devices,
        [(ScopeKind::IoApic, 2, 0xf0), (ScopeKind::Hpet, 0, 0)]
    );
    let ioapic = units[1].scopes().next().unwrap();
    assert_eq!(
        ioapic.path().collect::<Vec<_>>(),
        [PathEntry {
            device: 0x1f,
            function: 0
        }]
    );

    let rmrr = dmar.rmrrs().next().unwrap();
    assert_eq!(
        (rmrr.base().as_u64(), rmrr.limit().as_u64()),
        (0x7c00_0000, 0x7c01_ffff)
    );
    assert_eq!(rmrr.segment(), 0);
    assert_eq!(rmrr.scopes().next().unwrap().direct_source_id(), Some(sid(0, 0x14, 0)));

    let atsr = dmar.atsrs().next().unwrap();
    assert!(!atsr.all_ports());
    assert_eq!(atsr.scopes().next().unwrap().kind(), ScopeKind::PciSubHierarchy);

    let rhsa = dmar.rhsas().next().unwrap();
    assert_eq!((rhsa.register_base().as_u64(), rhsa.proximity_domain()), (UNIT_B, 1));

    let andd = dmar.andds().next().unwrap();
    assert_eq!(andd.acpi_device_number(), 1);
    assert_eq!(andd.object_name(), b"\\_SB.PCI0.UA00");

    let satc = dmar.satcs().next().unwrap();
    assert!(satc.atc_required());
    assert_eq!(satc.scopes().count(), 1);

    let sidp = dmar.sidps().next().unwrap();
    assert_eq!(sidp.scopes().next().unwrap().flags(), 0x3);
    assert_eq!(sidp.segment(), 0);
}

#[test]
fn bytes_past_the_declared_length_are_ignored() {
    let mut table = platform();
    let len = table.len();
    table.extend_from_slice(&[0xff; 100]);
    assert_eq!(parse(&table).unwrap().bytes().len(), len);
}

#[test]
fn a_table_without_structures_is_valid() {
    let table = DmarBuilder::new(39).build();
    assert_eq!(parse(&table).unwrap().structures().count(), 0);
}

#[test]
fn devices_resolve_to_their_unit() {
    let table = platform();
    let dmar = parse(&table).unwrap();
    let unit = |device| {
        dmar.unit_for(0, device, &NoBridges)
            .map(|drhd| drhd.register_base().as_u64())
    };
    assert_eq!(unit(sid(0, 2, 0)), Some(UNIT_A));
    assert_eq!(unit(sid(0, 2, 1)), Some(UNIT_B));
    assert_eq!(unit(sid(0, 0x1f, 0)), Some(UNIT_B));
    assert_eq!(unit(sid(7, 0, 0)), Some(UNIT_B));
    assert_eq!(dmar.unit_for(1, sid(0, 2, 0), &NoBridges), None);
    assert_eq!(dmar.include_all_unit(0).unwrap().register_base().as_u64(), UNIT_B);
}

/// Root port 00:1c.0 forwards buses 2..=4, and 02:00.0 is a bridge for 3..=4.
struct Bridges;

impl BridgeResolver for Bridges {
    fn bridge_buses(&self, segment: u16, bridge: SourceId) -> Option<BusRange> {
        match (segment, bridge.bus(), bridge.device(), bridge.function()) {
            (0, 0, 0x1c, 0) => Some(BusRange {
                secondary: 2,
                subordinate: 4,
            }),
            (0, 2, 0, 0) => Some(BusRange {
                secondary: 3,
                subordinate: 4,
            }),
            _ => None,
        }
    }
}

#[test]
fn scope_paths_are_followed_through_bridges() {
    let table = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::sub_hierarchy(0, &[(0x1c, 0), (0, 0)])))
        .drhd(DrhdSpec::new(UNIT_B).scope(ScopeSpec::endpoint(0, &[(0x1c, 0), (0, 1)])))
        .drhd(DrhdSpec::new(0xfed9_2000).include_pci_all())
        .build();
    let dmar = parse(&table).unwrap();
    let unit = |device| dmar.unit_for(0, device, &Bridges).unwrap().register_base().as_u64();
    // The bridge 02:00.0 itself and everything on buses 3 and 4.
    assert_eq!(unit(sid(2, 0, 0)), UNIT_A);
    assert_eq!(unit(sid(3, 0, 0)), UNIT_A);
    assert_eq!(unit(sid(4, 5, 2)), UNIT_A);
    assert_eq!(unit(sid(2, 0, 1)), UNIT_B);
    assert_eq!(unit(sid(2, 1, 0)), 0xfed9_2000);
    assert_eq!(unit(sid(5, 0, 0)), 0xfed9_2000);
    // Without the bridges' bus numbers nothing below them resolves.
    assert_eq!(
        dmar.unit_for(0, sid(3, 0, 0), &NoBridges)
            .unwrap()
            .register_base()
            .as_u64(),
        0xfed9_2000
    );
    let scope = dmar.drhds().next().unwrap().scopes().next().unwrap();
    assert_eq!(scope_target(&scope, 0, &Bridges), Some(sid(2, 0, 0)));
    assert_eq!(scope_target(&scope, 0, &NoBridges), None);
    assert_eq!(scope.direct_source_id(), None);
}

#[test]
fn short_or_foreign_headers_are_rejected() {
    let table = platform();
    for len in [0, 1, 35, 47] {
        assert_eq!(parse(&table[..len]), Err(DmarError::TruncatedHeader { len }));
    }
    let mut apic = table.clone();
    apic[..4].copy_from_slice(b"APIC");
    assert_eq!(parse(&apic), Err(DmarError::BadSignature { found: *b"APIC" }));
}

#[test]
fn header_length_must_fit_the_buffer_and_the_header() {
    let table = platform();
    let mut cut = table.clone();
    cut.truncate(table.len() - 1);
    assert_eq!(
        parse(&cut),
        Err(DmarError::BadTableLength {
            declared: table.len() as u32,
            available: table.len() - 1
        })
    );
    for declared in [0u32, 47, u32::MAX] {
        let mut lying = table.clone();
        lying[4..8].copy_from_slice(&declared.to_le_bytes());
        fix_checksum(&mut lying);
        assert_eq!(
            parse(&lying),
            Err(DmarError::BadTableLength {
                declared,
                available: table.len()
            })
        );
    }
}

#[test]
fn checksum_is_verified() {
    let mut table = platform();
    table[40] ^= 0x10;
    assert_eq!(parse(&table), Err(DmarError::BadChecksum { sum: 0x10 }));
}

#[test]
fn host_address_width_beyond_64_bits_is_rejected() {
    let table = DmarBuilder::new(39).raw_host_address_width(64).build();
    assert_eq!(parse(&table), Err(DmarError::BadHostAddressWidth { raw: 64 }));
    let table = DmarBuilder::new(64).build();
    assert_eq!(parse(&table).unwrap().host_address_width(), 64);
}

#[test]
fn structure_lengths_are_bounded() {
    let zero = DmarBuilder::new(39).raw_structure(kind::DRHD, 0, &[0; 12]).build();
    assert_eq!(
        parse(&zero),
        Err(DmarError::StructureTooShort {
            offset: FIRST,
            kind: 0,
            length: 0
        })
    );
    let below_header = DmarBuilder::new(39).raw_structure(kind::ATSR, 3, &[0; 4]).build();
    assert!(matches!(
        parse(&below_header),
        Err(DmarError::StructureTooShort { length: 3, .. })
    ));
    // A DRHD needs 16 bytes before its scopes.
    let short_drhd = DmarBuilder::new(39).structure(kind::DRHD, &[0; 8]).build();
    assert_eq!(
        parse(&short_drhd),
        Err(DmarError::StructureTooShort {
            offset: FIRST,
            kind: 0,
            length: 12
        })
    );
    let short_rmrr = DmarBuilder::new(39).structure(kind::RMRR, &[0; 16]).build();
    assert!(matches!(
        parse(&short_rmrr),
        Err(DmarError::StructureTooShort { kind: 1, .. })
    ));
    let past_end = DmarBuilder::new(39).raw_structure(kind::ATSR, 40, &[0; 4]).build();
    assert_eq!(
        parse(&past_end),
        Err(DmarError::StructureOverflow {
            offset: FIRST,
            length: 40,
            remaining: 8
        })
    );
    let dangling = DmarBuilder::new(39).raw_bytes(&[0, 0]).build();
    assert_eq!(
        parse(&dangling),
        Err(DmarError::TruncatedStructureHeader { offset: FIRST })
    );
}

#[test]
fn unknown_structure_types_follow_the_policy() {
    let table = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).include_pci_all())
        .structure(7, &[1, 2, 3, 4])
        .build();
    assert_eq!(
        parse(&table),
        Err(DmarError::UnknownStructureType {
            offset: FIRST + 16,
            kind: 7
        })
    );
    let skip = ParseOptions {
        unknown_structures: UnknownStructurePolicy::Skip,
    };
    let dmar = parse_dmar_with(&table, skip).unwrap();
    let unknown: Vec<_> = dmar
        .structures()
        .filter_map(|structure| match structure {
            RemappingStructure::Unknown(unknown) => Some(unknown),
            _ => None,
        })
        .collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!((unknown[0].kind(), unknown[0].offset()), (7, FIRST + 16));
    assert_eq!(unknown[0].bytes(), [7, 0, 8, 0, 1, 2, 3, 4]);
    assert_eq!(dmar.drhds().count(), 1);
    // Skipping still bounds the unknown structure.
    let lying = DmarBuilder::new(39).raw_structure(0x80, 200, &[0; 4]).build();
    assert!(matches!(
        parse_dmar_with(&lying, skip),
        Err(DmarError::StructureOverflow { .. })
    ));
}

#[test]
fn register_bases_must_be_aligned_and_distinct() {
    for base in [0, 0xfed9_0800] {
        let table = DmarBuilder::new(39).drhd(DrhdSpec::new(base)).build();
        assert_eq!(parse(&table), Err(DmarError::BadRegisterBase { offset: FIRST, base }));
    }
    let table = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A))
        .drhd(DrhdSpec::new(UNIT_A).segment(1))
        .build();
    assert_eq!(parse(&table), Err(DmarError::DuplicateRegisterBase { base: UNIT_A }));
}

#[test]
fn one_include_all_unit_per_segment() {
    let two = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).include_pci_all().segment(3))
        .drhd(DrhdSpec::new(UNIT_B).include_pci_all().segment(3))
        .build();
    assert_eq!(parse(&two), Err(DmarError::MultipleIncludeAll { segment: 3 }));
    let per_segment = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).include_pci_all().segment(0))
        .drhd(DrhdSpec::new(UNIT_B).include_pci_all().segment(1))
        .build();
    let dmar = parse(&per_segment).unwrap();
    let unit = |segment| {
        dmar.unit_for(segment, sid(0, 3, 0), &NoBridges)
            .unwrap()
            .register_base()
    };
    assert_eq!((unit(0).as_u64(), unit(1).as_u64()), (UNIT_A, UNIT_B));
}

#[test]
fn reserved_regions_must_be_page_ranges() {
    for (base, limit) in [
        (0x1000, 0x0fff),
        (0x1800, 0x1fff),
        (0x1000, 0x1ffe),
        (0x1000, u64::MAX),
        (0x2000, 0x1fff),
    ] {
        let table = DmarBuilder::new(39).rmrr(RmrrSpec::new(0, base, limit)).build();
        assert_eq!(
            parse(&table),
            Err(DmarError::BadReservedRegion {
                offset: FIRST,
                base,
                limit
            }),
            "{base:#x}..={limit:#x}"
        );
    }
    let single_page = DmarBuilder::new(39).rmrr(RmrrSpec::new(0, 0x1000, 0x1fff)).build();
    assert!(parse(&single_page).is_ok());
}

#[test]
fn scope_lengths_are_checked() {
    let at = FIRST_DRHD_SCOPE;
    let cases = [
        (
            ScopeSpec::endpoint(0, &[(2, 0)]).declared_len(0),
            DmarError::ScopeTooShort { offset: at, length: 0 },
        ),
        (
            ScopeSpec::endpoint(0, &[(2, 0)]).declared_len(5),
            DmarError::ScopeTooShort { offset: at, length: 5 },
        ),
        (
            ScopeSpec::endpoint(0, &[(2, 0)]).declared_len(10),
            DmarError::ScopeOverflow {
                offset: at,
                length: 10,
                remaining: 8,
            },
        ),
        (
            ScopeSpec::endpoint(0, &[(2, 0)]).declared_len(7),
            DmarError::ScopeLengthMismatch { offset: at, length: 7 },
        ),
        (ScopeSpec::endpoint(0, &[]), DmarError::EmptyScopePath { offset: at }),
        (
            ScopeSpec::raw(0, 0, 0, &[(2, 0)]),
            DmarError::UnknownScopeType { offset: at, kind: 0 },
        ),
        (
            ScopeSpec::raw(6, 0, 0, &[(2, 0)]),
            DmarError::UnknownScopeType { offset: at, kind: 6 },
        ),
        (
            ScopeSpec::endpoint(0, &[(1, 0), (32, 0)]),
            DmarError::BadPathEntry {
                offset: at + 8,
                device: 32,
                function: 0,
            },
        ),
        (
            ScopeSpec::endpoint(0, &[(1, 8)]),
            DmarError::BadPathEntry {
                offset: at + 6,
                device: 1,
                function: 8,
            },
        ),
    ];
    for (scope, error) in cases {
        assert_eq!(parse(&one_unit(core::slice::from_ref(&scope))), Err(error), "{scope:?}");
    }
}

#[test]
fn a_scope_cut_off_by_its_structure_is_rejected() {
    // One stray byte after the scopes, inside the DRHD's length.
    let table = DmarBuilder::new(39)
        .structure(
            kind::DRHD,
            &[0, 0, 0, 0, 0, 0, 0xd9, 0xfe, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 2, 0, 1],
        )
        .build();
    assert_eq!(
        parse(&table),
        Err(DmarError::TruncatedScope {
            offset: FIRST_DRHD_SCOPE + 8
        })
    );
}

#[test]
fn scopes_of_other_structures_are_checked_too() {
    let table = DmarBuilder::new(39)
        .rmrr(RmrrSpec::new(0, 0x1000, 0x1fff).scope(ScopeSpec::endpoint(0, &[(2, 0)]).declared_len(9)))
        .build();
    assert!(matches!(parse(&table), Err(DmarError::ScopeOverflow { .. })));
    let table = DmarBuilder::new(39)
        .sidp(0, &[ScopeSpec::raw(9, 0, 0, &[(1, 0)])])
        .build();
    assert!(matches!(
        parse(&table),
        Err(DmarError::UnknownScopeType { kind: 9, .. })
    ));
}

#[test]
fn the_number_of_scopes_is_bounded() {
    let scopes: Vec<_> = (0..=MAX_DEVICE_SCOPES)
        .map(|index| ScopeSpec::endpoint((index / 256) as u8, &[((index % 32) as u8, ((index / 32) % 8) as u8)]))
        .collect();
    let mut builder = DmarBuilder::new(39);
    for (unit, chunk) in scopes.chunks(1000).enumerate() {
        let base = UNIT_A + unit as u64 * 0x1000;
        builder = builder.drhd(chunk.iter().cloned().fold(DrhdSpec::new(base), DrhdSpec::scope));
    }
    assert_eq!(parse(&builder.build()), Err(DmarError::TooManyScopes));
}

#[test]
fn a_device_named_by_two_units_is_rejected() {
    let table = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .drhd(DrhdSpec::new(UNIT_B).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .build();
    assert_eq!(
        parse(&table),
        Err(DmarError::DuplicateScope {
            first: FIRST_DRHD_SCOPE,
            second: FIRST_DRHD_SCOPE + 24
        })
    );
    let twice_in_one = one_unit(&[ScopeSpec::endpoint(0, &[(2, 0)]), ScopeSpec::endpoint(0, &[(2, 0)])]);
    assert!(matches!(parse(&twice_in_one), Err(DmarError::DuplicateScope { .. })));
    let same_ioapic = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::ioapic(8, 0, &[(0x1e, 0)])))
        .drhd(DrhdSpec::new(UNIT_B).scope(ScopeSpec::ioapic(8, 0xf0, &[(0x1f, 0)])))
        .build();
    assert!(matches!(parse(&same_ioapic), Err(DmarError::DuplicateScope { .. })));
}

#[test]
fn a_sub_hierarchy_overlapping_another_scope_is_rejected() {
    let table = DmarBuilder::new(39)
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::endpoint(0, &[(0x1c, 0), (0, 0)])))
        .drhd(DrhdSpec::new(UNIT_B).scope(ScopeSpec::sub_hierarchy(0, &[(0x1c, 0)])))
        .build();
    assert_eq!(
        parse(&table),
        Err(DmarError::OverlappingScopes {
            first: FIRST_DRHD_SCOPE,
            second: FIRST_DRHD_SCOPE + 10 + 16
        })
    );
}

#[test]
fn distinct_scopes_are_not_overlaps() {
    let table = DmarBuilder::new(39)
        // Same path from different start buses, and the same device in
        // another segment.
        .drhd(DrhdSpec::new(UNIT_A).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .drhd(DrhdSpec::new(UNIT_B).scope(ScopeSpec::endpoint(1, &[(2, 0)])))
        .drhd(
            DrhdSpec::new(0xfed9_2000)
                .segment(1)
                .scope(ScopeSpec::endpoint(0, &[(2, 0)])),
        )
        // An endpoint is not a container even when another path extends it.
        .drhd(
            DrhdSpec::new(0xfed9_3000)
                .scope(ScopeSpec::endpoint(0, &[(3, 0)]))
                .scope(ScopeSpec::endpoint(0, &[(3, 0), (0, 0)])),
        )
        // Different kinds of non-PCI device may share an enumeration ID.
        .drhd(
            DrhdSpec::new(0xfed9_4000)
                .scope(ScopeSpec::ioapic(0, 0, &[(0x1e, 0)]))
                .scope(ScopeSpec::hpet(0, 0, &[(0x1e, 1)])),
        )
        // RMRRs may name a device that a unit names as well.
        .rmrr(RmrrSpec::new(0, 0x1000, 0x1fff).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .rmrr(RmrrSpec::new(0, 0x3000, 0x3fff).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .build();
    assert!(parse(&table).is_ok());
}

#[test]
fn errors_have_readable_messages() {
    let error = DmarError::OverlappingScopes { first: 64, second: 90 };
    assert_eq!(error.to_string(), "device scopes at 0x40 and 0x5a overlap");
    assert_eq!(
        DmarError::BadHostAddressWidth { raw: 255 }.to_string(),
        "host address width 256 bits"
    );
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Touches everything a parsed table offers, so accessors run on whatever
/// the parser accepted.
fn exercise(dmar: &Dmar<'_>) -> usize {
    let mut seen = 0;
    for structure in dmar.structures() {
        seen += 1;
        for scope in structure.scopes().into_iter().flatten() {
            seen += scope.path().count() + usize::from(scope.start_bus() == 0);
            let _ = scope_target(&scope, 0, &Bridges);
        }
    }
    for unit in dmar.drhds() {
        seen += usize::from(unit.include_pci_all());
    }
    for andd in dmar.andds() {
        seen += andd.object_name().len();
    }
    seen + usize::from(dmar.unit_for(0, SourceId::from_raw(0x0300), &Bridges).is_some())
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let skip = ParseOptions {
        unknown_structures: UnknownStructurePolicy::Skip,
    };
    for _ in 0..20_000 {
        let len = rng.below(160);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Give most inputs a plausible header so the parser gets further.
        if len >= HEADER_LEN && rng.below(4) != 0 {
            bytes[..4].copy_from_slice(b"DMAR");
            let declared = if rng.below(2) == 0 {
                len
            } else {
                HEADER_LEN + rng.below(len)
            };
            bytes[4..8].copy_from_slice(&(declared as u32).to_le_bytes());
            fix_checksum(&mut bytes[..declared.min(len)]);
        }
        for options in [ParseOptions::default(), skip] {
            if let Ok(dmar) = parse_dmar_with(&bytes, options) {
                exercise(&dmar);
            }
        }
    }
}

#[test]
fn mutated_valid_tables_never_panic() {
    let seed = platform();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut table = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let index = rng.below(table.len());
            table[index] = match rng.below(3) {
                0 => rng.next() as u8,
                1 => table[index] ^ (1 << rng.below(8)),
                _ => 0,
            };
        }
        if rng.below(2) == 0 {
            let cut = HEADER_LEN + rng.below(table.len() - HEADER_LEN);
            table.truncate(cut);
            table[4..8].copy_from_slice(&(cut as u32).to_le_bytes());
        }
        fix_checksum(&mut table);
        if let Ok(dmar) = parse(&table) {
            accepted += 1;
            exercise(&dmar);
        }
    }
    // Mutations that leave the table valid (OEM fields, flags) happen.
    assert!(accepted > 0);
}

//! The pure parts: layout, capability list, pagemap, arguments, the
//! scenario table and the garbage bounds. `model` runs the scenarios.

use super::*;
use crate::hostile::Rng;

mod model;

#[test]
fn descriptors_headers_and_rings_are_laid_out_as_the_spec_says() {
    let descriptor = Descriptor {
        addr: 0x1122_3344_5566_7788,
        len: 0x99AA_BBCC,
        flags: 0xDDEE,
        next: 0x0F01,
    };
    assert_eq!(
        descriptor.encode(),
        [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xCC, 0xBB, 0xAA, 0x99, 0xEE, 0xDD, 0x01, 0x0F]
    );
    assert_eq!(
        request_header(1, 0x0102),
        [1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!((avail_entry(0), avail_entry(7), avail_entry(9)), (4, 18, 6));
    assert_eq!((used_entry(0), used_entry(7), used_entry(8)), (4, 60, 4));
    assert_eq!(descriptor_offset(3), 48);
    let buffers = Buffers {
        header: 0x1000,
        data: 0x2000,
        status: 0x1200,
    };
    let read = sector_request(0, buffers, false);
    assert_eq!(
        read.map(|d| (d.addr, d.len, d.flags, d.next)),
        [(0x1000, 16, 1, 1), (0x2000, 512, 3, 2), (0x1200, 1, 2, 0)]
    );
    assert_eq!(sector_request(0, buffers, true)[1].flags, VIRTQ_DESC_F_NEXT);
}

#[test]
fn pagemap_entries_give_frames_only_when_present_and_visible() {
    assert_eq!(pagemap_frame(1 << 63 | 0x1234), Ok(0x1234));
    assert_eq!(
        pagemap_frame(1 << 63 | 1 << 55 | 0x7F_FFFF_FFFF_FFFF),
        Ok(0x7F_FFFF_FFFF_FFFF)
    );
    assert!(pagemap_frame(0x1234).unwrap_err().contains("not present"));
    assert!(pagemap_frame(1 << 63 | 1 << 62 | 5).unwrap_err().contains("swapped"));
    assert!(pagemap_frame(1 << 63).unwrap_err().contains("root"));
}

#[test]
fn pci_addresses_are_spelled_as_sysfs_does() {
    assert_eq!(pci_address("0000:00:05.0").as_deref(), Some("0000:00:05.0"));
    assert_eq!(pci_address("00:1f.7").as_deref(), Some("0000:00:1f.7"));
    assert_eq!(pci_address("ABCD:EF:1F.3").as_deref(), Some("abcd:ef:1f.3"));
    for bad in [
        "",
        "0000:00:05",
        "00:05.0.1",
        "0000:00:20.0",
        "0000:00:05.8",
        "000:00:05.0",
        "0000:0:05.0",
        "x:y:z.w",
    ] {
        assert_eq!(pci_address(bad), None, "{bad}");
    }
}

#[test]
fn status_bytes_are_named() {
    assert_eq!(describe_status(0), "0x00");
    assert_eq!(
        describe_status(0x4F),
        "0x4f (ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK|DEVICE_NEEDS_RESET)"
    );
    assert_eq!(describe_status(0x10), "0x10 ()");
}

#[test]
fn the_scenario_table_is_the_brief() {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "valid-read",
            "bad-address",
            "descriptor-loop",
            "head-out-of-range",
            "avail-jump",
            "indirect-not-negotiated",
            "indirect-loop",
            "write-to-readonly",
            "ring-rewrite"
        ]
    );
    assert_eq!(Scenario::IndirectLoop.features(), 1 << 28);
    assert_eq!(Scenario::IndirectNotNegotiated.features(), 0);
    assert_eq!(Scenario::WriteToReadonly.needs_offered(), 1 << 5);
    assert_eq!(Scenario::BadAddress.expect(), Expect::Status(1));
    assert_eq!(Scenario::AvailJump.expect(), Expect::NeedsReset);
    assert_eq!(Scenario::RingRewrite.expect(), Expect::Survive);
}

/// Whether `addr` with a buffer of `len` may be handed to the device: in
/// the request page below the span, or (bits 40 and up set) nowhere.
fn garbage_in_bounds(addr: u64, len: u32, request: u64) -> bool {
    let low = addr & ((1 << 40) - 1);
    let in_page = low >= request && low - request < GARBAGE_SPAN;
    len <= GARBAGE_MAX_LEN && in_page && (addr >> 40 != 0 || low + u64::from(len) <= request + PAGE_SIZE as u64)
}

#[test]
fn garbage_stays_in_the_request_page_or_out_of_ram_even_torn() {
    let request = 0x0345_6000;
    let mut rng = Rng::new(3);
    let samples: Vec<Descriptor> = (0..4000).map(|_| garbage_descriptor(&mut rng, request)).collect();
    let (mut outside, mut indirect, mut far_next) = (0, 0, 0);
    for descriptor in &samples {
        assert!(
            garbage_in_bounds(descriptor.addr, descriptor.len, request),
            "{descriptor:?}"
        );
        outside += usize::from(descriptor.addr >> 40 != 0);
        indirect += usize::from(descriptor.flags & VIRTQ_DESC_F_INDIRECT != 0);
        far_next += usize::from(descriptor.next >= QUEUE_SIZE);
    }
    assert!(
        outside > 500 && indirect > 150 && far_next > 200,
        "{outside} {indirect} {far_next}"
    );
    // Any byte-wise mix of two addresses (a copy racing a rewrite) too.
    for pair in samples.windows(2) {
        let (a, b) = (pair[0].addr.to_le_bytes(), pair[1].addr.to_le_bytes());
        for mask in 0u32..256 {
            let mixed: Vec<u8> = (0..8).map(|i| if mask & 1 << i != 0 { a[i] } else { b[i] }).collect();
            let addr = u64::from_le_bytes(mixed.try_into().unwrap());
            assert!(garbage_in_bounds(addr, GARBAGE_MAX_LEN, request), "{addr:#x}");
        }
    }
    // A chain of at most QUEUE_SIZE such buffers cannot carry a header and a sector.
    assert!(u64::from(QUEUE_SIZE) * u64::from(GARBAGE_MAX_LEN) < u64::from(HEADER_LEN) + SECTOR_SIZE as u64);
}

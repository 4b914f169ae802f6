//! The DMAR table Keel reads from the host's firmware (`keel_iommu::parse_dmar`).
//!
//! Beyond "no panic": a table that parses has structures that lie inside
//! it, DRHD register bases are page-aligned, and asking which unit covers
//! any device never panics either.
#![no_main]

use keel_iommu::dmar::NoBridges;
use keel_iommu::{parse_dmar, SourceId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dmar) = parse_dmar(data) else {
        return;
    };
    assert!(dmar.host_address_width() >= 1);
    let mut units = 0;
    for drhd in dmar.drhds() {
        units += 1;
        let _ = drhd.scopes().count();
        let _ = drhd.register_base();
    }
    assert_eq!(dmar.drhds().count(), units, "iterating twice gives the same units");
    let _ = dmar.structures().count();
    for raw in [0u16, 0x0018, 0x00f8, 0x0100, 0xffff] {
        let _ = dmar.unit_for(0, SourceId::from_raw(raw), &NoBridges);
    }
});

//! An assigned PCI function's config space and MSI-X table, driven by a hostile guest.
//!
//! `keel_fuzz::passthrough::guest_accesses` builds a
//! `keel_devices::passthrough::PassthroughFunction` from the input (BARs,
//! host MSI and MSI-X registers, hidden registers), then runs configuration
//! reads and writes, MMIO to the MSI-X table and PBA, fires and Keel's
//! `take_*` calls decoded from the rest, checking after every step that the
//! BARs' mapped pieces and trapped pages tile them, the table and PBA are
//! trapped, no guest write reaches the real device's MSI/MSI-X registers,
//! and the capability list Linux walks is the emulated one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_fuzz::passthrough::guest_accesses(data);
});

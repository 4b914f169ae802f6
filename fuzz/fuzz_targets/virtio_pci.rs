//! The virtio-pci transport's registers written by a hostile driver
//! (`keel_virtio::fuzzing::pci_transport`, which checks the status and
//! feature-negotiation promises after every step).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_virtio::fuzzing::pci_transport(data);
});

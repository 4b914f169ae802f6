//! The device side of virtio-console (`keel_virtio::console`), driven by
//! a hostile driver: `keel_virtio::console::fuzz_console` sets up both
//! queues from the first steps, then transmits, receives inputs of chosen
//! lengths, resizes and lets the driver rewrite memory between steps,
//! asserting what the sink gets, what each receive reports and that every
//! chain taken completes. As in `virtqueue`, the steps come first and the
//! rest of the input is the initial guest memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MEMORY_BYTES: usize = 32 * 1024;
const MAX_STEPS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let (ops, image) = data.split_at(data.len().min(MAX_STEPS));
    let mut memory = vec![0u8; MEMORY_BYTES];
    let copied = image.len().min(MEMORY_BYTES);
    memory[..copied].copy_from_slice(&image[..copied]);
    keel_virtio::console::fuzz_console(&mut memory, ops);
});

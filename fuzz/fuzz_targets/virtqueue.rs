//! The device side of a split virtqueue and virtio-blk, driven by a hostile
//! driver (`keel_virtio::fuzzing::virtqueue` asserts the queue's invariants
//! as it goes). The input's first bytes are the steps (queue setup, then
//! pops, completions, notification handling and the driver's own stores
//! into memory); what follows is the initial content of the guest memory
//! the rings live in, zero beyond it. Steps come first so that short inputs,
//! which libFuzzer tries most, still drive the queue.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MEMORY_BYTES: usize = 16 * 1024;
const MAX_STEPS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let (ops, image) = data.split_at(data.len().min(MAX_STEPS));
    let mut memory = vec![0u8; MEMORY_BYTES];
    let copied = image.len().min(MEMORY_BYTES);
    memory[..copied].copy_from_slice(&image[..copied]);
    keel_virtio::fuzzing::virtqueue(&mut memory, ops);
});

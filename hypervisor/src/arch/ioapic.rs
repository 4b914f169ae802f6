//! The host's I/O APICs (addresses from the firmware's MADT): Keel writes
//! only the redirection entries of inputs it forwards to a guest.

const REGISTER_SELECT: u64 = 0x00;
const REGISTER_WINDOW: u64 = 0x10;
const VERSION: u32 = 0x01;
const FIRST_REDIRECTION: u32 = 0x10;
/// The boot identity map ends here; I/O APICs sit just below it.
const IDENTITY_MAPPED: u64 = 4 << 30;

fn register(base: u64, offset: u64) -> *mut u32 {
    (base + offset) as *mut u32
}

fn read(base: u64, index: u32) -> u32 {
    // SAFETY: `base` is an I/O APIC's page in the identity map (checked by
    // the caller); the select/window pair is not shared with anyone (one
    // CPU, interrupts off).
    unsafe {
        core::ptr::write_volatile(register(base, REGISTER_SELECT), index);
        core::ptr::read_volatile(register(base, REGISTER_WINDOW))
    }
}

fn write(base: u64, index: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile(register(base, REGISTER_SELECT), index);
        core::ptr::write_volatile(register(base, REGISTER_WINDOW), value);
    }
}

/// How many inputs the I/O APIC at `base` has (its version register), or
/// `None` outside the identity map.
pub fn inputs(base: u64) -> Option<u32> {
    if base == 0 || base.saturating_add(0x20) > IDENTITY_MAPPED {
        return None;
    }
    Some(((read(base, VERSION) >> 16) & 0xff) + 1)
}

/// Writes input `input`'s redirection entry (the half with the mask bit
/// last when unmasking, first when masking). Returns false when the I/O
/// APIC is outside the identity map or has no such input.
pub fn write_redirection(base: u64, input: u32, entry: u64) -> bool {
    if base == 0 || base.saturating_add(0x20) > IDENTITY_MAPPED {
        return false;
    }
    let inputs = ((read(base, VERSION) >> 16) & 0xff) + 1;
    if input >= inputs {
        return false;
    }
    let index = FIRST_REDIRECTION + 2 * input;
    const MASKED: u32 = 1 << 16;
    // Mask while the entry changes, so no half-written entry delivers.
    write(base, index, read(base, index) | MASKED);
    write(base, index + 1, (entry >> 32) as u32);
    write(base, index, entry as u32);
    true
}

/// Sets or clears input `input`'s mask bit, leaving the rest of its entry
/// (written by [`write_redirection`]) as it is. Called from Keel's
/// interrupt handler for level-triggered inputs, which Keel runs only with
/// its own I/O APIC accesses finished (interrupts are off around them).
pub fn set_masked(base: u64, input: u32, masked: bool) {
    if base == 0 || base.saturating_add(0x20) > IDENTITY_MAPPED || input > 0xef {
        return;
    }
    const MASKED: u32 = 1 << 16;
    let index = FIRST_REDIRECTION + 2 * input;
    let low = read(base, index);
    write(base, index, if masked { low | MASKED } else { low & !MASKED });
}

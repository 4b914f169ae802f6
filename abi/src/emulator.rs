//! How Keel ends an emulator run when the command line asks it to
//! (`exit=emulator`, used by the boot tests). Never used on real hardware.

/// QEMU's `isa-debug-exit` device: `-device isa-debug-exit,iobase=0xf4,iosize=4`.
pub const QEMU_DEBUG_EXIT_PORT: u16 = 0xF4;
/// Value written for success; QEMU exits with `(value << 1) | 1`.
pub const QEMU_EXIT_SUCCESS: u32 = 0x10;
/// Value written for failure.
pub const QEMU_EXIT_FAILURE: u32 = 0x11;

/// QEMU's process exit status for a value written to the debug-exit port.
pub const fn qemu_status(value: u32) -> i32 {
    ((value << 1) | 1) as i32
}

/// Bochs stops when the string "Shutdown" is written to this port byte by byte.
/// Its process exit status is always 1, so tests judge Bochs runs by the log.
pub const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;
pub const BOCHS_SHUTDOWN_COMMAND: &[u8] = b"Shutdown";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_statuses_are_distinct_and_nonzero() {
        assert_eq!(qemu_status(QEMU_EXIT_SUCCESS), 33);
        assert_eq!(qemu_status(QEMU_EXIT_FAILURE), 35);
    }
}

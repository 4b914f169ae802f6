//! Ending a run (`halt::stop`): on real hardware Keel halts; in emulator test runs
//! (`exit=emulator`) it also stops the emulator with a status the harness
//! reads (QEMU's isa-debug-exit) or, for Bochs, through its shutdown port.

use core::sync::atomic::{AtomicBool, Ordering};

use keel_abi::emulator::{
    BOCHS_SHUTDOWN_COMMAND, BOCHS_SHUTDOWN_PORT, QEMU_DEBUG_EXIT_PORT, QEMU_EXIT_FAILURE, QEMU_EXIT_SUCCESS,
};

use crate::arch::instructions::{halt_forever, outb, outl};

static EXIT_EMULATOR: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

pub fn set_exit_emulator(enabled: bool) {
    EXIT_EMULATOR.store(enabled, Ordering::Relaxed);
}

/// Stops the machine: tells the emulator when asked to, then halts.
pub fn stop(outcome: Outcome) -> ! {
    crate::console::drain();
    crate::console::write_fmt_emergency(format_args!("keel: halting\n"));
    crate::console::drain();
    if EXIT_EMULATOR.load(Ordering::Relaxed) {
        let code = match outcome {
            Outcome::Success => QEMU_EXIT_SUCCESS,
            Outcome::Failure => QEMU_EXIT_FAILURE,
        };
        // SAFETY: only done when the command line says we run in an emulator;
        // on QEMU the debug-exit port ends the process, on Bochs it is an
        // unused port, and the Bochs shutdown port is unused on QEMU.
        unsafe {
            outl(QEMU_DEBUG_EXIT_PORT, code);
            for &byte in BOCHS_SHUTDOWN_COMMAND {
                outb(BOCHS_SHUTDOWN_PORT, byte);
            }
        }
    }
    halt_forever()
}

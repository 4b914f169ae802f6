//! Host TSC frequency, measured once at boot against the 8254 PIT's
//! channel 2 (the classic method; it needs no interrupts). Guests are told
//! the frequency through CPUID leaves 0x15/0x16 so they never calibrate.

use super::instructions::{inb, outb};

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2_DATA: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
const SPEAKER_CONTROL: u16 = 0x61;
/// 10 ms of PIT time.
const CALIBRATION_TICKS: u64 = PIT_HZ / 100;
/// Gives up on a PIT that never counts down (about 100x the expected work).
const MAX_POLLS: u64 = 50_000_000;

/// What [`calibrate`] measured (0 until then, or when it failed).
static HZ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The measured TSC frequency, once [`calibrate`] ran.
pub fn hz() -> Option<u64> {
    Some(HZ.load(core::sync::atomic::Ordering::Relaxed)).filter(|&hz| hz != 0)
}

pub fn read() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC frequency in Hz, or `None` when the PIT does not respond.
pub fn calibrate() -> Option<u64> {
    // SAFETY: ports 0x42/0x43/0x61 belong to the PIT and speaker gate, which
    // Keel does not otherwise use; the speaker output stays off.
    let elapsed = unsafe {
        let control = inb(SPEAKER_CONTROL);
        outb(SPEAKER_CONTROL, (control & !0x02) | 0x01); // gate on, speaker off
        outb(PIT_COMMAND, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        outb(PIT_CHANNEL2_DATA, CALIBRATION_TICKS as u8);
        outb(PIT_CHANNEL2_DATA, (CALIBRATION_TICKS >> 8) as u8);
        let start = read();
        let mut polls = 0;
        while inb(SPEAKER_CONTROL) & 0x20 == 0 {
            polls += 1;
            if polls > MAX_POLLS {
                outb(SPEAKER_CONTROL, control);
                return None;
            }
        }
        let end = read();
        outb(SPEAKER_CONTROL, control);
        end.wrapping_sub(start)
    };
    let hz = elapsed * PIT_HZ / CALIBRATION_TICKS;
    HZ.store(hz, core::sync::atomic::Ordering::Relaxed);
    Some(hz)
}

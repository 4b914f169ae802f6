//! Waiting for a domain's virtio notifications.
//!
//! Keel sets bits in the domain's window-slot notification register (kick
//! bit `d`, control bit `16 + d`, for device `d`); an armed slot with bits
//! set raises the management function's INTx, which `uio_pci_generic`
//! turns into a readable `/dev/uioN` and masks (the command register's
//! Interrupt Disable) until a backend unmasks it (see [`super::uio`]).
//! Every backend shares that one interrupt, so a wakeup may well carry
//! nothing for this slot. The loop, per the ABI:
//!
//! ```text
//! loop {
//!     arm the slot; unmask the interrupt; read (and clear) the register
//!     bits set: return them
//!     otherwise sleep until the interrupt fires (or a timeout), again
//! }
//! ```
//!
//! Re-arming and unmasking before reading means bits that arrive after the
//! read raise the interrupt again, so none is slept through. The register
//! and uio accesses are behind [`NotifyHw`] so tests can drive the loop.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// How a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slept {
    /// The interrupt fired (for this slot or another).
    Interrupt,
    TimedOut,
    /// A signal arrived.
    Signal,
    /// One of the input descriptors became readable (or an output one
    /// writable).
    Input,
}

/// The notification hardware of one window slot.
pub trait NotifyHw {
    /// Writes 1 to the slot's arm register.
    fn arm(&mut self);
    /// Lets the interrupt fire again (clears Interrupt Disable).
    fn unmask(&mut self) -> io::Result<()>;
    /// Reads the slot's notification register, which clears it.
    fn take_pending(&mut self) -> u32;
    /// Sleeps until the interrupt fires, one of `inputs` is readable or one
    /// of `outputs` writable, a signal arrives or `timeout` passes.
    fn sleep(&mut self, timeout: Duration, inputs: &[RawFd], outputs: &[RawFd]) -> io::Result<Slept>;
    /// The clock the loop measures idleness with.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// What [`Notifier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// These bits were pending (never 0).
    Pending(u32),
    /// Nothing for the idle period: time to check the domain still exists.
    Idle,
    /// An input descriptor is readable (no bits were pending).
    Input,
    /// A stop was requested.
    Stop,
}

pub struct Notifier<H> {
    hw: H,
    /// Longest single sleep: the uio poll timeout, or the polling period
    /// without uio.
    nap: Duration,
    /// After this long without bits, [`Wakeup::Idle`].
    idle: Duration,
}

/// Without an interrupt, the register is read this often.
pub const POLL_PERIOD: Duration = Duration::from_millis(10);
/// Wakeups without bits at least this often (the domain check).
pub const IDLE: Duration = Duration::from_secs(2);

impl<H: NotifyHw> Notifier<H> {
    pub fn new(hw: H, nap: Duration, idle: Duration) -> Self {
        Self { hw, nap, idle }
    }

    pub fn hw(&self) -> &H {
        &self.hw
    }

    /// The bits pending now, without sleeping (when a device still has
    /// work queued); 0 if none.
    pub fn poll(&mut self) -> io::Result<u32> {
        self.hw.arm();
        self.hw.unmask()?;
        Ok(self.hw.take_pending())
    }

    /// Waits until bits are pending, one of `inputs` is readable or one of
    /// `outputs` writable, `stop()` is true, or the idle period passes
    /// without bits.
    pub fn wait(&mut self, stop: impl Fn() -> bool, inputs: &[RawFd], outputs: &[RawFd]) -> io::Result<Wakeup> {
        let deadline = self.hw.now() + self.idle;
        loop {
            if stop() {
                return Ok(Wakeup::Stop);
            }
            let bits = self.poll()?;
            if bits != 0 {
                return Ok(Wakeup::Pending(bits));
            }
            let now = self.hw.now();
            if now >= deadline {
                return Ok(Wakeup::Idle);
            }
            // An interrupt for another slot, a signal or a timeout: all
            // lead back to the top, which decides.
            if self.hw.sleep(self.nap.min(deadline - now), inputs, outputs)? == Slept::Input {
                return Ok(Wakeup::Input);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::VecDeque;

    use super::*;

    /// What the fake saw, in order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Op {
        Arm,
        Unmask,
        Read(u32),
        Sleep(Duration),
    }

    /// Register reads come from `pending` (0 once it runs out); each sleep
    /// advances the clock by its timeout, or by `interrupt_after` when the
    /// next scripted sleep is an interrupt.
    struct FakeHw {
        start: Instant,
        elapsed: Cell<Duration>,
        pending: VecDeque<u32>,
        sleeps: VecDeque<Slept>,
        ops: Vec<Op>,
    }

    impl FakeHw {
        fn new(pending: &[u32], sleeps: &[Slept]) -> Self {
            Self {
                start: Instant::now(),
                elapsed: Cell::new(Duration::ZERO),
                pending: pending.iter().copied().collect(),
                sleeps: sleeps.iter().copied().collect(),
                ops: Vec::new(),
            }
        }
    }

    impl NotifyHw for FakeHw {
        fn arm(&mut self) {
            self.ops.push(Op::Arm);
        }

        fn unmask(&mut self) -> io::Result<()> {
            self.ops.push(Op::Unmask);
            Ok(())
        }

        fn take_pending(&mut self) -> u32 {
            let bits = self.pending.pop_front().unwrap_or(0);
            self.ops.push(Op::Read(bits));
            bits
        }

        fn sleep(&mut self, timeout: Duration, _inputs: &[RawFd], _outputs: &[RawFd]) -> io::Result<Slept> {
            self.ops.push(Op::Sleep(timeout));
            let slept = self.sleeps.pop_front().unwrap_or(Slept::TimedOut);
            let passed = match slept {
                Slept::TimedOut => timeout,
                _ => Duration::from_millis(1).min(timeout),
            };
            self.elapsed.set(self.elapsed.get() + passed);
            Ok(slept)
        }

        fn now(&self) -> Instant {
            self.start + self.elapsed.get()
        }
    }

    const NAP: Duration = Duration::from_secs(2);

    #[test]
    fn bits_already_pending_return_at_once_after_arming_and_unmasking() {
        let mut notifier = Notifier::new(FakeHw::new(&[0x1_0001], &[]), NAP, IDLE);
        assert_eq!(notifier.wait(|| false, &[], &[]).unwrap(), Wakeup::Pending(0x1_0001));
        assert_eq!(notifier.hw().ops, [Op::Arm, Op::Unmask, Op::Read(0x1_0001)]);
    }

    #[test]
    fn a_wakeup_for_another_slot_re_arms_and_sleeps_again() {
        // Two interrupts that were someone else's, then ours.
        let hw = FakeHw::new(&[0, 0, 0, 4], &[Slept::Interrupt, Slept::Interrupt, Slept::Interrupt]);
        let mut notifier = Notifier::new(hw, NAP, IDLE);
        assert_eq!(notifier.wait(|| false, &[], &[]).unwrap(), Wakeup::Pending(4));
        let ops = &notifier.hw().ops;
        assert_eq!(ops.iter().filter(|op| **op == Op::Arm).count(), 4);
        // Every read comes after an arm and an unmask.
        for (at, op) in ops.iter().enumerate() {
            if let Op::Read(_) = op {
                assert_eq!(ops[at - 2..at], [Op::Arm, Op::Unmask]);
            }
        }
    }

    #[test]
    fn nothing_for_the_idle_period_is_idle() {
        let mut notifier = Notifier::new(FakeHw::new(&[], &[]), NAP, IDLE);
        assert_eq!(notifier.wait(|| false, &[], &[]).unwrap(), Wakeup::Idle);
        // One full nap, then a last look at the register.
        assert_eq!(
            notifier.hw().ops,
            [
                Op::Arm,
                Op::Unmask,
                Op::Read(0),
                Op::Sleep(IDLE),
                Op::Arm,
                Op::Unmask,
                Op::Read(0)
            ]
        );
    }

    #[test]
    fn polling_naps_are_short_and_add_up_to_the_idle_period() {
        let mut notifier = Notifier::new(FakeHw::new(&[], &[]), POLL_PERIOD, Duration::from_millis(35));
        assert_eq!(notifier.wait(|| false, &[], &[]).unwrap(), Wakeup::Idle);
        let naps: Vec<_> = notifier
            .hw()
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Sleep(nap) => Some(nap.as_millis()),
                _ => None,
            })
            .collect();
        assert_eq!(naps, [10, 10, 10, 5]);
    }

    #[test]
    fn a_stop_request_ends_the_wait_before_touching_the_registers() {
        let mut notifier = Notifier::new(FakeHw::new(&[1], &[]), NAP, IDLE);
        assert_eq!(notifier.wait(|| true, &[], &[]).unwrap(), Wakeup::Stop);
        assert!(notifier.hw().ops.is_empty());
        // A signal during a sleep: the loop checks the flag next.
        let stopped = Cell::new(false);
        let hw = FakeHw::new(&[], &[Slept::Signal]);
        let mut notifier = Notifier::new(hw, NAP, IDLE);
        let result = notifier.wait(
            || {
                let seen = stopped.get();
                stopped.set(true);
                seen
            },
            &[],
            &[],
        );
        assert_eq!(result.unwrap(), Wakeup::Stop);
        assert_eq!(notifier.hw().ops.len(), 4);
    }

    #[test]
    fn a_readable_input_ends_the_wait_without_bits() {
        let hw = FakeHw::new(&[0], &[Slept::Input]);
        let mut notifier = Notifier::new(hw, NAP, IDLE);
        assert_eq!(notifier.wait(|| false, &[5], &[]).unwrap(), Wakeup::Input);
        assert_eq!(notifier.hw().ops, [Op::Arm, Op::Unmask, Op::Read(0), Op::Sleep(NAP)]);
    }

    #[test]
    fn poll_reads_without_sleeping() {
        let mut notifier = Notifier::new(FakeHw::new(&[], &[]), NAP, IDLE);
        assert_eq!(notifier.poll().unwrap(), 0);
        assert_eq!(notifier.hw().ops, [Op::Arm, Op::Unmask, Op::Read(0)]);
    }
}

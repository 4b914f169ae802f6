//! Keel's scheduling decisions, kept free of hardware so they can be tested on
//! the host: a per-CPU [`RunQueue`] of vCPUs that says which vCPU runs next
//! and for how long, and an [`IdAllocator`] for VPIDs and domain ids.
//!
//! The hypervisor owns the mechanism (VMCS loads, the VMX-preemption timer,
//! HLT emulation); this crate only decides. One physical CPU drives one
//! `RunQueue`:
//!
//! ```
//! # use keel_sched::{Decision, RunQueue, VcpuId};
//! let mut rq = RunQueue::new(1_000_000);
//! let dom0 = VcpuId::new(0, 0);
//! rq.add(dom0, false).unwrap();
//! if let Decision::Run { vcpu, slice } = rq.pick(0) {
//!     // ... run `vcpu` with the preemption timer armed for `slice` cycles ...
//!     rq.charge(vcpu, slice);
//!     rq.preempt(vcpu).unwrap();
//! }
//! ```
//!
//! # Scheduling policy
//!
//! * **Round robin with a balance.** Runnable vCPUs wait in one round-robin
//!   order. Each vCPU has a *balance* of guest cycles, at most the run
//!   queue's slice. [`RunQueue::pick`] runs the vCPU at the front for its
//!   remaining balance (never 0); [`RunQueue::charge`] subtracts the cycles
//!   it used (saturating, so an overrun past the preemption timer is
//!   forgiven, not carried). [`RunQueue::preempt`] puts it at the back of the
//!   order and refills the balance to a full slice *only if it ran out*: a
//!   vCPU that yields early keeps what is left for its next turn, and never
//!   gets more than one slice per trip through the queue, so yielding cannot
//!   buy extra time. Two always-runnable vCPUs therefore stay within one
//!   slice of each other in CPU time, over any window.
//! * **Blocking keeps the place in line.** A vCPU that blocks keeps its
//!   balance. If it blocks with the balance used up, it takes its place at
//!   the back of the order right then, and is refilled when it wakes: it is
//!   woken into that place, so it waits behind the vCPUs that were queued
//!   when it used up its slice, exactly as if it had been preempted. So
//!   blocking and waking at once cannot skip the line either.
//! * **Wake boost** (like Xen credit1's BOOST). A vCPU woken from Blocked,
//!   by [`RunQueue::wake`] or by its `wake_at` deadline in `pick`, *with
//!   balance left* is boosted: it runs before every Runnable vCPU that is not
//!   boosted, so an interactive Dom0 that waited for input gets the CPU as
//!   soon as the running vCPU's slice ends, however many DomU vCPUs spin.
//!   The boost ends when the vCPU is preempted, blocks, is paused, or burns
//!   its whole balance. It only ever runs on the remaining balance, and a
//!   vCPU that wakes with nothing left gets no boost, so boosting cannot
//!   starve anyone. Among boosted vCPUs, and among unboosted ones, the
//!   round-robin order decides.
//! * **Idle.** With nothing runnable `pick` returns
//!   `Decision::Idle { until: next_wake() }`: the earliest deadline of a
//!   Blocked vCPU, or `None` when none has one.
//! * **One CPU, one running vCPU.** If `pick` is called while a vCPU is
//!   still Running (the caller did not preempt, block or remove it), it
//!   returns that same vCPU again rather than handing out a second one; its
//!   balance is refilled in place if it had run out, because a slice is never
//!   0.
//! * **Pause.** Paused vCPUs are never picked and ignore `wake`. Pausing a
//!   Running vCPU takes effect at its next exit: the caller then calls
//!   `preempt` (or `block`), and it stays Paused. Unpausing makes it
//!   Runnable at the back of the order, not boosted; a wake that arrived
//!   while it was paused is not remembered, so the hypervisor re-checks
//!   pending interrupts when it next runs it.
//! * **Robustness.** Every method that takes an unknown vCPU returns
//!   `Err(SchedError::NotQueued)` (or does nothing, where it returns no
//!   `Result`). No sequence of calls panics. Transitions that make no sense
//!   (preempting a vCPU that is not running, waking one that is not blocked)
//!   do nothing and return `Ok`.
//! * **Cost.** `pick`, `charge`, `preempt`, `block` and `wake` are O(n) at
//!   worst for n vCPUs on the CPU and never allocate; only `add` allocates.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod ids;
mod run_queue;

pub use ids::IdAllocator;
pub use run_queue::RunQueue;

/// A time stamp counter value, or a number of TSC cycles.
pub type Tsc = u64;

/// Names one virtual CPU: its domain and its index within the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId {
    /// The domain id.
    pub domain: u32,
    /// The vCPU's index within its domain (0 is the bootstrap processor).
    pub index: u16,
}

impl VcpuId {
    /// The vCPU `index` of domain `domain`.
    pub const fn new(domain: u32, index: u16) -> Self {
        Self { domain, index }
    }
}

/// Where a vCPU stands in its run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Waiting for its turn.
    Runnable,
    /// Picked, and not yet preempted, blocked or removed.
    Running,
    /// Waiting for [`RunQueue::wake`] or, if `wake_at` is set, until the TSC
    /// reaches it.
    Blocked {
        /// TSC deadline at which `pick` wakes it by itself.
        wake_at: Option<Tsc>,
    },
    /// Never picked until unpaused.
    Paused,
}

/// What the CPU should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run `vcpu` for at most `slice` TSC cycles of guest time (never 0).
    Run {
        /// The vCPU to run.
        vcpu: VcpuId,
        /// Guest cycles it may use before it is preempted.
        slice: u64,
    },
    /// Nothing is runnable: wait for an interrupt, or until the TSC reaches
    /// `until` when it is set (the earliest deadline of a blocked vCPU).
    Idle {
        /// The earliest `wake_at` among blocked vCPUs.
        until: Option<Tsc>,
    },
}

/// Why a run-queue call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// `add` of a vCPU that is already in the run queue.
    AlreadyQueued,
    /// The vCPU is not in the run queue.
    NotQueued,
}

impl core::fmt::Display for SchedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AlreadyQueued => "vCPU is already in the run queue",
            Self::NotQueued => "vCPU is not in the run queue",
        })
    }
}

impl core::error::Error for SchedError {}

//! The per-CPU run queue. See the crate docs for the policy.
//!
//! There is no separate queue structure: every vCPU carries a round-robin
//! position (`seq`), and the queue is "the Runnable vCPUs in `seq` order".
//! Going to the back means taking the next `seq`. This keeps the hot paths
//! free of allocation (nothing is pushed anywhere), lets a blocked vCPU keep
//! its place in line while it is out of the queue, and makes every operation
//! a scan of at most n entries, which is cheap for the handful of vCPUs one
//! CPU holds.

use alloc::vec::Vec;

use crate::{Decision, SchedError, Tsc, VcpuId, VcpuState};

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: VcpuId,
    state: VcpuState,
    /// Guest cycles left of its current turn, at most `RunQueue::slice`.
    /// Invariant: non-zero while Runnable, so a pick never hands out 0.
    balance: u64,
    /// Runs before unboosted Runnable vCPUs. Only ever set with balance left,
    /// and only while Runnable or Running.
    boosted: bool,
    /// Round-robin position; the lowest Runnable one goes first. Unique:
    /// always taken from `RunQueue::next_seq`.
    seq: u64,
    /// Total guest cycles charged.
    cpu_time: u64,
}

/// The vCPUs of one physical CPU and the decision which one runs next.
#[derive(Clone, Debug)]
pub struct RunQueue {
    slice: u64,
    /// Sorted by id, so lookups are binary searches and `vcpus()` has a
    /// stable order.
    entries: Vec<Entry>,
    /// The vCPU handed out by `pick` that the caller has not yet reported
    /// back with `preempt`, `block` or `remove`. It is Running, or Paused if
    /// it was paused while on the CPU.
    current: Option<VcpuId>,
    /// The next round-robin position; the back of the queue.
    next_seq: u64,
}

impl RunQueue {
    /// An empty run queue whose vCPUs get `slice` TSC cycles of guest time
    /// per turn. A `slice` of 0 is taken as 1, since a slice is never 0.
    pub fn new(slice: u64) -> Self {
        Self {
            slice: slice.max(1),
            entries: Vec::new(),
            current: None,
            next_seq: 0,
        }
    }

    /// The full slice, in TSC cycles of guest time.
    pub fn slice(&self) -> u64 {
        self.slice
    }

    /// Adds a vCPU with a full balance, at the back of the round-robin order
    /// (Runnable), or Paused if `paused`. The only call that allocates.
    pub fn add(&mut self, vcpu: VcpuId, paused: bool) -> Result<(), SchedError> {
        let Err(at) = self.find(vcpu) else {
            return Err(SchedError::AlreadyQueued);
        };
        let seq = self.take_seq();
        let state = if paused { VcpuState::Paused } else { VcpuState::Runnable };
        let entry = Entry {
            id: vcpu,
            state,
            balance: self.slice,
            boosted: false,
            seq,
            cpu_time: 0,
        };
        self.entries.insert(at, entry);
        Ok(())
    }

    /// Removes a vCPU in any state (its domain stopped). If it was on the CPU,
    /// the CPU is free for `pick` again.
    pub fn remove(&mut self, vcpu: VcpuId) -> Result<(), SchedError> {
        let i = self.find(vcpu).map_err(|_| SchedError::NotQueued)?;
        self.entries.remove(i);
        self.leave_cpu(vcpu);
        Ok(())
    }

    /// Pauses a vCPU in any state: it is not picked, and `wake` ignores it,
    /// until `unpause`. A Running vCPU stays on the CPU until its next exit;
    /// the caller then reports it with `preempt` (or `block`), and it stays
    /// Paused. A Blocked vCPU forgets its deadline.
    pub fn pause(&mut self, vcpu: VcpuId) -> Result<(), SchedError> {
        let e = self.entry_mut(vcpu)?;
        e.state = VcpuState::Paused;
        e.boosted = false;
        Ok(())
    }

    /// Makes a Paused vCPU Runnable, at the back of the round-robin order and
    /// not boosted (refilled if its balance ran out). One paused while
    /// Running and not yet reported back is simply Running again. Does
    /// nothing to a vCPU that is not Paused.
    pub fn unpause(&mut self, vcpu: VcpuId) -> Result<(), SchedError> {
        let i = self.index(vcpu)?;
        if self.entries[i].state != VcpuState::Paused {
            return Ok(());
        }
        if self.current == Some(vcpu) {
            // It never left the CPU; the caller will report its exit as usual.
            self.entries[i].state = VcpuState::Running;
        } else {
            self.entries[i].state = VcpuState::Runnable;
            self.send_to_back(i);
        }
        Ok(())
    }

    /// Blocks a vCPU until `wake`, or until `pick` sees the TSC reach
    /// `wake_at`. Normally called for the Running vCPU when it executes HLT;
    /// a Runnable one is taken out of the queue, and a Blocked one just gets
    /// the new deadline. A Paused one stays Paused (if it was on the CPU, it
    /// has left it). Blocking ends a boost. It keeps its balance; if that is
    /// used up, it goes to the back of the round-robin order now and is
    /// refilled when it wakes, so blocking cannot skip the line.
    ///
    /// A `wake` while the vCPU is still Running does nothing, so the HLT
    /// handler must look for pending interrupts before it calls `block`.
    pub fn block(&mut self, vcpu: VcpuId, wake_at: Option<Tsc>) -> Result<(), SchedError> {
        let i = self.index(vcpu)?;
        self.leave_cpu(vcpu);
        match self.entries[i].state {
            VcpuState::Paused => {}
            VcpuState::Blocked { .. } => self.entries[i].state = VcpuState::Blocked { wake_at },
            VcpuState::Runnable | VcpuState::Running => {
                self.entries[i].state = VcpuState::Blocked { wake_at };
                self.entries[i].boosted = false;
                if self.entries[i].balance == 0 {
                    self.entries[i].seq = self.take_seq();
                }
            }
        }
        Ok(())
    }

    /// Makes a Blocked vCPU Runnable (an interrupt became pending for it).
    /// With balance left it is boosted; with none it is refilled and waits
    /// for its place in line. No effect on a vCPU in any other state.
    pub fn wake(&mut self, vcpu: VcpuId) -> Result<(), SchedError> {
        let i = self.index(vcpu)?;
        if matches!(self.entries[i].state, VcpuState::Blocked { .. }) {
            self.wake_at_index(i);
        }
        Ok(())
    }

    /// Decides what the CPU does next. First wakes the Blocked vCPUs whose
    /// `wake_at` is at or before `now`. If a vCPU is still Running, returns
    /// it again. Otherwise the first boosted Runnable vCPU in round-robin
    /// order runs, else the first Runnable one, for its remaining balance;
    /// with none, the CPU idles until the earliest deadline.
    pub fn pick(&mut self, now: Tsc) -> Decision {
        for i in 0..self.entries.len() {
            if let VcpuState::Blocked { wake_at: Some(t) } = self.entries[i].state {
                if t <= now {
                    self.wake_at_index(i);
                }
            }
        }

        if let Some(cur) = self.current {
            match self.find(cur) {
                Ok(i) if self.entries[i].state == VcpuState::Running => {
                    // The caller did not report its exit: one CPU, one running
                    // vCPU, so it is the answer again.
                    let e = &mut self.entries[i];
                    if e.balance == 0 {
                        e.balance = self.slice;
                    }
                    return Decision::Run {
                        vcpu: cur,
                        slice: e.balance,
                    };
                }
                // Paused while it ran, and the caller did not preempt it: it
                // has left the CPU by now, since the caller is asking.
                _ => self.current = None,
            }
        }

        let mut best: Option<usize> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.state != VcpuState::Runnable {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let b = &self.entries[b];
                    (!e.boosted, e.seq) < (!b.boosted, b.seq)
                }
            };
            if better {
                best = Some(i);
            }
        }

        match best {
            Some(i) => {
                let e = &mut self.entries[i];
                e.state = VcpuState::Running;
                if e.balance == 0 {
                    // Unreachable by the Runnable invariant; kept so a slice
                    // is never 0 whatever happens.
                    e.balance = self.slice;
                }
                self.current = Some(e.id);
                Decision::Run {
                    vcpu: e.id,
                    slice: e.balance,
                }
            }
            None => Decision::Idle {
                until: self.next_wake(),
            },
        }
    }

    /// Records `used` guest cycles for a vCPU: adds them to its CPU time and
    /// takes them off its balance (saturating). Called for the vCPU `pick`
    /// returned, with the cycles it used since. A vCPU that burns its whole
    /// balance loses its boost. Unknown vCPUs are ignored.
    pub fn charge(&mut self, vcpu: VcpuId, used: u64) {
        let Ok(i) = self.find(vcpu) else {
            return;
        };
        let e = &mut self.entries[i];
        e.cpu_time = e.cpu_time.saturating_add(used);
        let had = e.balance;
        e.balance = had.saturating_sub(used);
        if e.balance > 0 || had == 0 {
            return;
        }
        e.boosted = false;
        // Charging a vCPU that is not on the CPU is not the normal protocol,
        // but keep the invariants: an exhausted vCPU goes to the back.
        match e.state {
            VcpuState::Runnable => self.send_to_back(i),
            VcpuState::Blocked { .. } => self.entries[i].seq = self.take_seq(),
            // Running: `preempt` or `block` sends it back; Paused: `unpause`.
            VcpuState::Running | VcpuState::Paused => {}
        }
    }

    /// Reports that the Running vCPU left the CPU and still wants to run (its
    /// slice ran out, or it yielded): it becomes Runnable at the back of the
    /// round-robin order, loses any boost, and is refilled only if its
    /// balance ran out. One paused while it ran stays Paused. Does nothing to
    /// a vCPU that is not on the CPU.
    pub fn preempt(&mut self, vcpu: VcpuId) -> Result<(), SchedError> {
        let i = self.index(vcpu)?;
        if self.current != Some(vcpu) {
            return Ok(());
        }
        self.current = None;
        self.entries[i].boosted = false;
        if self.entries[i].state == VcpuState::Running {
            self.entries[i].state = VcpuState::Runnable;
            self.send_to_back(i);
        }
        Ok(())
    }

    /// The vCPU's state, or `None` if it is not in the run queue.
    pub fn state(&self, vcpu: VcpuId) -> Option<VcpuState> {
        self.get(vcpu).map(|e| e.state)
    }

    /// Total guest cycles charged to the vCPU.
    pub fn cpu_time(&self, vcpu: VcpuId) -> Option<u64> {
        self.get(vcpu).map(|e| e.cpu_time)
    }

    /// What is left of the vCPU's current turn, in guest cycles.
    pub fn balance(&self, vcpu: VcpuId) -> Option<u64> {
        self.get(vcpu).map(|e| e.balance)
    }

    /// Whether the vCPU is boosted (woken with balance left, not yet
    /// preempted or blocked).
    pub fn is_boosted(&self, vcpu: VcpuId) -> Option<bool> {
        self.get(vcpu).map(|e| e.boosted)
    }

    /// The vCPU on the CPU: the one `pick` handed out that has not been
    /// reported back with `preempt`, `block` or `remove`. It is Running, or
    /// Paused if it was paused meanwhile.
    pub fn current(&self) -> Option<VcpuId> {
        self.current
    }

    /// The earliest `wake_at` among Blocked vCPUs.
    pub fn next_wake(&self) -> Option<Tsc> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                VcpuState::Blocked { wake_at } => wake_at,
                _ => None,
            })
            .min()
    }

    /// The number of vCPUs, in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the run queue holds no vCPU.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every vCPU and its state, ordered by id.
    pub fn vcpus(&self) -> impl Iterator<Item = (VcpuId, VcpuState)> + '_ {
        self.entries.iter().map(|e| (e.id, e.state))
    }

    fn find(&self, vcpu: VcpuId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&vcpu, |e| e.id)
    }

    fn index(&self, vcpu: VcpuId) -> Result<usize, SchedError> {
        self.find(vcpu).map_err(|_| SchedError::NotQueued)
    }

    fn get(&self, vcpu: VcpuId) -> Option<&Entry> {
        self.find(vcpu).ok().map(|i| &self.entries[i])
    }

    fn entry_mut(&mut self, vcpu: VcpuId) -> Result<&mut Entry, SchedError> {
        let i = self.index(vcpu)?;
        Ok(&mut self.entries[i])
    }

    fn leave_cpu(&mut self, vcpu: VcpuId) {
        if self.current == Some(vcpu) {
            self.current = None;
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        // 2^64 trips through the queue do not happen; wrapping just keeps
        // this free of any overflow panic.
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// To the back of the round-robin order, refilled if it ran out.
    fn send_to_back(&mut self, i: usize) {
        if self.entries[i].balance == 0 {
            self.entries[i].balance = self.slice;
        }
        self.entries[i].seq = self.take_seq();
    }

    /// Blocked -> Runnable. It keeps its `seq`: with balance left that is
    /// its old place (and it is boosted anyway); with none, `block` or
    /// `charge` already moved it to the back when it ran out.
    fn wake_at_index(&mut self, i: usize) {
        let e = &mut self.entries[i];
        e.state = VcpuState::Runnable;
        if e.balance > 0 {
            e.boosted = true;
        } else {
            e.balance = self.slice;
            e.boosted = false;
        }
    }
}

#[cfg(test)]
mod fairness_tests;
#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

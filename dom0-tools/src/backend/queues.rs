//! The part of a device's state machine every device type shares: which
//! transport generation its queues belong to, building the queues the
//! driver enabled once it is ready (resuming them after a backend
//! restart), dropping them on a reset, the "broken" mark that stops serving
//! until the driver resets ([`QueueSet`]), and the calls that tell Keel
//! about it ([`DeviceCore`]).

use anyhow::Result;
use keel_abi::mgmt::virtio::complete_flags;
use keel_abi::mgmt::VirtioDeviceState;
use keel_virtio::status::{DEVICE_NEEDS_RESET, DRIVER_OK, FEATURES_OK};
use keel_virtio::{GuestMemory, Queue, QueueConfig, QueueError, QueueFeatures};

use super::calls::VirtioCalls;

/// What a transport state means for the device ([`QueueSet::sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// The driver reset the device: the queues are gone; the caller sends
    /// RESET_DONE.
    ResetDone,
    /// Not (or no longer) ready, or broken: nothing to serve.
    Waiting,
    /// A queue could not be built: the device is broken now; the caller
    /// sends NEEDS_RESET.
    Broken,
    /// Ready: every enabled queue is built; the caller serves them.
    Ready,
}

impl Sync {
    /// Tells Keel what the driver must see (RESET_DONE after a reset,
    /// NEEDS_RESET for a broken device) for device `device`; true when the
    /// device is ready and the caller serves it.
    pub fn answer<C: VirtioCalls>(self, keel: &mut C, device: usize, generation: u32) -> Result<bool> {
        let flags = match self {
            Self::Ready => return Ok(true),
            Self::Waiting => return Ok(false),
            Self::ResetDone => complete_flags::RESET_DONE,
            Self::Broken => complete_flags::NEEDS_RESET,
        };
        keel.complete(device, 0, flags, generation)?;
        Ok(false)
    }
}

/// A device's queues for the current transport generation.
pub struct QueueSet {
    generation: Option<u32>,
    queues: Vec<Option<Queue>>,
    broken: bool,
    /// Queues the last [`sync`](Self::sync) resumed (bit per queue).
    resumed: u32,
}

impl QueueSet {
    pub fn new(num_queues: usize) -> Self {
        Self {
            generation: None,
            queues: vec![None; num_queues],
            broken: false,
            resumed: 0,
        }
    }

    /// The generation the queues belong to (None before the first state).
    pub fn generation(&self) -> Option<u32> {
        self.generation
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Stops serving until the driver resets.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Queues built (being served).
    pub fn live(&self) -> usize {
        self.queues.iter().flatten().count()
    }

    /// Whether queue `number` is built.
    pub fn has(&self, number: usize) -> bool {
        self.queues.get(number).is_some_and(Option::is_some)
    }

    pub fn get_mut(&mut self, number: usize) -> Option<&mut Queue> {
        self.queues.get_mut(number)?.as_mut()
    }

    /// The built queues with their numbers.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Queue)> {
        self.queues
            .iter_mut()
            .enumerate()
            .filter_map(|(number, queue)| Some((number, queue.as_mut()?)))
    }

    fn drop_queues(&mut self) {
        self.queues.iter_mut().for_each(|queue| *queue = None);
        self.broken = false;
    }

    /// Applies a transport state:
    ///
    /// - a new generation, or status 0: the queues go (`dropped` is true
    ///   then, so the caller forgets what it kept for them);
    /// - a reset pending: the queues go, [`Sync::ResetDone`];
    /// - FEATURES_OK and DRIVER_OK without DEVICE_NEEDS_RESET, not broken:
    ///   each enabled queue not built yet is built with `max_size` and
    ///   `max_segments`, [`Sync::Ready`] (or [`Sync::Broken`] with a note
    ///   if Keel's validated layout is refused here: a mismatch worth a
    ///   reset, never a panic).
    ///
    /// With `resume` (the memory), queues continue from the `used.idx` in
    /// guest memory ([`Queue::resume`]): the first state a backend sees
    /// after it was restarted under a running driver.
    pub fn sync<M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        limits: (u16, usize),
        notes: &mut Vec<String>,
        device: usize,
        resume: Option<&M>,
    ) -> (Sync, bool) {
        let (max_size, max_segments) = limits;
        self.resumed = 0;
        let mut dropped = false;
        if self.generation != Some(state.generation) || state.status == 0 {
            self.drop_queues();
            self.generation = Some(state.generation);
            dropped = true;
        }
        if state.reset_pending {
            self.drop_queues();
            return (Sync::ResetDone, true);
        }
        let ready = FEATURES_OK | DRIVER_OK;
        if state.status & ready != ready || state.status & DEVICE_NEEDS_RESET != 0 || self.broken {
            return (Sync::Waiting, dropped);
        }
        let features = QueueFeatures::from_negotiated(state.driver_features);
        let count = usize::from(state.num_queues).min(self.queues.len());
        for (number, (slot, queue)) in self.queues.iter_mut().zip(&state.queues[..count]).enumerate() {
            if !queue.enabled || slot.is_some() {
                continue;
            }
            let config = QueueConfig {
                size: queue.size,
                desc_table: queue.desc,
                avail_ring: queue.driver,
                used_ring: queue.device,
            };
            let built = match resume {
                Some(memory) => Queue::resume(config, max_size, features, max_segments, memory)
                    .inspect(|queue| {
                        // Index 0 is a driver that has not used the queue yet.
                        if queue.next_used() != 0 {
                            notes.push(format!(
                                "device {device}: queue {number} resumed at used index {}",
                                queue.next_used()
                            ));
                        }
                    })
                    .map_err(|error| format!("{error:?}")),
                None => Queue::new(config, max_size, features, max_segments).map_err(|error| format!("{error:?}")),
            };
            match built {
                Ok(built) => {
                    if resume.is_some() && number < 32 {
                        self.resumed |= 1 << number;
                    }
                    *slot = Some(built)
                }
                Err(error) => {
                    notes.push(format!("device {device}: queue {number} refused: {error}"));
                    self.broken = true;
                }
            }
        }
        if self.broken {
            return (Sync::Broken, dropped);
        }
        (Sync::Ready, dropped)
    }
}

/// A served device's common accessors, through its [`DeviceCore`].
pub trait CoreDevice {
    fn core(&self) -> &DeviceCore;
    fn core_mut(&mut self) -> &mut DeviceCore;

    /// The device's index among the domain's virtio devices.
    fn index(&self) -> usize {
        self.core().index
    }

    /// Work is left: serve again without sleeping.
    fn has_more(&self) -> bool {
        self.core().more
    }

    fn is_broken(&self) -> bool {
        self.core().queues.is_broken()
    }

    fn take_notes(&mut self) -> Vec<String> {
        self.core_mut().take_notes()
    }

    /// Tests: started before the driver set the device up (the usual
    /// case), whatever state it is first shown.
    #[cfg(test)]
    fn started_before_the_driver(mut self) -> Self
    where
        Self: Sized,
    {
        self.core_mut().started_before_the_driver();
        self
    }
}

/// What every served device keeps besides its model: its index, its
/// queues, whether work is left over, whether its first state is still to
/// come, and notes for the log.
pub struct DeviceCore {
    pub index: usize,
    pub queues: QueueSet,
    /// A queue's budget ran out with work left: serve again at once.
    pub more: bool,
    /// The first state is still to come: queues a driver already runs then
    /// continue from their used index (this backend was restarted).
    resume: bool,
    pub notes: Vec<String>,
}

impl DeviceCore {
    pub fn new(index: usize, num_queues: usize) -> Self {
        Self {
            index,
            queues: QueueSet::new(num_queues),
            more: false,
            resume: true,
            notes: Vec::new(),
        }
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Tests: a device whose backend started before the driver (the usual
    /// case), whatever state it is first shown.
    #[cfg(test)]
    pub fn started_before_the_driver(&mut self) {
        self.resume = false;
    }

    /// Applies a transport state ([`QueueSet::sync`], resuming on the
    /// first) and tells Keel what the driver must see ([`Sync::answer`]).
    /// Returns whether the device is ready to serve, and whether its queues
    /// were dropped (the caller forgets what it kept for them).
    pub fn apply<C: VirtioCalls, M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        limits: (u16, usize),
        keel: &mut C,
        memory: &M,
    ) -> Result<(bool, bool)> {
        let resume = std::mem::take(&mut self.resume).then_some(memory);
        let (sync, dropped) = self.queues.sync(state, limits, &mut self.notes, self.index, resume);
        if dropped {
            self.more = false;
        }
        let ready = sync.answer(keel, self.index, state.generation)?;
        if ready && self.queues.resumed != 0 {
            // The dead backend may have completed chains without telling
            // Keel: with EVENT_IDX the driver would then wait for an
            // interrupt that never comes. One interrupt per resumed queue
            // (a spurious one is harmless) lets it look.
            keel.complete(self.index, self.queues.resumed, 0, state.generation)?;
        }
        Ok((ready, dropped))
    }

    /// Notes a queue's error; true when it breaks the device (the driver's
    /// fault: DEVICE_NEEDS_RESET).
    pub fn queue_error(&mut self, number: usize, error: QueueError) -> bool {
        let broke = error.needs_reset() || error == QueueError::Broken;
        let index = self.index;
        self.notes.push(if broke {
            format!("device {index}: the driver broke queue {number} ({error:?}): device needs reset")
        } else {
            format!("device {index}: queue {number}: {error:?}")
        });
        broke
    }

    /// One VirtioComplete after serving: the interrupts of the queues in
    /// `notify`, and NEEDS_RESET when a queue broke (the device then serves
    /// nothing until the driver resets it).
    pub fn finish<C: VirtioCalls>(&mut self, keel: &mut C, notify: u32, broke: bool) -> Result<()> {
        let Some(generation) = self.queues.generation() else {
            return Ok(());
        };
        let mut flags = 0;
        if broke {
            self.queues.mark_broken();
            self.more = false;
            flags = complete_flags::NEEDS_RESET;
        }
        if notify == 0 && flags == 0 {
            return Ok(());
        }
        keel.complete(self.index, notify, flags, generation)
    }
}

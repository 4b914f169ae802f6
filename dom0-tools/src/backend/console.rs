//! A DomU's virtio-console (its `/dev/hvc0`) as the backend serves it
//! ([`ConsoleDevice`]): what the driver transmits goes to the console's
//! link, what a client types goes into the receive queue's buffers.
//!
//! The link ([`ConsoleLink`], really [`super::console_link::SocketLink`])
//! is a Unix socket in the run directory that `keel console --hvc`
//! connects to; output is kept (the last 64 KiB) while nobody is connected
//! and replayed to the next client, like Keel's own console ring.
//!
//! Input waits in a small buffer until the driver posts receive buffers;
//! while that buffer is full or the driver has none, the client is not
//! read (its bytes wait in the socket: a client that types faster than the
//! guest reads is slowed down, never served out of order).

use std::os::fd::RawFd;

use anyhow::Result;
use keel_abi::mgmt::VirtioDeviceState;
use keel_virtio::console::{Console, ConsoleOptions, ConsoleSink, NUM_QUEUES, QUEUE_SIZE, RX_QUEUE, TX_QUEUE};
use keel_virtio::GuestMemory;

use super::calls::{on_control, VirtioCalls};
use super::queues::{CoreDevice, DeviceCore};

/// Chains served per turn before the other devices get theirs.
pub const BUDGET: usize = 64;
/// Typed bytes held for the driver at most.
const INPUT_MAX: usize = 4096;

/// The device model; the same in `keel create` and the backend.
pub fn console_model() -> Console {
    Console::new(ConsoleOptions::default())
}

/// Where a console's bytes go and come from.
pub trait ConsoleLink {
    /// Bytes the guest wrote.
    fn output(&mut self, bytes: &[u8]);
    /// Takes what a client sent, without blocking, appending at most
    /// `max` bytes to `input`.
    fn input(&mut self, input: &mut Vec<u8>, max: usize);
    /// Accepts a new client, sends what it has not seen yet; called on
    /// every wakeup.
    fn service(&mut self);
    /// The descriptors to poll: the listener always, the client when
    /// `reading`.
    fn fds(&self, reading: bool, fds: &mut Vec<RawFd>);
    /// The client, while output waits for it to take it.
    fn output_fds(&self, _fds: &mut Vec<RawFd>) {}
}

struct LinkSink<'a, L>(&'a mut L);

impl<L: ConsoleLink> ConsoleSink for LinkSink<'_, L> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.output(bytes);
    }
}

/// One virtio-console device of the domain.
pub struct ConsoleDevice<L> {
    core: DeviceCore,
    console: Console,
    link: L,
    /// Typed bytes not in the driver's buffers yet.
    input: Vec<u8>,
    /// The driver has no receive buffer: no input until it kicks.
    starved: bool,
}

impl<L: ConsoleLink> ConsoleDevice<L> {
    pub fn new(index: usize, console: Console, link: L) -> Self {
        Self {
            core: DeviceCore::new(index, usize::from(NUM_QUEUES)),
            console,
            link,
            input: Vec::with_capacity(INPUT_MAX),
            starved: false,
        }
    }

    pub fn link(&self) -> &L {
        &self.link
    }

    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Whether typed input can be taken now.
    fn reading(&self) -> bool {
        !self.core.queues.is_broken()
            && self.core.queues.has(usize::from(RX_QUEUE))
            && !self.starved
            && self.input.len() < INPUT_MAX
    }

    pub fn input_fds(&self, fds: &mut Vec<RawFd>) {
        self.link.fds(self.reading(), fds);
    }

    pub fn output_fds(&self, fds: &mut Vec<RawFd>) {
        self.link.output_fds(fds);
    }

    pub fn on_control<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        on_control(self.core.index, keel, |state, keel| self.apply(state, keel, memory))
    }

    /// What a state means ([`DeviceCore::apply`]); typed input not
    /// delivered yet is dropped with the queues (the guest's tty was reset
    /// too).
    pub fn apply<C: VirtioCalls, M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        keel: &mut C,
        memory: &mut M,
    ) -> Result<()> {
        self.console.set_negotiated(state.driver_features);
        let limits = (QUEUE_SIZE, self.console.max_segments());
        let (ready, dropped) = self.core.apply(state, limits, keel, &*memory)?;
        if dropped {
            self.input.clear();
            self.starved = false;
        }
        if ready {
            self.serve(keel, memory)?;
        }
        Ok(())
    }

    /// A kick: the guest's output first (Linux waits for it), then input.
    pub fn serve<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        self.starved = false;
        self.core.more = false;
        let mut notify = 0;
        let mut broke = self.transmit(memory, &mut notify);
        self.link.service();
        broke |= self.receive(memory, &mut notify);
        self.core.finish(keel, notify, broke)
    }

    /// A wakeup: a client may have connected or typed.
    pub fn on_input<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        self.link.service();
        let mut notify = 0;
        let broke = self.receive(memory, &mut notify);
        self.core.finish(keel, notify, broke)
    }

    fn transmit<M: GuestMemory>(&mut self, memory: &mut M, notify: &mut u32) -> bool {
        if self.core.queues.is_broken() {
            return false;
        }
        let Some(queue) = self.core.queues.get_mut(usize::from(TX_QUEUE)) else {
            return false;
        };
        match self
            .console
            .process_tx(queue, memory, &mut LinkSink(&mut self.link), BUDGET)
        {
            Ok(processed) => {
                if processed.notify {
                    *notify |= 1 << TX_QUEUE;
                }
                self.core.more |= processed.more;
                false
            }
            Err(error) => self.core.queue_error(usize::from(TX_QUEUE), error),
        }
    }

    /// Reads what the client typed (while there is room) and gives the
    /// driver as much as its buffers hold; true if the driver broke the
    /// queue.
    fn receive<M: GuestMemory>(&mut self, memory: &mut M, notify: &mut u32) -> bool {
        if !self.reading() && self.input.is_empty() {
            return false;
        }
        if self.reading() {
            let room = INPUT_MAX - self.input.len();
            self.link.input(&mut self.input, room);
        }
        if self.input.is_empty() || self.core.queues.is_broken() {
            return false;
        }
        let Some(queue) = self.core.queues.get_mut(usize::from(RX_QUEUE)) else {
            return false;
        };
        match self.console.receive(queue, memory, &self.input) {
            Ok(outcome) => {
                self.input.drain(..outcome.consumed.min(self.input.len()));
                if outcome.notify {
                    *notify |= 1 << RX_QUEUE;
                }
                self.starved = outcome.starved;
                // Stopped by the per-call bound: more next turn.
                self.core.more |= !outcome.starved && !self.input.is_empty();
                false
            }
            Err(error) => {
                self.input.clear();
                self.core.queue_error(usize::from(RX_QUEUE), error)
            }
        }
    }
}

impl<L: ConsoleLink> CoreDevice for ConsoleDevice<L> {
    fn core(&self) -> &DeviceCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut DeviceCore {
        &mut self.core
    }
}

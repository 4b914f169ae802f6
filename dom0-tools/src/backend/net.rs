//! One virtio-net device as the backend serves it ([`NicDevice`]): the
//! transmit queue's frames go to the domain's switch port, frames from the
//! port go into the receive queue's buffers (keel-virtio's `net` model does
//! the checks).
//!
//! Receiving without blocking anyone: frames are read from the port only
//! while the driver has posted buffers. When it has none, the frame just
//! read is held (one) and the port is not read or polled until the driver
//! kicks (which it does when it posts buffers: the model turns the
//! available-buffer notification on when they run out); meanwhile frames
//! queue in the port's socket and then the switch drops them, as a full
//! NIC ring does on real hardware.

use std::io;
use std::os::fd::RawFd;

use anyhow::Result;
use keel_abi::mgmt::VirtioDeviceState;
use keel_virtio::net::{FrameSink, Net, NetOptions, RxOutcome, NUM_QUEUES, QUEUE_SIZE, RX_QUEUE, TX_QUEUE};
use keel_virtio::GuestMemory;

use super::calls::{on_control, VirtioCalls};
use super::queues::{CoreDevice, DeviceCore};
use crate::vif::Nic;

/// Chains served per queue per turn before the other devices get theirs.
pub const BUDGET: usize = 64;

/// The largest message read from the port: any frame the switch may
/// carry; longer ones (none should come) are dropped by the model.
const PORT_BUFFER: usize = 65536;

/// The device model for an interface; the same in `keel create`
/// (features, configuration) and in the backend.
pub fn nic_model(nic: &Nic) -> Net {
    Net::new(NetOptions {
        mac: nic.mac,
        mtu: nic.mtu,
    })
}

/// Where a device's frames go and come from: its switch port.
pub trait FramePort {
    /// Sends a frame; `Ok(false)` when it was dropped (nowhere to put it).
    fn send(&mut self, frame: &[u8]) -> io::Result<bool>;
    /// The next frame, without blocking.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// What to poll for frames, if anything.
    fn raw_fd(&self) -> Option<RawFd>;
}

/// Transmitted frames into the port; failures counted, not fatal.
struct PortSink<'a, P> {
    port: &'a mut P,
    dropped: u64,
    error: Option<io::Error>,
}

impl<P: FramePort> FrameSink for PortSink<'_, P> {
    fn transmit(&mut self, frame: &[u8]) {
        match self.port.send(frame) {
            Ok(true) => {}
            Ok(false) => self.dropped += 1,
            Err(error) => {
                self.dropped += 1;
                self.error.get_or_insert(error);
            }
        }
    }
}

/// One virtio-net device of the domain.
pub struct NicDevice<P> {
    core: DeviceCore,
    net: Net,
    port: P,
    /// A frame read from the port that found no receive buffer
    /// (`held_len` bytes of `buffer`; 0: none).
    buffer: Vec<u8>,
    held_len: usize,
    /// The driver has no receive buffer: the port is not read until it
    /// kicks.
    starved: bool,
    /// Frames the port refused (the switch's buffer full, or no switch).
    tx_unsent: u64,
}

impl<P: FramePort> NicDevice<P> {
    pub fn new(index: usize, net: Net, port: P) -> Self {
        Self {
            core: DeviceCore::new(index, usize::from(NUM_QUEUES)),
            net,
            port,
            buffer: vec![0; PORT_BUFFER],
            held_len: 0,
            starved: false,
            tx_unsent: 0,
        }
    }

    pub fn port(&self) -> &P {
        &self.port
    }

    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    pub fn mac(&self) -> [u8; 6] {
        self.net.mac()
    }

    /// The model's counters and the frames the port refused.
    pub fn stats(&self) -> (keel_virtio::net::NetStats, u64) {
        (self.net.stats(), self.tx_unsent)
    }

    /// The port's descriptor while frames can be taken: a receive queue is
    /// built, has buffers as far as the device knows, and holds no frame.
    pub fn input_fd(&self) -> Option<RawFd> {
        let receiving = !self.core.queues.is_broken()
            && self.core.queues.generation().is_some()
            && !self.starved
            && self.held_len == 0
            && self.core.queues.has(usize::from(RX_QUEUE));
        if receiving {
            self.port.raw_fd()
        } else {
            None
        }
    }

    pub fn on_control<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        on_control(self.core.index, keel, |state, keel| self.apply(state, keel, memory))
    }

    /// What a state means ([`DeviceCore::apply`]); a reset forgets the
    /// held frame.
    pub fn apply<C: VirtioCalls, M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        keel: &mut C,
        memory: &mut M,
    ) -> Result<()> {
        self.net.set_negotiated(state.driver_features);
        let limits = (QUEUE_SIZE, self.net.max_segments());
        let (ready, dropped) = self.core.apply(state, limits, keel, &*memory)?;
        if dropped {
            self.held_len = 0;
            self.starved = false;
        }
        if ready {
            self.serve(keel, memory)?;
        }
        Ok(())
    }

    /// A kick (or work left over): transmits what the driver queued, then
    /// receives what waits (the driver may have posted buffers), then one
    /// VirtioComplete for the queues that want an interrupt.
    pub fn serve<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        self.starved = false;
        self.core.more = false;
        let mut notify = 0;
        let mut broke = self.transmit(memory, &mut notify);
        broke |= self.receive(memory, &mut notify);
        self.finish(keel, notify, broke)
    }

    /// The port is readable: receives what waits.
    pub fn on_input<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        let mut notify = 0;
        let broke = self.receive(memory, &mut notify);
        self.finish(keel, notify, broke)
    }

    fn finish<C: VirtioCalls>(&mut self, keel: &mut C, notify: u32, broke: bool) -> Result<()> {
        if broke {
            self.held_len = 0;
        }
        self.core.finish(keel, notify, broke)
    }

    /// Serves the transmit queue; true if the driver broke it.
    fn transmit<M: GuestMemory>(&mut self, memory: &mut M, notify: &mut u32) -> bool {
        if self.core.queues.is_broken() {
            return false;
        }
        let Some(queue) = self.core.queues.get_mut(usize::from(TX_QUEUE)) else {
            return false;
        };
        let mut sink = PortSink {
            port: &mut self.port,
            dropped: 0,
            error: None,
        };
        let result = self.net.process_tx(queue, memory, &mut sink, BUDGET);
        self.tx_unsent += sink.dropped;
        if let Some(error) = sink.error {
            self.core.notes.push(format!(
                "device {}: the switch port refused a frame: {error}",
                self.core.index
            ));
        }
        match result {
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

    /// Moves frames from the port into receive buffers (the held one
    /// first), up to the budget; true if the driver broke the queue.
    fn receive<M: GuestMemory>(&mut self, memory: &mut M, notify: &mut u32) -> bool {
        if self.core.queues.is_broken() {
            return false;
        }
        let Some(queue) = self.core.queues.get_mut(usize::from(RX_QUEUE)) else {
            return false;
        };
        for _ in 0..BUDGET {
            if self.held_len == 0 {
                match self.port.recv(&mut self.buffer) {
                    Ok(Some(len)) => self.held_len = len.min(self.buffer.len()),
                    Ok(None) => return false,
                    Err(error) => {
                        self.core
                            .notes
                            .push(format!("device {}: the switch port: {error}", self.core.index));
                        return false;
                    }
                }
            }
            match self.net.receive(queue, memory, &self.buffer[..self.held_len]) {
                Ok(RxOutcome::NoBuffer) => {
                    self.starved = true;
                    return false;
                }
                Ok(outcome) => {
                    if outcome.notify() {
                        *notify |= 1 << RX_QUEUE;
                    }
                    self.held_len = 0;
                }
                Err(error) => {
                    self.held_len = 0;
                    return self.core.queue_error(usize::from(RX_QUEUE), error);
                }
            }
        }
        // The budget ran out with frames perhaps waiting.
        self.core.more = true;
        false
    }
}

impl<P: FramePort> CoreDevice for NicDevice<P> {
    fn core(&self) -> &DeviceCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut DeviceCore {
        &mut self.core
    }
}

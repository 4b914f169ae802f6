//! The backend's virtio-net device against the fake Keel, guest memory in
//! a buffer, a small driver that lays out the receive and transmit queues,
//! and a fake switch port.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use keel_abi::mgmt::virtio::{complete_flags, device_type, queue_shape};
use keel_abi::mgmt::{DomainId, DomainState, VirtioQueueState};
use keel_virtio::features::VIRTIO_F_VERSION_1;
use keel_virtio::net::{HEADER_LEN, NUM_QUEUES, QUEUE_SIZE, VIRTIO_NET_F_MAC};
use keel_virtio::GuestMemory;

use super::fake::{Complete, FakeKeel};
use crate::backend::calls::DomainCalls;
use crate::backend::net::{nic_model, FramePort, NicDevice};
use crate::backend::queues::CoreDevice;
use crate::backend::window::WindowMemory;
use crate::client::Client;
use crate::vif::Nic;

pub(super) const MEMORY: usize = 0x40000;
pub(super) const SIZE: u16 = 8;
/// Queue q's rings at 0x1000 + q × 0x3000 (descriptors, avail, used).
pub(super) const fn ring(queue: u16) -> (u64, u64, u64) {
    let base = 0x1000 + queue as u64 * 0x3000;
    (base, base + 0x1000, base + 0x2000)
}
pub(super) const RX: u16 = 0;
pub(super) const TX: u16 = 1;
const MAC: [u8; 6] = [0x02, 0x4b, 0x45, 0, 0, 0x0a];
const PEER: [u8; 6] = [0x02, 0x4b, 0x45, 0, 0, 0x0b];

pub(super) type Memory = WindowMemory<Vec<u8>>;

/// Frames the device sent, frames waiting for it, and the fd it reports.
#[derive(Default)]
struct FakePort {
    sent: Vec<Vec<u8>>,
    incoming: VecDeque<Vec<u8>>,
    /// Every send is refused (a full switch).
    full: bool,
}

impl FramePort for FakePort {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        if self.full {
            return Ok(false);
        }
        self.sent.push(frame.to_vec());
        Ok(true)
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        Ok(self.incoming.pop_front().map(|frame| {
            buf[..frame.len()].copy_from_slice(&frame);
            frame.len()
        }))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(99)
    }
}

/// The driver's side of both queues: the next free descriptor and avail
/// index of each.
pub(super) struct Driver {
    pub(super) next: [u16; 2],
}

impl Driver {
    /// Publishes one single-buffer chain on `queue`.
    pub(super) fn publish(&mut self, memory: &mut Memory, queue: u16, addr: u64, len: u32, writable: bool) {
        let (desc, avail, _) = ring(queue);
        let n = self.next[usize::from(queue)];
        let slot = n % SIZE;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&addr.to_le_bytes());
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        bytes[12..14].copy_from_slice(&u16::from(writable).wrapping_mul(2).to_le_bytes());
        memory.write(desc + 16 * u64::from(slot), &bytes).unwrap();
        memory.write_u16(avail + 4 + 2 * u64::from(slot), slot).unwrap();
        self.next[usize::from(queue)] = n + 1;
        memory.write_u16(avail + 2, n + 1).unwrap();
    }

    /// A receive buffer of 1530 bytes (as Linux posts) at `addr`.
    pub(super) fn post_rx(&mut self, memory: &mut Memory, addr: u64) {
        self.publish(memory, RX, addr, 1530, true);
    }

    /// A packet: the 12-byte header and `frame`, at `addr`.
    fn transmit(&mut self, memory: &mut Memory, addr: u64, frame: &[u8]) {
        memory.write(addr, &[0; HEADER_LEN]).unwrap();
        memory.write(addr + HEADER_LEN as u64, frame).unwrap();
        self.publish(memory, TX, addr, (HEADER_LEN + frame.len()) as u32, false);
    }
}

pub(super) fn used_idx(memory: &Memory, queue: u16) -> u16 {
    memory.read_u16(ring(queue).2 + 2).unwrap()
}

/// The used length of used entry `n` of `queue`.
pub(super) fn used_len(memory: &Memory, queue: u16, n: u16) -> u32 {
    let mut bytes = [0u8; 4];
    memory
        .read(ring(queue).2 + 4 + 8 * u64::from(n % SIZE) + 4, &mut bytes)
        .unwrap();
    u32::from_le_bytes(bytes)
}

fn frame(from: [u8; 6], to: [u8; 6], fill: u8, len: usize) -> Vec<u8> {
    let mut frame = vec![fill; len];
    frame[..6].copy_from_slice(&to);
    frame[6..12].copy_from_slice(&from);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame
}

fn nic() -> Nic {
    Nic { mac: MAC, mtu: None }
}

/// A running domain with one interface attached as `keel create` does it,
/// the driver at DRIVER_OK with both queues enabled, and the device.
fn setup() -> (FakeKeel, DomainId, Memory, Driver, NicDevice<FakePort>) {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Building, 64);
    let model = nic_model(&nic());
    let mut client = Client::connect(&mut keel).unwrap();
    let index = client
        .virtio_attach(
            id,
            device_type::NET,
            model.device_features(),
            queue_shape(NUM_QUEUES, QUEUE_SIZE),
            &model.config(),
        )
        .unwrap();
    assert_eq!(index, 0);
    keel.domain(id).info.state = DomainState::Running;
    let state = &mut keel.virtio(id, 0).state;
    state.status = 1 | 2 | 8 | 4;
    state.driver_features = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC;
    for queue in [RX, TX] {
        let (desc, driver, device) = ring(queue);
        state.queues[usize::from(queue)] = VirtioQueueState {
            enabled: true,
            size: SIZE,
            desc,
            driver,
            device,
        };
    }
    let memory = WindowMemory::new(vec![0; MEMORY], MEMORY as u64);
    let device = NicDevice::new(0, model, FakePort::default()).started_before_the_driver();
    (keel, id, memory, Driver { next: [0; 2] }, device)
}

pub(super) fn calls(keel: &mut FakeKeel, id: DomainId) -> DomainCalls<&mut FakeKeel> {
    DomainCalls {
        client: Client::connect(keel).unwrap(),
        id,
    }
}

pub(super) fn complete(id: DomainId, queue_mask: u32, flags: u64) -> Complete {
    Complete {
        id,
        device: 0,
        queue_mask,
        flags,
        generation: 1,
    }
}

#[test]
fn transmitted_frames_reach_the_port_and_the_driver_gets_its_buffers_back() {
    let (mut keel, id, mut memory, mut driver, mut nic) = setup();
    let out = frame(MAC, PEER, 0x11, 100);
    driver.transmit(&mut memory, 0x10000, &out);
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory, TX), 1);
    assert_eq!(used_len(&memory, TX, 0), 0);
    assert_eq!(keel.completes, [complete(id, 1 << TX, 0)]);
    // A full switch drops the frame; the driver still gets its buffer.
    assert_eq!(nic.port().sent, std::slice::from_ref(&out));
    nic.port_mut().full = true;
    driver.transmit(&mut memory, 0x10800, &out);
    nic.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory, TX), 2);
    assert_eq!(nic.stats().1, 1, "one frame the port refused");
    assert!(nic.take_notes().is_empty());
}

#[test]
fn frames_from_the_port_fill_posted_buffers_and_wait_when_there_are_none() {
    let (mut keel, id, mut memory, mut driver, mut nic) = setup();
    driver.post_rx(&mut memory, 0x20000);
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(nic.input_fd(), Some(99), "buffers posted: the port is polled");
    let first = frame(PEER, MAC, 0x22, 60);
    let second = frame(PEER, MAC, 0x33, 1514);
    nic.port_mut().incoming.extend([first.clone(), second.clone()]);
    nic.on_input(&mut calls(&mut keel, id), &mut memory).unwrap();
    // The first frame is in the buffer, after a header with num_buffers 1.
    assert_eq!(used_idx(&memory, RX), 1);
    assert_eq!(used_len(&memory, RX, 0), (HEADER_LEN + first.len()) as u32);
    let mut got = vec![0; first.len()];
    memory.read(0x20000 + HEADER_LEN as u64, &mut got).unwrap();
    assert_eq!(got, first);
    assert_eq!(memory.read_u16(0x20000 + 10).unwrap(), 1);
    assert_eq!(keel.completes, [complete(id, 1 << RX, 0)]);
    // No buffer for the second: it is held, the port no longer polled.
    assert_eq!(nic.input_fd(), None);
    assert!(nic.port().incoming.is_empty());
    // The driver posts a buffer and kicks: the held frame goes in first.
    driver.post_rx(&mut memory, 0x21000);
    nic.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory, RX), 2);
    let mut got = vec![0; second.len()];
    memory.read(0x21000 + HEADER_LEN as u64, &mut got).unwrap();
    assert_eq!(got, second);
    assert_eq!(nic.input_fd(), Some(99));
}

#[test]
fn a_reset_forgets_the_held_frame_and_a_broken_ring_marks_the_device() {
    let (mut keel, id, mut memory, _driver, mut nic) = setup();
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    nic.port_mut().incoming.push_back(frame(PEER, MAC, 0x44, 60));
    nic.on_input(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(nic.input_fd(), None, "held, no buffers");
    // The driver resets: RESET_DONE, nothing held any more.
    keel.virtio(id, 0).state.status = 0;
    keel.virtio(id, 0).state.reset_pending = true;
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(
        keel.completes.last(),
        Some(&complete(id, 0, complete_flags::RESET_DONE))
    );
    assert_eq!(nic.input_fd(), None, "no queues until the driver is ready again");
    // Set up again, with an avail index that jumps past the ring: broken.
    let state = &mut keel.virtio(id, 0).state;
    state.reset_pending = false;
    state.status = 1 | 2 | 8 | 4;
    memory.write_u16(ring(TX).1 + 2, 40).unwrap();
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(nic.is_broken());
    assert_eq!(
        keel.completes.last(),
        Some(&complete(id, 0, complete_flags::NEEDS_RESET))
    );
    assert!(!nic.take_notes().is_empty());
    // Broken: input is not taken, kicks do nothing.
    nic.port_mut().incoming.push_back(frame(PEER, MAC, 0x55, 60));
    let before = keel.completes.len();
    nic.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(keel.completes.len(), before);
    assert_eq!(nic.input_fd(), None);
}

#[test]
fn without_a_receive_queue_the_port_is_not_polled() {
    // A driver that enables only the transmit queue: frames for it wait in
    // the socket (and the switch drops the rest), never a busy loop on a
    // readable port nobody reads.
    let (mut keel, id, mut memory, _driver, mut nic) = setup();
    keel.virtio(id, 0).state.queues[usize::from(RX)].enabled = false;
    nic.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(!nic.is_broken());
    assert_eq!(nic.input_fd(), None);
}

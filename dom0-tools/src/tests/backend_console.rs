//! The backend's virtio console against the fake Keel, the ring driver of
//! `backend_net` (the console's queues are numbered like a NIC's) and a
//! fake link.

use std::os::fd::RawFd;

use keel_abi::mgmt::virtio::{device_type, queue_shape};
use keel_abi::mgmt::{DomainId, DomainState, VirtioQueueState};
use keel_virtio::console::{NUM_QUEUES, QUEUE_SIZE};
use keel_virtio::features::VIRTIO_F_VERSION_1;
use keel_virtio::GuestMemory;

use super::backend_net::{calls, complete, ring, used_idx, used_len, Driver, Memory, MEMORY, RX, SIZE, TX};
use super::fake::FakeKeel;
use crate::backend::console::{console_model, ConsoleDevice, ConsoleLink};
use crate::backend::queues::CoreDevice;
use crate::backend::window::WindowMemory;
use crate::client::Client;

/// Output it was given, input waiting for the device, services counted.
#[derive(Default)]
struct FakeLink {
    output: Vec<u8>,
    typed: Vec<u8>,
    services: usize,
}

impl ConsoleLink for FakeLink {
    fn output(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    fn input(&mut self, input: &mut Vec<u8>, max: usize) {
        let take = max.min(self.typed.len());
        input.extend(self.typed.drain(..take));
    }

    fn service(&mut self) {
        self.services += 1;
    }

    fn fds(&self, reading: bool, fds: &mut Vec<RawFd>) {
        fds.push(50);
        if reading {
            fds.push(51);
        }
    }
}

fn setup() -> (FakeKeel, DomainId, Memory, Driver, ConsoleDevice<FakeLink>) {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Building, 64);
    let model = console_model();
    let mut client = Client::connect(&mut keel).unwrap();
    let index = client
        .virtio_attach(
            id,
            device_type::CONSOLE,
            model.device_features(),
            queue_shape(NUM_QUEUES, QUEUE_SIZE),
            &model.config(),
        )
        .unwrap();
    assert_eq!(index, 0);
    keel.domain(id).info.state = DomainState::Running;
    let state = &mut keel.virtio(id, 0).state;
    state.status = 1 | 2 | 8 | 4;
    state.driver_features = VIRTIO_F_VERSION_1;
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
    let device = ConsoleDevice::new(0, model, FakeLink::default()).started_before_the_driver();
    (keel, id, memory, Driver { next: [0; 2] }, device)
}

#[test]
fn output_reaches_the_link_and_typed_bytes_wait_for_buffers() {
    let (mut keel, id, mut memory, mut driver, mut console) = setup();
    memory.write(0x10000, b"domu: hello\n").unwrap();
    driver.publish(&mut memory, TX, 0x10000, 12, false);
    console.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(console.link().output, b"domu: hello\n");
    assert_eq!(used_idx(&memory, TX), 1);
    assert_eq!(keel.completes, [complete(id, 1 << TX, 0)]);
    // Typed with no receive buffer: held, the client no longer read.
    console.link_mut().typed = b"marco\n".to_vec();
    console.on_input(&mut calls(&mut keel, id), &mut memory).unwrap();
    let mut fds = Vec::new();
    console.input_fds(&mut fds);
    assert_eq!(fds, [50], "starved: only the listener is polled");
    // The driver posts a 4-byte buffer and kicks: "marc" goes in, the rest
    // waits for the next buffer.
    driver.publish(&mut memory, RX, 0x20000, 4, true);
    console.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory, RX), used_len(&memory, RX, 0)), (1, 4));
    let mut got = [0u8; 4];
    memory.read(0x20000, &mut got).unwrap();
    assert_eq!(&got, b"marc");
    assert_eq!(keel.completes.last(), Some(&complete(id, 1 << RX, 0)));
    driver.post_rx(&mut memory, 0x21000);
    console.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory, RX), used_len(&memory, RX, 1)), (2, 2));
    assert!(console.take_notes().is_empty());
    assert!(console.link().services >= 2);
}

#[test]
fn a_reset_drops_typed_input_and_a_broken_ring_marks_the_device() {
    let (mut keel, id, mut memory, _driver, mut console) = setup();
    console.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    console.link_mut().typed = b"lost".to_vec();
    console.on_input(&mut calls(&mut keel, id), &mut memory).unwrap();
    keel.virtio(id, 0).state.status = 0;
    keel.virtio(id, 0).state.reset_pending = true;
    console.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    let state = &mut keel.virtio(id, 0).state;
    state.reset_pending = false;
    state.status = 1 | 2 | 8 | 4;
    // An avail index far past the ring breaks the transmit queue.
    memory.write_u16(ring(TX).1 + 2, 40).unwrap();
    console.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(console.is_broken());
    assert!(!console.take_notes().is_empty());
    let mut fds = Vec::new();
    console.input_fds(&mut fds);
    assert_eq!(fds, [50]);
    assert!(console.link().typed.is_empty(), "read before the reset, then dropped");
}

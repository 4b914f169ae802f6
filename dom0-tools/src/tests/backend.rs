//! The backend's per-device state machine and its loop, against the fake
//! Keel (as the driver's side of the transport) and guest memory in a
//! buffer, with a small driver that lays out one request queue.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_abi::mgmt::virtio::{complete_flags, control_bit, device_type, queue_shape};
use keel_abi::mgmt::{Command, DomainId, DomainState, Status, VirtioQueueState};
use keel_virtio::blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use keel_virtio::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1};
use keel_virtio::GuestMemory;

use super::fake::{Complete, FakeKeel};
use crate::backend::blk::{disk_model, open_image, DiskDevice, ImageFile};
use crate::backend::calls::DomainCalls;
use crate::backend::notify::{Notifier, NotifyHw, Slept};
use crate::backend::queues::CoreDevice;
use crate::backend::window::WindowMemory;
use crate::backend::{serve_loop, Served};
use crate::client::{is_status, Client};

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const SIZE: u16 = 16;
const MEMORY: usize = 0x20000;

type Memory = WindowMemory<Vec<u8>>;

fn memory() -> Memory {
    WindowMemory::new(vec![0; MEMORY], MEMORY as u64)
}

/// Request `n`: descriptors 3n..3n+2 (header, 512 bytes of data, status),
/// buffers at 0x8000 + n × 0x1000, published as avail entry n.
fn publish(memory: &mut Memory, n: u16, kind: u32, sector: u64) {
    let base = 0x8000 + u64::from(n) * 0x1000;
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    memory.write(base, &header).unwrap();
    let data_flags = if kind == VIRTIO_BLK_T_IN { 1 | 2 } else { 1 };
    let descriptors = [
        (base, 16u32, 1u16),
        (base + 0x200, 512, data_flags),
        (base + 0x800, 1, 2),
    ];
    let first = 3 * n;
    for (at, (addr, len, flags)) in descriptors.into_iter().enumerate() {
        let index = first + at as u16;
        let gpa = DESC + 16 * u64::from(index % SIZE);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&addr.to_le_bytes());
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        bytes[12..14].copy_from_slice(&flags.to_le_bytes());
        bytes[14..].copy_from_slice(&((index + 1) % SIZE).to_le_bytes());
        memory.write(gpa, &bytes).unwrap();
    }
    memory
        .write_u16(AVAIL + 4 + 2 * u64::from(n % SIZE), first % SIZE)
        .unwrap();
    memory.write_u16(AVAIL + 2, n + 1).unwrap();
}

fn data(memory: &Memory, n: u16) -> Vec<u8> {
    let mut bytes = vec![0; 512];
    memory.read(0x8000 + u64::from(n) * 0x1000 + 0x200, &mut bytes).unwrap();
    bytes
}

fn status_byte(memory: &Memory, n: u16) -> u8 {
    let mut byte = [0xff];
    memory.read(0x8000 + u64::from(n) * 0x1000 + 0x800, &mut byte).unwrap();
    byte[0]
}

fn used_idx(memory: &Memory) -> u16 {
    memory.read_u16(USED + 2).unwrap()
}

fn scratch_image(name: &str, sectors: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("keel-tools-backend-{name}-{}.img", std::process::id()));
    let bytes: Vec<u8> = (0..sectors * 512).map(|at| (at / 512) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A building domain with one disk attached through the client, as
/// `keel create` does it; its device is the driver's from here.
fn domain_with_disk(keel: &mut FakeKeel, sectors: u64, read_only: bool) -> DomainId {
    let id = keel.add("web", DomainState::Building, 64);
    let model = disk_model(0, sectors * 512, read_only);
    let mut client = Client::connect(&mut *keel).unwrap();
    let index = client
        .virtio_attach(
            id,
            device_type::BLOCK,
            model.device_features(),
            queue_shape(1, 256),
            &model.config(),
        )
        .unwrap();
    assert_eq!(index, 0);
    keel.domain(id).info.state = DomainState::Running;
    id
}

/// The driver's setup up to DRIVER_OK, with the queue enabled.
fn driver_ok(keel: &mut FakeKeel, id: DomainId, features: u64) {
    let state = &mut keel.virtio(id, 0).state;
    state.status = 1 | 2 | 8 | 4;
    state.driver_features = features;
    state.queues[0] = VirtioQueueState {
        enabled: true,
        size: SIZE,
        desc: DESC,
        driver: AVAIL,
        device: USED,
    };
}

fn calls(keel: &mut FakeKeel, id: DomainId) -> DomainCalls<&mut FakeKeel> {
    DomainCalls {
        client: Client::connect(keel).unwrap(),
        id,
    }
}

/// An image of `sectors` sectors (`scratch_image`), a DomU with one disk of
/// that size (`domain_with_disk`) and the backend's device over the image.
fn disk_of_a_domain(
    name: &str,
    sectors: usize,
    read_only: bool,
) -> (PathBuf, FakeKeel, DomainId, DiskDevice<ImageFile>) {
    let path = scratch_image(name, sectors);
    let mut keel = FakeKeel::new();
    let id = domain_with_disk(&mut keel, sectors as u64, read_only);
    let disk = device(&path, read_only);
    (path, keel, id, disk)
}

fn device(path: &Path, read_only: bool) -> DiskDevice<ImageFile> {
    let (file, len) = open_image(path, read_only).unwrap();
    DiskDevice::new(0, disk_model(0, len, read_only), ImageFile::new(file, len), 1).started_before_the_driver()
}

/// The device as a backend restarted under a running driver has it.
fn restarted_device(path: &Path, read_only: bool) -> DiskDevice<ImageFile> {
    let (file, len) = open_image(path, read_only).unwrap();
    DiskDevice::new(0, disk_model(0, len, read_only), ImageFile::new(file, len), 1)
}

fn complete(id: DomainId, queue_mask: u32, flags: u64, generation: u32) -> Complete {
    Complete {
        id,
        device: 0,
        queue_mask,
        flags,
        generation,
    }
}

const FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH;

#[test]
fn nothing_is_served_before_driver_ok_then_everything_at_once() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("driver-ok", 8, false);
    let mut memory = memory();
    // The driver publishes a request before DRIVER_OK (Linux may).
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 3);
    keel.virtio(id, 0).state.status = 1 | 2 | 8;
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((disk.live_queues(), used_idx(&memory)), (0, 0));
    assert!(keel.completes.is_empty());

    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(disk.live_queues(), 1);
    assert_eq!(used_idx(&memory), 1);
    assert_eq!(data(&memory, 0), [3u8; 512]);
    assert_eq!(status_byte(&memory, 0), 0);
    // One completion: queue 0's interrupt, for generation 1.
    assert_eq!(keel.completes, [complete(id, 1, 0, 1)]);

    // A kick: the next request, written through to the image.
    memory.write(0x9000 + 0x200, &[0xab; 512]).unwrap();
    publish(&mut memory, 1, VIRTIO_BLK_T_OUT, 5);
    disk.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory), status_byte(&memory, 1)), (2, 0));
    assert_eq!(keel.completes.len(), 2);
    let image = std::fs::read(&path).unwrap();
    assert_eq!(image[5 * 512..6 * 512], [0xab; 512]);
    assert_eq!(image[4 * 512..5 * 512], [4; 512], "only sector 5");
    // A kick with nothing new: no completion.
    disk.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(keel.completes.len(), 2);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn with_event_idx_the_driver_decides_about_interrupts() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("event-idx", 8, false);
    let mut memory = memory();
    // used_event = 5: no interrupt wanted for the first completion.
    memory.write_u16(AVAIL + 4 + 2 * u64::from(SIZE), 5).unwrap();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 0);
    driver_ok(&mut keel, id, FEATURES | VIRTIO_F_EVENT_IDX);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory), 1);
    assert!(keel.completes.is_empty());
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_read_only_disk_refuses_writes_and_keeps_its_image() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("ro", 4, true);
    let mut memory = memory();
    memory.write(0x8000 + 0x200, &[0xcd; 512]).unwrap();
    publish(&mut memory, 0, VIRTIO_BLK_T_OUT, 1);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory), status_byte(&memory, 0)), (1, 1), "IOERR");
    assert_eq!(std::fs::read(&path).unwrap()[512..1024], [1; 512]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_driver_reset_drops_the_queues_and_is_acknowledged() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("reset", 8, false);
    let mut memory = memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 1);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(disk.live_queues(), 1);

    // The driver writes 0: Keel holds the old status until RESET_DONE.
    keel.virtio(id, 0).state.reset_pending = true;
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(disk.live_queues(), 0);
    assert_eq!(
        *keel.completes.last().unwrap(),
        complete(id, 0, complete_flags::RESET_DONE, 1)
    );
    assert_eq!(keel.virtio(id, 0).state.status, 0);

    // Set up again with fresh rings: served from index 0.
    let mut memory = self::memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 2);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory), data(&memory, 0)), (1, vec![2; 512]));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_reboot_is_a_new_generation_with_new_queues() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("reboot", 8, false);
    let mut memory = memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 1);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();

    // The domain rebooted: a fresh transport, status 0 so far.
    let state = &mut keel.virtio(id, 0).state;
    state.generation = 2;
    state.status = 0;
    state.queues[0].enabled = false;
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(disk.live_queues(), 0);

    // Same ring addresses, but the new kernel starts over.
    let mut memory = self::memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 4);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory), 1);
    assert_eq!(*keel.completes.last().unwrap(), complete(id, 1, 0, 2));

    // A completion refused as stale (a reboot raced it) is not an error:
    // the state is fetched again and acted on (here nothing is left to
    // do: the interrupt belonged to the old transport).
    keel.fail(Command::VirtioComplete, 0, Status::BadState, "stale generation");
    publish(&mut memory, 1, VIRTIO_BLK_T_IN, 5);
    let (states, completes) = (keel.count(Command::VirtioState), keel.completes.len());
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(keel.count(Command::VirtioState), states + 2);
    assert_eq!(keel.completes.len(), completes);
    assert_eq!(used_idx(&memory), 2);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_broken_queue_asks_for_a_reset_once_and_serves_nothing_until_then() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("broken", 8, false);
    let mut memory = memory();
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    // avail.idx jumps past the queue size: nothing in the ring is trusted.
    memory.write_u16(AVAIL + 2, 100).unwrap();
    disk.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(disk.is_broken());
    assert_eq!(keel.completes, [complete(id, 0, complete_flags::NEEDS_RESET, 1)]);
    assert_eq!(keel.virtio(id, 0).state.status & 0x40, 0x40);
    let notes = disk.take_notes();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("device 0: the driver broke queue 0 (AvailIdxJump"),
        "{notes:?}"
    );
    // More kicks and the control bit NEEDS_RESET raises: nothing.
    disk.serve(&mut calls(&mut keel, id), &mut memory).unwrap();
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(keel.completes.len(), 1);
    assert_eq!(used_idx(&memory), 0);

    // The driver resets and starts over.
    keel.virtio(id, 0).state.reset_pending = true;
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(!disk.is_broken());
    let mut memory = self::memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 6);
    driver_ok(&mut keel, id, FEATURES);
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!((used_idx(&memory), data(&memory, 0)), (1, vec![6; 512]));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn rings_outside_guest_ram_break_the_queue_not_the_backend() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("outside", 8, false);
    let mut memory = memory();
    driver_ok(&mut keel, id, FEATURES);
    keel.virtio(id, 0).state.queues[0].driver = MEMORY as u64;
    disk.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert!(disk.is_broken());
    assert_eq!(keel.completes, [complete(id, 0, complete_flags::NEEDS_RESET, 1)]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_vanished_domain_is_reported_as_such() {
    let (path, mut keel, id, mut disk) = disk_of_a_domain("gone", 8, false);
    keel.domains.remove(&id);
    let error = disk.on_control(&mut calls(&mut keel, id), &mut memory()).unwrap_err();
    assert!(is_status(&error, Status::NoSuchDomain));
    std::fs::remove_file(path).unwrap();
}

/// Bits from a script, then nothing; sleeps advance a fake clock.
struct ScriptedHw {
    bits: Vec<u32>,
    start: Instant,
    elapsed: Duration,
}

impl NotifyHw for ScriptedHw {
    fn arm(&mut self) {}

    fn unmask(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn take_pending(&mut self) -> u32 {
        if self.bits.is_empty() {
            0
        } else {
            self.bits.remove(0)
        }
    }

    fn sleep(
        &mut self,
        timeout: Duration,
        _inputs: &[std::os::fd::RawFd],
        _outputs: &[std::os::fd::RawFd],
    ) -> std::io::Result<Slept> {
        self.elapsed += timeout;
        Ok(Slept::TimedOut)
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed
    }
}

#[test]
fn the_loop_serves_at_start_and_on_control_bits_and_ends_with_the_domain() {
    let path = scratch_image("loop", 8);
    let mut keel = FakeKeel::new();
    let id = domain_with_disk(&mut keel, 8, false);
    let mut memory = memory();
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 7);
    driver_ok(&mut keel, id, FEATURES);
    // State reads: the start, the control bit, then the idle check finds
    // the domain gone.
    keel.fail(Command::VirtioState, 2, Status::NoSuchDomain, "no domain");
    let mut devices: Vec<Box<dyn Served<_, _>>> = vec![Box::new(device(&path, false))];
    let hw = ScriptedHw {
        bits: vec![control_bit(0)],
        start: Instant::now(),
        elapsed: Duration::ZERO,
    };
    let mut notifier = Notifier::new(hw, Duration::from_secs(2), Duration::from_secs(2));
    let mut log = Vec::new();
    let reason = serve_loop(
        &mut calls(&mut keel, id),
        &mut memory,
        &mut devices,
        &mut notifier,
        &mut log,
    )
    .unwrap();
    drop(devices);
    assert_eq!(reason, "the domain is gone");
    assert_eq!((used_idx(&memory), data(&memory, 0)), (1, vec![7; 512]));
    assert_eq!(keel.completes, [complete(id, 1, 0, 1)]);
    assert_eq!(keel.count(Command::VirtioState), 3);
    log.flush().unwrap();
    assert!(log.is_empty(), "{}", String::from_utf8_lossy(&log));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_restarted_backend_continues_the_running_queue_and_answers_a_pending_reset() {
    let (path, mut keel, id, mut first) = disk_of_a_domain("restart", 8, false);
    let mut memory = memory();
    driver_ok(&mut keel, id, FEATURES);
    publish(&mut memory, 0, VIRTIO_BLK_T_IN, 1);
    publish(&mut memory, 1, VIRTIO_BLK_T_IN, 2);
    first.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory), 2);
    drop(first);

    // The backend died and a new one starts under the running driver: it
    // takes the next request only, not the two already answered.
    publish(&mut memory, 2, VIRTIO_BLK_T_IN, 3);
    let before = keel.completes.len();
    let mut second = restarted_device(&path, false);
    second.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(used_idx(&memory), 3);
    // One interrupt for the resumed queue first (the dead backend may have
    // completed chains without one), then the new request's.
    assert_eq!(keel.completes[before], complete(id, 1, 0, 1));
    assert_eq!(data(&memory, 2), [3u8; 512]);
    assert_eq!(second.take_notes(), ["device 0: queue 0 resumed at used index 2"]);
    // Later queues (after a reset) start afresh.
    keel.virtio(id, 0).state.status = 0;
    second.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(second.live_queues(), 0);

    // A driver reset left pending by the dead backend is answered at once.
    drop(second);
    keel.virtio(id, 0).state.reset_pending = true;
    let mut third = restarted_device(&path, false);
    third.on_control(&mut calls(&mut keel, id), &mut memory).unwrap();
    assert_eq!(
        keel.completes.last(),
        Some(&complete(id, 0, complete_flags::RESET_DONE, 1))
    );
    std::fs::remove_file(path).unwrap();
}

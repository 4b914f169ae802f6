use super::*;
use crate::chain::Segment;
use crate::queue::{QueueFeatures, VIRTQ_DESC_F_NEXT};
use crate::test_ring::{Driver, VecMemory, DATA, MEMORY_SIZE};
use std::vec::Vec;

#[derive(Debug, Default)]
struct MemBackend {
    image: Vec<u8>,
    flushes: usize,
    fail: bool,
}

impl MemBackend {
    fn new(len: usize) -> Self {
        Self {
            image: (0..len).map(|i| (i / 512) as u8 ^ (i as u8)).collect(),
            ..Self::default()
        }
    }
}

impl BlockBackend for MemBackend {
    fn len(&self) -> u64 {
        self.image.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let start = offset as usize;
        let source = self.image.get(start..start + buf.len()).ok_or(BackendError)?;
        if self.fail {
            return Err(BackendError);
        }
        buf.copy_from_slice(source);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let start = offset as usize;
        if self.fail {
            return Err(BackendError);
        }
        self.image
            .get_mut(start..start + data.len())
            .ok_or(BackendError)?
            .copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        if self.fail {
            return Err(BackendError);
        }
        self.flushes += 1;
        Ok(())
    }
}

const HEADER: u64 = 0x100;
const BUFFER: u64 = 0x1000;
const STATUS: u64 = 0x200;

fn header(memory: &mut VecMemory, kind: u32, sector: u64) {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[4..8].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    bytes[8..].copy_from_slice(&sector.to_le_bytes());
    memory.write(HEADER, &bytes).unwrap();
}

fn r(addr: u64, len: u32) -> Segment {
    Segment {
        addr,
        len,
        writable: false,
    }
}

fn w(addr: u64, len: u32) -> Segment {
    Segment {
        addr,
        len,
        writable: true,
    }
}

/// The usual Linux layout: header, data, status.
fn request(data: Segment) -> DescriptorChain {
    DescriptorChain::from_segments(0, &[r(HEADER, 16), data, w(STATUS, 1)]).unwrap()
}

fn status(memory: &VecMemory) -> u8 {
    memory.slice(STATUS, 1)[0]
}

fn setup(image_len: usize, options: BlkOptions) -> (VecMemory, MemBackend, Blk) {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    memory.write(STATUS, &[0xFF]).unwrap();
    (memory, MemBackend::new(image_len), Blk::new(image_len as u64, options))
}

#[test]
fn config_and_features() {
    let blk = Blk::new(
        10 * 512 + 100,
        BlkOptions {
            read_only: true,
            ..BlkOptions::default()
        },
    );
    assert_eq!(blk.capacity(), 10);
    let config = blk.config();
    assert_eq!(config[..8], 10u64.to_le_bytes());
    assert_eq!(config[8..12], [0; 4], "size_max not offered");
    assert_eq!(config[12..16], DEFAULT_SEG_MAX.to_le_bytes());
    assert_eq!(config[20..24], 512u32.to_le_bytes());
    assert!(config[24..].iter().all(|&b| b == 0));
    let features = blk.device_features();
    for bit in [
        VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_BLK_SIZE,
    ] {
        assert_ne!(features & bit, 0);
    }
    assert_eq!(
        features & crate::features::KEEL_TRANSPORT_FEATURES,
        crate::features::KEEL_TRANSPORT_FEATURES
    );
    assert_eq!(
        features & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_BLK_F_MQ),
        0
    );
    assert_eq!(
        Blk::new(0, BlkOptions::default()).device_features() & VIRTIO_BLK_F_RO,
        0
    );
    assert_eq!(blk.max_segments(), DEFAULT_SEG_MAX as usize + 2);
    let huge = Blk::new(
        0,
        BlkOptions {
            seg_max: 100_000,
            ..BlkOptions::default()
        },
    );
    assert!(huge.max_segments() <= MAX_CHAIN_SEGMENTS);
}

#[test]
fn reads_sectors() {
    let (mut memory, mut backend, blk) = setup(8 * 512, BlkOptions::default());
    header(&mut memory, VIRTIO_BLK_T_IN, 3);
    let completion = blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 1024)));
    assert_eq!(
        completion,
        Completion {
            kind: RequestKind::In,
            status: Some(VIRTIO_BLK_S_OK),
            used_len: 1025
        }
    );
    assert_eq!(memory.slice(BUFFER, 1024), &backend.image[3 * 512..5 * 512]);
    assert_eq!(status(&memory), VIRTIO_BLK_S_OK);
}

#[test]
fn any_layout_and_chunking() {
    // Header and the first data bytes in one odd descriptor, data spread
    // over uneven pieces, the status sharing the last writable descriptor.
    let (mut memory, mut backend, blk) = setup(64 * 512, BlkOptions::default());
    let data: Vec<u8> = (0..9 * 512).map(|i| (i * 7 % 251) as u8).collect();
    memory
        .write(0x2000, &[1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    memory.write(0x2010, &data[..100]).unwrap();
    memory.write(0x5000, &data[100..]).unwrap();
    let chain = DescriptorChain::from_segments(7, &[r(0x2000, 116), r(0x5000, 9 * 512 - 100), w(0x300, 1)]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_OK));
    assert_eq!(completion.used_len, 1);
    assert_eq!(backend.image[5 * 512..14 * 512], data[..]);

    // Read it back into two writable pieces, status in the second one.
    memory
        .write(0x2000, &[0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    let chain =
        DescriptorChain::from_segments(7, &[r(0x2000, 16), w(0x9000, 1000), w(0xC000, 9 * 512 - 1000 + 1)]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_OK));
    assert_eq!(completion.used_len, 9 * 512 + 1);
    assert_eq!(memory.slice(0x9000, 1000), &data[..1000]);
    assert_eq!(memory.slice(0xC000, 9 * 512 - 1000), &data[1000..]);
    assert_eq!(memory.slice(0xC000 + 9 * 512 - 1000, 1), [VIRTIO_BLK_S_OK]);
}

#[test]
fn writes_and_write_through() {
    let (mut memory, mut backend, mut blk) = setup(8 * 512, BlkOptions::default());
    memory.write(BUFFER, &[0xAB; 512]).unwrap();
    header(&mut memory, VIRTIO_BLK_T_OUT, 7);
    let completion = blk.handle(&mut memory, &mut backend, &request(r(BUFFER, 512)));
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_OK));
    assert_eq!(completion.used_len, 1);
    assert_eq!(backend.image[7 * 512..], [0xAB; 512]);
    assert_eq!(backend.flushes, 1, "FLUSH not negotiated: write-through");

    blk.set_negotiated(blk.device_features());
    let completion = blk.handle(&mut memory, &mut backend, &request(r(BUFFER, 512)));
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_OK));
    assert_eq!(backend.flushes, 1, "write-back once FLUSH is negotiated");

    header(&mut memory, VIRTIO_BLK_T_FLUSH, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), w(STATUS, 1)]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!(
        completion,
        Completion {
            kind: RequestKind::Flush,
            status: Some(VIRTIO_BLK_S_OK),
            used_len: 1
        }
    );
    assert_eq!(backend.flushes, 2);
}

#[test]
fn read_only_refuses_writes() {
    let options = BlkOptions {
        read_only: true,
        ..BlkOptions::default()
    };
    let (mut memory, mut backend, blk) = setup(8 * 512, options);
    let before = backend.image.clone();
    memory.write(BUFFER, &[0xAB; 512]).unwrap();
    header(&mut memory, VIRTIO_BLK_T_OUT, 0);
    let completion = blk.handle(&mut memory, &mut backend, &request(r(BUFFER, 512)));
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_IOERR));
    assert_eq!(status(&memory), VIRTIO_BLK_S_IOERR);
    assert_eq!(backend.image, before);
    // Reads and flushes still work.
    header(&mut memory, VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 512))).status,
        Some(VIRTIO_BLK_S_OK)
    );
    header(&mut memory, VIRTIO_BLK_T_FLUSH, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), w(STATUS, 1)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain).status,
        Some(VIRTIO_BLK_S_OK)
    );
}

#[test]
fn range_checks() {
    let (mut memory, mut backend, blk) = setup(8 * 512, BlkOptions::default());
    let cases: [(u32, u64, Segment); 7] = [
        (VIRTIO_BLK_T_IN, 8, w(BUFFER, 512)),
        (VIRTIO_BLK_T_IN, 7, w(BUFFER, 1024)),
        (VIRTIO_BLK_T_IN, 0, w(BUFFER, 511)),
        (VIRTIO_BLK_T_IN, u64::MAX / 256, w(BUFFER, 512)),
        (VIRTIO_BLK_T_IN, u64::MAX / 512, w(BUFFER, 512)),
        (VIRTIO_BLK_T_OUT, 8, r(BUFFER, 512)),
        (VIRTIO_BLK_T_OUT, 0, r(BUFFER, 100)),
    ];
    let before = backend.image.clone();
    for (kind, sector, data) in cases {
        header(&mut memory, kind, sector);
        memory.write(BUFFER, &[0x55; 1024]).unwrap();
        let completion = blk.handle(&mut memory, &mut backend, &request(data));
        assert_eq!(
            completion.status,
            Some(VIRTIO_BLK_S_IOERR),
            "{kind} {sector:#x} {data:?}"
        );
        assert_eq!(memory.slice(BUFFER, 1024), [0x55; 1024], "nothing read");
    }
    assert_eq!(backend.image, before, "nothing written");
    // Zero-length transfers at the very end are in range.
    header(&mut memory, VIRTIO_BLK_T_IN, 8);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), w(STATUS, 1)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain).status,
        Some(VIRTIO_BLK_S_OK)
    );
}

#[test]
fn partial_last_sector_is_not_reachable() {
    let (mut memory, mut backend, blk) = setup(2 * 512 + 300, BlkOptions::default());
    assert_eq!(blk.capacity(), 2);
    header(&mut memory, VIRTIO_BLK_T_IN, 1);
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 512))).status,
        Some(VIRTIO_BLK_S_OK)
    );
    header(&mut memory, VIRTIO_BLK_T_IN, 2);
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 512))).status,
        Some(VIRTIO_BLK_S_IOERR)
    );
    assert_eq!(Blk::new(511, BlkOptions::default()).capacity(), 0);
}

#[test]
fn get_id() {
    let options = BlkOptions {
        id: BlkOptions::id_from_str("keel-disk-0"),
        ..BlkOptions::default()
    };
    let (mut memory, mut backend, blk) = setup(512, options);
    header(&mut memory, VIRTIO_BLK_T_GET_ID, 0);
    let completion = blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 20)));
    assert_eq!(
        completion,
        Completion {
            kind: RequestKind::GetId,
            status: Some(VIRTIO_BLK_S_OK),
            used_len: 21
        }
    );
    assert_eq!(memory.slice(BUFFER, 20), b"keel-disk-0\0\0\0\0\0\0\0\0\0");

    memory.write(BUFFER, &[0xEE; 32]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 8)));
    assert_eq!(completion.used_len, 9);
    assert_eq!(memory.slice(BUFFER, 9), b"keel-dis\xEE");

    // A bigger buffer: 20 bytes written, the rest untouched.
    let completion = blk.handle(&mut memory, &mut backend, &request(w(BUFFER, 32)));
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_OK));
    assert_eq!(completion.used_len, 20, "the status is not part of the written prefix");
    assert_eq!(
        &BlkOptions::id_from_str("a-name-much-longer-than-twenty"),
        b"a-name-much-longer-t"
    );
}

#[test]
fn unsupported_and_malformed() {
    let (mut memory, mut backend, blk) = setup(8 * 512, BlkOptions::default());
    for kind in [
        VIRTIO_BLK_T_DISCARD,
        VIRTIO_BLK_T_WRITE_ZEROES,
        VIRTIO_BLK_T_GET_LIFETIME,
        VIRTIO_BLK_T_SECURE_ERASE,
        2,
        u32::MAX,
    ] {
        header(&mut memory, kind, 0);
        let completion = blk.handle(&mut memory, &mut backend, &request(r(BUFFER, 16)));
        assert_eq!(completion.kind, RequestKind::Unsupported(kind));
        assert_eq!(completion.status, Some(VIRTIO_BLK_S_UNSUPP));
        assert_eq!(completion.used_len, 1);
    }

    // Header cut short.
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 15), w(STATUS, 1)]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!(completion.kind, RequestKind::Malformed);
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_IOERR));

    // No status byte: nothing is executed, even a valid write.
    let before = backend.image.clone();
    header(&mut memory, VIRTIO_BLK_T_OUT, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), r(BUFFER, 512)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain),
        Completion {
            kind: RequestKind::Malformed,
            status: None,
            used_len: 0
        }
    );
    assert_eq!(backend.image, before);

    // Header outside guest memory.
    let chain = DescriptorChain::from_segments(0, &[r(0x1_0000_0000, 16), w(STATUS, 1)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain).status,
        Some(VIRTIO_BLK_S_IOERR)
    );
    // Status byte outside guest memory: reported as not written.
    header(&mut memory, VIRTIO_BLK_T_FLUSH, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), w(0x1_0000_0000, 1)]).unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!((completion.status, completion.used_len), (None, 0));
}

#[test]
fn bad_buffers_and_backend_errors_fail_the_request() {
    let (mut memory, mut backend, blk) = setup(16 * 512, BlkOptions::default());
    // The second data piece is outside guest memory: the first is written,
    // the status says IOERR and the used length covers only what was written.
    header(&mut memory, VIRTIO_BLK_T_IN, 0);
    let chain =
        DescriptorChain::from_segments(0, &[r(HEADER, 16), w(BUFFER, 512), w(0x1_0000_0000, 512), w(STATUS, 1)])
            .unwrap();
    let completion = blk.handle(&mut memory, &mut backend, &chain);
    assert_eq!(completion.status, Some(VIRTIO_BLK_S_IOERR));
    assert_eq!(completion.used_len, 512);
    assert_eq!(status(&memory), VIRTIO_BLK_S_IOERR);

    // Write data outside memory.
    header(&mut memory, VIRTIO_BLK_T_OUT, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), r(0x1_0000_0000, 512), w(STATUS, 1)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain).status,
        Some(VIRTIO_BLK_S_IOERR)
    );

    backend.fail = true;
    for (kind, data) in [(VIRTIO_BLK_T_IN, w(BUFFER, 512)), (VIRTIO_BLK_T_OUT, r(BUFFER, 512))] {
        header(&mut memory, kind, 0);
        assert_eq!(
            blk.handle(&mut memory, &mut backend, &request(data)).status,
            Some(VIRTIO_BLK_S_IOERR)
        );
    }
    header(&mut memory, VIRTIO_BLK_T_FLUSH, 0);
    let chain = DescriptorChain::from_segments(0, &[r(HEADER, 16), w(STATUS, 1)]).unwrap();
    assert_eq!(
        blk.handle(&mut memory, &mut backend, &chain).status,
        Some(VIRTIO_BLK_S_IOERR)
    );
}

#[test]
fn serves_a_queue() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut backend = MemBackend::new(8 * 512);
    let blk = Blk::new(8 * 512, BlkOptions::default());
    let mut driver = Driver::new(16);
    let features = QueueFeatures::from_negotiated(blk.device_features());
    let mut queue = Queue::new(driver.config(), QUEUE_SIZE, features, blk.max_segments()).unwrap();

    // Three reads of one sector each: header, data, status in descriptors
    // 3i..3i+2 (buffers at DATA + 0x1000 × index, see Driver::add_chain).
    for request in 0..3u16 {
        let first = request * 3;
        driver.add_chain(&mut memory, first, &[(16, false), (512, true), (1, true)]);
        let mut header = [0u8; 16];
        header[8..].copy_from_slice(&u64::from(request).to_le_bytes());
        memory.write(DATA + 0x1000 * u64::from(first), &header).unwrap();
    }
    let processed = blk.process_queue(&mut queue, &mut memory, &mut backend, 2).unwrap();
    assert_eq!((processed.completed, processed.more), (2, true));
    assert!(processed.notify, "used_event 0 was crossed");
    // The driver saw entries 0 and 1 and asks to hear about entry 2.
    driver.set_used_event(&mut memory, 2);
    let processed = blk.process_queue(&mut queue, &mut memory, &mut backend, 64).unwrap();
    assert_eq!((processed.completed, processed.more), (1, false));
    assert!(processed.notify);
    for request in 0..3u16 {
        let (id, len) = driver.take_used(&memory).unwrap();
        assert_eq!((id, len), (u32::from(request * 3), 513));
        let data = DATA + 0x1000 * u64::from(request * 3 + 1);
        let start = usize::from(request) * 512;
        assert_eq!(memory.slice(data, 512), &backend.image[start..start + 512]);
    }
    assert_eq!(driver.take_used(&memory), None);

    // A hostile chain breaks the queue, and process_queue says so.
    driver.set_desc(&mut memory, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
    driver.publish(&mut memory, 0);
    let error = blk
        .process_queue(&mut queue, &mut memory, &mut backend, 64)
        .unwrap_err();
    assert!(error.needs_reset());
    assert!(queue.is_broken());
}

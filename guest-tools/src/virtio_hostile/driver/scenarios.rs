//! The scenarios: what each sends, what it expects, and the recovery
//! check after it.

use super::{status, Driver, Hardware, Verdict, USED_IDX};
use crate::hostile::Rng;
use crate::virtio_hostile::{
    avail_entry, garbage_descriptor, hex, request_header, sector_request, Descriptor, Expect, Page, Scenario,
    HEADER_LEN, ID_LEN, NOT_RAM, PAGE_SIZE, QUEUE_SIZE, REQUEST_HEADER, REQUEST_ID, REQUEST_STATUS, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};

/// Rounds of garbage `ring-rewrite` writes (each rewrites the table and kicks).
pub const REWRITE_ROUNDS: u32 = 32;

impl<H: Hardware> Driver<'_, H> {
    /// Runs one scenario with its recovery check.
    pub fn run(&mut self, scenario: Scenario) -> Verdict {
        let needs = scenario.needs_offered();
        if self.offered & needs != needs {
            return Verdict::Skipped(format!("device does not offer features {needs:#x}"));
        }
        let result = self.setup(scenario.features()).and_then(|()| self.attack(scenario));
        match result {
            Ok(note) => Verdict::Ok(note),
            Err(why) => Verdict::Failed(why),
        }
    }

    fn attack(&mut self, scenario: Scenario) -> Result<String, String> {
        if scenario == Scenario::ValidRead {
            let (sector, len) = self.valid_read()?;
            return Ok(format!("(sector 0 begins {}, used len {len})", hex(&sector[..16])));
        }
        let note = self.publish_bad(scenario)?;
        self.kick()?;
        match scenario.expect() {
            Expect::Status(expected) => {
                let (len, status) = self.expect_completion()?;
                if status != expected {
                    return Err(format!(
                        "status byte {status:#04x}, not {} (used len {len})",
                        status_name(expected)
                    ));
                }
                self.valid_read()
                    .map_err(|why| format!("{}, then without reset: {why}", status_name(expected)))?;
                Ok(format!("({}, then a valid read without reset)", status_name(expected)))
            }
            Expect::NeedsReset => {
                self.expect_needs_reset()?;
                self.recover()?;
                Ok("(DEVICE_NEEDS_RESET, then reset and a valid read)".into())
            }
            Expect::Survive => {
                let published = self.next_avail;
                self.wait_until(|driver| {
                    driver.hw.dma_observe_u16(Page::Used, USED_IDX) == published
                        || driver.status() & status::DEVICE_NEEDS_RESET != 0
                });
                let used = self.hw.dma_observe_u16(Page::Used, USED_IDX);
                let needs_reset = if self.status() & status::DEVICE_NEEDS_RESET != 0 {
                    "DEVICE_NEEDS_RESET"
                } else {
                    "no DEVICE_NEEDS_RESET"
                };
                self.recover()?;
                Ok(format!(
                    "({note}, {published} published, {used} completed, {needs_reset}; then reset and a valid read)"
                ))
            }
        }
    }

    /// Writes and publishes (without the last kick) what `scenario` sends.
    fn publish_bad(&mut self, scenario: Scenario) -> Result<String, String> {
        let buffers = self.buffers();
        let direct = sector_request(0, buffers, false);
        match scenario {
            Scenario::ValidRead => {}
            Scenario::BadAddress => {
                let mut request = direct;
                request[1].addr = NOT_RAM;
                self.prepare_request(VIRTIO_BLK_T_IN);
                self.write_descriptors(Page::Desc, &request);
                self.publish(0);
            }
            Scenario::WriteToReadonly => {
                // The data page holds sector 0 as read: were the write to
                // go through, it would change nothing.
                self.valid_read()?;
                self.prepare_request(VIRTIO_BLK_T_OUT);
                self.write_descriptors(Page::Desc, &sector_request(0, buffers, true));
                self.publish(0);
            }
            Scenario::DescriptorLoop => {
                self.prepare_request(VIRTIO_BLK_T_IN);
                let header = Descriptor { next: 0, ..direct[0] };
                self.write_descriptors(Page::Desc, &[header]);
                self.publish(0);
            }
            Scenario::HeadOutOfRange => {
                self.prepare_request(VIRTIO_BLK_T_IN);
                self.write_descriptors(Page::Desc, &direct);
                self.publish(200);
            }
            Scenario::AvailJump => {
                self.prepare_request(VIRTIO_BLK_T_IN);
                self.write_descriptors(Page::Desc, &direct);
                self.hw.dma_write(Page::Avail, avail_entry(0), &0u16.to_le_bytes());
                self.next_avail = 1000;
                self.publish_idx(1000);
            }
            Scenario::IndirectNotNegotiated | Scenario::IndirectLoop => {
                self.prepare_request(VIRTIO_BLK_T_IN);
                let mut table = direct;
                if scenario == Scenario::IndirectLoop {
                    table[0].next = 0;
                }
                self.write_descriptors(Page::Indirect, &table);
                let pointer = Descriptor {
                    addr: self.hw.page_gpa(Page::Indirect),
                    len: 3 * 16,
                    flags: VIRTQ_DESC_F_INDIRECT,
                    next: 0,
                };
                self.write_descriptors(Page::Desc, &[pointer]);
                self.publish(0);
            }
            Scenario::RingRewrite => return self.ring_rewrite(),
        }
        Ok(String::new())
    }

    /// A valid GET_ID request, then the descriptor table rewritten with
    /// [`garbage_descriptor`]s and the queue kicked, round after round,
    /// with more entries published while the ring has room (a head out of
    /// range now and then) and a pause after about half of the kicks.
    fn ring_rewrite(&mut self) -> Result<String, String> {
        let request = self.hw.page_gpa(Page::Request);
        self.hw.dma_write(Page::Request, 0, &[0; PAGE_SIZE]);
        self.hw
            .dma_write(Page::Request, REQUEST_HEADER, &request_header(VIRTIO_BLK_T_GET_ID, 0));
        let get_id = [
            Descriptor {
                addr: request + REQUEST_HEADER as u64,
                len: HEADER_LEN,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            Descriptor {
                addr: request + REQUEST_ID as u64,
                len: ID_LEN,
                flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
                next: 2,
            },
            Descriptor {
                addr: request + REQUEST_STATUS as u64,
                len: 1,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        ];
        self.write_descriptors(Page::Desc, &get_id);
        self.publish(0);
        self.kick()?;
        let mut rng = Rng::new(self.seed);
        let mut kicks = 1;
        for _ in 0..REWRITE_ROUNDS {
            let garbage: Vec<Descriptor> = (0..QUEUE_SIZE).map(|_| garbage_descriptor(&mut rng, request)).collect();
            self.write_descriptors(Page::Desc, &garbage);
            let used = self.hw.dma_observe_u16(Page::Used, USED_IDX);
            if self.next_avail.wrapping_sub(used) < QUEUE_SIZE {
                let head = if rng.chance(6) {
                    rng.in_range(u64::from(QUEUE_SIZE), 1 << 16) as u16
                } else {
                    rng.below(u64::from(QUEUE_SIZE)) as u16
                };
                self.publish(head);
            }
            if self.status() & status::DEVICE_NEEDS_RESET != 0 {
                break;
            }
            self.kick()?;
            kicks += 1;
            // Now and then let the device catch up, so it meets the table
            // at different moments of the rewriting.
            if rng.chance(50) {
                self.hw.pause();
            }
        }
        Ok(format!("{} kicks", kicks + 1))
    }
}

fn status_name(status: u8) -> String {
    match status {
        VIRTIO_BLK_S_OK => "OK".into(),
        VIRTIO_BLK_S_IOERR => "IOERR".into(),
        other => format!("status {other:#04x}"),
    }
}

/// Every scenario in order, one line each through `say`; true when none failed.
pub fn run_all<H: Hardware>(driver: &mut Driver<'_, H>, scenarios: &[Scenario], say: &dyn Fn(String)) -> bool {
    let mut ok = true;
    for &scenario in scenarios {
        let mut verdict = driver.run(scenario);
        if let Err(why) = driver.hardware().check_pages() {
            verdict = Verdict::Failed(why);
        }
        let line = match verdict {
            Verdict::Ok(note) => format!("ok {note}"),
            Verdict::Skipped(why) => format!("skipped ({why})"),
            Verdict::Failed(why) => {
                ok = false;
                format!("FAILED {why}")
            }
        };
        say(format!("keel-stress: virtio-hostile {scenario} {line}"));
    }
    // Leave the device reset and quiet.
    if let Err(why) = driver.reset() {
        say(format!("keel-stress: virtio-hostile final reset FAILED {why}"));
        ok = false;
    }
    ok
}

const _: () = assert!(REQUEST_ID + ID_LEN as usize <= REQUEST_STATUS && REQUEST_STATUS < PAGE_SIZE);

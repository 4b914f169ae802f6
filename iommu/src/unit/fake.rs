//! A register-level model of a remapping unit for host tests: the global
//! command/status handshake (with a configurable delay, or never
//! completing), register-based and queued invalidation (descriptors read
//! from the shared fake memory, wait statuses written back), fault
//! recording registers and protected memory. It also notes protocol
//! violations the driver must never commit.

use keel_memory::HostPhysAddr;

use crate::invalidation::{kind, Descriptor};
use crate::regs::{ccmd, event_control, iotlb, offset, pmen, GlobalCommand};
use crate::test_support::{FakeMemory, SharedMemory};
use crate::{RegisterAccess, TableMemory};

pub(crate) const FRO: u32 = 0x220;
pub(crate) const IRO: u32 = 0xf0;

/// QEMU-like: ND 16 bits, CM, SAGAW 39+48, MGAW 48, FRO 0x220, NFR 4,
/// SLLPS 2M+1G, PSI, MAMV 18, DRD/DWD.
pub(crate) const CAP: u64 = 6
    | 1 << 7
    | 0b00110 << 8
    | 47 << 16
    | ((FRO / 16) as u64) << 24
    | 0b11 << 34
    | 1 << 39
    | 3 << 40
    | 18 << 48
    | 0b11 << 54;
/// QI, IR, EIM, PT, IRO 0xf0, MHMV 15.
pub(crate) const ECAP: u64 = 1 << 1 | 1 << 3 | 1 << 4 | 1 << 6 | ((IRO / 16) as u64) << 8 | 15 << 20;

/// FSTS conditions that hold back a new fault event interrupt: PFO, PPF,
/// IQE, ICE, ITE.
const INTERRUPT_CONDITIONS: u32 = 0b111_0011;

const PERSISTENT: [GlobalCommand; 5] = [
    GlobalCommand::TranslationEnable,
    GlobalCommand::AdvancedFaultLogging,
    GlobalCommand::QueuedInvalidation,
    GlobalCommand::InterruptRemapping,
    GlobalCommand::CompatibilityFormatInterrupts,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    RootLatched(u64),
    InterruptTableLatched(u64),
    WriteBufferFlushed,
    Enabled(GlobalCommand, bool),
    RegisterContextInvalidation(u64),
    RegisterIotlbInvalidation(u64),
    Descriptor(Descriptor),
    /// The fault event interrupt was sent: (FEUADDR:FEADDR, FEDATA).
    FaultInterrupt(u64, u32),
}

#[derive(Debug)]
pub(crate) struct FakeUnit {
    pub(crate) cap: u64,
    pub(crate) ecap: u64,
    pub(crate) gsts: u32,
    /// GSTS reads before a command takes effect.
    pub(crate) delay: u32,
    /// Commands and invalidations never complete.
    pub(crate) stuck: bool,
    /// The queue is never processed (wait descriptors never complete).
    pub(crate) queue_stalled: bool,
    /// Descriptors of this type make the unit stop with FSTS.IQE.
    pub(crate) reject_kind: Option<u64>,
    pub(crate) rtaddr: u64,
    pub(crate) irta: u64,
    pub(crate) iqa: u64,
    pub(crate) iqh: u64,
    pub(crate) iqt: u64,
    pub(crate) fsts: u32,
    pub(crate) fectl: u32,
    pub(crate) fedata: u32,
    pub(crate) feaddr: u64,
    pub(crate) pmen: u32,
    pub(crate) ccmd: u64,
    pub(crate) iotlb: u64,
    pub(crate) faults: Vec<[u64; 2]>,
    /// Recorded (into register .0) when software clears the first F bit:
    /// a fault arriving while the registers are being drained.
    pub(crate) fault_during_drain: Option<(usize, u64, u64)>,
    /// FEDATA bits that do not hold what is written (a broken unit).
    pub(crate) fedata_stuck: u32,
    pub(crate) events: Vec<Event>,
    pub(crate) violations: Vec<&'static str>,
    pub(crate) gcmd_writes: Vec<u32>,
    pending: Option<(u32, u32)>,
    pub(crate) mem: SharedMemory,
}

impl FakeUnit {
    pub(crate) fn new(mem: SharedMemory) -> Self {
        Self {
            cap: CAP,
            ecap: ECAP,
            gsts: 0,
            delay: 2,
            stuck: false,
            queue_stalled: false,
            reject_kind: None,
            rtaddr: 0,
            irta: 0,
            iqa: 0,
            iqh: 0,
            iqt: 0,
            fsts: 0,
            fectl: 1 << 31,
            fedata: 0,
            feaddr: 0,
            pmen: 0,
            ccmd: 0,
            iotlb: 0,
            faults: vec![[0, 0]; 4],
            fault_during_drain: None,
            fedata_stuck: 0,
            events: Vec::new(),
            violations: Vec::new(),
            gcmd_writes: Vec::new(),
            pending: None,
            mem,
        }
    }

    /// Records a fault in register `index` as hardware would (VT-d
    /// §7.3.1, §10.4.10): a register still holding a fault means overflow
    /// (PFO); the fault event interrupt is raised only when no status
    /// condition (PPF, PFO, IQE, ICE, ITE) was already set, held pending
    /// (FECTL.IP) while masked.
    pub(crate) fn record_fault(&mut self, index: usize, lower: u64, upper: u64) {
        let earlier = self.status() & INTERRUPT_CONDITIONS != 0;
        if self.faults[index][1] >> 63 != 0 {
            self.fsts |= 1;
        } else {
            self.faults[index] = [lower, upper | 1 << 63];
            if !earlier {
                self.fsts = self.fsts & !0xff00 | (index as u32) << 8;
            }
        }
        if !earlier {
            self.fectl |= event_control::IP;
            self.deliver_held_interrupt();
        }
    }

    /// FSTS as software reads it: PPF from the registers' F bits.
    fn status(&self) -> u32 {
        let pending = self.faults.iter().any(|record| record[1] >> 63 != 0);
        self.fsts & !(1 << 1) | u32::from(pending) << 1
    }

    /// Sends the held interrupt if unmasked; drops it once software has
    /// cleared every condition.
    fn deliver_held_interrupt(&mut self) {
        if self.fectl & event_control::IP == 0 {
            return;
        }
        if self.fectl & event_control::IM == 0 {
            self.events.push(Event::FaultInterrupt(self.feaddr, self.fedata));
            self.fectl &= !event_control::IP;
        } else if self.status() & INTERRUPT_CONDITIONS == 0 {
            self.fectl &= !event_control::IP;
        }
    }

    /// The fault interrupts sent so far.
    pub(crate) fn fault_interrupts(&self) -> usize {
        self.events
            .iter()
            .filter(|event| matches!(event, Event::FaultInterrupt(..)))
            .count()
    }

    fn memory(&self) -> std::cell::RefMut<'_, FakeMemory> {
        self.mem.0.borrow_mut()
    }

    fn write_gcmd(&mut self, value: u32) {
        self.gcmd_writes.push(value);
        let current = self.gsts;
        let changed: Vec<_> = PERSISTENT
            .into_iter()
            .filter(|command| (value ^ current) & command.bit() != 0)
            .collect();
        let one_shots: Vec<_> = [
            GlobalCommand::SetRootTablePointer,
            GlobalCommand::SetFaultLog,
            GlobalCommand::WriteBufferFlush,
            GlobalCommand::SetInterruptRemapTablePointer,
        ]
        .into_iter()
        .filter(|command| value & command.bit() != 0)
        .collect();
        if changed.len() + one_shots.len() > 1 {
            self.violations.push("GCMD write changes more than one thing");
        }
        let mut target = current;
        for command in &changed {
            let enable = value & command.bit() != 0;
            match (command, enable) {
                (GlobalCommand::TranslationEnable, true) if current & (1 << 30) == 0 => {
                    self.violations.push("translation enabled without a root table")
                }
                (GlobalCommand::InterruptRemapping, true) if current & (1 << 24) == 0 => {
                    self.violations.push("interrupt remapping enabled without a table")
                }
                (GlobalCommand::QueuedInvalidation, true) if self.iqt != 0 => {
                    self.violations.push("queue enabled with IQT not 0")
                }
                (GlobalCommand::QueuedInvalidation, false) if self.iqh != self.iqt => {
                    self.violations.push("queue disabled while not empty")
                }
                _ => {}
            }
            target ^= command.bit();
        }
        for command in &one_shots {
            match command {
                GlobalCommand::SetRootTablePointer => {
                    self.gsts &= !command.bit();
                    target |= command.bit();
                }
                GlobalCommand::SetInterruptRemapTablePointer => {
                    self.gsts &= !command.bit();
                    target |= command.bit();
                }
                GlobalCommand::WriteBufferFlush => {
                    self.gsts |= command.bit();
                    target &= !command.bit();
                }
                _ => {}
            }
        }
        self.pending = Some((target, self.delay));
    }

    fn apply_pending(&mut self) {
        if self.stuck {
            return;
        }
        let Some((target, countdown)) = self.pending else {
            return;
        };
        if countdown > 0 {
            self.pending = Some((target, countdown - 1));
            return;
        }
        self.pending = None;
        let rose = target & !self.gsts;
        let fell = self.gsts & !target;
        for command in PERSISTENT {
            if rose & command.bit() != 0 {
                if command == GlobalCommand::QueuedInvalidation {
                    self.iqh = 0;
                }
                self.events.push(Event::Enabled(command, true));
            }
            if fell & command.bit() != 0 {
                self.events.push(Event::Enabled(command, false));
            }
        }
        if rose & GlobalCommand::SetRootTablePointer.bit() != 0 {
            self.events.push(Event::RootLatched(self.rtaddr));
        }
        if rose & GlobalCommand::SetInterruptRemapTablePointer.bit() != 0 {
            self.events.push(Event::InterruptTableLatched(self.irta));
        }
        if fell & GlobalCommand::WriteBufferFlush.bit() != 0 {
            self.events.push(Event::WriteBufferFlushed);
        }
        self.gsts = target;
    }

    /// Consumes descriptors from IQH up to IQT.
    fn process_queue(&mut self) {
        if self.queue_stalled || self.gsts & GlobalCommand::QueuedInvalidation.bit() == 0 {
            return;
        }
        let base = self.iqa & !0xfff;
        let entries = 256u64 << (self.iqa & 7);
        while self.iqh != self.iqt && self.fsts & (1 << 4) == 0 {
            let slot = self.iqh >> 4;
            let address = base + slot * 16;
            let descriptor = {
                let mem = self.memory();
                Descriptor {
                    low: mem.read_u64(HostPhysAddr::new(address)),
                    high: mem.read_u64(HostPhysAddr::new(address + 8)),
                }
            };
            if Some(descriptor.kind()) == self.reject_kind {
                self.fsts |= 1 << 4;
                return;
            }
            if descriptor.kind() == kind::INVALIDATION_WAIT && descriptor.low & 1 << 5 != 0 {
                self.memory().write_u32(descriptor.high, (descriptor.low >> 32) as u32);
            }
            self.events.push(Event::Descriptor(descriptor));
            self.iqh = ((slot + 1) % entries) << 4;
        }
    }

    fn fault_register(&self, register: u32) -> Option<(usize, u32)> {
        let relative = register.checked_sub(FRO)?;
        let index = (relative / 16) as usize;
        (index < self.faults.len()).then_some((index, relative % 16))
    }
}

impl RegisterAccess for FakeUnit {
    fn read32(&mut self, register: u32) -> u32 {
        match register {
            offset::VER => 0x10,
            offset::GSTS => {
                self.apply_pending();
                self.gsts
            }
            offset::FSTS => self.status(),
            offset::FECTL => self.fectl,
            offset::FEDATA => self.fedata,
            offset::FEADDR => self.feaddr as u32,
            offset::FEUADDR => (self.feaddr >> 32) as u32,
            offset::PMEN => self.pmen,
            _ => panic!("32-bit read of {register:#x}"),
        }
    }

    fn read64(&mut self, register: u32) -> u64 {
        match register {
            offset::CAP => self.cap,
            offset::ECAP => self.ecap,
            offset::CCMD => {
                if !self.stuck {
                    self.ccmd &= !ccmd::ICC;
                }
                self.ccmd
            }
            offset::IQH => {
                self.process_queue();
                self.iqh
            }
            offset::IQT => self.iqt,
            register if register == IRO + offset::IOTLB_FROM_IRO => {
                if !self.stuck {
                    self.iotlb &= !iotlb::IVT;
                }
                self.iotlb
            }
            register => match self.fault_register(register) {
                Some((index, 0)) => self.faults[index][0],
                Some((index, 8)) => self.faults[index][1],
                _ => panic!("64-bit read of {register:#x}"),
            },
        }
    }

    fn write32(&mut self, register: u32, value: u32) {
        match register {
            offset::GCMD => self.write_gcmd(value),
            offset::FSTS => {
                self.fsts &= !(value & 0x7d);
                self.deliver_held_interrupt();
            }
            offset::FECTL => {
                // IP is read-only; IM is the only bit software sets.
                self.fectl = self.fectl & event_control::IP | value & event_control::IM;
                self.deliver_held_interrupt();
            }
            offset::FEDATA => self.fedata = value & !self.fedata_stuck,
            offset::FEADDR => self.feaddr = self.feaddr & !0xffff_ffff | u64::from(value),
            offset::FEUADDR => self.feaddr = self.feaddr & 0xffff_ffff | u64::from(value) << 32,
            offset::PMEN => {
                self.pmen = value & pmen::EPM | u32::from(value & pmen::EPM != 0);
            }
            register => match self.fault_register(register) {
                Some((index, 12)) if value & 1 << 31 != 0 => {
                    self.faults[index][1] &= !(1 << 63);
                    if let Some((index, lower, upper)) = self.fault_during_drain.take() {
                        self.record_fault(index, lower, upper);
                    }
                    self.deliver_held_interrupt();
                }
                _ => panic!("32-bit write of {register:#x}"),
            },
        }
    }

    fn write64(&mut self, register: u32, value: u64) {
        match register {
            offset::RTADDR => self.rtaddr = value,
            offset::IRTA => self.irta = value,
            offset::IQA => self.iqa = value,
            offset::IQT => {
                self.iqt = value;
                self.process_queue();
            }
            offset::CCMD => {
                if self.gsts & GlobalCommand::QueuedInvalidation.bit() != 0 {
                    self.violations.push("register invalidation while the queue is on");
                }
                self.events.push(Event::RegisterContextInvalidation(value));
                self.ccmd = value;
            }
            register if register == IRO + offset::IOTLB_FROM_IRO => {
                if self.gsts & GlobalCommand::QueuedInvalidation.bit() != 0 {
                    self.violations.push("register invalidation while the queue is on");
                }
                self.events.push(Event::RegisterIotlbInvalidation(value));
                self.iotlb = value;
            }
            _ => panic!("64-bit write of {register:#x}"),
        }
    }
}

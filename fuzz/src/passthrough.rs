//! The `passthrough` target: an assigned PCI function
//! (`keel_devices::passthrough::PassthroughFunction`, with the emulated
//! MSI/MSI-X capabilities, table and PBA of `keel_devices::passthrough_msi`)
//! driven by a hostile guest through configuration space and the trapped
//! MSI-X pages, with Keel's side (fires, `take_*`, releases) interleaved.
//!
//! Input format ([`Layout`], then [`Op`]s until the input ends):
//!
//! ```text
//! u8   flags: bit 0 MSI, bit 1 MSI-X, bit 2 BAR 0 is 64-bit,
//!      bit 3 a 64-bit BAR 2, bit 4 an I/O BAR 4
//! u8   BAR 0 size: 4 KiB << (byte % 9)        (4 KiB..1 MiB)
//! u8   BAR 2 size: 4 KiB << (byte % 9)
//! u16  the host MSI Message Control
//! u16  the host MSI-X Message Control (Table Size: bits 10:0)
//! u32  the host MSI-X Table Offset/BIR
//! u32  the host MSI-X PBA Offset/BIR
//! u64  hidden device-specific bytes: bit i hides 0x40 + 3i..0x40 + 3i + 3
//! then per operation an opcode byte (low nibble: the operation, see
//! Op::decode) and its operands.
//! ```
//!
//! After every step the harness checks what Keel relies on (see
//! [`check`]); a failed `assert!` is a finding.

use keel_devices::passthrough::{DeviceSpecific, PassthroughFunction, DEVICE_SPECIFIC_BYTES};
use keel_devices::passthrough_msi::{
    HostCapabilities, HostMsix, MsixRegion, MSIX_CAPABILITY_BYTES, MSIX_CAPABILITY_ID, MSIX_GUEST_OFFSET,
    MSI_CAPABILITY_ID, MSI_GUEST_OFFSET,
};
use keel_devices::pci_config::{Bar, BarKind, PciIdentity};
use keel_devices::pci_host::PciFunction;
use keel_devices::{InterruptMessage, Platform, PowerAction};

use crate::{Input, Output};

const PAGE: u64 = 4096;
const BAR0_ADDRESS: u64 = 0xfe00_0000;
const BAR2_ADDRESS: u64 = 0x80_0000_0000;
const IO_BAR4_ADDRESS: u64 = 0xc000;
const IO_BAR4_SIZE: u64 = 32;
/// Linux's `PCI_FIND_CAP_TTL`.
const CAPABILITY_TTL: usize = 48;
const STATUS_CAPABILITIES_LIST: u32 = 1 << 4;

/// `config_write` uses none of it; the trait wants one.
struct NoPlatform;

impl Platform for NoPlatform {
    fn set_irq_line(&mut self, _gsi: u32, _asserted: bool) {}
    fn deliver_interrupt(&mut self, _message: InterruptMessage) {}
    fn console_output(&mut self, _byte: u8) {}
    fn power(&mut self, _action: PowerAction) {}
    fn now_ns(&self) -> u64 {
        0
    }
}

/// The function the host has: its BARs, capabilities and hidden registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub msi_control: Option<u16>,
    pub msix: Option<HostMsix>,
    pub bar0_64bit: bool,
    /// log2 of BAR 0's size minus 12: 0..=8.
    pub bar0_size: u8,
    /// log2 of the 64-bit BAR 2's size minus 12, if there is one.
    pub bar2_size: Option<u8>,
    pub io_bar4: bool,
    pub hidden: u64,
}

impl Layout {
    const MSI: u8 = 1;
    const MSIX: u8 = 1 << 1;
    const BAR0_64BIT: u8 = 1 << 2;
    const BAR2: u8 = 1 << 3;
    const IO_BAR4: u8 = 1 << 4;

    pub fn decode(input: &mut Input) -> Self {
        let flags = input.u8();
        let bar0_size = input.u8() % 9;
        let bar2_size = input.u8() % 9;
        let msi_control = input.u16();
        let msix_control = input.u16();
        let table = input.u32();
        let pba = input.u32();
        let hidden = input.u64();
        let has = |bit: u8| flags & bit != 0;
        Self {
            msi_control: has(Self::MSI).then_some(msi_control),
            msix: has(Self::MSIX).then_some(HostMsix {
                control: msix_control,
                table,
                pba,
            }),
            bar0_64bit: has(Self::BAR0_64BIT),
            bar0_size,
            bar2_size: has(Self::BAR2).then_some(bar2_size),
            io_bar4: has(Self::IO_BAR4),
            hidden,
        }
    }

    pub fn encode(&self, out: &mut Output) {
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(self.msi_control.is_some(), Self::MSI)
            | flag(self.msix.is_some(), Self::MSIX)
            | flag(self.bar0_64bit, Self::BAR0_64BIT)
            | flag(self.bar2_size.is_some(), Self::BAR2)
            | flag(self.io_bar4, Self::IO_BAR4);
        let msix = self.msix.unwrap_or(HostMsix {
            control: 0,
            table: 0,
            pba: 0,
        });
        out.u8(flags)
            .u8(self.bar0_size)
            .u8(self.bar2_size.unwrap_or(0))
            .u16(self.msi_control.unwrap_or(0))
            .u16(msix.control)
            .u32(msix.table)
            .u32(msix.pba)
            .u64(self.hidden);
    }

    fn bars(&self) -> Vec<(usize, Bar)> {
        let mut bars = vec![(
            0,
            Bar {
                kind: if self.bar0_64bit {
                    BarKind::Memory64 { prefetchable: false }
                } else {
                    BarKind::Memory32 { prefetchable: false }
                },
                size: PAGE << self.bar0_size,
                address: BAR0_ADDRESS,
            },
        )];
        if let Some(size) = self.bar2_size {
            bars.push((
                2,
                Bar {
                    kind: BarKind::Memory64 { prefetchable: true },
                    size: PAGE << size,
                    address: BAR2_ADDRESS,
                },
            ));
        }
        if self.io_bar4 {
            bars.push((
                4,
                Bar {
                    kind: BarKind::Io,
                    size: IO_BAR4_SIZE,
                    address: IO_BAR4_ADDRESS,
                },
            ));
        }
        bars
    }

    fn device_specific(&self) -> DeviceSpecific {
        let mut registers = DeviceSpecific::default();
        for index in 0..DEVICE_SPECIFIC_BYTES {
            registers.bytes[index] = (index as u8) ^ 0xA5;
            registers.hidden[index] = self.hidden & (1 << (index / 3)) != 0;
        }
        registers
    }

    /// The function as Keel builds it, and whether its interrupt
    /// capabilities were accepted.
    pub fn build(&self) -> (PassthroughFunction, bool) {
        let identity = PciIdentity::new(0x1b36, 0x0010, 0x010802, 2);
        let mut function = PassthroughFunction::new(identity, &self.bars(), 1, 16)
            .expect("the harness builds valid BARs")
            .with_device_specific(self.device_specific());
        let host = HostCapabilities {
            msi_control: self.msi_control,
            msix: self.msix,
        };
        let accepted =
            (host.msi_control.is_some() || host.msix.is_some()) && function.set_interrupt_capabilities(host).is_ok();
        (function, accepted)
    }
}

/// Where an MMIO access goes: anywhere, or relative to the MSI-X table or
/// PBA (in its BAR), so the fuzzer need not find their offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioAt {
    Absolute { bar: u8, offset: u64 },
    Table(u16),
    Pba(u16),
}

/// One step of the guest or of Keel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ConfigRead { offset: u16, size: u8 },
    ConfigWrite { offset: u16, size: u8, value: u32 },
    MmioRead { at: MmioAt, size: u8 },
    MmioWrite { at: MmioAt, size: u8, value: u64 },
    FireMsi(u8),
    FireMsix(u16),
    TakeConfigWrites,
    TakeCommandChange,
    TakeBarMoves,
    TakeMsiChange,
    TakeMsixChange,
    MsiUnmaskReleased,
    MsixUnmaskReleased,
    SetIntxPending(bool),
}

/// Opcode modifier (bit 4) for configuration accesses: the offset is the
/// raw u16, not masked to 0..0x200.
const RAW_OFFSET: u8 = 1 << 4;
/// Opcode bits 5:4 for MMIO accesses: where the offset is from.
const MMIO_ABSOLUTE: u8 = 0;
const MMIO_TABLE: u8 = 1;
const MMIO_PBA: u8 = 2;
const MMIO_ABSOLUTE_WIDE: u8 = 3;

impl Op {
    /// The next operation, or `None` at the end of the input.
    pub fn decode(input: &mut Input) -> Option<Self> {
        if input.is_empty() {
            return None;
        }
        let opcode = input.u8();
        let modifier = opcode >> 4;
        let config_offset = |input: &mut Input| {
            let raw = input.u16();
            if opcode & RAW_OFFSET != 0 {
                raw
            } else {
                raw & 0x1FF
            }
        };
        let mmio_at = |input: &mut Input| match modifier & 3 {
            MMIO_ABSOLUTE => MmioAt::Absolute {
                bar: input.u8() % 8,
                offset: u64::from(input.u32()),
            },
            MMIO_TABLE => MmioAt::Table(input.u16()),
            MMIO_PBA => MmioAt::Pba(input.u16()),
            _ => MmioAt::Absolute {
                bar: input.u8(),
                offset: input.u64(),
            },
        };
        let size = |input: &mut Input| input.u8() % 9;
        Some(match opcode & 0xF {
            0 => Op::ConfigRead {
                offset: config_offset(input),
                size: size(input),
            },
            1 | 14 => Op::ConfigWrite {
                offset: config_offset(input),
                size: size(input),
                value: input.u32(),
            },
            2 => Op::MmioRead {
                at: mmio_at(input),
                size: size(input),
            },
            3 | 15 => Op::MmioWrite {
                at: mmio_at(input),
                size: size(input),
                value: input.u64(),
            },
            4 => Op::FireMsi(input.u8()),
            5 => Op::FireMsix(input.u16()),
            6 => Op::TakeConfigWrites,
            7 => Op::TakeCommandChange,
            8 => Op::TakeBarMoves,
            9 => Op::TakeMsiChange,
            10 => Op::TakeMsixChange,
            11 => Op::MsiUnmaskReleased,
            12 => Op::MsixUnmaskReleased,
            _ => Op::SetIntxPending(modifier & 1 != 0),
        })
    }

    pub fn encode(&self, out: &mut Output) {
        let config = |out: &mut Output, code: u8, offset: u16, size: u8| {
            let raw = if offset > 0x1FF { RAW_OFFSET } else { 0 };
            out.u8(code | raw).u16(offset).u8(size);
        };
        let mmio = |out: &mut Output, code: u8, at: MmioAt, size: u8| {
            match at {
                MmioAt::Absolute { bar, offset } if bar < 8 && offset <= u64::from(u32::MAX) => {
                    out.u8(code | MMIO_ABSOLUTE << 4).u8(bar).u32(offset as u32)
                }
                MmioAt::Absolute { bar, offset } => out.u8(code | MMIO_ABSOLUTE_WIDE << 4).u8(bar).u64(offset),
                MmioAt::Table(delta) => out.u8(code | MMIO_TABLE << 4).u16(delta),
                MmioAt::Pba(delta) => out.u8(code | MMIO_PBA << 4).u16(delta),
            };
            out.u8(size);
        };
        match *self {
            Op::ConfigRead { offset, size } => config(out, 0, offset, size),
            Op::ConfigWrite { offset, size, value } => {
                config(out, 1, offset, size);
                out.u32(value);
            }
            Op::MmioRead { at, size } => mmio(out, 2, at, size),
            Op::MmioWrite { at, size, value } => {
                mmio(out, 3, at, size);
                out.u64(value);
            }
            Op::FireMsi(vector) => {
                out.u8(4).u8(vector);
            }
            Op::FireMsix(entry) => {
                out.u8(5).u16(entry);
            }
            Op::TakeConfigWrites => {
                out.u8(6);
            }
            Op::TakeCommandChange => {
                out.u8(7);
            }
            Op::TakeBarMoves => {
                out.u8(8);
            }
            Op::TakeMsiChange => {
                out.u8(9);
            }
            Op::TakeMsixChange => {
                out.u8(10);
            }
            Op::MsiUnmaskReleased => {
                out.u8(11);
            }
            Op::MsixUnmaskReleased => {
                out.u8(12);
            }
            Op::SetIntxPending(pending) => {
                out.u8(13 | u8::from(pending) << 4);
            }
        }
    }
}

/// A whole input: the layout and the operations.
pub fn encode(layout: &Layout, ops: &[Op]) -> Vec<u8> {
    let mut out = Output::default();
    layout.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out.bytes
}

/// How far a run got, for the tests to show the harness reaches the
/// interesting states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// The interrupt capabilities were accepted.
    pub capabilities: bool,
    /// MMIO writes that changed an MSI-X table entry (`take_msix_change`
    /// said so right after).
    pub table_changes: usize,
    /// Messages `fire_msi` / `fire_msix` delivered.
    pub msi_delivered: usize,
    pub msix_delivered: usize,
    /// Messages the unmask releases delivered.
    pub released: usize,
    /// Bar moves that map somewhere.
    pub bar_maps: usize,
    /// Bytes forwarded to the device's registers.
    pub config_writes: usize,
}

/// The fuzz target's entry point.
pub fn guest_accesses(data: &[u8]) {
    run(data);
}

/// Runs the input; see the module documentation.
pub fn run(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    let layout = Layout::decode(&mut input);
    let (mut function, accepted) = layout.build();
    let mut reached = Reached {
        capabilities: accepted,
        ..Reached::default()
    };
    let mut platform = NoPlatform;
    check(&mut function, &layout);
    while let Some(op) = Op::decode(&mut input) {
        step(&mut function, &layout, op, &mut platform, &mut reached);
        check(&mut function, &layout);
    }
    // What Keel would collect at the end is checked too.
    let writes = function.take_config_writes();
    check_config_writes(&function, &layout, &writes);
    check_bar_moves(&mut function);
    reached
}

fn region_claims(region: Option<MsixRegion>, bar: usize, offset: u64, size: u8) -> bool {
    let Ok(bar) = u8::try_from(bar) else {
        return false;
    };
    region.is_some_and(|region| region.overlaps(bar, offset, size))
}

fn step(function: &mut PassthroughFunction, layout: &Layout, op: Op, platform: &mut NoPlatform, reached: &mut Reached) {
    let table = function.msix().map(|msix| msix.table_region());
    let pba = function.msix().map(|msix| msix.pba_region());
    let resolve = |at: MmioAt| -> (usize, u64) {
        let relative = |region: Option<MsixRegion>, delta: u16| {
            region.map_or((0, u64::from(delta)), |region| {
                (usize::from(region.bar), u64::from(region.offset) + u64::from(delta))
            })
        };
        match at {
            MmioAt::Absolute { bar, offset } => (usize::from(bar), offset),
            MmioAt::Table(delta) => relative(table, delta),
            MmioAt::Pba(delta) => relative(pba, delta),
        }
    };
    match op {
        Op::ConfigRead { offset, size } => {
            let value = function.config_read(offset, size);
            // At most four bytes come back, and no more than asked for.
            let bits = 8 * u32::from(size.min(4));
            assert!(
                bits == 32 || value >> bits == 0,
                "a {size}-byte read at {offset:#x} returned {value:#x}"
            );
        }
        Op::ConfigWrite { offset, size, value } => function.config_write(offset, size, value, platform),
        Op::MmioRead { at, size } => {
            let (bar, offset) = resolve(at);
            let claimed = region_claims(table, bar, offset, size) || region_claims(pba, bar, offset, size);
            let value = function.msix_mmio_read(bar, offset, size);
            assert_eq!(
                value.is_some(),
                claimed,
                "MSI-X read of BAR {bar} + {offset:#x} ({size} bytes): answered {value:?}, claimed {claimed}"
            );
        }
        Op::MmioWrite { at, size, value } => {
            let (bar, offset) = resolve(at);
            let claimed = region_claims(table, bar, offset, size) || region_claims(pba, bar, offset, size);
            let before = function.msix().map(|msix| msix.table().clone());
            // Earlier changes are taken first, so the flag speaks for this write.
            let _ = function.take_msix_change();
            let taken = function.msix_mmio_write(bar, offset, size, value);
            assert_eq!(
                taken, claimed,
                "MSI-X write of BAR {bar} + {offset:#x} ({size} bytes): taken {taken}, claimed {claimed}"
            );
            let changed = function.take_msix_change();
            let after = function.msix().map(|msix| msix.table().clone());
            // A change is reported exactly when an entry changed (the PBA
            // and the pending bits are not the guest's to write).
            let entries_changed = match (&before, &after) {
                (Some(before), Some(after)) => (0..before.len()).any(|index| before.entry(index) != after.entry(index)),
                _ => false,
            };
            assert_eq!(
                changed, entries_changed,
                "MSI-X write of BAR {bar} + {offset:#x}: change reported {changed}, entries changed {entries_changed}"
            );
            if let (Some(before), Some(after)) = (&before, &after) {
                assert!(
                    (0..before.len()).all(|index| before.pending(index) == after.pending(index)),
                    "a guest write changed the PBA"
                );
            }
            if !claimed {
                assert_eq!(before, after, "an unclaimed write changed the table");
            }
            reached.table_changes += usize::from(changed);
        }
        Op::FireMsi(vector) => {
            let message = function.fire_msi(vector);
            if message.is_some() {
                let state = function.msi_state().expect("an MSI fired without an MSI capability");
                assert!(state.enabled, "an MSI fired while disabled");
                assert!(
                    u32::from(vector) < u32::from(state.vectors),
                    "MSI vector {vector} fired"
                );
                reached.msi_delivered += 1;
            }
        }
        Op::FireMsix(entry) => {
            let message = function.fire_msix(entry);
            if let Some(message) = message {
                let msix = function.msix().expect("an MSI-X entry fired without MSI-X");
                let control = msix.control();
                assert!(entry < msix.table().len(), "MSI-X entry {entry} does not exist");
                assert!(
                    control.enabled && !control.function_masked,
                    "MSI-X fired while off or masked"
                );
                let programmed = msix.entry(entry).expect("exists");
                assert!(!programmed.masked, "a masked MSI-X entry fired");
                assert_eq!((message.address, message.data), (programmed.address, programmed.data));
                reached.msix_delivered += 1;
            }
        }
        Op::TakeConfigWrites => {
            let writes = function.take_config_writes();
            check_config_writes(function, layout, &writes);
            reached.config_writes += writes.len();
        }
        Op::TakeCommandChange => {
            if let Some(command) = function.take_command_change() {
                assert_eq!(
                    command & !keel_devices::passthrough::FORWARDED_COMMAND_BITS,
                    0,
                    "command bits {command:#x} forwarded"
                );
            }
        }
        Op::TakeBarMoves => reached.bar_maps += check_bar_moves(function),
        Op::TakeMsiChange => {
            if let Some(state) = function.take_msi_change() {
                assert!(function.msi().is_some(), "an MSI change without MSI");
                assert_eq!(
                    state.address & 3,
                    0,
                    "MSI address {:#x} not dword aligned",
                    state.address
                );
            }
        }
        Op::TakeMsixChange => {
            let _ = function.take_msix_change();
        }
        Op::MsiUnmaskReleased => {
            let released: Vec<_> = function.msi_unmask_released().collect();
            if !released.is_empty() {
                let state = function.msi_state().expect("an MSI released without MSI");
                assert!(state.enabled, "an MSI released while disabled");
            }
            reached.released += released.len();
        }
        Op::MsixUnmaskReleased => {
            let released = function.msix_unmask_released();
            if !released.is_empty() {
                let msix = function.msix().expect("an MSI-X released without MSI-X");
                let control = msix.control();
                assert!(
                    control.enabled && !control.function_masked,
                    "MSI-X released while off or masked"
                );
                assert!(released.len() <= usize::from(msix.table().len()));
            }
            reached.released += released.len();
        }
        Op::SetIntxPending(pending) => {
            function.set_intx_pending(pending);
            assert_eq!(function.intx_pending(), pending);
        }
    }
}

/// Forwarded configuration writes: past the header, inside configuration
/// space, never in an emulated capability structure (the real device's
/// MSI/MSI-X registers), never to a hidden byte.
fn check_config_writes(function: &PassthroughFunction, layout: &Layout, writes: &[(u16, u8)]) {
    let mut emulated: Vec<(u16, u16)> = Vec::new();
    if let Some(msi) = function.msi() {
        let start = u16::from(msi.offset());
        assert_eq!(start, u16::from(MSI_GUEST_OFFSET));
        emulated.push((start, start + u16::from(msi.structure_bytes())));
    }
    if let Some(msix) = function.msix() {
        let start = u16::from(msix.offset());
        assert_eq!(start, u16::from(MSIX_GUEST_OFFSET));
        emulated.push((start, start + u16::from(MSIX_CAPABILITY_BYTES)));
    }
    let hidden = layout.device_specific().hidden;
    for &(offset, byte) in writes {
        assert!(
            (0x40..0x100).contains(&offset),
            "a write to {offset:#x} (= {byte:#x}) forwarded to the device"
        );
        assert!(
            !emulated.iter().any(|(start, end)| (*start..*end).contains(&offset)),
            "a guest write to the emulated capability byte {offset:#x} (= {byte:#x}) reached the real device"
        );
        assert!(
            !hidden[usize::from(offset - 0x40)],
            "a guest write to the hidden byte {offset:#x} (= {byte:#x}) reached the real device"
        );
    }
}

/// Takes the BAR moves and checks them; returns how many map somewhere.
fn check_bar_moves(function: &mut PassthroughFunction) -> usize {
    let moves = function.take_bar_moves();
    let mut maps = 0;
    for (at, bar_move) in moves.iter().enumerate() {
        let host = function
            .host_bar(bar_move.index)
            .expect("a move of a BAR the host lacks");
        assert!(host.kind.is_memory(), "a move of I/O BAR {}", bar_move.index);
        assert_eq!((bar_move.host, bar_move.size), (host.address, host.size));
        assert_eq!(
            bar_move.pieces,
            function.bar_pieces(bar_move.index),
            "BAR {} moved with other pieces than it has",
            bar_move.index
        );
        assert_ne!(
            bar_move.from, bar_move.to,
            "BAR {} moved to where it was",
            bar_move.index
        );
        assert!(
            moves[..at].iter().all(|earlier| earlier.index != bar_move.index),
            "BAR {} moved twice in one batch",
            bar_move.index
        );
        maps += usize::from(bar_move.to.is_some());
    }
    maps
}

/// Walks the capability list as Linux does (`__pci_find_next_cap_ttl`):
/// (offset, ID) of each, and whether the walk ended by itself.
fn walk_capabilities(function: &mut PassthroughFunction) -> (Vec<(u8, u8)>, bool) {
    let mut found = Vec::new();
    let mut pointer = function.config_read(0x34, 1) as u8;
    for _ in 0..CAPABILITY_TTL {
        if pointer < 0x40 {
            return (found, true);
        }
        pointer &= !3;
        let header = function.config_read(u16::from(pointer), 2);
        let id = header as u8;
        if id == 0xFF {
            return (found, true);
        }
        found.push((pointer, id));
        pointer = (header >> 8) as u8;
    }
    (found, false)
}

/// What must hold after every step.
fn check(function: &mut PassthroughFunction, layout: &Layout) {
    let trapped = function.trapped_pages();
    let table = function.msix().map(|msix| msix.table_region());
    let pba = function.msix().map(|msix| msix.pba_region());
    for pages in &trapped {
        let host = function.host_bar(pages.bar);
        assert!(
            host.is_some_and(|bar| bar.kind.is_memory()),
            "trapped pages in BAR {}, not a memory BAR",
            pages.bar
        );
    }
    for (index, _) in layout.bars() {
        let Some(host) = function.host_bar(index).filter(|bar| bar.kind.is_memory()) else {
            continue;
        };
        let size = host.size;
        // The mapped pieces and the trapped pages tile the BAR.
        let mut tiles: Vec<(u64, u64, bool)> = function
            .bar_pieces(index)
            .iter()
            .map(|(offset, len)| (offset, len, false))
            .collect();
        tiles.extend(
            trapped
                .iter()
                .filter(|pages| pages.bar == index)
                .map(|pages| (pages.offset, pages.len, true)),
        );
        tiles.sort_unstable();
        let mut at = 0;
        for &(offset, len, is_trapped) in &tiles {
            let what = if is_trapped { "trapped pages" } else { "a mapped piece" };
            assert!(
                offset % PAGE == 0 && len % PAGE == 0 && len != 0,
                "BAR {index}: {what} at {offset:#x}+{len:#x} not whole pages: {tiles:x?}"
            );
            assert_eq!(
                offset, at,
                "BAR {index} ({size:#x} bytes): a gap or overlap at {at:#x}: {tiles:x?}"
            );
            at = offset.checked_add(len).expect("a tile past 2^64");
        }
        assert_eq!(at, size, "BAR {index} ({size:#x} bytes) tiled to {at:#x}: {tiles:x?}");
        // Every table and PBA byte inside the BAR is in a trapped page.
        for region in [table, pba].into_iter().flatten() {
            if usize::from(region.bar) != index {
                continue;
            }
            let start = u64::from(region.offset);
            let end = (start + u64::from(region.bytes)).min(size);
            if start >= end {
                continue;
            }
            let covered = |byte: u64| {
                trapped
                    .iter()
                    .any(|pages| pages.bar == index && (pages.offset..pages.offset + pages.len).contains(&byte))
            };
            // The trapped pages are whole pages: checking each page the
            // region touches (first and last byte within it) is enough.
            let mut page = start & !(PAGE - 1);
            while page < end {
                let first = page.max(start);
                let last = (page + PAGE).min(end) - 1;
                assert!(
                    covered(first) && covered(last),
                    "BAR {index}: MSI-X bytes {first:#x}..={last:#x} of {region:x?} are not trapped: {trapped:x?}"
                );
                page += PAGE;
            }
        }
    }

    // Entries the guest unmasked: existing ones, lowest first, once.
    let entries = function.msix().map_or(0, |msix| msix.table().len());
    let unmasked: Vec<u16> = function.msix_unmasked_entries().collect();
    assert!(
        unmasked.iter().all(|&index| index < entries),
        "unmasked entries {unmasked:?} past the table's {entries}"
    );
    assert!(
        unmasked.windows(2).all(|pair| pair[0] < pair[1]),
        "unmasked entries {unmasked:?} not strictly increasing"
    );

    // The capability list Linux walks is exactly the emulated one.
    let (found, ended) = walk_capabilities(function);
    assert!(ended, "the capability list does not end: {found:x?}");
    assert!(
        found
            .iter()
            .all(|&(_, id)| id == MSI_CAPABILITY_ID || id == MSIX_CAPABILITY_ID),
        "capabilities other than MSI and MSI-X shown: {found:x?}"
    );
    let mut expected = Vec::new();
    if function.msi().is_some() {
        expected.push((MSI_GUEST_OFFSET, MSI_CAPABILITY_ID));
    }
    if function.msix().is_some() {
        expected.push((MSIX_GUEST_OFFSET, MSIX_CAPABILITY_ID));
    }
    assert_eq!(found, expected, "the capability list");
    let status = function.config_read(0x06, 2);
    assert_eq!(
        status & STATUS_CAPABILITIES_LIST != 0,
        !expected.is_empty(),
        "Status {status:#x}: the Capabilities List bit disagrees with the list {expected:x?}"
    );
}

/// Hand-made inputs: the unit tests' and the committed seeds.
#[cfg(test)]
pub(crate) mod examples {
    use super::*;

    /// An NVMe-like function: BAR 0 of 16 KiB with MSI (64-bit, masking)
    /// and a 64-entry MSI-X table at 0x2000, its PBA at 0x3000.
    pub(crate) fn nvme() -> Layout {
        Layout {
            msi_control: Some((1 << 7) | (1 << 8)),
            msix: Some(HostMsix {
                control: 63,
                table: 0x2000,
                pba: 0x3000,
            }),
            bar0_64bit: true,
            bar0_size: 2,
            bar2_size: None,
            io_bar4: false,
            hidden: 0,
        }
    }

    /// What Linux does for MSI-X entry `index`: message written while
    /// masked, then unmasked.
    fn program_entry(ops: &mut Vec<Op>, index: u16, vector: u32) {
        let at = |field: u16| MmioAt::Table(16 * index + field);
        let write = |field, value| Op::MmioWrite {
            at: at(field),
            size: 4,
            value,
        };
        ops.extend([
            write(0, 0xfee0_0000),
            write(4, 0),
            write(8, u64::from(vector)),
            write(12, 0),
        ]);
    }

    pub(crate) fn msix_session() -> Vec<u8> {
        let mut ops = vec![
            // Keel mapped BAR 0 at the host's address; decoding is off.
            Op::TakeBarMoves,
            // Memory decoding and bus mastering on.
            Op::ConfigWrite {
                offset: 4,
                size: 2,
                value: 0x0006,
            },
            Op::TakeCommandChange,
            Op::TakeBarMoves,
        ];
        program_entry(&mut ops, 0, 0x41);
        program_entry(&mut ops, 5, 0x45);
        ops.extend([
            Op::TakeMsixChange,
            // A fire before MSI-X is on: pending.
            Op::FireMsix(5),
            // MSI-X Enable.
            Op::ConfigWrite {
                offset: 0x72,
                size: 2,
                value: 0x8000,
            },
            Op::MsixUnmaskReleased,
            Op::FireMsix(0),
            Op::FireMsix(5),
            Op::FireMsix(1),
            Op::MmioRead {
                at: MmioAt::Pba(0),
                size: 8,
            },
            // Mask entry 0 by a qword write of its data and vector control.
            Op::MmioWrite {
                at: MmioAt::Table(8),
                size: 8,
                value: (1 << 32) | 0x41,
            },
            Op::FireMsix(0),
            Op::MmioWrite {
                at: MmioAt::Table(12),
                size: 4,
                value: 0,
            },
            Op::MsixUnmaskReleased,
            Op::TakeConfigWrites,
        ]);
        encode(&nvme(), &ops)
    }

    pub(crate) fn msi_session() -> Vec<u8> {
        let layout = Layout { msix: None, ..nvme() };
        let write = |offset, size, value| Op::ConfigWrite { offset, size, value };
        let ops = [
            write(0x54, 4, 0xfee0_1000),
            write(0x58, 4, 0),
            write(0x5C, 2, 0x51),
            write(0x52, 2, 1),
            Op::TakeMsiChange,
            Op::FireMsi(0),
            write(0x60, 4, 1),
            Op::FireMsi(0),
            write(0x60, 4, 0),
            Op::MsiUnmaskReleased,
            // The whole area, all ones: the device sees only its own bytes.
            write(0x4E, 4, u32::MAX),
            write(0x66, 4, u32::MAX),
            write(0x80, 4, u32::MAX),
            Op::TakeConfigWrites,
        ];
        encode(&layout, &ops)
    }

    /// A guest that moves BAR 0 (sizing it first) with the table and PBA
    /// in the middle and at the end of a 64 KiB BAR, and a PBA in BAR 2.
    pub(crate) fn bar_moves() -> Vec<u8> {
        let layout = Layout {
            msix: Some(HostMsix {
                control: 200,
                table: 0x4000,
                pba: 0x1_8002,
            }),
            bar0_64bit: false,
            bar0_size: 4,
            bar2_size: Some(5),
            io_bar4: true,
            hidden: 0x00F0_0000_0000_000F,
            ..nvme()
        };
        let write = |offset, size, value| Op::ConfigWrite { offset, size, value };
        let ops = [
            Op::TakeBarMoves,
            write(4, 2, 0x0002),
            Op::TakeBarMoves,
            write(4, 2, 0),
            write(0x10, 4, u32::MAX),
            Op::ConfigRead { offset: 0x10, size: 4 },
            write(0x10, 4, 0xe000_0000),
            write(0x20, 4, u32::MAX),
            write(0x20, 4, 0xd000),
            write(4, 2, 0x0003),
            Op::TakeBarMoves,
            Op::TakeCommandChange,
            Op::MmioWrite {
                at: MmioAt::Table(16 * 199),
                size: 8,
                value: 0xfee0_0000,
            },
            Op::MmioRead {
                at: MmioAt::Pba(24),
                size: 8,
            },
            Op::MmioWrite {
                at: MmioAt::Absolute {
                    bar: 0xFF,
                    offset: u64::MAX - 3,
                },
                size: 8,
                value: 1,
            },
            write(0xFFFE, 4, u32::MAX),
            write(0x40, 8, u32::MAX),
            Op::TakeConfigWrites,
        ];
        encode(&layout, &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::examples::{bar_moves, msi_session, msix_session, nvme};
    use super::*;

    #[test]
    fn decoding_reads_back_what_was_encoded() {
        let ops = [
            Op::ConfigRead { offset: 0x1FF, size: 8 },
            Op::ConfigWrite {
                offset: 0xFFFF,
                size: 3,
                value: 7,
            },
            Op::MmioRead {
                at: MmioAt::Absolute {
                    bar: 7,
                    offset: u64::from(u32::MAX),
                },
                size: 0,
            },
            Op::MmioWrite {
                at: MmioAt::Absolute { bar: 200, offset: 5 },
                size: 4,
                value: u64::MAX,
            },
            Op::MmioWrite {
                at: MmioAt::Pba(3),
                size: 8,
                value: 1,
            },
            Op::FireMsi(31),
            Op::FireMsix(2047),
            Op::TakeConfigWrites,
            Op::TakeCommandChange,
            Op::TakeBarMoves,
            Op::TakeMsiChange,
            Op::TakeMsixChange,
            Op::MsiUnmaskReleased,
            Op::MsixUnmaskReleased,
            Op::SetIntxPending(true),
            Op::SetIntxPending(false),
        ];
        let layout = Layout {
            bar2_size: Some(8),
            io_bar4: true,
            hidden: u64::MAX,
            ..nvme()
        };
        let bytes = encode(&layout, &ops);
        let mut input = Input::new(&bytes);
        assert_eq!(Layout::decode(&mut input), layout);
        let decoded: Vec<Op> = std::iter::from_fn(|| Op::decode(&mut input)).collect();
        assert_eq!(decoded, ops);
    }

    #[test]
    fn msix_table_writes_fires_and_releases_are_reached() {
        let reached = run(&msix_session());
        assert!(reached.capabilities);
        // Three of the four dword writes programming each entry change it
        // (the upper address stays 0), then entry 0 is masked and unmasked.
        assert_eq!(reached.table_changes, 2 * 3 + 2, "{reached:?}");
        // Entries 0 and 5 fired; 5's pending fire and 0's masked one were released.
        assert_eq!(reached.msix_delivered, 2, "{reached:?}");
        assert_eq!(reached.released, 2, "{reached:?}");
        assert_eq!(reached.bar_maps, 1, "{reached:?}");
    }

    #[test]
    fn msi_fires_and_forwarded_writes_are_reached() {
        let reached = run(&msi_session());
        assert!(reached.capabilities);
        assert_eq!(reached.msi_delivered, 1, "{reached:?}");
        assert_eq!(reached.released, 1, "the masked fire, released on unmask: {reached:?}");
        // 0x4E-0x4F (before MSI), 0x68-0x69 (after MSI), 0x80-0x83.
        assert_eq!(reached.config_writes, 2 + 2 + 4, "{reached:?}");
    }

    #[test]
    fn bar_moves_and_odd_layouts_are_reached() {
        let reached = run(&bar_moves());
        assert!(reached.capabilities);
        // BARs 0 and 2 mapped when decoding came on, BAR 0 again where it moved.
        assert_eq!(reached.bar_maps, 3, "{reached:?}");
        assert_eq!(reached.table_changes, 1, "{reached:?}");
        // Refused capabilities (a reserved BIR) leave a plain function.
        let refused = Layout {
            msix: Some(HostMsix {
                control: 0,
                table: 6,
                pba: 0,
            }),
            ..nvme()
        };
        assert!(!run(&encode(&refused, &[Op::FireMsix(0)])).capabilities);
        // Every short input is a case.
        for len in 0..40 {
            run(&msix_session()[..len]);
        }
    }
}

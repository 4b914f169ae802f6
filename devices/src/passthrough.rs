//! A host PCI function assigned to a guest, as the guest's configuration
//! space shows it: a type-0 header with the host's identity, its BARs at
//! the host's addresses (Keel maps memory BARs one to one into the guest
//! and opens I/O BARs' ports in its I/O bitmap, so the guest drives the
//! registers directly), no capability list (MSI and MSI-X are not
//! virtualized yet: the device interrupts through INTx or, for a legacy
//! IDE controller, its ISA IRQs), and a command register whose I/O,
//! memory, bus-master and INTx-disable bits Keel applies to the real
//! device ([`PassthroughFunction::take_command_change`]).
//!
//! The device-specific registers past the header (0x40-0xFF, e.g. an IDE
//! controller's timing and decode-enable registers) show the host's values
//! as read when the device was assigned; the guest's writes to them go to
//! the real device ([`PassthroughFunction::take_config_writes`]), except
//! within the host's capability structures (MSI, MSI-X, PCI Express...),
//! which stay out of the guest's reach: a guest-programmed MSI would write
//! anywhere it likes.
//!
//! A guest may move a memory BAR (as Linux does with `pci=realloc`, or a
//! guest whose own firmware placed things differently): the device stays
//! at the host's address, and Keel maps its pages wherever the guest's BAR
//! decodes now ([`PassthroughFunction::take_bar_moves`]; nothing while the
//! guest has memory decoding off, as during BAR sizing). I/O BARs cannot
//! move: ports are passed through one to one, not translated, so an I/O
//! BAR keeps the host's address (sizing still reads the size mask), and a
//! guest that writes another address reads the host's back, which Linux
//! reports as a failed BAR update.
//!
//! A device that interrupts through a level-triggered INTx line shows the
//! guest Keel's view of it in Interrupt Status
//! ([`PassthroughFunction::set_intx_pending`]): the host input is masked
//! from the moment it fires until Keel resamples it, and the guest's
//! Interrupt Disable keeps the guest's line low meanwhile (VFIO's INTx
//! emulation works the same way), so drivers that rely on PCI 2.3 INTx
//! masking work even on devices that do not implement it.

extern crate alloc;

use crate::pci_config::{Bar, PciConfigError, PciIdentity, Type0Header};
use crate::pci_host::PciFunction;
use crate::Platform;

/// Command register bits the guest may change on the real device.
pub const FORWARDED_COMMAND_BITS: u16 = 1 | (1 << 1) | (1 << 2) | (1 << 10);

const COMMAND_OFFSET: u16 = 0x04;
const BAR0_OFFSET: u16 = 0x10;

/// A configuration write the real device must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughWrite {
    /// The command register's forwarded bits.
    Command(u16),
    /// One byte of a device-specific register.
    Register { offset: u16, value: u8 },
}

/// A memory BAR's pages must be mapped elsewhere in the guest: unmapped
/// from `from` (if mapped) and mapped at `to` (if decoding), `size` bytes
/// of the host's BAR at `host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMove {
    pub index: usize,
    pub host: u64,
    pub size: u64,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

/// Bytes past the header: 0x40 to 0xFF.
pub const DEVICE_SPECIFIC_BYTES: usize = 192;
const DEVICE_SPECIFIC_START: u16 = 0x40;

/// The host's device-specific registers, and which bytes the guest may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSpecific {
    pub bytes: [u8; DEVICE_SPECIFIC_BYTES],
    /// Bytes of capability structures: read as 0, never written.
    pub hidden: [bool; DEVICE_SPECIFIC_BYTES],
}

impl Default for DeviceSpecific {
    fn default() -> Self {
        Self {
            bytes: [0; DEVICE_SPECIFIC_BYTES],
            hidden: [false; DEVICE_SPECIFIC_BYTES],
        }
    }
}

pub struct PassthroughFunction {
    header: Type0Header,
    host_bars: [Option<Bar>; 6],
    applied_command: u16,
    pending_command: Option<u16>,
    device_specific: DeviceSpecific,
    /// Guest writes to device-specific registers: (offset, byte).
    config_writes: alloc::vec::Vec<(u16, u8)>,
    /// Where each memory BAR's pages are mapped in the guest now (Keel maps
    /// them at the host's address when it assigns the function).
    mapped: [Option<u64>; 6],
}

impl PassthroughFunction {
    /// `bars`: (index, BAR) as the host's firmware placed them; `pin`: the
    /// host's interrupt pin (0 for none); `line`: the guest GSI the guest's
    /// firmware (Keel) routed it to.
    pub fn new(identity: PciIdentity, bars: &[(usize, Bar)], pin: u8, line: u8) -> Result<Self, PciConfigError> {
        let mut header = Type0Header::new(identity).with_interrupt_pin(pin)?;
        let mut host_bars = [None; 6];
        for &(index, bar) in bars {
            header = header.with_bar(index, bar)?;
            if let Some(slot) = host_bars.get_mut(index) {
                *slot = Some(bar);
            }
        }
        header.write(0x3c, 1, u32::from(line));
        let mapped = host_bars.map(|bar| bar.filter(|bar| bar.kind.is_memory()).map(|bar| bar.address));
        Ok(Self {
            header,
            host_bars,
            applied_command: 0,
            pending_command: None,
            device_specific: DeviceSpecific::default(),
            config_writes: alloc::vec::Vec::new(),
            mapped,
        })
    }

    /// Shows the host's device-specific registers (0x40-0xFF).
    pub fn with_device_specific(mut self, registers: DeviceSpecific) -> Self {
        self.device_specific = registers;
        for index in 0..DEVICE_SPECIFIC_BYTES {
            if self.device_specific.hidden[index] {
                self.device_specific.bytes[index] = 0;
            }
        }
        self
    }

    /// Device-specific register bytes the guest wrote, for the real device.
    pub fn take_config_writes(&mut self) -> alloc::vec::Vec<(u16, u8)> {
        core::mem::take(&mut self.config_writes)
    }

    /// The command register bits to write to the real device, once per change.
    pub fn take_command_change(&mut self) -> Option<u16> {
        self.pending_command.take()
    }

    /// BARs whose guest address differs from the host's while decoding is on.
    pub fn moved_bars(&self) -> impl Iterator<Item = usize> + '_ {
        (0..6).filter(
            move |&index| match (self.host_bars[index], self.header.decoded_bar(index)) {
                (Some(host), Some(guest)) => host.address != guest,
                _ => false,
            },
        )
    }

    /// Memory BARs whose guest mapping must change since the last call:
    /// each maps where the guest's BAR decodes now, or nowhere while the
    /// guest has memory decoding off.
    pub fn take_bar_moves(&mut self) -> alloc::vec::Vec<BarMove> {
        let mut moves = alloc::vec::Vec::new();
        for index in 0..6 {
            let Some(host) = self.host_bars[index].filter(|bar| bar.kind.is_memory()) else {
                continue;
            };
            let now = self.header.decoded_bar(index);
            if now != self.mapped[index] {
                moves.push(BarMove {
                    index,
                    host: host.address,
                    size: host.size,
                    from: self.mapped[index],
                    to: now,
                });
                self.mapped[index] = now;
            }
        }
        moves
    }

    /// Puts I/O BARs the guest moved back at the host's address (a sizing
    /// write, all ones, still shows the size mask until the next write).
    fn pin_io_bars(&mut self, offset: u16, size: u8) {
        for index in 0..6u16 {
            let register = BAR0_OFFSET + 4 * index;
            let touched = offset < register + 4 && offset + u16::from(size) > register;
            let Some(host) = self.host_bars[usize::from(index)] else {
                continue;
            };
            if !touched || host.kind.is_memory() {
                continue;
            }
            let written = self.header.bar(usize::from(index)).map(|bar| bar.address);
            let sizing = written.is_some_and(|address| address | (host.size - 1) | 0x3 == u64::from(u32::MAX));
            if !sizing && written != Some(host.address) {
                self.header.write(register, 4, host.address as u32);
            }
        }
    }

    pub fn header(&self) -> &Type0Header {
        &self.header
    }

    /// Whether the real device's INTx fired and has not been resampled
    /// yet. Keel masks a level-triggered host input when it fires (the line
    /// stays asserted until the guest's driver clears the cause), so the
    /// guest's Interrupt Status (status bit 3) shows this instead of the
    /// device's own bit: `uio_pci_generic`-style drivers read it to decide
    /// whether a shared interrupt was theirs.
    pub fn intx_pending(&self) -> bool {
        self.header.interrupt_status()
    }

    pub fn set_intx_pending(&mut self, pending: bool) {
        self.header.set_interrupt_status(pending);
    }

    /// Whether the guest masked INTx (Interrupt Disable, command bit 10).
    pub fn intx_disabled(&self) -> bool {
        self.header.intx_disabled()
    }
}

impl PciFunction for PassthroughFunction {
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        if offset < DEVICE_SPECIFIC_START {
            return self.header.read(offset, size);
        }
        (0..u16::from(size.min(4))).fold(0, |value, index| {
            let byte = offset
                .checked_add(index)
                .and_then(|at| at.checked_sub(DEVICE_SPECIFIC_START))
                .and_then(|at| self.device_specific.bytes.get(usize::from(at)))
                .copied()
                .unwrap_or(0);
            value | u32::from(byte) << (8 * index)
        })
    }

    fn config_write(&mut self, offset: u16, size: u8, value: u32, _platform: &mut dyn Platform) {
        if offset >= DEVICE_SPECIFIC_START {
            for index in 0..u16::from(size.min(4)) {
                let Some(at) = offset.checked_add(index) else { continue };
                let slot = usize::from(at - DEVICE_SPECIFIC_START);
                if slot < DEVICE_SPECIFIC_BYTES && !self.device_specific.hidden[slot] {
                    let byte = (value >> (8 * index)) as u8;
                    self.device_specific.bytes[slot] = byte;
                    self.config_writes.push((at, byte));
                }
            }
            return;
        }
        self.header.write(offset, size, value);
        if (BAR0_OFFSET..BAR0_OFFSET + 24).contains(&offset) {
            self.pin_io_bars(offset, size.min(4));
        }
        let touches_command = offset < COMMAND_OFFSET + 2 && offset + u16::from(size) > COMMAND_OFFSET;
        if touches_command {
            let command = self.header.command() & FORWARDED_COMMAND_BITS;
            if command != self.applied_command {
                self.applied_command = command;
                self.pending_command = Some(command);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci_config::BarKind;
    use crate::testing::RecordingPlatform;

    fn ide() -> PassthroughFunction {
        let identity = PciIdentity {
            vendor_id: 0x8086,
            device_id: 0x7010,
            class_code: 0x010180,
            revision: 0,
            subsystem_vendor_id: 0,
            subsystem_id: 0,
        };
        let bar4 = Bar {
            kind: BarKind::Io,
            size: 16,
            address: 0xc000,
        };
        PassthroughFunction::new(identity, &[(4, bar4)], 0, 14).unwrap()
    }

    #[test]
    fn shows_the_host_identity_bars_and_routed_line() {
        let mut function = ide();
        assert_eq!(function.config_read(0, 4), 0x7010_8086);
        assert_eq!(function.config_read(8, 4) >> 8, 0x010180);
        assert_eq!(function.config_read(0x20, 4), 0xc001, "I/O BAR 4 at the host's address");
        assert_eq!(function.config_read(0x10, 4), 0, "unimplemented BARs read 0");
        assert_eq!(function.config_read(0x3c, 1), 14);
        assert_eq!(function.config_read(0x34, 1), 0, "no capability list");
        assert_eq!(function.config_read(6, 2) & (1 << 4), 0);
    }

    #[test]
    fn device_specific_registers_show_the_host_and_hide_capabilities() {
        let mut registers = DeviceSpecific::default();
        registers.bytes[1] = 0x80; // 0x41: IDE decode enable
        registers.bytes[0x10] = 0x05; // 0x50: an MSI capability ...
        registers.hidden[0x10..0x28].fill(true);
        let mut function = ide().with_device_specific(registers);
        let mut platform = RecordingPlatform::default();
        assert_eq!(function.config_read(0x40, 4), 0x8000);
        assert_eq!(function.config_read(0x50, 4), 0, "capability bytes read 0");
        function.config_write(0x40, 2, 0xa307, &mut platform);
        function.config_write(0x50, 4, 0xfee0_0000, &mut platform);
        assert_eq!(function.take_config_writes(), [(0x40, 0x07), (0x41, 0xa3)]);
        assert_eq!(function.config_read(0x40, 2), 0xa307);
        assert_eq!(function.config_read(0x50, 4), 0, "writes into capabilities go nowhere");
    }

    #[test]
    fn command_changes_are_forwarded_once_and_sizing_works() {
        let mut function = ide();
        let mut platform = RecordingPlatform::default();
        function.config_write(4, 2, 0x0005, &mut platform);
        assert_eq!(function.take_command_change(), Some(0x0005));
        assert_eq!(function.take_command_change(), None);
        function.config_write(4, 2, 0x0005, &mut platform);
        assert_eq!(function.take_command_change(), None, "no change, nothing to apply");
        // Bits the real device is not told about (e.g. SERR#) stay virtual.
        function.config_write(4, 2, 0x0105, &mut platform);
        assert_eq!(function.take_command_change(), None);
        // BAR sizing: all ones in, the size mask out, then restored.
        function.config_write(0x20, 4, 0xffff_ffff, &mut platform);
        assert_eq!(function.config_read(0x20, 4), 0xffff_fff1);
        assert_eq!(function.moved_bars().collect::<Vec<_>>(), [4]);
        function.config_write(0x20, 4, 0xc000, &mut platform);
        assert_eq!(function.moved_bars().count(), 0);
    }

    #[test]
    fn io_bars_stay_at_the_host_address_but_still_size() {
        let mut function = ide();
        let mut platform = RecordingPlatform::default();
        function.config_write(4, 2, 0x0001, &mut platform);
        function.config_write(0x20, 4, 0xd000, &mut platform);
        assert_eq!(
            function.config_read(0x20, 4),
            0xc001,
            "not moved: ports are not translated"
        );
        function.config_write(0x20, 2, 0xd000, &mut platform);
        assert_eq!(function.config_read(0x20, 4), 0xc001, "nor by a narrower write");
        function.config_write(0x20, 4, 0xffff_ffff, &mut platform);
        assert_eq!(function.config_read(0x20, 4), 0xffff_fff1, "sizing still works");
        function.config_write(0x20, 4, 0xc000, &mut platform);
        assert_eq!(function.config_read(0x20, 4), 0xc001);
        assert!(function.take_bar_moves().is_empty(), "I/O BARs are never remapped");
    }

    #[test]
    fn memory_bars_are_mapped_where_they_decode_and_nowhere_while_decoding_is_off() {
        let identity = PciIdentity {
            vendor_id: 0x8086,
            device_id: 0x100e,
            class_code: 0x020000,
            revision: 3,
            subsystem_vendor_id: 0,
            subsystem_id: 0,
        };
        let bar0 = Bar {
            kind: BarKind::Memory32 { prefetchable: false },
            size: 128 << 10,
            address: 0xfebc_0000,
        };
        let mut function = PassthroughFunction::new(identity, &[(0, bar0)], 1, 16).unwrap();
        let mut platform = RecordingPlatform::default();
        // Keel mapped it at the host's address; decoding is still off.
        let off = function.take_bar_moves();
        assert_eq!(
            off,
            [BarMove {
                index: 0,
                host: 0xfebc_0000,
                size: 128 << 10,
                from: Some(0xfebc_0000),
                to: None
            }]
        );
        function.config_write(4, 2, 0x0002, &mut platform);
        assert_eq!(function.take_bar_moves()[0].to, Some(0xfebc_0000));
        // Sizing with decoding off maps nothing at the size mask.
        function.config_write(4, 2, 0x0000, &mut platform);
        function.config_write(0x10, 4, 0xffff_ffff, &mut platform);
        assert_eq!(function.config_read(0x10, 4), 0xfffe_0000);
        function.config_write(0x10, 4, 0xe000_0000, &mut platform);
        let moves = function.take_bar_moves();
        assert_eq!((moves[0].from, moves[0].to), (Some(0xfebc_0000), None));
        assert!(function.take_bar_moves().is_empty(), "nothing changes while off");
        function.config_write(4, 2, 0x0002, &mut platform);
        let moved = function.take_bar_moves();
        assert_eq!(
            moved,
            [BarMove {
                index: 0,
                host: 0xfebc_0000,
                size: 128 << 10,
                from: None,
                to: Some(0xe000_0000)
            }],
            "the host's pages, at the guest's new address"
        );
        assert_eq!(function.moved_bars().collect::<Vec<_>>(), [0]);
    }
}

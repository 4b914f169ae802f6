//! A host PCI function assigned to a guest, as the guest's configuration
//! space shows it: a type-0 header with the host's identity, its BARs at
//! the host's addresses (Keel maps memory BARs one to one into the guest
//! and opens I/O BARs' ports in its I/O bitmap, so the guest drives the
//! registers directly, except the MSI-X table's and PBA's pages), a
//! capability list holding at most emulated MSI and MSI-X capabilities
//! (see below; without them the device interrupts through INTx or, for a
//! legacy IDE controller, its ISA IRQs), and a command register whose I/O, memory,
//! bus-master and INTx-disable bits Keel applies to the real device
//! ([`PassthroughFunction::take_command_change`]).
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
//!
//! A function whose host has an MSI capability may show the guest an
//! emulated one ([`PassthroughFunction::with_msi`], modelled by
//! [`crate::passthrough_msi`]): the Capabilities List status bit and the
//! pointer at 0x34 lead to it, its bytes win over whatever the host has
//! there (shown or hidden), and the guest's writes to it go to the model
//! only, never to the real device: an MSI is a DMA write to the address
//! and with the data software programmed, so a guest that programmed the
//! real device could make it write anywhere in the interrupt window (any
//! host CPU and vector, or NMI/SMI/INIT). Keel programs the real device's
//! MSI with a host vector of its own (or an interrupt-remapping entry)
//! instead, learns the guest's programming from
//! [`PassthroughFunction::take_msi_change`], and when the host vector
//! fires asks [`PassthroughFunction::fire_msi`] what the guest would have
//! received (nothing while disabled; pending while masked, released by
//! [`PassthroughFunction::msi_unmask_released`] when the guest unmasks).
//! The guest is offered exactly one vector (see
//! [`PassthroughFunction::with_msi`]).
//!
//! MSI-X works the same way with a table: the capability keeps the host's
//! table and PBA locations, Keel traps their pages
//! ([`PassthroughFunction::trapped_pages`]; the rest of the BAR is mapped,
//! [`PassthroughFunction::bar_pieces`]), the guest's accesses to them go
//! to the model ([`PassthroughFunction::msix_mmio_read`]), a change is
//! reported once ([`PassthroughFunction::take_msix_change`]) for Keel to
//! give each entry the guest unmasks a host vector of its own, and
//! [`PassthroughFunction::fire_msix`] says what an entry's arrival means
//! for the guest.

extern crate alloc;

use crate::passthrough_msi::{
    CapabilityChange, GuestMsi, HostCapabilities, MsiCapability, MsiState, MsixCapability, MsixError, MsixRegion,
    PassthroughCapabilities,
};
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
/// of the host's BAR at `host`, the pages of `pieces` only (the MSI-X
/// table's and PBA's pages are trapped, not mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMove {
    pub index: usize,
    pub host: u64,
    pub size: u64,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub pieces: BarPieces,
}

/// The parts of a memory BAR Keel maps into the guest: all of it, less the
/// pages holding the MSI-X table or PBA (at most two holes, so at most
/// three pieces). Offsets and lengths are page multiples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BarPieces {
    pieces: [(u64, u64); 3],
    count: u8,
}

impl BarPieces {
    /// `size` bytes less the page-rounded `holes` (offset, length), which
    /// may overlap, touch or lie past the end.
    fn new(size: u64, holes: &[(u64, u64)]) -> Self {
        let mut holes: alloc::vec::Vec<(u64, u64)> = holes
            .iter()
            .filter(|(_, len)| *len != 0)
            .map(|&(offset, len)| {
                let start = offset & !(PAGE - 1);
                let end = offset.saturating_add(len).saturating_add(PAGE - 1) & !(PAGE - 1);
                (start.min(size), end.min(size))
            })
            .collect();
        holes.sort_unstable();
        let mut pieces = Self::default();
        let mut at = 0;
        for (start, end) in holes {
            if start > at {
                pieces.push(at, start - at);
            }
            at = at.max(end);
        }
        if at < size {
            pieces.push(at, size - at);
        }
        pieces
    }

    fn push(&mut self, offset: u64, len: u64) {
        if let Some(slot) = self.pieces.get_mut(usize::from(self.count)) {
            *slot = (offset, len);
            self.count += 1;
        }
    }

    /// (offset into the BAR, length) of each piece, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pieces.iter().copied().take(usize::from(self.count))
    }
}

const PAGE: u64 = 4096;

/// A page range of a memory BAR that Keel traps instead of mapping: it
/// holds the MSI-X table or PBA (and whatever else shares those pages,
/// forwarded to the device by the platform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrappedPages {
    pub bar: usize,
    /// Page-aligned offset into the BAR.
    pub offset: u64,
    pub len: u64,
}

/// Multiple Message Capable, MSI Message Control bits 3:1 (log2 of the
/// vectors the function can send).
const MSI_CONTROL_MULTIPLE_MESSAGE_CAPABLE: u16 = 0b111 << 1;

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
    /// The emulated capability list (MSI only), if the host has MSI.
    capabilities: Option<PassthroughCapabilities>,
    /// A guest write changed the MSI message (Enable, address, data or
    /// the vector count) since [`PassthroughFunction::take_msi_change`].
    msi_changed: bool,
    /// A guest write changed MSI-X Enable, the Function Mask or a table
    /// entry since [`PassthroughFunction::take_msix_change`].
    msix_changed: bool,
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
            capabilities: None,
            msi_changed: false,
            msix_changed: false,
        })
    }

    /// Shows the guest an emulated MSI capability, from the host MSI
    /// capability's Message Control (its 64-bit and per-vector masking bits
    /// are kept), at [`crate::passthrough_msi::MSI_GUEST_OFFSET`], and the
    /// header's capability list leading to it; see
    /// [`PassthroughFunction::set_interrupt_capabilities`].
    pub fn with_msi(mut self, host_message_control: u16) -> Self {
        let host = HostCapabilities {
            msi_control: Some(host_message_control),
            msix: None,
        };
        // Without MSI-X there is nothing that can be refused.
        let _ = self.set_interrupt_capabilities(host);
        self
    }

    /// Shows the guest emulated MSI and MSI-X capabilities for those the
    /// host function has (MSI at
    /// [`crate::passthrough_msi::MSI_GUEST_OFFSET`], MSI-X at
    /// [`crate::passthrough_msi::MSIX_GUEST_OFFSET`]), and the header's
    /// capability list leading to them. The host's own capability
    /// structures stay hidden; the emulated ones' bytes win over the host's
    /// registers at the same offsets. A host MSI-X capability whose table
    /// or PBA cannot be described is refused (the function is left
    /// unchanged).
    ///
    /// MSI offers exactly one vector: Multiple Message Capable reads 0.
    /// Multi-message MSI needs a naturally aligned block of 2^n
    /// consecutive host vectors (the device puts the vector number in the
    /// low data bits), and Keel allocates host vectors one at a time, so it
    /// could not program the real device with more than one; a guest
    /// driver that wants more falls back to one vector (or to INTx, or
    /// MSI-X, whose entries are independent).
    ///
    /// The MSI-X table and PBA keep the host's BAR and offset: their pages
    /// are trapped ([`PassthroughFunction::trapped_pages`]) and emulated
    /// ([`PassthroughFunction::msix_mmio_read`]); the rest of the BAR is
    /// mapped.
    pub fn set_interrupt_capabilities(&mut self, host: HostCapabilities) -> Result<(), MsixError> {
        let host = HostCapabilities {
            msi_control: host
                .msi_control
                .map(|control| control & !MSI_CONTROL_MULTIPLE_MESSAGE_CAPABLE),
            msix: host.msix,
        };
        let capabilities = PassthroughCapabilities::new(host)?;
        self.header = self.header.clone().with_capabilities(capabilities.first_pointer());
        self.capabilities = Some(capabilities);
        self.msi_changed = false;
        self.msix_changed = false;
        Ok(())
    }

    /// The emulated MSI capability, if the guest is shown one.
    pub fn msi(&self) -> Option<&MsiCapability> {
        self.capabilities.as_ref()?.msi()
    }

    /// What the guest programmed into the MSI capability, if it has one.
    pub fn msi_state(&self) -> Option<MsiState> {
        self.msi().map(MsiCapability::state)
    }

    /// The guest's MSI programming after a write that changed Enable, the
    /// address, the data or the vector count, once (as it is now, however
    /// many writes came between calls): Keel re-translates it to the real
    /// device's host vector. Mask-bit changes alone are not reported: the
    /// model holds masked vectors pending
    /// ([`PassthroughFunction::msi_unmask_released`]).
    pub fn take_msi_change(&mut self) -> Option<MsiState> {
        if !core::mem::take(&mut self.msi_changed) {
            return None;
        }
        self.msi_state()
    }

    /// The real device raised MSI vector `vector` (the host vector Keel
    /// programmed it with fired): the message the guest programmed for it,
    /// or `None` when MSI is disabled or the vector not enabled (dropped),
    /// or the vector is masked (then pending, for
    /// [`PassthroughFunction::msi_unmask_released`]). The message is the
    /// guest's, unchecked: decode it with [`GuestMsi::interrupt`], which
    /// refuses what a guest must not send.
    pub fn fire_msi(&mut self, vector: u8) -> Option<GuestMsi> {
        self.capabilities.as_mut()?.msi_mut()?.fire(vector)
    }

    /// Pending MSI messages the guest's last writes released (vectors
    /// unmasked, or MSI enabled again, while pending), lowest vector first;
    /// their pending bits are cleared. Call after configuration writes.
    pub fn msi_unmask_released(&mut self) -> impl Iterator<Item = GuestMsi> {
        self.capabilities
            .as_mut()
            .and_then(PassthroughCapabilities::msi_mut)
            .map(MsiCapability::unmask_released)
            .into_iter()
            .flatten()
    }

    /// The emulated MSI-X capability (with its table), if the guest is
    /// shown one.
    pub fn msix(&self) -> Option<&MsixCapability> {
        self.capabilities.as_ref()?.msix()
    }

    /// Whether a guest write changed MSI-X Enable, the Function Mask or a
    /// table entry since the last call (once, however many writes came):
    /// Keel then brings the real device's table in line
    /// ([`PassthroughFunction::msix_unmasked_entries`]).
    pub fn take_msix_change(&mut self) -> bool {
        core::mem::take(&mut self.msix_changed)
    }

    /// The table entries whose own mask bit the guest cleared, lowest
    /// first: the ones it means to use (Linux unmasks an entry when its
    /// IRQ starts). Keel gives each a host vector of its own while MSI-X is
    /// enabled.
    pub fn msix_unmasked_entries(&self) -> impl Iterator<Item = u16> + '_ {
        let msix = self.msix();
        let len = msix.map_or(0, |msix| msix.table().len());
        (0..len).filter(move |&index| {
            msix.and_then(|msix| msix.entry(index))
                .is_some_and(|entry| !entry.masked)
        })
    }

    /// The real device sent MSI-X entry `entry` (the host vector Keel gave
    /// it fired): the guest's message for it, or `None` when the entry is
    /// masked, function-masked or MSI-X is off (then pending, for
    /// [`PassthroughFunction::msix_unmask_released`]) or does not exist.
    /// The message is the guest's, unchecked (see
    /// [`PassthroughFunction::fire_msi`]).
    pub fn fire_msix(&mut self, entry: u16) -> Option<GuestMsi> {
        self.capabilities.as_mut()?.msix_mut()?.fire(entry)
    }

    /// Pending MSI-X messages the guest's last writes released (entries
    /// unmasked, the Function Mask cleared, MSI-X enabled), lowest entry
    /// first; their pending bits are cleared. Call after configuration and
    /// table writes.
    pub fn msix_unmask_released(&mut self) -> alloc::vec::Vec<GuestMsi> {
        self.capabilities
            .as_mut()
            .and_then(PassthroughCapabilities::msix_mut)
            .map(|msix| msix.unmask_released().collect())
            .unwrap_or_default()
    }

    /// The host's BAR `index` (address and size as the host's firmware
    /// placed it), if the function has one.
    pub fn host_bar(&self, index: usize) -> Option<Bar> {
        self.host_bars.get(index).copied().flatten()
    }

    /// The page ranges of memory BARs that hold the MSI-X table or PBA:
    /// Keel traps them (the guest's accesses reach
    /// [`PassthroughFunction::msix_mmio_read`] and
    /// [`PassthroughFunction::msix_mmio_write`], or the device for bytes
    /// outside the table and PBA) instead of mapping them.
    pub fn trapped_pages(&self) -> alloc::vec::Vec<TrappedPages> {
        let Some(capabilities) = self.capabilities.as_ref() else {
            return alloc::vec::Vec::new();
        };
        let regions = [capabilities.msix_table_location(), capabilities.pba_location()];
        let mut pages: alloc::vec::Vec<TrappedPages> = alloc::vec::Vec::new();
        for region in regions.into_iter().flatten() {
            let bar = usize::from(region.bar);
            let Some(size) = self
                .host_bar(bar)
                .filter(|bar| bar.kind.is_memory())
                .map(|bar| bar.size)
            else {
                continue;
            };
            let Some((offset, len)) = page_span(region, size) else {
                continue;
            };
            match pages
                .iter_mut()
                .find(|pages| pages.bar == bar && offset <= pages.offset + pages.len && pages.offset <= offset + len)
            {
                Some(merged) => {
                    let end = (merged.offset + merged.len).max(offset + len);
                    merged.offset = merged.offset.min(offset);
                    merged.len = end - merged.offset;
                }
                None => pages.push(TrappedPages { bar, offset, len }),
            }
        }
        pages
    }

    /// The parts of memory BAR `index` Keel maps into the guest: all of it
    /// but the [`PassthroughFunction::trapped_pages`].
    pub fn bar_pieces(&self, index: usize) -> BarPieces {
        let size = self.host_bar(index).map_or(0, |bar| bar.size);
        let holes: alloc::vec::Vec<(u64, u64)> = self
            .trapped_pages()
            .iter()
            .filter(|pages| pages.bar == index)
            .map(|pages| (pages.offset, pages.len))
            .collect();
        BarPieces::new(size, &holes)
    }

    /// A guest read of `size` bytes at `offset` into BAR `bar` within the
    /// trapped pages: the table's or PBA's answer, or `None` for bytes
    /// outside them (the device answers those).
    pub fn msix_mmio_read(&self, bar: usize, offset: u64, size: u8) -> Option<u64> {
        let bar = u8::try_from(bar).ok()?;
        self.capabilities.as_ref()?.msix_mmio_read(bar, offset, size)
    }

    /// A guest write there: `true` when the table or PBA took it (a table
    /// entry may have changed: noted for
    /// [`PassthroughFunction::take_msix_change`]); `false` for bytes
    /// outside them, which go to the device.
    pub fn msix_mmio_write(&mut self, bar: usize, offset: u64, size: u8, value: u64) -> bool {
        let Ok(bar) = u8::try_from(bar) else {
            return false;
        };
        let Some(capabilities) = self.capabilities.as_mut() else {
            return false;
        };
        if !capabilities.claims_mmio(bar, offset, size) {
            return false;
        }
        if let Some(CapabilityChange::MsixEntry(_)) = capabilities.msix_mmio_write(bar, offset, size, value) {
            self.msix_changed = true;
        }
        true
    }

    /// Whether the emulated structures cover device-specific registers the
    /// guest would otherwise see (bytes of the host that are not part of a
    /// capability structure): the guest's driver can no longer reach them.
    pub fn capabilities_shadow_host_registers(&self) -> bool {
        (DEVICE_SPECIFIC_START..DEVICE_SPECIFIC_START + DEVICE_SPECIFIC_BYTES as u16)
            .any(|at| self.emulated(at) && !self.device_specific.hidden[usize::from(at - DEVICE_SPECIFIC_START)])
    }

    /// Whether the byte at `at` belongs to an emulated capability structure.
    fn emulated(&self, at: u16) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|capabilities| capabilities.claims(at, 1))
    }

    /// One byte past the header as the guest reads it.
    fn device_specific_byte(&self, at: u16) -> u8 {
        if let Some(value) = self
            .capabilities
            .as_ref()
            .and_then(|capabilities| capabilities.read(at, 1))
        {
            return value as u8;
        }
        at.checked_sub(DEVICE_SPECIFIC_START)
            .and_then(|at| self.device_specific.bytes.get(usize::from(at)))
            .copied()
            .unwrap_or(0)
    }

    /// A guest write past the header: bytes in the emulated structure go to
    /// the model (a change of the MSI message is queued for Keel), the
    /// others to the host's registers unless hidden.
    fn write_device_specific(&mut self, offset: u16, size: u8, value: u32) {
        let size = size.min(4);
        if let Some(capabilities) = self.capabilities.as_mut() {
            if capabilities.claims(offset, size) {
                match capabilities.write(offset, size, value) {
                    Some(CapabilityChange::Msi(change)) => self.msi_changed |= change.message_changed(),
                    Some(CapabilityChange::MsixControl(_) | CapabilityChange::MsixEntry(_)) => {
                        self.msix_changed = true;
                    }
                    None => {}
                }
            }
        }
        for index in 0..u16::from(size) {
            let Some(at) = offset.checked_add(index) else { continue };
            if self.emulated(at) {
                continue;
            }
            let slot = usize::from(at - DEVICE_SPECIFIC_START);
            if slot < DEVICE_SPECIFIC_BYTES && !self.device_specific.hidden[slot] {
                let byte = (value >> (8 * index)) as u8;
                self.device_specific.bytes[slot] = byte;
                self.config_writes.push((at, byte));
            }
        }
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
                    pieces: self.bar_pieces(index),
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

/// The pages of a BAR of `size` bytes that `region` touches, as (offset,
/// length); `None` when it lies wholly past the BAR's end.
fn page_span(region: MsixRegion, size: u64) -> Option<(u64, u64)> {
    let start = u64::from(region.offset) & !(PAGE - 1);
    let end = (u64::from(region.offset) + u64::from(region.bytes) + PAGE - 1) & !(PAGE - 1);
    let end = end.min(size);
    (start < end).then(|| (start, end - start))
}

impl PciFunction for PassthroughFunction {
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        if offset < DEVICE_SPECIFIC_START {
            return self.header.read(offset, size);
        }
        (0..u16::from(size.min(4))).fold(0, |value, index| {
            let byte = offset.checked_add(index).map_or(0, |at| self.device_specific_byte(at));
            value | u32::from(byte) << (8 * index)
        })
    }

    fn config_write(&mut self, offset: u16, size: u8, value: u32, _platform: &mut dyn Platform) {
        if offset >= DEVICE_SPECIFIC_START {
            self.write_device_specific(offset, size, value);
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
        let identity = PciIdentity::new(0x8086, 0x7010, 0x010180, 0);
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

    // ----- the emulated MSI capability -----

    use crate::passthrough_msi::{MSI_CONTROL_64BIT, MSI_CONTROL_ENABLE, MSI_CONTROL_PER_VECTOR_MASKING};

    const MSI: u16 = 0x50;
    /// The 64-bit, per-vector-masking layout: address low and high, data,
    /// mask bits, pending bits.
    const MSI_ADDRESS: u16 = MSI + 4;
    const MSI_ADDRESS_HIGH: u16 = MSI + 8;
    const MSI_DATA: u16 = MSI + 0xC;
    const MSI_MASK: u16 = MSI + 0x10;
    const MSI_PENDING: u16 = MSI + 0x14;

    /// An NVMe-like host function: MSI with 64-bit addresses, per-vector
    /// masking and 8 vectors (Multiple Message Capable 3); its own
    /// capabilities (at 0x50 and beyond) hidden, a vendor register at 0x4C.
    fn with_host_msi() -> PassthroughFunction {
        let mut registers = DeviceSpecific::default();
        registers.bytes[0x0C..0x10].copy_from_slice(&[0x11, 0x22, 0x33, 0x44]); // 0x4C
        registers.bytes[0x10] = 0x01; // 0x50: the host's PM capability...
        registers.bytes[0x11] = 0x70;
        registers.hidden[0x10..0xC0].fill(true);
        ide()
            .with_device_specific(registers)
            .with_msi(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING | 3 << 1)
    }

    /// Linux's `__pci_find_next_cap_ttl`: (offset, ID) along the chain,
    /// read a byte at a time from the status bit and the pointer at 0x34.
    fn walk(function: &mut PassthroughFunction) -> Vec<(u8, u8)> {
        let mut found = Vec::new();
        if function.config_read(6, 2) & u32::from(crate::pci_config::STATUS_CAPABILITIES_LIST) == 0 {
            return found;
        }
        let mut pointer = function.config_read(0x34, 1) as u8;
        for _ in 0..48 {
            if pointer < 0x40 {
                break;
            }
            let at = u16::from(pointer & !3);
            found.push((pointer, function.config_read(at, 1) as u8));
            pointer = function.config_read(at + 1, 1) as u8;
        }
        found
    }

    /// What Linux's `msi_capability_init` and `__pci_write_msi_msg` write
    /// for one vector to `vector` on APIC `destination`.
    fn program_like_linux(function: &mut PassthroughFunction, destination: u32, vector: u8) {
        let mut platform = RecordingPlatform::default();
        function.config_write(MSI + 2, 2, u32::from(MSI_CONTROL_64BIT), &mut platform); // disabled
        function.config_write(MSI_MASK, 4, 1, &mut platform); // masked during setup
        function.config_write(MSI_ADDRESS, 4, 0xfee0_0000 | destination << 12, &mut platform);
        function.config_write(MSI_ADDRESS_HIGH, 4, 0, &mut platform);
        function.config_write(MSI_DATA, 2, u32::from(vector), &mut platform);
        let control = function.config_read(MSI + 2, 2);
        function.config_write(MSI + 2, 2, control | u32::from(MSI_CONTROL_ENABLE), &mut platform);
        function.config_write(MSI_MASK, 4, 0, &mut platform); // the IRQ is started
    }

    #[test]
    fn msi_is_shown_through_the_capability_list_linux_walks() {
        let mut function = with_host_msi();
        assert_ne!(function.config_read(6, 2) & 0x10, 0, "Capabilities List");
        assert_eq!(function.config_read(0x34, 1), 0x50);
        assert_eq!(walk(&mut function), [(0x50, 0x05)], "MSI, the last one: next 0");
        assert_eq!(function.config_read(MSI, 4) & 0xffff, 0x0005);
        let control = function.config_read(MSI + 2, 2) as u16;
        assert_eq!(control & (0b111 << 1), 0, "Multiple Message Capable: one vector");
        assert_eq!(control & MSI_CONTROL_64BIT, MSI_CONTROL_64BIT, "kept from the host");
        assert_eq!(control & MSI_CONTROL_PER_VECTOR_MASKING, MSI_CONTROL_PER_VECTOR_MASKING);
        assert_eq!(function.msi().map(MsiCapability::capable_vectors), Some(1));
        // Asking for 8 vectors (Multiple Message Enable 3) gets one.
        let mut platform = RecordingPlatform::default();
        function.config_write(MSI + 2, 2, 3 << 4, &mut platform);
        assert_eq!(function.config_read(MSI + 2, 2) & (0b111 << 4), 0);
        assert_eq!(function.msi_state().map(|state| state.vectors), Some(1));
        // Without `with_msi` nothing changes: no list at all.
        let mut plain = ide();
        assert_eq!(walk(&mut plain), []);
        assert_eq!(plain.msi_state(), None);
        assert_eq!(plain.fire_msi(0), None);
        assert_eq!(plain.msi_unmask_released().count(), 0);
    }

    #[test]
    fn the_emulated_structure_wins_over_the_hosts_bytes_and_the_rest_is_as_before() {
        let mut function = with_host_msi();
        assert_eq!(function.config_read(0x4C, 4), 0x4433_2211, "a shown host register");
        assert_eq!(
            function.config_read(0x4E, 4),
            0x0005_4433,
            "straddling: host bytes, then the capability"
        );
        assert_eq!(
            function.config_read(0x68, 4),
            0,
            "past the structure: hidden host bytes"
        );
        assert!(
            !function.capabilities_shadow_host_registers(),
            "only hidden bytes under it"
        );
        let mut registers = DeviceSpecific::default();
        registers.bytes[0x14] = 0xaa; // 0x54: a vendor register, not hidden
        let shadowing = ide().with_device_specific(registers).with_msi(0);
        assert!(shadowing.capabilities_shadow_host_registers());
        // 32-bit, no masking: a 0x0C-byte structure.
        let mut small = ide().with_device_specific(registers).with_msi(0);
        assert_eq!(
            small.config_read(0x54, 1),
            0,
            "the model's address, not the host's byte"
        );
        assert_eq!(small.config_read(0x5C, 1), 0);
    }

    #[test]
    fn guest_writes_in_the_structure_never_reach_the_real_device() {
        let mut function = with_host_msi();
        let mut platform = RecordingPlatform::default();
        for offset in MSI..MSI + 0x18 {
            for size in [1u8, 2, 4] {
                function.config_write(offset, size, u32::MAX, &mut platform);
            }
        }
        assert!(function.take_config_writes().is_empty());
        // Every access past the header, however wide or misaligned: nothing
        // inside the structure is forwarded, and the chain stays.
        let mut shown = DeviceSpecific::default();
        shown.hidden[0x30..].fill(true);
        let mut function = ide().with_device_specific(shown).with_msi(0x0180);
        for offset in 0x40..=0x103u16 {
            for size in [0u8, 1, 2, 3, 4, 8] {
                function.config_write(offset, size, u32::MAX, &mut platform);
                let _ = function.config_read(offset, size);
            }
        }
        let forwarded = function.take_config_writes();
        assert!(forwarded.iter().all(|(at, _)| !(0x50..0x68).contains(at) && *at < 0x70));
        assert!(forwarded.iter().any(|(at, _)| *at == 0x4F) && forwarded.iter().any(|(at, _)| *at == 0x68));
        assert_eq!(walk(&mut function), [(0x50, 0x05)]);
        // A write straddling the structure: the host register's bytes go to
        // the device, the capability's to the model.
        let mut function = with_host_msi();
        function.config_write(0x4E, 4, 0xffff_bbaa, &mut platform);
        assert_eq!(function.take_config_writes(), [(0x4E, 0xaa), (0x4F, 0xbb)]);
        assert_eq!(function.config_read(MSI, 2), 0x0005, "ID and next are read-only");
        function.config_write(0x4E, 4, 0x0000_bbaa, &mut platform);
        assert_eq!(function.take_config_writes(), [(0x4E, 0xaa), (0x4F, 0xbb)]);
        function.config_write(MSI + 2, 1, 1, &mut platform);
        assert!(function.take_config_writes().is_empty());
        assert_eq!(
            function.msi_state().map(|state| state.enabled),
            Some(true),
            "the model's"
        );
    }

    #[test]
    fn enable_address_and_data_changes_are_queued_once() {
        let mut function = with_host_msi();
        let mut platform = RecordingPlatform::default();
        assert_eq!(function.take_msi_change(), None);
        program_like_linux(&mut function, 2, 0x41);
        let state = function.take_msi_change().expect("queued");
        assert!(state.enabled);
        assert_eq!((state.address, state.data, state.vectors), (0xfee0_2000, 0x41, 1));
        assert_eq!(function.take_msi_change(), None, "once");
        // Rewriting the same values, or masking, queues nothing.
        function.config_write(MSI_DATA, 2, 0x41, &mut platform);
        function.config_write(MSI_MASK, 4, 1, &mut platform);
        function.config_write(MSI_MASK, 4, 0, &mut platform);
        assert_eq!(function.take_msi_change(), None);
        // Each of enable, address and data does.
        function.config_write(MSI_DATA, 2, 0x42, &mut platform);
        assert_eq!(function.take_msi_change().map(|state| state.data), Some(0x42));
        function.config_write(MSI_ADDRESS, 4, 0xfee0_3000, &mut platform);
        assert_eq!(function.take_msi_change().map(|state| state.address), Some(0xfee0_3000));
        function.config_write(MSI + 2, 2, 0, &mut platform);
        assert_eq!(function.take_msi_change().map(|state| state.enabled), Some(false));
    }

    #[test]
    fn a_masked_vector_pends_until_unmasked_and_a_disabled_one_is_dropped() {
        let mut function = with_host_msi();
        let mut platform = RecordingPlatform::default();
        assert_eq!(function.fire_msi(0), None, "disabled: dropped");
        program_like_linux(&mut function, 0, 0x41);
        assert_eq!(function.config_read(MSI_PENDING, 4), 0, "nothing was pending");
        let expected = GuestMsi {
            address: 0xfee0_0000,
            data: 0x41,
        };
        assert_eq!(function.fire_msi(0), Some(expected));
        assert_eq!(function.fire_msi(1), None, "only one vector is enabled");
        function.config_write(MSI_MASK, 4, 1, &mut platform);
        assert_eq!(function.fire_msi(0), None, "masked");
        assert_eq!(function.config_read(MSI_PENDING, 4), 1, "pending");
        assert_eq!(function.msi_unmask_released().count(), 0, "still masked");
        function.config_write(MSI_MASK, 4, 0, &mut platform);
        assert_eq!(function.msi_unmask_released().collect::<Vec<_>>(), [expected]);
        assert_eq!(function.config_read(MSI_PENDING, 4), 0);
        assert_eq!(function.msi_unmask_released().count(), 0, "released once");
        // Disabled: dropped, not pending.
        function.config_write(MSI + 2, 2, 0, &mut platform);
        assert_eq!(function.fire_msi(0), None);
        assert_eq!(function.config_read(MSI_PENDING, 4), 0);
    }

    #[test]
    fn memory_bars_are_mapped_where_they_decode_and_nowhere_while_decoding_is_off() {
        let identity = PciIdentity::new(0x8086, 0x100e, 0x020000, 3);
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
                to: None,
                pieces: BarPieces::new(128 << 10, &[]),
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
                to: Some(0xe000_0000),
                pieces: BarPieces::new(128 << 10, &[]),
            }],
            "the host's pages, at the guest's new address"
        );
        assert_eq!(function.moved_bars().collect::<Vec<_>>(), [0]);
    }

    // ----- MSI-X -----

    use crate::passthrough_msi::{HostMsix, MSIX_CONTROL_ENABLE, MSIX_CONTROL_FUNCTION_MASK};

    const MSIX: u16 = 0x70;

    /// An NVMe-like function: a 16 KiB memory BAR 0, MSI (64-bit, masking)
    /// and MSI-X with 64 entries, the table at BAR 0 + 0x2000, the PBA at
    /// BAR 0 + 0x3000 (as QEMU's nvme has them).
    fn nvme_like(table: u32, pba: u32) -> PassthroughFunction {
        let identity = PciIdentity::new(0x1b36, 0x0010, 0x010802, 2);
        let bar0 = Bar {
            kind: BarKind::Memory64 { prefetchable: false },
            size: 16 << 10,
            address: 0xfebf_0000,
        };
        let mut registers = DeviceSpecific::default();
        registers.hidden.fill(true);
        let host = HostCapabilities {
            msi_control: Some(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING),
            msix: Some(HostMsix {
                control: 63,
                table,
                pba,
            }),
        };
        let mut function = PassthroughFunction::new(identity, &[(0, bar0)], 1, 16)
            .unwrap()
            .with_device_specific(registers);
        function
            .set_interrupt_capabilities(host)
            .expect("a valid MSI-X capability");
        function
    }

    /// What Linux's `msix_setup_msi_descs`/`__pci_write_msi_msg` do for
    /// entry `index`: the message written while masked, then unmasked.
    fn program_entry(function: &mut PassthroughFunction, index: u64, vector: u32) {
        let entry = 0x2000 + 16 * index;
        assert!(function.msix_mmio_write(0, entry, 4, 0xfee0_0000));
        assert!(function.msix_mmio_write(0, entry + 4, 4, 0));
        assert!(function.msix_mmio_write(0, entry + 8, 4, u64::from(vector)));
        assert!(function.msix_mmio_write(0, entry + 12, 4, 0));
    }

    #[test]
    fn msix_follows_msi_in_the_capability_list_with_the_hosts_table_location() {
        let mut function = nvme_like(0x2000, 0x3000);
        assert_eq!(walk(&mut function), [(0x50, 0x05), (0x70, 0x11)]);
        let control = function.config_read(MSIX + 2, 2) as u16;
        assert_eq!(control & 0x7ff, 63, "Table Size: 64 entries");
        assert_eq!(control & (MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK), 0);
        assert_eq!(function.config_read(MSIX + 4, 4), 0x2000, "table: BAR 0 + 0x2000");
        assert_eq!(function.config_read(MSIX + 8, 4), 0x3000, "PBA: BAR 0 + 0x3000");
        let mut platform = RecordingPlatform::default();
        function.config_write(MSIX, 4, u32::MAX, &mut platform);
        assert!(function.take_config_writes().is_empty(), "never the real device's");
        assert!(function.take_msix_change(), "Enable and Function Mask were set");
        assert!(!function.take_msix_change(), "once");
        // A reserved BAR indicator is refused; the function comes back as it was.
        let host = HostCapabilities {
            msi_control: None,
            msix: Some(HostMsix {
                control: 0,
                table: 7,
                pba: 0x1000,
            }),
        };
        let mut refused = ide();
        assert_eq!(refused.set_interrupt_capabilities(host), Err(MsixError::TableBir(7)));
        assert_eq!(walk(&mut refused), []);
    }

    #[test]
    fn the_table_and_pba_pages_are_trapped_and_the_rest_of_the_bar_mapped() {
        let function = nvme_like(0x2000, 0x3000);
        assert_eq!(
            function.trapped_pages(),
            [TrappedPages {
                bar: 0,
                offset: 0x2000,
                len: 0x2000
            }],
            "the table's page and the PBA's, merged"
        );
        assert_eq!(function.bar_pieces(0).iter().collect::<Vec<_>>(), [(0, 0x2000)]);
        assert_eq!(function.bar_pieces(1).iter().count(), 0, "no BAR 1");
        // The table in the middle, the PBA at the end: two holes.
        let function = nvme_like(0x1000, 0x3800);
        assert_eq!(
            function.bar_pieces(0).iter().collect::<Vec<_>>(),
            [(0, 0x1000), (0x2000, 0x1000)]
        );
        // Table and PBA in one page: one hole.
        let function = nvme_like(0x0, 0x800);
        assert_eq!(function.bar_pieces(0).iter().collect::<Vec<_>>(), [(0x1000, 0x3000)]);
        // A table past the BAR's end traps nothing beyond it.
        let function = nvme_like(0x10_0000, 0x3000);
        assert_eq!(function.trapped_pages().len(), 1);
        assert_eq!(function.bar_pieces(0).iter().collect::<Vec<_>>(), [(0, 0x3000)]);
    }

    #[test]
    fn table_writes_stay_in_the_model_and_the_rest_of_the_page_goes_to_the_device() {
        let mut function = nvme_like(0x2000, 0x3000);
        program_entry(&mut function, 1, 0x45);
        assert!(function.take_msix_change(), "an entry changed");
        assert!(!function.take_msix_change());
        assert_eq!(function.msix_unmasked_entries().collect::<Vec<_>>(), [1]);
        assert_eq!(function.msix_mmio_read(0, 0x2018, 4), Some(0x45));
        assert_eq!(function.msix_mmio_read(0, 0x2010, 8), Some(0xfee0_0000));
        assert_eq!(
            function.msix_mmio_read(0, 0x200c, 4),
            Some(1),
            "entry 0 masked since reset"
        );
        // Past the table (64 entries end at 0x2400) but in its page: the device's.
        assert!(!function.msix_mmio_write(0, 0x2400, 4, 1));
        assert_eq!(function.msix_mmio_read(0, 0x2400, 4), None);
        assert!(!function.take_msix_change());
        // The PBA is read-only: writes are taken and dropped.
        assert!(function.msix_mmio_write(0, 0x3000, 8, u64::MAX));
        assert_eq!(function.msix_mmio_read(0, 0x3000, 8), Some(0));
        // Another BAR, or a BAR index that does not fit: the device's.
        assert!(!function.msix_mmio_write(2, 0x2000, 4, 1));
        assert!(!function.msix_mmio_write(usize::MAX, 0x2000, 4, 1));
        assert_eq!(function.msix_mmio_read(256, 0x2000, 4), None);
    }

    #[test]
    fn msix_entries_fire_pend_while_masked_and_are_released() {
        let mut function = nvme_like(0x2000, 0x3000);
        let mut platform = RecordingPlatform::default();
        program_entry(&mut function, 0, 0x41);
        program_entry(&mut function, 2, 0x43);
        assert_eq!(function.fire_msix(0), None, "MSI-X off: pending");
        function.config_write(MSIX + 2, 2, u32::from(MSIX_CONTROL_ENABLE), &mut platform);
        assert!(function.take_msix_change());
        let released = function.msix_unmask_released();
        assert_eq!(released.len(), 1, "entry 0's, pending since MSI-X was off");
        assert_eq!(released[0].data, 0x41);
        assert_eq!(function.fire_msix(2).map(|message| message.data), Some(0x43));
        assert_eq!(function.fire_msix(1), None, "masked entry: pending");
        assert_eq!(function.msix_mmio_read(0, 0x3000, 8), Some(0b010));
        assert_eq!(function.fire_msix(64), None, "no such entry");
        // Function Mask: everything pends; cleared, it is released.
        function.config_write(
            MSIX + 2,
            2,
            u32::from(MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK),
            &mut platform,
        );
        assert_eq!(function.fire_msix(2), None);
        assert!(function.msix_unmask_released().is_empty());
        function.config_write(MSIX + 2, 2, u32::from(MSIX_CONTROL_ENABLE), &mut platform);
        assert_eq!(
            function.msix_unmask_released().len(),
            1,
            "entry 2's; entry 1 stays masked"
        );
        assert_eq!(function.msix_mmio_read(0, 0x3000, 8), Some(0b010));
    }

    #[test]
    fn bar_moves_carry_the_pieces_around_the_trapped_pages() {
        let mut function = nvme_like(0x2000, 0x3000);
        let mut platform = RecordingPlatform::default();
        function.config_write(4, 2, 0x0002, &mut platform);
        function.take_bar_moves();
        function.config_write(4, 2, 0x0000, &mut platform);
        function.config_write(0x10, 4, 0xe000_0000, &mut platform);
        function.config_write(4, 2, 0x0002, &mut platform);
        let moves = function.take_bar_moves();
        let last = moves.last().expect("moved");
        assert_eq!(last.to, Some(0xe000_0000));
        assert_eq!(last.pieces.iter().collect::<Vec<_>>(), [(0, 0x2000)]);
    }
}

//! Keel's management PCI function (the contract is `keel_abi::mgmt`): vendor
//! 0x4b45, device 0x0001, class 0x088000, with
//! - BAR 0: [`REGISTER_BYTES`] of 32-bit non-prefetchable MMIO registers
//!   ([`regs`]), emulated here by [`MgmtFunction::register_read`] and
//!   [`MgmtFunction::register_write`];
//! - BAR 2 (and 3): [`SHARED_BYTES`] of 64-bit prefetchable memory, which the
//!   hypervisor backs with RAM mapped through EPT (so Linux offers a
//!   write-combining `resource2_wc` as well as `resource2`); this model only
//!   tracks where it is;
//! - BAR 4 (and 5): [`window::BYTES`] of 64-bit prefetchable memory, the
//!   window through which Dom0's backends reach DomUs' RAM (ABI 1.3): the
//!   hypervisor maps a DomU's RAM into a slot of it; this model only tracks
//!   where it is and the slots' notification registers;
//! - INTA#, driven to the GSI the DSDT's `_PRT` gives the function's slot.
//!
//! # How the hypervisor reaches it
//!
//! The function lives in a [`crate::pci_host::PciHost`] like any other, and
//! the hypervisor reaches it with `PciHost::function_as::<MgmtFunction>` (a
//! `core::any::Any` downcast). That keeps one owner and no shared mutable
//! state (no `Rc<RefCell<..>>`, nothing to lock, nothing that stops the
//! platform being moved between CPUs later), and every effect still flows
//! the usual way:
//! - the INTx line goes through [`Platform::set_irq_line`] like the UART's,
//!   whenever its level changes (an event raised, EVENTS read, EVENT_MASK or
//!   the command register's Interrupt Disable written);
//! - a doorbell write is *returned* ([`MgmtEffect::Doorbell`]) rather than
//!   executed, so the device knows nothing of domains or shared memory;
//! - BAR moves and Memory Space enable/disable are *polled*: after each
//!   configuration write the hypervisor calls
//!   [`MgmtFunction::take_layout_change`] and, when it answers, remaps the
//!   shared memory and reroutes the register page. Polling costs one
//!   comparison per configuration write and needs no new `Platform` method.
//!
//! # Interrupt semantics (what `uio_pci_generic` relies on)
//!
//! Interrupt Status (status bit 3) is set while `EVENTS & EVENT_MASK != 0`,
//! whatever Interrupt Disable says; the INTx line is asserted while Interrupt
//! Status is set and Interrupt Disable (command bit 10) is clear. The line is
//! level-triggered and shared-capable (Linux programs it level, active low
//! from `_PRT`; [`Platform::set_irq_line`] carries the logical level).
//! `pci_check_and_mask_intx` sees Interrupt Status, sets Interrupt Disable
//! and the line drops; the tool then reads EVENTS (which clears the events,
//! Interrupt Status and the line) and clears Interrupt Disable through the
//! sysfs `config` file. An event raised in between is not lost: clearing
//! Interrupt Disable with Interrupt Status set asserts the line again.
//!
//! EVENT_MASK resets to 0: nothing interrupts until a tool asks for it.
//!
//! # Notifications for backends (ABI 1.3)
//!
//! Each window slot has pending bits ([`MgmtFunction::notify`] sets them,
//! a read of its notification register returns and clears them) and an
//! armed flag (its arm register). [`events::VIRTIO`] reads as set while
//! some armed slot has bits pending; it is a level, so reading EVENTS does
//! not clear it. When Dom0 sets Interrupt Disable while Interrupt Status is
//! set (the interrupt was taken: `uio_pci_generic` masks it in its
//! handler), every slot with bits pending is disarmed: the interrupt has
//! woken its backend, and until that backend re-arms, the slot's bits must
//! not raise the line again (another backend unmasking the shared line
//! would otherwise take an interrupt storm while the first one catches
//! up). A backend re-arms, then reads its bits, then sleeps: a
//! notification in between finds the slot armed and raises the line.
//!
//! # Register access sizes
//!
//! Registers are 32 bits. An aligned 4-byte access reaches one register, an
//! aligned 8-byte access two (low offset first). Any other access (1 or 2
//! bytes, or unaligned) reads the bytes it covers without side effects (so
//! it never clears EVENTS) and its writes are ignored. Offsets without a
//! register read 0 and ignore writes.

use keel_abi::mgmt::virtio::{notify_arm_register, notify_register, window};
use keel_abi::mgmt::{self, events, regs, REGISTER_BYTES, SHARED_BYTES};

use crate::pci_config::{Bar, BarKind, PciConfigError, PciIdentity, Type0Header, COMMAND_MEMORY, INTERRUPT_PIN_INTA};
use crate::pci_host::PciFunction;
use crate::Platform;

/// BAR index of the register page.
pub const REGISTERS_BAR: usize = 0;
/// BAR index of the shared memory (a 64-bit BAR: slots 2 and 3).
pub const SHARED_BAR: usize = 2;
/// BAR index of the memory window (a 64-bit BAR: slots 4 and 5).
pub const WINDOW_BAR: usize = window::BAR;
/// Window slots, as an array length.
const SLOTS: usize = window::SLOTS as usize;

/// Where firmware (the hypervisor) puts the function's BARs at power-on and
/// which GSI its INTA# reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MgmtConfig {
    /// BAR 0: 4 KiB aligned, below 4 GiB.
    pub registers_gpa: u64,
    /// BAR 2: 2 MiB aligned.
    pub shared_gpa: u64,
    /// BAR 4: aligned to [`window::BYTES`], inside the 64-bit PCI window.
    pub window_gpa: u64,
    /// The GSI the DSDT's `_PRT` routes this slot's INTA# to.
    pub gsi: u32,
}

/// Where the BARs decode now: `None` while Memory Space is disabled in the
/// command register (Linux disables it while sizing BARs and while moving a
/// 64-bit BAR). Addresses are whatever the guest programmed: check them with
/// [`MgmtLayout::within`] before mapping anything there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MgmtLayout {
    /// Base of the register page ([`REGISTER_BYTES`] bytes).
    pub registers: Option<u64>,
    /// Base of the shared memory ([`SHARED_BYTES`] bytes, 2 MiB aligned).
    pub shared: Option<u64>,
    /// Base of the memory window ([`window::BYTES`] bytes).
    pub window: Option<u64>,
}

impl MgmtLayout {
    /// This layout with every BAR that does not lie wholly inside one of
    /// `windows` (inclusive `(start, end)` pairs: the DSDT's 32-bit and
    /// 64-bit PCI MMIO windows) dropped, and every pair of BARs that
    /// overlap each other dropped: the hypervisor maps nothing at an
    /// address the guest was never given.
    pub fn within(self, windows: &[(u64, u64)]) -> Self {
        // Each BAR as an inclusive range, if it fits a window.
        let inside = |base: Option<u64>, len: u64| {
            let base = base?;
            let end = base.checked_add(len - 1)?;
            windows
                .iter()
                .any(|&(start, last)| base >= start && end <= last)
                .then_some((base, end))
        };
        let mut bars = [
            inside(self.registers, REGISTER_BYTES),
            inside(self.shared, SHARED_BYTES),
            inside(self.window, window::BYTES),
        ];
        let overlapping = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| match (a, b) {
            (Some((a_base, a_end)), Some((b_base, b_end))) => a_base <= b_end && b_base <= a_end,
            _ => false,
        };
        let mut clash = [false; 3];
        for first in 0..3 {
            for second in first + 1..3 {
                if overlapping(bars[first], bars[second]) {
                    clash[first] = true;
                    clash[second] = true;
                }
            }
        }
        for (bar, clash) in bars.iter_mut().zip(clash) {
            if clash {
                *bar = None;
            }
        }
        Self {
            registers: bars[0].map(|(base, _)| base),
            shared: bars[1].map(|(base, _)| base),
            window: bars[2].map(|(base, _)| base),
        }
    }
}

/// What a register write asks of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MgmtEffect {
    /// [`regs::DOORBELL_RING`] was written to [`regs::DOORBELL`]: execute the
    /// request in shared memory before the guest's write completes.
    Doorbell,
}

/// The management function's state.
#[derive(Clone, Debug)]
pub struct MgmtFunction {
    config: MgmtConfig,
    header: Type0Header,
    events: u32,
    event_mask: u32,
    /// The INTx level last driven through the platform.
    line_asserted: bool,
    /// The layout [`Self::take_layout_change`] last reported (or the
    /// power-on layout).
    reported: MgmtLayout,
    /// Each window slot's notifications not yet read.
    notify_pending: [u32; SLOTS],
    /// Bit `n`: slot `n` is armed.
    notify_armed: u32,
}

impl MgmtFunction {
    pub const IDENTITY: PciIdentity = PciIdentity {
        vendor_id: mgmt::PCI_VENDOR_ID,
        device_id: mgmt::PCI_DEVICE_ID,
        class_code: mgmt::PCI_CLASS,
        revision: 0,
        subsystem_vendor_id: mgmt::PCI_VENDOR_ID,
        subsystem_id: mgmt::PCI_DEVICE_ID,
    };

    /// The function as firmware leaves it: BARs at `config`'s addresses,
    /// Memory Space enabled (so `resource0`/`resource2` work before any
    /// driver binds), INTA#, no events, EVENT_MASK 0, line deasserted.
    pub fn new(config: MgmtConfig) -> Result<Self, PciConfigError> {
        let header = Type0Header::new(Self::IDENTITY)
            .with_bar(
                REGISTERS_BAR,
                Bar {
                    kind: BarKind::Memory32 { prefetchable: false },
                    size: REGISTER_BYTES,
                    address: config.registers_gpa,
                },
            )?
            .with_bar(
                SHARED_BAR,
                Bar {
                    kind: BarKind::Memory64 { prefetchable: true },
                    size: SHARED_BYTES,
                    address: config.shared_gpa,
                },
            )?
            .with_bar(
                WINDOW_BAR,
                Bar {
                    kind: BarKind::Memory64 { prefetchable: true },
                    size: window::BYTES,
                    address: config.window_gpa,
                },
            )?
            .with_interrupt_pin(INTERRUPT_PIN_INTA)?
            .with_command(COMMAND_MEMORY);
        let mut function = Self {
            config,
            header,
            events: 0,
            event_mask: 0,
            line_asserted: false,
            reported: MgmtLayout {
                registers: None,
                shared: None,
                window: None,
            },
            notify_pending: [0; SLOTS],
            notify_armed: 0,
        };
        // Firmware writes the interrupt it routed into Interrupt Line
        // (0xFF: "unknown" when it does not fit).
        let line = u8::try_from(config.gsi)
            .ok()
            .filter(|line| *line != 0xFF)
            .unwrap_or(0xFF);
        function.header.write(0x3C, 1, u32::from(line));
        function.reported = function.layout();
        Ok(function)
    }

    /// Back to the power-on state (a domain reset): BARs where firmware put
    /// them, events and mask cleared, the line deasserted. The next
    /// [`Self::take_layout_change`] reports the layout if it differs from the
    /// last one reported.
    pub fn reset(&mut self, platform: &mut dyn Platform) {
        let reported = self.reported;
        let was_asserted = self.line_asserted;
        if let Ok(fresh) = Self::new(self.config) {
            *self = fresh;
        }
        self.reported = reported;
        if was_asserted {
            platform.set_irq_line(self.config.gsi, false);
        }
    }

    pub fn config(&self) -> &MgmtConfig {
        &self.config
    }

    /// The GSI its INTx line drives.
    pub fn gsi(&self) -> u32 {
        self.config.gsi
    }

    pub fn header(&self) -> &Type0Header {
        &self.header
    }

    /// Where the BARs decode now.
    pub fn layout(&self) -> MgmtLayout {
        MgmtLayout {
            registers: self.header.decoded_bar(REGISTERS_BAR),
            shared: self.header.decoded_bar(SHARED_BAR),
            window: self.header.decoded_bar(WINDOW_BAR),
        }
    }

    /// The layout, if it changed since it was last reported (the first
    /// report is relative to the power-on layout, which [`Self::layout`]
    /// gives right after [`Self::new`]).
    pub fn take_layout_change(&mut self) -> Option<MgmtLayout> {
        let now = self.layout();
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// Pending events (what a read of EVENTS would return).
    pub fn pending_events(&self) -> u32 {
        self.events | self.virtio_level()
    }

    /// [`events::VIRTIO`] while an armed slot has notifications pending.
    fn virtio_level(&self) -> u32 {
        let armed_and_pending = self
            .notify_pending
            .iter()
            .enumerate()
            .any(|(slot, &bits)| bits != 0 && self.notify_armed & (1 << slot) != 0);
        if armed_and_pending {
            events::VIRTIO
        } else {
            0
        }
    }

    /// Adds `bits` to window slot `slot`'s pending notifications (a slot
    /// past the window is ignored); interrupts if the slot is armed and
    /// [`events::VIRTIO`] is in EVENT_MASK.
    pub fn notify(&mut self, slot: usize, bits: u32, platform: &mut dyn Platform) {
        if let Some(pending) = self.notify_pending.get_mut(slot) {
            *pending |= bits;
            self.update_line(platform);
        }
    }

    /// Forgets slot `slot` (its domain is gone): no bits, not armed.
    pub fn clear_slot(&mut self, slot: usize, platform: &mut dyn Platform) {
        if let Some(pending) = self.notify_pending.get_mut(slot) {
            *pending = 0;
            self.notify_armed &= !(1 << slot);
            self.update_line(platform);
        }
    }

    /// Slot `slot`'s pending bits (tests, diagnostics).
    pub fn pending_notifications(&self, slot: usize) -> u32 {
        self.notify_pending.get(slot).copied().unwrap_or(0)
    }

    pub fn event_mask(&self) -> u32 {
        self.event_mask
    }

    /// Whether the INTx line is asserted now.
    pub fn intx_asserted(&self) -> bool {
        self.line_asserted
    }

    /// Sets event bits ([`mgmt::events`]); interrupts if any of them is in
    /// EVENT_MASK and Interrupt Disable is clear.
    pub fn raise_events(&mut self, events: u32, platform: &mut dyn Platform) {
        self.events |= events;
        self.update_line(platform);
    }

    /// A guest read of `size` bytes at `offset` in BAR 0.
    pub fn register_read(&mut self, offset: u64, size: u8, platform: &mut dyn Platform) -> u64 {
        match (size, offset % u64::from(size.max(1))) {
            (4, 0) => u64::from(self.read_register(offset, platform)),
            (8, 0) => {
                let low = self.read_register(offset, platform);
                let high = self.read_register(offset + 4, platform);
                u64::from(low) | u64::from(high) << 32
            }
            _ => (0..u64::from(size.min(8))).fold(0, |value, index| {
                let byte = offset.checked_add(index).map_or(0, |at| {
                    (u64::from(self.peek_register(at & !3)) >> ((at & 3) * 8)) & 0xFF
                });
                value | (byte << (index * 8))
            }),
        }
    }

    /// A guest write of `size` bytes at `offset` in BAR 0. Returns
    /// [`MgmtEffect::Doorbell`] when the doorbell was rung.
    #[must_use]
    pub fn register_write(
        &mut self,
        offset: u64,
        size: u8,
        value: u64,
        platform: &mut dyn Platform,
    ) -> Option<MgmtEffect> {
        match (size, offset % u64::from(size.max(1))) {
            (4, 0) => self.write_register(offset, value as u32, platform),
            (8, 0) => {
                let low = self.write_register(offset, value as u32, platform);
                let high = self.write_register(offset + 4, (value >> 32) as u32, platform);
                low.or(high)
            }
            _ => None,
        }
    }

    /// A register's value without side effects.
    fn peek_register(&self, offset: u64) -> u32 {
        match offset {
            regs::MAGIC => regs::MAGIC_VALUE,
            regs::VERSION => mgmt::VERSION,
            regs::SHARED_SIZE => SHARED_BYTES as u32,
            regs::EVENTS => self.events | self.virtio_level(),
            regs::EVENT_MASK => self.event_mask,
            offset => match notify_slot(offset) {
                Some((slot, false)) => self.notify_pending[slot],
                Some((slot, true)) => (self.notify_armed >> slot) & 1,
                None => 0,
            },
        }
    }

    fn read_register(&mut self, offset: u64, platform: &mut dyn Platform) -> u32 {
        if offset == regs::EVENTS {
            let events = core::mem::take(&mut self.events) | self.virtio_level();
            self.update_line(platform);
            return events;
        }
        if let Some((slot, false)) = notify_slot(offset) {
            let bits = core::mem::take(&mut self.notify_pending[slot]);
            self.update_line(platform);
            return bits;
        }
        self.peek_register(offset)
    }

    fn write_register(&mut self, offset: u64, value: u32, platform: &mut dyn Platform) -> Option<MgmtEffect> {
        match offset {
            regs::DOORBELL if value == regs::DOORBELL_RING => Some(MgmtEffect::Doorbell),
            regs::EVENT_MASK => {
                self.event_mask = value;
                self.update_line(platform);
                None
            }
            offset => {
                // MAGIC, VERSION, SHARED_SIZE, EVENTS and the notification
                // registers are read-only.
                if let Some((slot, true)) = notify_slot(offset) {
                    match value {
                        0 => self.notify_armed &= !(1 << slot),
                        1 => self.notify_armed |= 1 << slot,
                        _ => {}
                    }
                    self.update_line(platform);
                }
                None
            }
        }
    }

    /// Recomputes Interrupt Status and drives the line if its level changed.
    fn update_line(&mut self, platform: &mut dyn Platform) {
        let events = self.events | self.virtio_level();
        self.header.set_interrupt_status(events & self.event_mask != 0);
        let asserted = self.header.intx_asserted();
        if asserted != self.line_asserted {
            self.line_asserted = asserted;
            platform.set_irq_line(self.config.gsi, asserted);
        }
    }
}

impl PciFunction for MgmtFunction {
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        self.header.read(offset, size)
    }

    fn config_write(&mut self, offset: u16, size: u8, value: u32, platform: &mut dyn Platform) {
        let was_masked = self.header.intx_disabled();
        let was_pending = self.header.interrupt_status();
        self.header.write(offset, size, value);
        if !was_masked && was_pending && self.header.intx_disabled() {
            // The interrupt was taken: the backends it woke re-arm.
            for (slot, &bits) in self.notify_pending.iter().enumerate() {
                if bits != 0 {
                    self.notify_armed &= !(1 << slot);
                }
            }
        }
        // Interrupt Disable may have changed.
        self.update_line(platform);
    }
}

/// The window slot a BAR 0 offset's notification register belongs to, and
/// whether it is the arm register (else the pending-bits register).
fn notify_slot(offset: u64) -> Option<(usize, bool)> {
    let slot_of = |base: u64| {
        let relative = offset.checked_sub(base)?;
        (relative % 4 == 0 && relative / 4 < window::SLOTS).then_some((relative / 4) as usize)
    };
    slot_of(notify_register(0))
        .map(|slot| (slot, false))
        .or_else(|| slot_of(notify_arm_register(0)).map(|slot| (slot, true)))
}

#[cfg(test)]
mod tests;

//! Paravirtual (virtio-pci) devices with their backends in Dom0. Since ABI
//! 1.3.
//!
//! - [`super::Command::VirtioAttach`] gives a DomU still being built a
//!   virtio-pci function (device type, features, configuration bytes). Keel
//!   emulates the transport; the device's work is the backend's.
//! - [`super::Command::WindowMap`] maps the DomU's RAM into a slot of the
//!   management function's memory window (BAR [`window::BAR`]): the
//!   backend maps `resource4` at the slot's offset and finds guest-physical
//!   address `gpa` at `offset + gpa`. Keel revokes the mapping when the
//!   domain is destroyed, before any of its memory is reused.
//! - A queue kick or a transport change in the DomU sets the domain's bits
//!   in its notification register ([`notify_register`]); an armed register
//!   with bits set raises [`super::events::VIRTIO`] and the management
//!   function's INTx (see [`super::regs`]).
//! - [`super::Command::VirtioState`] returns the transport state the
//!   backend needs ([`VirtioDeviceState`]); [`super::Command::VirtioComplete`]
//!   delivers the interrupts of the queues the backend used, acknowledges a
//!   reset, or marks the device broken.

use super::{DecodeError, Reader, Writer};

/// The memory window: BAR 4 (and 5) of the management function, 64-bit
/// prefetchable memory. Slot `n` covers `[n * SLOT_BYTES, (n + 1) *
/// SLOT_BYTES)`; a mapped DomU's RAM (guest-physical 0 up to its size) is
/// at the start of its slot, the rest reads as a hole.
pub mod window {
    /// BAR index.
    pub const BAR: usize = 4;
    /// Bytes a slot spans: every DomU's RAM lies below 4 GiB.
    pub const SLOT_BYTES: u64 = 4 << 30;
    /// Slots: DomUs whose RAM is mapped at once.
    pub const SLOTS: u64 = 16;
    /// Size of the BAR.
    pub const BYTES: u64 = SLOT_BYTES * SLOTS;
}

/// Largest number of virtio devices one DomU may have (the notification
/// register has a kick bit and a control bit for each).
pub const MAX_DEVICES: usize = 16;

/// Most queues a device may have.
pub const MAX_QUEUES: usize = 32;

/// Largest device configuration, in bytes.
pub const MAX_CONFIG_BYTES: usize = 256;

/// Register (32-bit, in BAR 0) holding window slot `slot`'s pending
/// notifications: bit `d` for a queue kick of device `d`, bit `16 + d` for
/// a transport change of device `d` (status, reset, a queue enabled, the
/// domain rebooted). A read returns the bits and clears them.
pub const fn notify_register(slot: u64) -> u64 {
    0x100 + slot * 4
}

/// Register (32-bit, in BAR 0): writing 1 arms slot `slot`: its pending
/// bits then raise [`super::events::VIRTIO`] and the interrupt. Keel
/// disarms every slot whose bits raised the interrupt once Dom0 masks it
/// (sets the command register's Interrupt Disable, as `uio_pci_generic`
/// does): a backend re-arms, then reads its bits, then sleeps.
pub const fn notify_arm_register(slot: u64) -> u64 {
    0x200 + slot * 4
}

/// The kick bit of device `device` in a notification register.
pub const fn kick_bit(device: usize) -> u32 {
    1 << device
}

/// The transport-change bit of device `device`.
pub const fn control_bit(device: usize) -> u32 {
    1 << (16 + device)
}

/// Virtio device types ([`super::Command::VirtioAttach`] `args[1]`).
pub mod device_type {
    pub const NET: u16 = 1;
    pub const BLOCK: u16 = 2;
    pub const CONSOLE: u16 = 3;
    pub const ALL: [u16; 3] = [NET, BLOCK, CONSOLE];
}

/// Flags of [`super::Command::VirtioComplete`] (`args[3]`).
pub mod complete_flags {
    /// The backend stopped using the device after a driver reset: Keel
    /// lets the driver see status 0.
    pub const RESET_DONE: u64 = 1 << 0;
    /// The driver broke a queue: Keel sets DEVICE_NEEDS_RESET and sends
    /// the configuration interrupt.
    pub const NEEDS_RESET: u64 = 1 << 1;
    pub const ALL: u64 = RESET_DONE | NEEDS_RESET;
}

/// `args[3]` of [`super::Command::VirtioAttach`]: queue count (bits 15:0)
/// and the largest queue size (bits 31:16).
pub const fn queue_shape(num_queues: u16, queue_max_size: u16) -> u64 {
    (queue_max_size as u64) << 16 | num_queues as u64
}

/// One queue in [`VirtioDeviceState`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioQueueState {
    pub enabled: bool,
    pub size: u16,
    /// Guest-physical addresses of the descriptor table, the available
    /// ring (driver area) and the used ring (device area).
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

impl VirtioQueueState {
    pub const BYTES: usize = 32;
}

/// The output of [`super::Command::VirtioState`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioDeviceState {
    pub device_type: u16,
    pub num_queues: u16,
    /// The device status the driver wrote (0 after a reset).
    pub status: u8,
    /// The driver reset the device and waits for the backend's
    /// [`complete_flags::RESET_DONE`].
    pub reset_pending: bool,
    /// Counts the domain's boots: a reboot gives every device a fresh
    /// transport, and [`super::Command::VirtioComplete`] names the
    /// generation it acts on.
    pub generation: u32,
    /// Features the driver accepted (valid once FEATURES_OK is set).
    pub driver_features: u64,
    pub queues: [VirtioQueueState; MAX_QUEUES],
}

impl VirtioDeviceState {
    const HEADER: usize = 24;

    /// Bytes on the wire for `num_queues` queues.
    pub const fn bytes(num_queues: u16) -> usize {
        Self::HEADER + num_queues as usize * VirtioQueueState::BYTES
    }

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        if usize::from(self.num_queues) > MAX_QUEUES {
            return Err(DecodeError::Invalid("num_queues"));
        }
        let mut writer = Writer::new(out);
        writer.u16(self.device_type)?;
        writer.u16(self.num_queues)?;
        writer.u8(self.status)?;
        writer.u8(u8::from(self.reset_pending))?;
        writer.u16(0)?;
        writer.u32(self.generation)?;
        writer.u32(0)?;
        writer.u64(self.driver_features)?;
        for queue in &self.queues[..usize::from(self.num_queues)] {
            writer.u16(queue.size)?;
            writer.u8(u8::from(queue.enabled))?;
            writer.u8(0)?;
            writer.u32(0)?;
            writer.u64(queue.desc)?;
            writer.u64(queue.driver)?;
            writer.u64(queue.device)?;
        }
        Ok(writer.position())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let device_type = reader.u16()?;
        let num_queues = reader.u16()?;
        if usize::from(num_queues) > MAX_QUEUES {
            return Err(DecodeError::Invalid("num_queues"));
        }
        let status = reader.u8()?;
        let reset_pending = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::Invalid("reset_pending")),
        };
        reader.u16()?;
        let generation = reader.u32()?;
        reader.u32()?;
        let driver_features = reader.u64()?;
        let mut queues = [VirtioQueueState::default(); MAX_QUEUES];
        for queue in &mut queues[..usize::from(num_queues)] {
            let size = reader.u16()?;
            let enabled = match reader.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("queue enabled")),
            };
            reader.u8()?;
            reader.u32()?;
            *queue = VirtioQueueState {
                enabled,
                size,
                desc: reader.u64()?,
                driver: reader.u64()?,
                device: reader.u64()?,
            };
        }
        Ok(Self {
            device_type,
            num_queues,
            status,
            reset_pending,
            generation,
            driver_features,
            queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_round_trips_and_refuses_bad_fields() {
        let mut state = VirtioDeviceState {
            device_type: device_type::BLOCK,
            num_queues: 2,
            status: 0x0f,
            reset_pending: true,
            generation: 7,
            driver_features: 1 << 32 | 1 << 29,
            ..Default::default()
        };
        state.queues[1] = VirtioQueueState {
            enabled: true,
            size: 256,
            desc: 0x1000,
            driver: 0x2000,
            device: 0x3000,
        };
        let mut bytes = [0; 256];
        let len = state.encode(&mut bytes).unwrap();
        assert_eq!(len, VirtioDeviceState::bytes(2));
        assert_eq!(VirtioDeviceState::decode(&bytes[..len]), Ok(state));
        assert_eq!(
            VirtioDeviceState::decode(&bytes[..len - 1]),
            Err(DecodeError::Truncated)
        );
        let mut bad = bytes;
        bad[5] = 2;
        assert_eq!(
            VirtioDeviceState::decode(&bad[..len]),
            Err(DecodeError::Invalid("reset_pending"))
        );
        let mut bad = bytes;
        bad[2] = 33;
        assert_eq!(
            VirtioDeviceState::decode(&bad[..len]),
            Err(DecodeError::Invalid("num_queues"))
        );
    }

    #[test]
    fn registers_and_bits_do_not_overlap() {
        assert!(notify_register(window::SLOTS - 1) < notify_arm_register(0));
        assert!(notify_arm_register(window::SLOTS - 1) < super::super::REGISTER_BYTES);
        assert_eq!(kick_bit(MAX_DEVICES - 1) & control_bit(0), 0);
        assert_eq!(window::BYTES, 64 << 30);
    }
}

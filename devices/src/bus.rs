//! Routes guest accesses (I/O ports or guest-physical MMIO addresses) to the
//! device registered at that address.
//!
//! Ranges are kept sorted by start address so a lookup is one binary search:
//! port-I/O and MMIO exits are hot paths. An access that is not wholly inside
//! one range finds nothing, and the caller applies the empty-bus rule
//! ([`crate::all_ones`] for reads, drop writes); hardware decodes such
//! straddling accesses in ways no guest relies on.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::{Device, Offset, Platform};

/// Names a device registered on one [`DeviceBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// A range must cover at least one address.
    EmptyRange,
    /// `start + len` (or the device offset plus `len`) does not fit in 64 bits.
    RangeOverflow,
    /// The new range shares addresses with one already mapped to `existing`.
    Overlap { existing: DeviceId },
    /// No device with this id is registered on this bus.
    UnknownDevice,
}

/// One window of addresses `[start, end)` that reaches `device` at offsets
/// starting from `device_offset`.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: u64,
    end: u64,
    device: DeviceId,
    device_offset: Offset,
}

/// A map of non-overlapping address ranges to devices.
#[derive(Default)]
pub struct DeviceBus {
    devices: Vec<Box<dyn Device>>,
    /// Sorted by `start`; never overlapping.
    windows: Vec<Window>,
}

impl DeviceBus {
    pub const fn new() -> Self {
        Self {
            devices: Vec::new(),
            windows: Vec::new(),
        }
    }

    /// Registers `device` at `[start, start + len)`; the device sees offsets
    /// from 0. On error the device is dropped and the bus is unchanged.
    pub fn register(&mut self, start: u64, len: u64, device: Box<dyn Device>) -> Result<DeviceId, BusError> {
        let id = DeviceId(self.devices.len());
        let window = self.checked_window(start, len, id, 0)?;
        self.devices.push(device);
        self.insert_window(window);
        Ok(id)
    }

    /// Maps a further range to an already registered device, whose offsets
    /// in it start at `device_offset`. This lets one device own disjoint
    /// ports, e.g. the i8042's 0x60 (offset 0) and 0x64 (offset 4) without
    /// swallowing 0x61-0x63 in between.
    pub fn map_additional_range(
        &mut self,
        start: u64,
        len: u64,
        device: DeviceId,
        device_offset: Offset,
    ) -> Result<(), BusError> {
        if device.0 >= self.devices.len() {
            return Err(BusError::UnknownDevice);
        }
        let window = self.checked_window(start, len, device, device_offset)?;
        self.insert_window(window);
        Ok(())
    }

    /// Reads `size` bytes at `addr`: `None` when no single range holds the
    /// whole access or `size` is not 1, 2, 4 or 8.
    pub fn read(&mut self, addr: u64, size: u8, platform: &mut dyn Platform) -> Option<u64> {
        let (device, offset) = self.route(addr, size)?;
        let value = self.devices.get_mut(device.0)?.read(offset, size, platform);
        // A device bug must not leak bits beyond the access width to the guest.
        Some(value & crate::all_ones(size))
    }

    /// Writes `size` bytes at `addr`: `false` when nothing took the write.
    pub fn write(&mut self, addr: u64, size: u8, value: u64, platform: &mut dyn Platform) -> bool {
        let Some((device, offset)) = self.route(addr, size) else {
            return false;
        };
        match self.devices.get_mut(device.0) {
            Some(device) => {
                device.write(offset, size, value & crate::all_ones(size), platform);
                true
            }
            None => false,
        }
    }

    /// The device registered under `id`, e.g. for the hypervisor to inspect it.
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut (dyn Device + 'static)> {
        Some(self.devices.get_mut(id.0)?.as_mut())
    }

    /// The device registered under `id` as its concrete type `T` (e.g. the
    /// [`crate::pci_host::PciHost`], to reach the functions in it); `None`
    /// if there is no such device or it is not a `T`.
    pub fn device_as<T: Device>(&mut self, id: DeviceId) -> Option<&mut T> {
        let device: &mut dyn core::any::Any = self.devices.get_mut(id.0)?.as_mut();
        device.downcast_mut::<T>()
    }

    /// Finds the window wholly containing `[addr, addr + size)` and the
    /// device offset of `addr` in it.
    fn route(&self, addr: u64, size: u8) -> Option<(DeviceId, Offset)> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return None;
        }
        let access_end = addr.checked_add(u64::from(size))?;
        // Windows are sorted and disjoint, so only the last one starting at or
        // below `addr` can contain it.
        let candidates = self.windows.partition_point(|w| w.start <= addr);
        let window = self.windows.get(candidates.checked_sub(1)?)?;
        if addr >= window.end || access_end > window.end {
            return None;
        }
        // Cannot overflow: checked_window ensured device_offset + len fits.
        let offset = window.device_offset.checked_add(addr - window.start)?;
        Some((window.device, offset))
    }

    fn checked_window(
        &self,
        start: u64,
        len: u64,
        device: DeviceId,
        device_offset: Offset,
    ) -> Result<Window, BusError> {
        if len == 0 {
            return Err(BusError::EmptyRange);
        }
        let end = start.checked_add(len).ok_or(BusError::RangeOverflow)?;
        device_offset.checked_add(len).ok_or(BusError::RangeOverflow)?;
        let next = self.windows.partition_point(|w| w.start < start);
        let overlapping = [next.checked_sub(1), Some(next)]
            .into_iter()
            .flatten()
            .filter_map(|index| self.windows.get(index))
            .find(|w| w.start < end && start < w.end);
        if let Some(existing) = overlapping {
            return Err(BusError::Overlap {
                existing: existing.device,
            });
        }
        Ok(Window {
            start,
            end,
            device,
            device_offset,
        })
    }

    fn insert_window(&mut self, window: Window) {
        let index = self.windows.partition_point(|w| w.start < window.start);
        self.windows.insert(index, window);
    }
}

/// Splits a multi-byte access to a device whose registers are all one byte
/// wide into byte accesses at consecutive offsets, lowest first: what the ISA
/// bus does with `in ax, dx` on an 8-bit peripheral. `read_byte` sees each
/// offset (which may lie past the device's registers); the bytes are
/// assembled little-endian.
pub fn read_bytewise(offset: Offset, size: u8, mut read_byte: impl FnMut(Offset) -> u8) -> u64 {
    (0..u64::from(size.min(8))).fold(0, |value, index| match offset.checked_add(index) {
        Some(byte_offset) => value | (u64::from(read_byte(byte_offset)) << (index * 8)),
        None => value | (0xff << (index * 8)),
    })
}

/// Write counterpart of [`read_bytewise`]: byte `i` of `value` goes to
/// `offset + i`.
pub fn write_bytewise(offset: Offset, size: u8, value: u64, mut write_byte: impl FnMut(Offset, u8)) {
    let bytes = (0u64..).zip(value.to_le_bytes());
    for (index, byte) in bytes.take(usize::from(size.min(8))) {
        if let Some(byte_offset) = offset.checked_add(index) {
            write_byte(byte_offset, byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    /// Records accesses and answers reads with `0xAA00 | offset` so tests can
    /// see which offset a bus address turned into.
    #[derive(Default)]
    struct Probe {
        writes: std::rc::Rc<std::cell::RefCell<Vec<(Offset, u8, u64)>>>,
    }

    impl Device for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn read(&mut self, offset: Offset, _size: u8, _platform: &mut dyn Platform) -> u64 {
            // Deliberately wider than any access, to check the bus masks it.
            0xFFFF_FFFF_FFFF_AA00 | offset
        }
        fn write(&mut self, offset: Offset, size: u8, value: u64, _platform: &mut dyn Platform) {
            self.writes.borrow_mut().push((offset, size, value));
        }
    }

    fn probe() -> Box<dyn Device> {
        Box::new(Probe::default())
    }

    #[test]
    fn routes_reads_to_the_offset_within_the_range_and_masks_to_size() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        bus.register(0x3F8, 8, probe()).unwrap();
        bus.register(0x70, 2, probe()).unwrap();
        assert_eq!(bus.read(0x3FA, 1, &mut platform), Some(0x02));
        assert_eq!(bus.read(0x3F8, 2, &mut platform), Some(0xAA00));
        assert_eq!(bus.read(0x71, 1, &mut platform), Some(0x01));
        assert_eq!(bus.read(0x3F8, 8, &mut platform), Some(0xFFFF_FFFF_FFFF_AA00));
    }

    #[test]
    fn unmapped_straddling_and_odd_sized_accesses_find_nothing() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        bus.register(0x100, 4, probe()).unwrap();
        bus.register(0x104, 4, probe()).unwrap();
        assert_eq!(bus.read(0xFF, 1, &mut platform), None);
        assert_eq!(bus.read(0x108, 1, &mut platform), None);
        // Crosses from one device into the next: rejected, not split.
        assert_eq!(bus.read(0x102, 4, &mut platform), None);
        assert_eq!(bus.read(0x103, 2, &mut platform), None);
        assert_eq!(bus.read(0x100, 3, &mut platform), None);
        assert_eq!(bus.read(0x100, 0, &mut platform), None);
        assert_eq!(bus.read(u64::MAX, 8, &mut platform), None);
        assert!(!bus.write(0x107, 2, 0, &mut platform));
        assert!(bus.write(0x106, 2, 0, &mut platform));
    }

    #[test]
    fn writes_are_masked_and_offset() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        let device = Probe::default();
        let writes = device.writes.clone();
        bus.register(0x1000, 0x10, Box::new(device)).unwrap();
        assert!(bus.write(0x1004, 2, 0x1234_5678, &mut platform));
        assert_eq!(*writes.borrow(), vec![(4, 2, 0x5678)]);
    }

    #[test]
    fn rejects_empty_overflowing_and_overlapping_ranges() {
        let mut bus = DeviceBus::new();
        assert_eq!(bus.register(0x10, 0, probe()), Err(BusError::EmptyRange));
        assert_eq!(bus.register(u64::MAX, 1, probe()), Err(BusError::RangeOverflow));
        let first = bus.register(0x10, 0x10, probe()).unwrap();
        for (start, len) in [(0x10, 1), (0x1F, 1), (0x08, 0x09), (0x00, 0x100), (0x18, 2)] {
            assert_eq!(
                bus.register(start, len, probe()),
                Err(BusError::Overlap { existing: first }),
                "range {start:#x}+{len:#x}"
            );
        }
        // Touching ranges on either side are fine.
        assert!(bus.register(0x20, 1, probe()).is_ok());
        assert!(bus.register(0x0F, 1, probe()).is_ok());
        assert!(bus.register(u64::MAX - 1, 1, probe()).is_ok());
    }

    #[test]
    fn failed_registration_leaves_ids_dense() {
        let mut bus = DeviceBus::new();
        let first = bus.register(0x10, 1, probe()).unwrap();
        assert!(bus.register(0x10, 1, probe()).is_err());
        let second = bus.register(0x11, 1, probe()).unwrap();
        assert_ne!(first, second);
        assert!(bus.device_mut(second).is_some());
        assert!(bus.device_mut(DeviceId(2)).is_none());
    }

    #[test]
    fn device_as_reaches_the_concrete_type_only() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        let probe_id = bus.register(0x10, 1, probe()).unwrap();
        let host_id = bus
            .register(0xCF8, 8, Box::new(crate::pci_host::PciHost::new()))
            .unwrap();
        assert!(bus.device_as::<Probe>(probe_id).is_some());
        assert!(bus.device_as::<crate::pci_host::PciHost>(probe_id).is_none());
        assert!(bus.device_as::<Probe>(DeviceId(7)).is_none());
        let host = bus.device_as::<crate::pci_host::PciHost>(host_id).unwrap();
        let bridge = crate::pci_host::PciAddress::HOST_BRIDGE;
        assert!(host.function_as::<crate::pci_host::HostBridge>(bridge).is_some());
        // The same device still answers through the bus.
        bus.write(0xCF8, 4, 0x8000_0000, &mut platform);
        assert_eq!(bus.read(0xCFC, 2, &mut platform), Some(0x8086));
    }

    #[test]
    fn lookup_finds_the_right_device_among_many_registered_out_of_order() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        let mut starts: Vec<u64> = (0..64).map(|i| i * 0x100).collect();
        starts.reverse();
        for start in &starts {
            bus.register(*start, 0x10, probe()).unwrap();
        }
        for start in starts {
            assert_eq!(bus.read(start + 5, 1, &mut platform), Some(0x05));
            assert_eq!(bus.read(start + 0x10, 1, &mut platform), None);
        }
    }

    #[test]
    fn additional_range_reaches_the_same_device_at_its_offset() {
        let mut bus = DeviceBus::new();
        let mut platform = RecordingPlatform::default();
        let device = Probe::default();
        let writes = device.writes.clone();
        let id = bus.register(0x60, 1, Box::new(device)).unwrap();
        bus.map_additional_range(0x64, 1, id, 4).unwrap();
        assert_eq!(bus.read(0x64, 1, &mut platform), Some(0x04));
        assert_eq!(bus.read(0x61, 1, &mut platform), None);
        assert!(bus.write(0x64, 1, 0xFE, &mut platform));
        assert_eq!(*writes.borrow(), vec![(4, 1, 0xFE)]);
        assert_eq!(
            bus.map_additional_range(0x70, 1, DeviceId(9), 0),
            Err(BusError::UnknownDevice)
        );
        assert_eq!(
            bus.map_additional_range(0x70, 2, id, u64::MAX),
            Err(BusError::RangeOverflow)
        );
        assert_eq!(
            bus.map_additional_range(0x60, 1, id, 0),
            Err(BusError::Overlap { existing: id })
        );
    }

    #[test]
    fn bytewise_helpers_split_little_endian() {
        assert_eq!(read_bytewise(2, 2, |offset| offset as u8 * 0x11), 0x3322);
        assert_eq!(read_bytewise(u64::MAX, 2, |_| 0), 0xFF00);
        let mut seen = Vec::new();
        write_bytewise(6, 4, 0xDDCC_BBAA, |offset, byte| seen.push((offset, byte)));
        assert_eq!(seen, vec![(6, 0xAA), (7, 0xBB), (8, 0xCC), (9, 0xDD)]);
    }
}

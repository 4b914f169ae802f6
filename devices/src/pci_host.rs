//! The PCI host bridge's configuration mechanism #1: CONFIG_ADDRESS at port
//! 0xCF8 and the CONFIG_DATA window at 0xCFC-0xCFF. Register [`PciHost`] at
//! [`PCI_CONFIG_ADDRESS_PORT`] with length [`PCI_HOST_PORT_COUNT`].
//!
//! Configuration space holds [`PciFunction`]s at (bus, device, function)
//! addresses; [`PciHost::new`] places a host bridge at 00:00.0 so Linux's
//! `pci_sanity_check` accepts mechanism #1. Everything else reads all-ones,
//! which is how a bus master abort says "no device here".

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::any::Any;

use crate::reset::ResetControl;
use crate::{all_ones, Device, Offset, Platform};

pub const PCI_CONFIG_ADDRESS_PORT: u64 = 0xCF8;
/// CONFIG_ADDRESS (4 ports, including the Reset Control Register at 0xCF9)
/// and CONFIG_DATA (4 ports).
pub const PCI_HOST_PORT_COUNT: u64 = 8;

/// CONFIG_ADDRESS offset, relative to 0xCF8.
const CONFIG_ADDRESS: Offset = 0;
/// 0xCF9 is decoded as the Reset Control Register when accessed as a byte.
const RESET_CONTROL: Offset = 1;
/// CONFIG_DATA window start (0xCFC), relative to 0xCF8.
const CONFIG_DATA: Offset = 4;
const CONFIG_DATA_LEN: u64 = 4;

const ADDRESS_ENABLE: u32 = 1 << 31;
/// Enable, bus, device, function and dword-aligned register. Bits 24-30 are
/// reserved (AMD's extended-register bits are not supported) and bits 0-1
/// always read 0.
const ADDRESS_WRITABLE: u32 = ADDRESS_ENABLE | 0x00FF_FFFC;
const ADDRESS_REGISTER_MASK: u32 = 0xFC;

/// Conventional (non-extended) configuration space per function.
pub const CONFIG_SPACE_SIZE: u16 = 256;

/// Where a function sits in PCI configuration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// The host bridge's address.
    pub const HOST_BRIDGE: Self = Self {
        bus: 0,
        device: 0,
        function: 0,
    };

    /// `None` unless `device` < 32 and `function` < 8.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < 32 && function < 8 {
            Some(Self { bus, device, function })
        } else {
            None
        }
    }

    pub const fn bus(self) -> u8 {
        self.bus
    }

    pub const fn device(self) -> u8 {
        self.device
    }

    pub const fn function(self) -> u8 {
        self.function
    }

    /// The address CONFIG_ADDRESS selects (bus 23:16, device 15:11,
    /// function 10:8).
    const fn from_config_address(value: u32) -> Self {
        Self {
            bus: (value >> 16) as u8,
            device: ((value >> 11) & 0x1F) as u8,
            function: ((value >> 8) & 0x7) as u8,
        }
    }
}

/// One PCI function's configuration space, as a virtual or passthrough
/// device implements it.
///
/// The host guarantees `size` is 1, 2 or 4 and the access lies within one
/// aligned dword below [`CONFIG_SPACE_SIZE`]; implementations should still
/// not index unchecked. Unimplemented registers read 0 and ignore writes.
///
/// A configuration write gets the [`Platform`] because it can change what
/// the function drives: setting Interrupt Disable in the command register
/// must release an asserted INTx line at once. Functions are `Any` so whoever
/// owns the [`PciHost`] can reach a function's own interface
/// ([`PciHost::function_as`]).
pub trait PciFunction: Any {
    fn config_read(&mut self, offset: u16, size: u8) -> u32;
    fn config_write(&mut self, offset: u16, size: u8, value: u32, platform: &mut dyn Platform);
}

/// Reads `size` little-endian bytes at `offset` from a function's register
/// image; bytes beyond the image read 0 (unimplemented registers).
pub fn read_config_bytes(image: &[u8], offset: u16, size: u8) -> u32 {
    (0..u32::from(size.min(4))).fold(0, |value, index| {
        let byte = usize::from(offset)
            .checked_add(index as usize)
            .and_then(|at| image.get(at))
            .copied()
            .unwrap_or(0);
        value | (u32::from(byte) << (index * 8))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// A function is already registered at this address.
    AddressInUse,
}

/// Intel's 82G33/P35 DRAM controller (the host bridge QEMU's q35 machine
/// shows): a device ID Linux knows, with no quirks needing more registers.
pub const HOST_BRIDGE_VENDOR_ID: u16 = 0x8086;
pub const HOST_BRIDGE_DEVICE_ID: u16 = 0x29C0;
/// Base class 06 (bridge), subclass 00 (host bridge), programming interface 00.
const HOST_BRIDGE_CLASS: [u8; 3] = [0x00, 0x00, 0x06];

/// The host bridge's type-0 header. No BARs, no capabilities, no interrupt:
/// every register is read-only, so BAR sizing finds nothing to map.
pub struct HostBridge {
    header: [u8; 64],
}

impl HostBridge {
    pub fn new() -> Self {
        let mut header = [0; 64];
        let [vendor_low, vendor_high] = HOST_BRIDGE_VENDOR_ID.to_le_bytes();
        let [device_low, device_high] = HOST_BRIDGE_DEVICE_ID.to_le_bytes();
        let [prog_if, subclass, class] = HOST_BRIDGE_CLASS;
        // Offsets 0x00-0x03: IDs. 0x08: revision, then class code (0x09-0x0B).
        // Command, status, header type (0x0E: single-function type 0) stay 0.
        header[0x00] = vendor_low;
        header[0x01] = vendor_high;
        header[0x02] = device_low;
        header[0x03] = device_high;
        header[0x09] = prog_if;
        header[0x0A] = subclass;
        header[0x0B] = class;
        Self { header }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciFunction for HostBridge {
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        read_config_bytes(&self.header, offset, size)
    }

    fn config_write(&mut self, _offset: u16, _size: u8, _value: u32, _platform: &mut dyn Platform) {}
}

pub struct PciHost {
    config_address: u32,
    functions: Vec<(PciAddress, Box<dyn PciFunction>)>,
    reset_control: ResetControl,
}

impl PciHost {
    /// A host with only the host bridge at 00:00.0.
    pub fn new() -> Self {
        let host_bridge: Box<dyn PciFunction> = Box::new(HostBridge::new());
        Self {
            config_address: 0,
            functions: alloc::vec![(PciAddress::HOST_BRIDGE, host_bridge)],
            reset_control: ResetControl::new(),
        }
    }

    /// Places `function` at `address`. Linux only scans functions 1-7 of a
    /// device whose function 0 has the multi-function bit (header type bit 7)
    /// set; that is the function's business, not the host's.
    pub fn add_function(&mut self, address: PciAddress, function: Box<dyn PciFunction>) -> Result<(), PciError> {
        if self.functions.iter().any(|(taken, _)| *taken == address) {
            return Err(PciError::AddressInUse);
        }
        self.functions.push((address, function));
        Ok(())
    }

    /// The function at `address`, if one is there.
    pub fn function_mut(&mut self, address: PciAddress) -> Option<&mut dyn PciFunction> {
        let (_, function) = self.functions.iter_mut().find(|(candidate, _)| *candidate == address)?;
        Some(function.as_mut())
    }

    /// The function at `address` as its concrete type `T`: how the
    /// hypervisor reaches a function's own interface (e.g. the management
    /// function's BAR layout and event bits). `None` if nothing is there or
    /// it is not a `T`.
    pub fn function_as<T: PciFunction>(&mut self, address: PciAddress) -> Option<&mut T> {
        let function: &mut dyn Any = self.function_mut(address)?;
        function.downcast_mut::<T>()
    }

    /// Shared-reference form of [`Self::function_as`].
    pub fn function_ref<T: PciFunction>(&self, address: PciAddress) -> Option<&T> {
        let (_, function) = self.functions.iter().find(|(candidate, _)| *candidate == address)?;
        let function: &dyn Any = function.as_ref();
        function.downcast_ref::<T>()
    }

    /// The function and register CONFIG_ADDRESS selects, with the register
    /// offset of a data-window access at `byte_in_window` of `size` bytes;
    /// `None` when disabled, malformed or nobody is there.
    fn selected_function(&mut self, byte_in_window: u64, size: u8) -> Option<(&mut dyn PciFunction, u16)> {
        if self.config_address & ADDRESS_ENABLE == 0 || !matches!(size, 1 | 2 | 4) {
            return None;
        }
        if byte_in_window.checked_add(u64::from(size))? > CONFIG_DATA_LEN {
            return None;
        }
        let register = (self.config_address & ADDRESS_REGISTER_MASK) as u16;
        // Below 256: register <= 0xFC and byte_in_window < 4.
        let offset = register + byte_in_window as u16;
        let address = PciAddress::from_config_address(self.config_address);
        let (_, function) = self.functions.iter_mut().find(|(candidate, _)| *candidate == address)?;
        Some((function.as_mut(), offset))
    }
}

impl Default for PciHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Device for PciHost {
    fn name(&self) -> &'static str {
        "pci-host"
    }

    fn read(&mut self, offset: Offset, size: u8, _platform: &mut dyn Platform) -> u64 {
        match (offset, size) {
            (CONFIG_ADDRESS, 4) => u64::from(self.config_address),
            (RESET_CONTROL, 1) => u64::from(self.reset_control.read_register()),
            (CONFIG_DATA.., _) => match self.selected_function(offset - CONFIG_DATA, size) {
                Some((function, register)) => u64::from(function.config_read(register, size)),
                None => all_ones(size),
            },
            // Narrow accesses to 0xCF8-0xCFB are not CONFIG_ADDRESS on Intel
            // chipsets; they reach nothing.
            _ => all_ones(size),
        }
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        match (offset, size) {
            (CONFIG_ADDRESS, 4) => self.config_address = value as u32 & ADDRESS_WRITABLE,
            (RESET_CONTROL, 1) => self.reset_control.write_register(value as u8, platform),
            (CONFIG_DATA.., _) => {
                if let Some((function, register)) = self.selected_function(offset - CONFIG_DATA, size) {
                    // Masked here too: a function must never see bits
                    // beyond its access, whoever called us.
                    let value = (value & all_ones(size)) as u32;
                    function.config_write(register, size, value, platform);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;
    use crate::PowerAction;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn config_address(bus: u32, device: u32, function: u32, register: u32) -> u64 {
        u64::from(ADDRESS_ENABLE | bus << 16 | device << 11 | function << 8 | register)
    }

    /// Reads `size` bytes of config space the way Linux's `pci_conf1_read` does.
    fn conf1_read(
        host: &mut PciHost,
        platform: &mut RecordingPlatform,
        (bus, device, function): (u32, u32, u32),
        register: u32,
        size: u8,
    ) -> u64 {
        host.write(
            CONFIG_ADDRESS,
            4,
            config_address(bus, device, function, register & 0xFC),
            platform,
        );
        host.read(CONFIG_DATA + u64::from(register & 3), size, platform)
    }

    #[test]
    fn passes_linux_type1_detection() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        // pci_check_type1: a byte write to 0xCFB must not disturb CONFIG_ADDRESS.
        host.write(3, 1, 0x01, &mut platform);
        let saved = host.read(CONFIG_ADDRESS, 4, &mut platform);
        assert_eq!(saved, 0);
        host.write(CONFIG_ADDRESS, 4, 0x8000_0000, &mut platform);
        assert_eq!(host.read(CONFIG_ADDRESS, 4, &mut platform), 0x8000_0000);
        // pci_sanity_check: class word of 00:00.0 is "host bridge".
        assert_eq!(conf1_read(&mut host, &mut platform, (0, 0, 0), 0x0A, 2), 0x0600);
        assert_eq!(conf1_read(&mut host, &mut platform, (0, 0, 0), 0x00, 4), 0x29C0_8086);
        assert!(platform.power.is_empty());
    }

    #[test]
    fn host_bridge_header_reads_byte_word_and_dword() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        let bridge = (0, 0, 0);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x00, 2), 0x8086);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x02, 2), 0x29C0);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x03, 1), 0x29);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x08, 4), 0x0600_0000);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x0E, 1), 0x00);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0x40, 4), 0);
        assert_eq!(conf1_read(&mut host, &mut platform, bridge, 0xFF, 1), 0);
    }

    #[test]
    fn host_bridge_ignores_writes_so_bar_sizing_finds_nothing() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        host.write(CONFIG_ADDRESS, 4, config_address(0, 0, 0, 0x10), &mut platform);
        host.write(CONFIG_DATA, 4, 0xFFFF_FFFF, &mut platform);
        assert_eq!(host.read(CONFIG_DATA, 4, &mut platform), 0);
        host.write(CONFIG_ADDRESS, 4, config_address(0, 0, 0, 0x04), &mut platform);
        host.write(CONFIG_DATA, 2, 0x0007, &mut platform);
        assert_eq!(host.read(CONFIG_DATA, 2, &mut platform), 0);
    }

    #[test]
    fn absent_functions_and_disabled_cycles_read_all_ones() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        for location in [(0, 1, 0), (0, 0, 1), (1, 0, 0), (255, 31, 7)] {
            assert_eq!(conf1_read(&mut host, &mut platform, location, 0, 4), 0xFFFF_FFFF);
            assert_eq!(conf1_read(&mut host, &mut platform, location, 2, 2), 0xFFFF);
        }
        // Enable bit clear: no configuration cycle at all.
        host.write(CONFIG_ADDRESS, 4, 0, &mut platform);
        assert_eq!(host.read(CONFIG_DATA, 4, &mut platform), 0xFFFF_FFFF);
    }

    #[test]
    fn config_address_keeps_only_defined_bits() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        host.write(CONFIG_ADDRESS, 4, 0xFFFF_FFFF, &mut platform);
        assert_eq!(host.read(CONFIG_ADDRESS, 4, &mut platform), 0x80FF_FFFC);
        // Narrow accesses neither read nor change it.
        assert_eq!(host.read(CONFIG_ADDRESS, 2, &mut platform), 0xFFFF);
        host.write(CONFIG_ADDRESS, 2, 0, &mut platform);
        assert_eq!(host.read(CONFIG_ADDRESS, 4, &mut platform), 0x80FF_FFFC);
    }

    #[test]
    fn byte_at_0xcf9_is_the_reset_control_register() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        host.write(RESET_CONTROL, 1, 0x02, &mut platform);
        assert_eq!(host.read(RESET_CONTROL, 1, &mut platform), 0x02);
        assert!(platform.power.is_empty());
        host.write(RESET_CONTROL, 1, 0x06, &mut platform);
        assert_eq!(platform.power, vec![PowerAction::Reset]);
        // A dword CONFIG_ADDRESS write whose second byte has bit 2 set is not a reset.
        host.write(CONFIG_ADDRESS, 4, 0x8000_0400, &mut platform);
        assert_eq!(platform.power.len(), 1);
    }

    type AccessLog = Rc<RefCell<Vec<(&'static str, u16, u8, u32)>>>;

    /// A function that logs accesses and reads back its offset.
    struct LoggingFunction {
        log: AccessLog,
    }

    impl PciFunction for LoggingFunction {
        fn config_read(&mut self, offset: u16, size: u8) -> u32 {
            self.log.borrow_mut().push(("read", offset, size, 0));
            u32::from(offset)
        }
        fn config_write(&mut self, offset: u16, size: u8, value: u32, _platform: &mut dyn Platform) {
            self.log.borrow_mut().push(("write", offset, size, value));
        }
    }

    #[test]
    fn added_functions_see_register_offsets_sizes_and_values() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        let log = AccessLog::default();
        let address = PciAddress::new(0, 3, 0).unwrap();
        host.add_function(address, Box::new(LoggingFunction { log: log.clone() }))
            .unwrap();
        assert_eq!(
            host.add_function(address, Box::new(HostBridge::new())),
            Err(PciError::AddressInUse)
        );
        assert_eq!(conf1_read(&mut host, &mut platform, (0, 3, 0), 0x12, 2), 0x12);
        host.write(CONFIG_ADDRESS, 4, config_address(0, 3, 0, 0x3C), &mut platform);
        host.write(CONFIG_DATA + 1, 1, 0x1AB, &mut platform);
        assert_eq!(*log.borrow(), vec![("read", 0x12, 2, 0), ("write", 0x3D, 1, 0xAB)]);
    }

    #[test]
    fn rejects_function_addresses_outside_pci_limits() {
        assert!(PciAddress::new(0, 32, 0).is_none());
        assert!(PciAddress::new(0, 0, 8).is_none());
        let address = PciAddress::new(255, 31, 7).unwrap();
        assert_eq!((address.bus(), address.device(), address.function()), (255, 31, 7));
    }

    #[test]
    fn data_window_accesses_crossing_a_dword_reach_nobody() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        host.write(CONFIG_ADDRESS, 4, config_address(0, 0, 0, 0), &mut platform);
        assert_eq!(host.read(CONFIG_DATA + 2, 4, &mut platform), 0xFFFF_FFFF);
        assert_eq!(host.read(CONFIG_DATA + 3, 2, &mut platform), 0xFFFF);
        assert_eq!(host.read(CONFIG_DATA, 8, &mut platform), u64::MAX);
        assert_eq!(host.read(CONFIG_DATA + 2, 2, &mut platform), 0x29C0);
    }

    #[test]
    fn survives_any_offset_size_and_value() {
        let mut host = PciHost::new();
        let mut platform = RecordingPlatform::default();
        for address in [0, 0x8000_0000, 0x80FF_FFFC, u64::MAX] {
            host.write(CONFIG_ADDRESS, 4, address, &mut platform);
            for offset in (0..12).chain([u64::MAX - 3, u64::MAX]) {
                for size in [0, 1, 2, 3, 4, 8, 255] {
                    host.read(offset, size, &mut platform);
                    if offset != RESET_CONTROL {
                        host.write(offset, size, u64::MAX, &mut platform);
                    }
                }
            }
        }
        assert!(platform.power.is_empty());
    }

    #[test]
    fn config_image_reader_zero_fills_past_the_end() {
        let image = [0x11, 0x22, 0x33];
        assert_eq!(read_config_bytes(&image, 0, 4), 0x0033_2211);
        assert_eq!(read_config_bytes(&image, 2, 2), 0x0033);
        assert_eq!(read_config_bytes(&image, u16::MAX, 4), 0);
    }
}

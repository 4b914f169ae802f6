//! Walking the hierarchy from bus 0: every function that answers, with
//! bridges followed to their secondary buses. The walk visits each bus at
//! most once and at most [`MAX_FUNCTIONS`] functions, so bridges that
//! point back at an earlier bus (or at themselves) cannot make it loop.

use alloc::vec::Vec;

use crate::{header, Bdf, ConfigAccess};

/// More functions than any real machine has; the walk stops there.
pub const MAX_FUNCTIONS: usize = 4096;

/// What enumeration learns of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass and programming interface (bits 23:0).
    pub class: u32,
    pub revision: u8,
    /// Header layout (0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus).
    pub header_type: u8,
    /// For a bridge, the bus behind it.
    pub secondary_bus: Option<u8>,
}

/// Every function below bus 0, bus by bus in the order the bridges name
/// them.
pub fn enumerate(config: &mut impl ConfigAccess) -> Vec<FunctionInfo> {
    let mut found = Vec::new();
    let mut pending = Vec::from([0u8]);
    let mut visited = [false; 256];
    while let Some(bus) = pending.pop() {
        if core::mem::replace(&mut visited[usize::from(bus)], true) {
            continue;
        }
        for device in 0..32 {
            for function in 0..8 {
                let Some(bdf) = Bdf::new(bus, device, function) else {
                    continue;
                };
                let id = config.read32(bdf, header::VENDOR_ID);
                if id as u16 == 0xffff || id as u16 == 0 {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let header_byte = config.read8(bdf, header::HEADER_TYPE);
                let class_revision = config.read32(bdf, header::CLASS_REVISION);
                let header_type = header_byte & header::HEADER_TYPE_MASK;
                let secondary_bus = (header_type == header::HEADER_BRIDGE)
                    .then(|| config.read8(bdf, header::SECONDARY_BUS))
                    .filter(|&secondary| secondary > bus);
                if let Some(secondary) = secondary_bus {
                    pending.push(secondary);
                }
                found.push(FunctionInfo {
                    bdf,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: class_revision >> 8,
                    revision: class_revision as u8,
                    header_type,
                    secondary_bus,
                });
                if found.len() >= MAX_FUNCTIONS {
                    return found;
                }
                if function == 0 && header_byte & header::HEADER_MULTIFUNCTION == 0 {
                    break;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeConfig;

    fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
        Bdf::new(bus, device, function).unwrap()
    }

    #[test]
    fn finds_functions_and_follows_bridges() {
        let mut config = FakeConfig::default();
        config.add(bdf(0, 0, 0), 0x8086, 0x29c0, 0x060000, 0);
        // A multifunction device: 00:01.0 and 00:01.1.
        config.add(bdf(0, 1, 0), 0x8086, 0x7000, 0x060100, header::HEADER_MULTIFUNCTION);
        config.add(bdf(0, 1, 1), 0x8086, 0x7010, 0x010180, 0);
        // A bridge to bus 2 with one device behind it.
        config
            .add(bdf(0, 2, 0), 0x8086, 0x244e, 0x060400, header::HEADER_BRIDGE)
            .set8(header::SECONDARY_BUS, 2);
        config.add(bdf(2, 0, 0), 0x1234, 0x11e8, 0x00ff00, 0);
        // Function 1 of a single-function device is not looked at.
        config.add(bdf(0, 3, 0), 0x1af4, 0x1041, 0x020000, 0);
        config.add(bdf(0, 3, 1), 0xdead, 0xbeef, 0, 0);
        let found = enumerate(&mut config);
        let bdfs: Vec<String> = found.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(
            bdfs,
            [
                "0000:00:00.0",
                "0000:00:01.0",
                "0000:00:01.1",
                "0000:00:02.0",
                "0000:00:03.0",
                "0000:02:00.0"
            ]
        );
        let ide = found.iter().find(|f| f.device == 0x7010).unwrap();
        assert_eq!(ide.class, 0x010180);
        assert_eq!(found[3].secondary_bus, Some(2));
    }

    #[test]
    fn bridges_pointing_back_or_at_themselves_end_the_walk() {
        let mut config = FakeConfig::default();
        config
            .add(bdf(0, 0, 0), 0x8086, 1, 0x060400, header::HEADER_BRIDGE)
            .set8(header::SECONDARY_BUS, 1);
        config
            .add(bdf(1, 0, 0), 0x8086, 2, 0x060400, header::HEADER_BRIDGE)
            .set8(header::SECONDARY_BUS, 0);
        config
            .add(bdf(1, 1, 0), 0x8086, 3, 0x060400, header::HEADER_BRIDGE)
            .set8(header::SECONDARY_BUS, 1);
        let found = enumerate(&mut config);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[1].secondary_bus, None,
            "a bridge to an earlier bus is not followed"
        );
    }

    #[test]
    fn an_empty_bus_is_cheap() {
        let mut config = FakeConfig::default();
        assert!(enumerate(&mut config).is_empty());
        assert_eq!(config.reads, 32, "function 0 of each slot only");
    }
}

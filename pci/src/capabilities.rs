//! The capability list in the standard configuration header. A device
//! controls it: a pointer into the header, a list longer than the space,
//! or a loop ends the walk instead of hanging it.

use crate::{header, Bdf, ConfigAccess};

pub const MSI: u8 = 0x05;
pub const PCI_EXPRESS: u8 = 0x10;
pub const MSI_X: u8 = 0x11;

/// At most this many entries fit in 192 bytes of 4-byte-aligned entries.
const MAX_ENTRIES: usize = 48;

/// `(id, offset)` of every capability, in list order.
pub fn capabilities(config: &mut impl ConfigAccess, function: Bdf) -> impl Iterator<Item = (u8, u16)> + '_ {
    let present = config.read16(function, header::STATUS) & header::STATUS_CAPABILITIES != 0;
    let mut next = if present {
        u16::from(config.read8(function, header::CAPABILITY_POINTER) & 0xfc)
    } else {
        0
    };
    let mut seen = 0;
    core::iter::from_fn(move || {
        if next < 0x40 || seen >= MAX_ENTRIES {
            return None;
        }
        seen += 1;
        let at = next;
        let entry = config.read16(function, at);
        next = (entry >> 8) & 0xfc;
        Some((entry as u8, at))
    })
}

/// The offset of the first capability with `id`.
pub fn find(config: &mut impl ConfigAccess, function: Bdf, id: u8) -> Option<u16> {
    capabilities(config, function)
        .find(|&(found, _)| found == id)
        .map(|(_, at)| at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeConfig;

    fn device_with(list: &[(u16, u8, u8)]) -> (FakeConfig, Bdf) {
        let bdf = Bdf::new(0, 4, 0).unwrap();
        let mut config = FakeConfig::default();
        let function = config.add(bdf, 0x1234, 0x5678, 0, 0);
        function.set_status(header::STATUS_CAPABILITIES);
        function.set8(
            header::CAPABILITY_POINTER,
            list.first().map_or(0, |entry| entry.0 as u8),
        );
        for &(at, id, next) in list {
            function.set8(at, id);
            function.set8(at + 1, next);
        }
        (config, bdf)
    }

    #[test]
    fn walks_the_list_and_finds_by_id() {
        let (mut config, bdf) = device_with(&[(0x40, MSI, 0x50), (0x50, PCI_EXPRESS, 0x70), (0x70, MSI_X, 0)]);
        let all: Vec<(u8, u16)> = capabilities(&mut config, bdf).collect();
        assert_eq!(all, [(MSI, 0x40), (PCI_EXPRESS, 0x50), (MSI_X, 0x70)]);
        assert_eq!(find(&mut config, bdf, MSI_X), Some(0x70));
        assert_eq!(find(&mut config, bdf, 0x09), None);
    }

    #[test]
    fn loops_and_pointers_into_the_header_end_the_walk() {
        let (mut config, bdf) = device_with(&[(0x40, MSI, 0x50), (0x50, MSI_X, 0x40)]);
        assert_eq!(capabilities(&mut config, bdf).count(), MAX_ENTRIES);
        let (mut config, bdf) = device_with(&[(0x40, MSI, 0x10)]);
        assert_eq!(capabilities(&mut config, bdf).count(), 1);
        let (mut config, bdf) = device_with(&[(0x40, MSI, 0x50)]);
        config.functions.get_mut(&bdf).unwrap().set_status(0);
        assert_eq!(
            capabilities(&mut config, bdf).count(),
            0,
            "no list without the status bit"
        );
    }
}

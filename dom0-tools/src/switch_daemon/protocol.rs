//! What travels on a switch port's connection: one hello, then frames.
//!
//! The hello is the connection's first message, 21 bytes:
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | `KEELPORT`                              |
//! | 8      | version, [`HELLO_VERSION`] (1)          |
//! | 9..13  | domain id, u32 little-endian            |
//! | 13..15 | device index, u16 little-endian         |
//! | 15..21 | the device's MAC address                |
//!
//! Every later message, both ways, is one Ethernet frame without FCS (no
//! virtio header), [`MIN_FRAME`] to [`MAX_FRAME`] bytes. An empty message
//! reads as the end of the connection (a `SOCK_SEQPACKET` receive of 0
//! bytes), so the switch takes it for one.

use keel_abi::mgmt::DomainId;

use crate::switch::{is_valid_source, Mac, ETH_HEADER_LEN};

pub const HELLO_MAGIC: &[u8; 8] = b"KEELPORT";
pub const HELLO_VERSION: u8 = 1;
pub const HELLO_LEN: usize = 21;

/// The shortest frame carried: a bare Ethernet header.
pub const MIN_FRAME: usize = ETH_HEADER_LEN;
/// The longest frame carried: a 9000-byte MTU (the most a DomU's NIC
/// offers), the 14-byte header and two VLAN tags.
pub const MAX_FRAME: usize = 9018 + 4;
/// What a receiver reads a message into: larger than any frame, so a
/// longer message is seen as such (and dropped) rather than cut.
pub const MESSAGE_BUFFER: usize = 65536;

/// Who is on a port, as its hello says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub domain: DomainId,
    pub device: u16,
    pub mac: Mac,
}

impl Hello {
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut bytes = [0u8; HELLO_LEN];
        let (domain, device) = (self.domain.to_le_bytes(), self.device.to_le_bytes());
        let fields = HELLO_MAGIC
            .iter()
            .chain(&[HELLO_VERSION])
            .chain(&domain)
            .chain(&device)
            .chain(&self.mac);
        for (byte, &value) in bytes.iter_mut().zip(fields) {
            *byte = value;
        }
        bytes
    }

    /// Parses a hello; the reason when `bytes` is not one.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let Ok(bytes) = <&[u8; HELLO_LEN]>::try_from(bytes) else {
            return Err(format!("{} bytes, not a {HELLO_LEN}-byte hello", bytes.len()));
        };
        let [m0, m1, m2, m3, m4, m5, m6, m7, version, d0, d1, d2, d3, i0, i1, a0, a1, a2, a3, a4, a5] = *bytes;
        if [m0, m1, m2, m3, m4, m5, m6, m7] != *HELLO_MAGIC {
            return Err("no KEELPORT hello".to_string());
        }
        if version != HELLO_VERSION {
            return Err(format!("hello version {version}, this switch speaks {HELLO_VERSION}"));
        }
        let mac = [a0, a1, a2, a3, a4, a5];
        if !is_valid_source(&mac) {
            return Err(format!("{} is not a station's address", mac_text(&mac)));
        }
        Ok(Self {
            domain: DomainId::from_le_bytes([d0, d1, d2, d3]),
            device: u16::from_le_bytes([i0, i1]),
            mac,
        })
    }
}

/// `36:fd:18:b4:1a:11`.
pub fn mac_text(mac: &Mac) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parses what [`mac_text`] writes.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The source address of a frame at least [`MIN_FRAME`] long.
pub fn source_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(6..12)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x36, 0xfd, 0x18, 0xb4, 0x1a, 0x11];

    #[test]
    fn a_hello_round_trips_in_its_documented_layout() {
        let hello = Hello {
            domain: 0x0403_0201,
            device: 0x0605,
            mac: MAC,
        };
        let bytes = hello.encode();
        assert_eq!(&bytes[..9], b"KEELPORT\x01");
        assert_eq!(bytes[9..15], [1, 2, 3, 4, 5, 6]);
        assert_eq!(bytes[15..], MAC);
        assert_eq!(Hello::decode(&bytes), Ok(hello));
    }

    #[test]
    fn anything_else_is_not_a_hello() {
        let good = Hello {
            domain: 1,
            device: 0,
            mac: MAC,
        }
        .encode();
        assert_eq!(Hello::decode(&good[..20]).unwrap_err(), "20 bytes, not a 21-byte hello");
        assert!(Hello::decode(&[]).is_err());
        assert!(Hello::decode(&[good.as_slice(), &[0]].concat()).is_err());
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(Hello::decode(&bad).unwrap_err(), "no KEELPORT hello");
        let mut bad = good;
        bad[8] = 2;
        assert_eq!(
            Hello::decode(&bad).unwrap_err(),
            "hello version 2, this switch speaks 1"
        );
        for mac in [[0xff; 6], [0; 6], [0x01, 0, 0x5e, 0, 0, 1]] {
            let mut bad = good;
            bad[15..].copy_from_slice(&mac);
            assert!(Hello::decode(&bad).unwrap_err().ends_with("is not a station's address"));
        }
    }

    #[test]
    fn macs_print_and_parse() {
        assert_eq!(mac_text(&MAC), "36:fd:18:b4:1a:11");
        assert_eq!(parse_mac("36:fd:18:b4:1a:11"), Some(MAC));
        assert_eq!(parse_mac("36:FD:18:B4:1A:11"), Some(MAC));
        for bad in [
            "",
            "36:fd:18:b4:1a",
            "36:fd:18:b4:1a:11:00",
            "36:fd:18:b4:1a:1",
            "36:fd:18:b4:1a:zz",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(source_mac(&[0; 13]), Some([0; 6]));
        assert_eq!(source_mac(&[0; 11]), None);
    }
}

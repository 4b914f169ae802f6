//! Virtual network interfaces: the config's `vif = [...]` entries and the
//! `--vif` arguments of `keel backend`.
//!
//! An entry is a comma-separated list of `key=value` settings, each key at
//! most once; the empty string takes every default:
//!
//! - `mac=02:4b:45:00:00:0a`: the interface's address, a unicast address
//!   other than all zeros; without it the address is generated from the
//!   domain's name and the interface's position among its vifs
//!   ([`crate::switch::generated_mac`]), so it is the same on every create;
//! - `mtu=9000`: offered to the driver (VIRTIO_NET_F_MTU), 68 to 9000;
//!   without it the driver uses 1500.
//!
//! Xen's `bridge=` and `script=` have no meaning here (every vif is on
//! Dom0's one switch) and are refused by name, like any other key.

use std::fmt;

use keel_virtio::net::{MAX_MTU, MIN_MTU};

use crate::switch::{generated_mac, is_valid_source, Mac};

/// One `vif` entry as the config gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vif {
    pub mac: Option<Mac>,
    pub mtu: Option<u16>,
}

/// An interface with its address decided: what `keel backend --vif` takes
/// and what Keel's virtio-net function presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nic {
    pub mac: Mac,
    pub mtu: Option<u16>,
}

/// `02:4b:45:00:00:0a`.
pub struct MacText<'a>(pub &'a Mac);

impl fmt::Display for MacText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let [a, b, c, d, e, g] = *self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Parses `xx:xx:xx:xx:xx:xx` (or with `-`), hexadecimal, either case.
pub fn parse_mac(text: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    let well_formed = parts.len() == 6
        && parts
            .iter()
            .zip(&mut mac)
            .all(|(part, byte)| part.len() == 2 && u8::from_str_radix(part, 16).map(|value| *byte = value).is_ok());
    if !well_formed {
        return Err(format!("`{text}` is not a MAC address such as 02:4b:45:00:00:0a"));
    }
    if !is_valid_source(&mac) {
        return Err(format!(
            "{text} is a multicast or all-zero address; an interface needs a unicast one"
        ));
    }
    Ok(mac)
}

fn parse_mtu(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(mtu) if (MIN_MTU..=MAX_MTU).contains(&mtu) => Ok(mtu),
        _ => Err(format!("mtu must be between {MIN_MTU} and {MAX_MTU}, got `{text}`")),
    }
}

impl Vif {
    /// Parses one entry (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut vif = Self::default();
        for setting in text.split(',').map(str::trim).filter(|setting| !setting.is_empty()) {
            let Some((key, value)) = setting.split_once('=') else {
                return Err(format!("`{setting}`: expected key=value (mac=..., mtu=...)"));
            };
            match key.trim() {
                "mac" if vif.mac.is_none() => vif.mac = Some(parse_mac(value.trim())?),
                "mtu" if vif.mtu.is_none() => vif.mtu = Some(parse_mtu(value.trim())?),
                "mac" | "mtu" => return Err(format!("`{text}`: {} is given twice", key.trim())),
                "bridge" | "script" => {
                    return Err(format!(
                    "`{setting}`: every vif is on Dom0's one switch (keel0 reaches Dom0); only mac= and mtu= are taken"
                ))
                }
                other => return Err(format!("`{setting}`: unknown setting `{other}` (mac=..., mtu=...)")),
            }
        }
        Ok(vif)
    }

    /// The interface this entry gives domain `domain_name` as its vif
    /// number `position` (counting vifs only).
    pub fn resolve(&self, domain_name: &str, position: usize) -> Nic {
        Nic {
            mac: self.mac.unwrap_or_else(|| generated_mac(domain_name, position)),
            mtu: self.mtu,
        }
    }
}

impl Nic {
    /// `mac=<mac>[,mtu=<mtu>]`, which [`Nic::parse`] reads back.
    pub fn spec(&self) -> String {
        match self.mtu {
            Some(mtu) => format!("mac={},mtu={mtu}", MacText(&self.mac)),
            None => format!("mac={}", MacText(&self.mac)),
        }
    }

    /// A vif entry whose address is given.
    pub fn parse(text: &str) -> Result<Self, String> {
        let vif = Vif::parse(text)?;
        let mac = vif.mac.ok_or_else(|| format!("`{text}`: mac= is required here"))?;
        Ok(Self { mac, mtu: vif.mtu })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_entry_takes_the_generated_address() {
        let vif = Vif::parse("").unwrap();
        assert_eq!(vif, Vif::default());
        let nic = vif.resolve("domu1", 0);
        assert_eq!(nic.mac, generated_mac("domu1", 0));
        assert_ne!(vif.resolve("domu1", 1).mac, nic.mac);
        assert_eq!(nic.mtu, None);
    }

    #[test]
    fn settings_are_read_in_any_order_and_round_trip() {
        let vif = Vif::parse("mtu=9000, mac=02:4B:45:00:00:0a").unwrap();
        assert_eq!(vif.mac, Some([0x02, 0x4b, 0x45, 0, 0, 0x0a]));
        assert_eq!(vif.mtu, Some(9000));
        let nic = vif.resolve("ignored", 3);
        assert_eq!(nic.spec(), "mac=02:4b:45:00:00:0a,mtu=9000");
        assert_eq!(Nic::parse(&nic.spec()), Ok(nic));
        assert_eq!(
            Vif::parse("mac=02-4b-45-00-00-0b").unwrap().mac,
            Some([2, 0x4b, 0x45, 0, 0, 0x0b])
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let cases = [
            ("mac=01:00:5e:00:00:01", "multicast or all-zero"),
            ("mac=00:00:00:00:00:00", "multicast or all-zero"),
            ("mac=02:4b:45:00:00", "not a MAC address"),
            ("mac=02:4b:45:00:00:0g", "not a MAC address"),
            ("mac=002:4b:45:00:00:0a", "not a MAC address"),
            ("mtu=67", "between 68 and 9000"),
            ("mtu=9001", "between 68 and 9000"),
            ("mtu=-1", "between 68 and 9000"),
            ("bridge=xenbr0", "one switch"),
            ("model=e1000", "unknown setting `model`"),
            ("mac", "expected key=value"),
            ("mac=02:4b:45:00:00:0a,mac=02:4b:45:00:00:0b", "given twice"),
        ];
        for (text, expected) in cases {
            let error = Vif::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(Nic::parse("mtu=1500").unwrap_err().contains("mac= is required"));
    }
}

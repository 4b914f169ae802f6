//! Options of `keel-stress intx` (the test itself is the binary's
//! `intx_ops`: it maps a BAR and polls a device).

use std::str::FromStr;

/// `intx PCI-ADDRESS [ROUNDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The e1000 function, e.g. `0000:00:05.0`.
    pub device: String,
    pub rounds: u32,
}

const DEFAULT_ROUNDS: u32 = 10;
const MAX_ROUNDS: u32 = 10_000;

impl Options {
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let (device, rounds) = match args {
            [device] => (*device, DEFAULT_ROUNDS),
            [device, rounds] => (
                *device,
                u32::from_str(rounds)
                    .ok()
                    .filter(|rounds| (1..=MAX_ROUNDS).contains(rounds))
                    .ok_or_else(|| format!("intx: `{rounds}` is not a number of rounds (1 to {MAX_ROUNDS})"))?,
            ),
            _ => return Err("intx: wants PCI-ADDRESS [ROUNDS]".to_string()),
        };
        let well_formed = device.len() == 12
            && device.char_indices().all(|(at, c)| match at {
                4 | 7 => c == ':',
                10 => c == '.',
                _ => c.is_ascii_hexdigit(),
            });
        if !well_formed {
            return Err(format!("intx: `{device}` is not a PCI address like 0000:00:05.0"));
        }
        Ok(Options {
            device: device.to_string(),
            rounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_address_and_optional_rounds() {
        assert_eq!(
            Options::parse(&["0000:00:05.0"]),
            Ok(Options {
                device: "0000:00:05.0".into(),
                rounds: DEFAULT_ROUNDS
            })
        );
        assert_eq!(Options::parse(&["0000:00:05.0", "3"]).unwrap().rounds, 3);
        for bad in [
            &["00:05.0"][..],
            &["0000:00:05.0", "0"],
            &["0000:00:05.0", "x"],
            &["0000-00:05.0"],
            &["0000a00:05.0"],
            &[],
        ] {
            assert!(Options::parse(bad).is_err(), "{bad:?}");
        }
    }
}

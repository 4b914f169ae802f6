//! Dom0's TOML domain configuration parser.
//!
//! `keel_tools::config::Config::parse` on any text: what `keel create
//! <file>` reads.
//!
//! Beyond "no panic": an accepted config holds only values in range, makes
//! a Create request (which must not panic: it `expect`s a valid name) that
//! survives the ABI's encode and decode, and parsing is deterministic; a
//! refusal names the file.
#![no_main]

use std::path::Path;

use keel_abi::mgmt::{CreateDomain, ImageKind, NAME_MAX};
use keel_tools::config::{Config, MAX_MEMORY_MIB, MIN_MEMORY_MIB};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/etc/keel");
    let parsed = Config::parse(text, FILE, base);
    assert_eq!(parsed, Config::parse(text, FILE, base), "parsing is not deterministic");
    match parsed {
        Ok(config) => {
            assert!(!config.name.is_empty() && config.name.len() <= NAME_MAX);
            assert!((MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&i64::from(config.memory_mib)));
            assert_eq!(config.vcpus, 1);
            assert!(config.cmdline.len() as u64 <= ImageKind::Cmdline.max_bytes());
            assert!(!config.cmdline.contains('\0'));
            assert!(config.kernel.starts_with(base) || config.kernel.is_absolute());
            let mut pci = config.pci.clone();
            pci.sort();
            pci.dedup();
            assert_eq!(pci.len(), config.pci.len(), "a PCI function listed twice");

            let request = config.create_request();
            assert_eq!(request.name.as_str(), config.name);
            let mut bytes = [0; CreateDomain::BYTES];
            request.encode(&mut bytes).expect("room for the request");
            assert_eq!(CreateDomain::decode(&bytes), Ok(request));
        }
        Err(error) => {
            assert_eq!(error.file, FILE);
            assert!(!error.reason.is_empty());
            assert!(error.to_string().starts_with(FILE));
        }
    }
});

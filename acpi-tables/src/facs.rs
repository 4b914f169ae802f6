//! Firmware ACPI Control Structure (ACPI 6.5 §5.2.10). Keel never sleeps to
//! S1-S4, so it only exists because full-ACPI OSes expect to find one.

use alloc::vec::Vec;

use crate::bytes::PutLe;

pub(crate) const FACS_LEN: usize = 64;
/// The spec requires 64-byte alignment.
pub(crate) const FACS_ALIGN: u64 = 64;
const VERSION: u8 = 2;

pub(crate) fn build_facs() -> Vec<u8> {
    let mut facs = Vec::with_capacity(FACS_LEN);
    facs.put_bytes(b"FACS");
    facs.put_u32(FACS_LEN as u32);
    // Hardware signature, firmware waking vector, global lock, flags: no S4, no wake.
    facs.put_u32(0);
    facs.put_u32(0);
    facs.put_u32(0);
    facs.put_u32(0);
    facs.put_u64(0);
    facs.put_u8(VERSION);
    facs.put_bytes(&[0; 3]);
    // OSPM flags, then reserved.
    facs.put_u32(0);
    facs.put_bytes(&[0; 24]);
    facs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facs_has_signature_length_and_version() {
        let facs = build_facs();
        assert_eq!(facs.len(), FACS_LEN);
        assert_eq!(&facs[0..4], b"FACS");
        assert_eq!(&facs[4..8], &64u32.to_le_bytes());
        assert_eq!(facs[32], VERSION);
    }
}

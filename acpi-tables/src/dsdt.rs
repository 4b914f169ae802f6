//! Differentiated System Description Table: the guest's AML namespace. Keel
//! describes no devices through AML; it only needs `\_S5_` so Linux can power
//! the guest off.

use alloc::vec::Vec;

use crate::aml::{encode_name, DataObject};
use crate::error::AcpiError;
use crate::sdt::{assemble_table, TableKind};

/// Revision 2 makes AML integers 64 bits wide.
const KIND: TableKind = TableKind {
    signature: *b"DSDT",
    revision: 2,
};

/// The SLP_TYP value Linux writes to PM1a_CNT (with SLP_EN) to enter S5; the
/// PM1 control emulation must treat it as power-off.
pub const S5_SLEEP_TYPE: u8 = 5;

pub(crate) fn build_dsdt(oem_id: [u8; 6]) -> Result<Vec<u8>, AcpiError> {
    let s5_type = DataObject::Integer(u64::from(S5_SLEEP_TYPE));
    // SLP_TYPa, SLP_TYPb, then two reserved elements.
    let s5 = [s5_type, s5_type, DataObject::Integer(0), DataObject::Integer(0)];
    let mut aml = Vec::new();
    // The DSDT's scope is the root, so the relative name is `\_S5_`; this is
    // also exactly what iasl emits for `Name (\_S5, Package () {5, 5, 0, 0})`.
    encode_name("_S5_", &DataObject::Package(&s5), &mut aml)?;
    assemble_table(KIND, oem_id, &aml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::SDT_HEADER_LEN;

    #[test]
    fn dsdt_body_is_the_s5_declaration() {
        let dsdt = build_dsdt(*b"KEEL  ").unwrap();
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert_eq!(dsdt[8], 2);
        assert_eq!(
            &dsdt[SDT_HEADER_LEN..],
            &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0, 0]
        );
    }
}

//! Fixed ACPI Description Table (ACPI 6.5 §5.2.9), revision 6 layout.

use alloc::vec::Vec;

use crate::bytes::PutLe;
use crate::config::GuestAcpiConfig;
use crate::error::AcpiError;
use crate::gas::{AccessSize, GenericAddress};
use crate::sdt::{assemble_table, TableKind};

pub(crate) const FADT_LEN: usize = 276;
const KIND: TableKind = TableKind {
    signature: *b"FACP",
    revision: 6,
};
const MINOR_VERSION: u8 = 5;

// Flags (Table 5.10).
/// WBINVD works: required of any ACPI 1.0+ x86 platform.
const FLAG_WBINVD: u32 = 1 << 0;
const FLAG_PROC_C1: u32 = 1 << 2;
/// Set: there is no fixed-feature power button (nor a sleep button).
const FLAG_PWR_BUTTON: u32 = 1 << 4;
const FLAG_SLP_BUTTON: u32 = 1 << 5;
const FLAG_RESET_REG_SUP: u32 = 1 << 10;
const FLAG_HW_REDUCED_ACPI: u32 = 1 << 20;

/// Status word + enable word.
const PM1_EVT_LEN: u8 = 4;
const PM1_CNT_LEN: u8 = 2;
const PM_TMR_LEN: u8 = 4;
const SLEEP_REGISTER_LEN: u8 = 1;
/// Latencies above 100 µs (C2) and 1000 µs (C3) mean "state not supported";
/// a guest idling in deep C-states gains nothing under a hypervisor.
const C_STATE_UNSUPPORTED_LATENCY: u16 = 0x0FFF;

/// Where the tables the FADT points at ended up in guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FadtLinks {
    pub dsdt_gpa: u64,
    pub facs_gpa: Option<u64>,
}

pub(crate) fn build_fadt(config: &GuestAcpiConfig<'_>, links: FadtLinks) -> Result<Vec<u8>, AcpiError> {
    let pm = &config.pm;
    if !config.hw_reduced && (pm.pm1a_event_block == 0 || pm.pm1a_control_block == 0) {
        return Err(AcpiError::MissingPm1aBlock);
    }
    let facs_gpa = links.facs_gpa.unwrap_or(0);
    let timer_port = pm.pm_timer_block.unwrap_or(0);
    let timer_len = if pm.pm_timer_block.is_some() { PM_TMR_LEN } else { 0 };

    let mut body = Vec::with_capacity(FADT_LEN);
    // Legacy 32-bit pointers; ACPICA accepts them alongside equal X_ values,
    // and leaves them zero when the table lies above 4 GiB.
    body.put_u32(low_32_or_zero(facs_gpa));
    body.put_u32(low_32_or_zero(links.dsdt_gpa));
    body.put_u8(0); // reserved (ACPI 1.0 INT_MODEL)
    body.put_u8(0); // Preferred_PM_Profile: unspecified
    body.put_u16(pm.sci_irq);
    // No SMI command port: the OS finds ACPI already enabled and never
    // tries a firmware hand-off.
    body.put_u32(0); // SMI_CMD
    body.put_u8(0); // ACPI_ENABLE
    body.put_u8(0); // ACPI_DISABLE
    body.put_u8(0); // S4BIOS_REQ
    body.put_u8(0); // PSTATE_CNT
    body.put_u32(u32::from(pm.pm1a_event_block));
    body.put_u32(0); // PM1b_EVT_BLK
    body.put_u32(u32::from(pm.pm1a_control_block));
    body.put_u32(0); // PM1b_CNT_BLK
    body.put_u32(0); // PM2_CNT_BLK
    body.put_u32(u32::from(timer_port));
    body.put_u32(0); // GPE0_BLK
    body.put_u32(0); // GPE1_BLK
    body.put_u8(PM1_EVT_LEN);
    body.put_u8(PM1_CNT_LEN);
    body.put_u8(0); // PM2_CNT_LEN
    body.put_u8(timer_len);
    body.put_u8(0); // GPE0_BLK_LEN
    body.put_u8(0); // GPE1_BLK_LEN
    body.put_u8(0); // GPE1_BASE
    body.put_u8(0); // CST_CNT
    body.put_u16(C_STATE_UNSUPPORTED_LATENCY); // P_LVL2_LAT
    body.put_u16(C_STATE_UNSUPPORTED_LATENCY); // P_LVL3_LAT
    body.put_u16(0); // FLUSH_SIZE
    body.put_u16(0); // FLUSH_STRIDE
    body.put_u8(0); // DUTY_OFFSET
    body.put_u8(0); // DUTY_WIDTH
    body.put_u8(0); // DAY_ALRM
    body.put_u8(0); // MON_ALRM
    body.put_u8(0); // CENTURY
    body.put_u16(config.boot_arch_flags.bits());
    body.put_u8(0); // reserved
    body.put_u32(fadt_flags(config.hw_reduced));
    GenericAddress::io_port(pm.reset_register.port, 1, AccessSize::Byte).encode(&mut body);
    body.put_u8(pm.reset_register.value);
    body.put_u16(0); // ARM_BOOT_ARCH
    body.put_u8(MINOR_VERSION);
    body.put_u64(facs_gpa); // X_FIRMWARE_CTRL
    body.put_u64(links.dsdt_gpa); // X_DSDT
    let pm1a_event = GenericAddress::io_port(pm.pm1a_event_block, PM1_EVT_LEN, AccessSize::Word);
    let pm1a_control = GenericAddress::io_port(pm.pm1a_control_block, PM1_CNT_LEN, AccessSize::Word);
    let timer = match pm.pm_timer_block {
        Some(port) => GenericAddress::io_port(port, PM_TMR_LEN, AccessSize::Dword),
        None => GenericAddress::ABSENT,
    };
    let (sleep_control, sleep_status) = match pm.sleep_registers {
        Some(sleep) => (
            GenericAddress::io_port(sleep.control_port, SLEEP_REGISTER_LEN, AccessSize::Byte),
            GenericAddress::io_port(sleep.status_port, SLEEP_REGISTER_LEN, AccessSize::Byte),
        ),
        None => (GenericAddress::ABSENT, GenericAddress::ABSENT),
    };
    for register in [
        pm1a_event,
        GenericAddress::ABSENT, // X_PM1b_EVT_BLK
        pm1a_control,
        GenericAddress::ABSENT, // X_PM1b_CNT_BLK
        GenericAddress::ABSENT, // X_PM2_CNT_BLK
        timer,
        GenericAddress::ABSENT, // X_GPE0_BLK
        GenericAddress::ABSENT, // X_GPE1_BLK
        sleep_control,
        sleep_status,
    ] {
        register.encode(&mut body);
    }
    body.put_u64(0); // Hypervisor Vendor Identity: nothing in Linux reads it
    assemble_table(KIND, config.oem_id, &body)
}

fn fadt_flags(hw_reduced: bool) -> u32 {
    let base = FLAG_WBINVD | FLAG_PROC_C1 | FLAG_PWR_BUTTON | FLAG_SLP_BUTTON | FLAG_RESET_REG_SUP;
    if hw_reduced {
        base | FLAG_HW_REDUCED_ACPI
    } else {
        base
    }
}

fn low_32_or_zero(gpa: u64) -> u32 {
    u32::try_from(gpa).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_always_advertise_the_reset_register() {
        assert_ne!(fadt_flags(false) & FLAG_RESET_REG_SUP, 0);
        assert_eq!(fadt_flags(false) & FLAG_HW_REDUCED_ACPI, 0);
        assert_ne!(fadt_flags(true) & FLAG_HW_REDUCED_ACPI, 0);
    }

    #[test]
    fn addresses_above_4g_have_no_legacy_form() {
        assert_eq!(low_32_or_zero(0xFFFF_FFFF), 0xFFFF_FFFF);
        assert_eq!(low_32_or_zero(0x1_0000_0000), 0);
    }
}

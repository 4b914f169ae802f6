//! Resetting one PCI function, the best way it offers, as Linux's
//! `pci_reset_function` tries them (`drivers/pci/pci.c`): a PCI Express
//! function-level reset, the Advanced Features capability's FLR
//! (conventional PCI), or a power-management reset (D3hot and back to D0,
//! for functions that do not set No_Soft_Reset). Keel resets an assigned
//! function when it hands it to a guest and when it takes it back, so one
//! owner's state (queues, DMA addresses, keys) never reaches the next.
//!
//! Every reset clears the function's BARs, command register and Interrupt
//! Line (for the PM reset, on functions that really reset): the caller
//! writes back what the host's firmware set. Waits are the caller's
//! (`wait_ms`), so the logic is host-tested.

use crate::{capabilities, Bdf, ConfigAccess};

/// Capability IDs (PCI Code and ID Assignment §2).
pub const POWER_MANAGEMENT: u8 = 0x01;
pub const ADVANCED_FEATURES: u8 = 0x13;

/// PCI Express Device Capabilities / Control / Status.
const EXPRESS_DEVICE_CAPABILITIES: u16 = 4;
const EXPRESS_DEVICE_CONTROL: u16 = 8;
const EXPRESS_DEVICE_STATUS: u16 = 0x0a;
const EXPRESS_FLR_CAPABLE: u32 = 1 << 28;
const EXPRESS_INITIATE_FLR: u16 = 1 << 15;
const EXPRESS_TRANSACTIONS_PENDING: u16 = 1 << 5;

/// Advanced Features: capabilities at +3, control at +4, status at +5.
const AF_CAPABILITIES: u16 = 3;
const AF_CONTROL: u16 = 4;
const AF_STATUS: u16 = 5;
const AF_TRANSACTIONS_PENDING_CAPABLE: u8 = 1 << 0;
const AF_FLR_CAPABLE: u8 = 1 << 1;
const AF_INITIATE_FLR: u8 = 1 << 0;
const AF_TRANSACTIONS_PENDING: u8 = 1 << 0;

/// Power Management Control/Status at +4: the power state in bits 1:0,
/// No_Soft_Reset in bit 3.
const PM_CONTROL_STATUS: u16 = 4;
const PM_STATE_BITS: u16 = 0b11;
const PM_D3_HOT: u16 = 0b11;
const PM_NO_SOFT_RESET: u16 = 1 << 3;

/// How long a function may take: 100 ms after an FLR (PCIe 6.6.2), 10 ms
/// after a D3hot/D0 transition (PCI PM 1.2 §5.6.1); pending transactions
/// are given up to 100 ms to drain before an FLR, polled in 10 ms steps.
pub const FLR_WAIT_MS: u32 = 100;
pub const PM_WAIT_MS: u32 = 10;
const PENDING_POLLS: u32 = 10;
const PENDING_POLL_MS: u32 = 10;

/// The reset a function offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetMethod {
    /// PCI Express function-level reset (the Express capability at this
    /// offset).
    ExpressFlr(u16),
    /// The Advanced Features capability's FLR (at this offset).
    AdvancedFeaturesFlr(u16),
    /// D3hot then D0 (the PM capability at this offset).
    PowerManagement(u16),
}

impl core::fmt::Display for ResetMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            Self::ExpressFlr(_) => "PCI Express FLR",
            Self::AdvancedFeaturesFlr(_) => "Advanced Features FLR",
            Self::PowerManagement(_) => "power-management reset (D3hot, D0)",
        })
    }
}

/// The best reset `function` offers, if any.
pub fn method(config: &mut impl ConfigAccess, function: Bdf) -> Option<ResetMethod> {
    if let Some(express) = capabilities::find(config, function, capabilities::PCI_EXPRESS) {
        if config.read32(function, express + EXPRESS_DEVICE_CAPABILITIES) & EXPRESS_FLR_CAPABLE != 0 {
            return Some(ResetMethod::ExpressFlr(express));
        }
    }
    if let Some(advanced) = capabilities::find(config, function, ADVANCED_FEATURES) {
        let offered = config.read8(function, advanced + AF_CAPABILITIES);
        // Linux requires both: without Transactions Pending the function
        // cannot say when its DMA has drained.
        let needed = AF_FLR_CAPABLE | AF_TRANSACTIONS_PENDING_CAPABLE;
        if offered & needed == needed {
            return Some(ResetMethod::AdvancedFeaturesFlr(advanced));
        }
    }
    let pm = capabilities::find(config, function, POWER_MANAGEMENT)?;
    let status = config.read16(function, pm + PM_CONTROL_STATUS);
    (status & PM_NO_SOFT_RESET == 0).then_some(ResetMethod::PowerManagement(pm))
}

/// The function did not answer configuration reads within
/// [`READY_WAIT_MS`] after its reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotReady;

/// How long a function may keep answering all ones after its reset's own
/// wait, polled in 10 ms steps (Linux waits up to 60 s; a function that
/// takes seconds is broken enough to refuse).
pub const READY_WAIT_MS: u32 = 1000;
const READY_POLL_MS: u32 = 10;

/// PCI Express registers a reset clears that firmware (or Linux) set and
/// the link depends on: Device Control (Max Payload Size, Max Read
/// Request Size, relaxed ordering, no snoop, error reporting), Link
/// Control, Device Control 2 and Link Control 2. A Max Payload Size back
/// at its 128-byte default beside a root port set to more makes the
/// port's completions malformed.
const EXPRESS_SAVED: [(u16, u8); 4] = [(0x08, 2), (0x10, 2), (0x28, 2), (0x30, 2)];

/// Resets `function` with `method`, waiting with `wait_ms`, and then until
/// it answers configuration reads again; its PCI Express control
/// registers are saved before and written back after. The caller has
/// turned bus mastering off: pending transactions are waited for (up to
/// 100 ms) before an FLR, which would otherwise drop them. The caller
/// writes back the BARs and Interrupt Line.
pub fn reset(
    config: &mut impl ConfigAccess,
    function: Bdf,
    method: ResetMethod,
    mut wait_ms: impl FnMut(u32),
) -> Result<(), NotReady> {
    let express = capabilities::find(config, function, capabilities::PCI_EXPRESS);
    let saved = express.map(|express| EXPRESS_SAVED.map(|(offset, _)| config.read16(function, express + offset)));
    perform(config, function, method, &mut wait_ms);
    let mut waited = 0;
    while !answers(config, function) {
        if waited >= READY_WAIT_MS {
            return Err(NotReady);
        }
        wait_ms(READY_POLL_MS);
        waited += READY_POLL_MS;
    }
    if let (Some(express), Some(saved)) = (express, saved) {
        for ((offset, _), value) in EXPRESS_SAVED.iter().zip(saved) {
            write16(config, function, express + offset, value);
        }
    }
    Ok(())
}

/// Whether the function answers: its vendor and device ID read as
/// something other than all ones (no function, or not back yet) or the
/// retry pattern (vendor 0x0001, Configuration Request Retry Status).
fn answers(config: &mut impl ConfigAccess, function: Bdf) -> bool {
    let id = config.read32(function, 0);
    id != u32::MAX && id & 0xffff != 0x0001
}

fn perform(config: &mut impl ConfigAccess, function: Bdf, method: ResetMethod, wait_ms: &mut impl FnMut(u32)) {
    match method {
        ResetMethod::ExpressFlr(express) => {
            for _ in 0..PENDING_POLLS {
                if config.read16(function, express + EXPRESS_DEVICE_STATUS) & EXPRESS_TRANSACTIONS_PENDING == 0 {
                    break;
                }
                wait_ms(PENDING_POLL_MS);
            }
            let control = config.read16(function, express + EXPRESS_DEVICE_CONTROL);
            write16(
                config,
                function,
                express + EXPRESS_DEVICE_CONTROL,
                control | EXPRESS_INITIATE_FLR,
            );
            wait_ms(FLR_WAIT_MS);
        }
        ResetMethod::AdvancedFeaturesFlr(advanced) => {
            for _ in 0..PENDING_POLLS {
                if config.read8(function, advanced + AF_STATUS) & AF_TRANSACTIONS_PENDING == 0 {
                    break;
                }
                wait_ms(PENDING_POLL_MS);
            }
            write8(config, function, advanced + AF_CONTROL, AF_INITIATE_FLR);
            wait_ms(FLR_WAIT_MS);
        }
        ResetMethod::PowerManagement(pm) => {
            let at = pm + PM_CONTROL_STATUS;
            let status = config.read16(function, at) & !PM_STATE_BITS;
            write16(config, function, at, status | PM_D3_HOT);
            wait_ms(PM_WAIT_MS);
            write16(config, function, at, status);
            wait_ms(PM_WAIT_MS);
        }
    }
}

/// A 16-bit write through 32-bit accesses: the other half written back as
/// read (RW1C status bits beside it are written as 0, so none is cleared).
fn write16(config: &mut impl ConfigAccess, function: Bdf, offset: u16, value: u16) {
    let dword = offset & !3;
    let shift = (offset & 2) * 8;
    let old = config.read32(function, dword);
    // The neighbouring half of the Express Device Control/Status and PM
    // registers holds status bits that writing 1 clears: write 0 there.
    let keep = if shift == 0 { 0 } else { old & 0xffff };
    config.write32(function, dword, keep | u32::from(value) << shift);
}

fn write8(config: &mut impl ConfigAccess, function: Bdf, offset: u16, value: u8) {
    let dword = offset & !3;
    let shift = (offset & 3) * 8;
    let old = config.read32(function, dword);
    // Only the AF control byte is written this way; the status byte above
    // it is RW1C (written 0), the ID and next pointer below read-only.
    let keep = old & ((1u32 << shift) - 1);
    config.write32(function, dword, keep | u32::from(value) << shift);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeConfig;
    use crate::header;

    const AT: Bdf = Bdf {
        bus: 0,
        device: 3,
        function: 0,
    };

    /// A function with capabilities `(offset, id)` chained in order.
    fn function_with(list: &[(u16, u8)]) -> FakeConfig {
        let mut config = FakeConfig::default();
        let function = config.add(AT, 0x8086, 0x1234, 0x020000, 0);
        function.set_status(header::STATUS_CAPABILITIES);
        function.set8(
            header::CAPABILITY_POINTER,
            list.first().map_or(0, |entry| entry.0 as u8),
        );
        for (index, &(at, id)) in list.iter().enumerate() {
            function.set8(at, id);
            function.set8(at + 1, list.get(index + 1).map_or(0, |next| next.0 as u8));
        }
        config
    }

    fn dword(config: &FakeConfig, offset: u16) -> u32 {
        config.functions[&AT].space[usize::from(offset / 4)]
    }

    fn set_dword(config: &mut FakeConfig, offset: u16, value: u32) {
        config.functions.get_mut(&AT).unwrap().space[usize::from(offset / 4)] = value;
    }

    #[test]
    fn express_flr_is_preferred_and_waits_for_pending_transactions() {
        let mut config = function_with(&[(0x40, POWER_MANAGEMENT), (0x60, capabilities::PCI_EXPRESS)]);
        set_dword(&mut config, 0x64, EXPRESS_FLR_CAPABLE);
        // Device Status (0x6a): Transactions Pending and a RW1C error bit.
        set_dword(
            &mut config,
            0x68,
            0x0000_2010 | u32::from(EXPRESS_TRANSACTIONS_PENDING | 1) << 16,
        );
        assert_eq!(method(&mut config, AT), Some(ResetMethod::ExpressFlr(0x60)));
        let mut waits = Vec::new();
        reset(&mut config, AT, ResetMethod::ExpressFlr(0x60), |ms| waits.push(ms)).unwrap();
        assert_eq!(waits.len(), 11, "ten polls of the pending bit, then the FLR's 100 ms");
        assert_eq!(waits.last(), Some(&100));
        let flr = config
            .writes
            .iter()
            .find(|(_, offset, _)| *offset == 0x68)
            .expect("Device Control written");
        assert_eq!(
            flr.2,
            0x2010 | u32::from(EXPRESS_INITIATE_FLR),
            "Initiate FLR, other control bits kept, status written 0 (no RW1C bit cleared by accident)"
        );
        assert_eq!(
            dword(&config, 0x68) & 0xffff,
            0x2010,
            "Device Control as it was before the reset"
        );
    }

    #[test]
    fn without_express_flr_the_advanced_features_flr_then_pm() {
        let mut config = function_with(&[
            (0x40, capabilities::PCI_EXPRESS),
            (0x50, ADVANCED_FEATURES),
            (0x60, POWER_MANAGEMENT),
        ]);
        // AF: FLR and TP capable (byte 3 of the dword at 0x50).
        let header = dword(&config, 0x50);
        set_dword(&mut config, 0x50, header | 0x03 << 24);
        assert_eq!(method(&mut config, AT), Some(ResetMethod::AdvancedFeaturesFlr(0x50)));
        let mut waits = Vec::new();
        reset(&mut config, AT, ResetMethod::AdvancedFeaturesFlr(0x50), |ms| {
            waits.push(ms)
        })
        .unwrap();
        assert_eq!(waits, [100], "nothing pending, ready at once");
        assert_eq!(dword(&config, 0x54) & 0xff, 1, "Initiate FLR");
        // FLR without Transactions Pending is not used.
        let header = dword(&config, 0x50);
        set_dword(&mut config, 0x50, (header & 0x00ff_ffff) | 0x02 << 24);
        assert_eq!(method(&mut config, AT), Some(ResetMethod::PowerManagement(0x60)));
    }

    #[test]
    fn express_control_registers_come_back_and_a_function_that_stays_away_is_not_ready() {
        let mut config = function_with(&[(0x40, capabilities::PCI_EXPRESS)]);
        set_dword(&mut config, 0x44, EXPRESS_FLR_CAPABLE);
        // Device Control (MPS 256, MRRS 512), Link Control, Device Control 2.
        set_dword(&mut config, 0x48, 0x2030);
        set_dword(&mut config, 0x50, 0x0040);
        set_dword(&mut config, 0x68, 0x0010);
        let method = method(&mut config, AT).unwrap();
        reset(&mut config, AT, method, |_| {}).unwrap();
        // The fake keeps what the FLR write left (Initiate FLR set): the
        // restore writes the saved values back.
        assert_eq!(dword(&config, 0x48) & 0xffff, 0x2030);
        assert_eq!(dword(&config, 0x50) & 0xffff, 0x0040);
        assert_eq!(dword(&config, 0x68) & 0xffff, 0x0010);
        // A function that reads all ones after its reset: not ready after
        // a second of polling.
        config.functions.get_mut(&AT).unwrap().space[0] = u32::MAX;
        let mut waited = 0;
        let result = reset(&mut config, AT, ResetMethod::ExpressFlr(0x40), |ms| waited += ms);
        assert_eq!(result, Err(NotReady));
        assert!(waited >= READY_WAIT_MS);
    }

    #[test]
    fn the_pm_reset_goes_through_d3hot_unless_no_soft_reset() {
        let mut config = function_with(&[(0x40, POWER_MANAGEMENT)]);
        assert_eq!(method(&mut config, AT), Some(ResetMethod::PowerManagement(0x40)));
        // Already in D3hot's neighbour state D1 with PME enabled (bit 8): the
        // reset leaves the other bits and ends in D0.
        set_dword(&mut config, 0x44, 0x0101);
        let mut waits = 0;
        reset(&mut config, AT, ResetMethod::PowerManagement(0x40), |ms| waits += ms).unwrap();
        assert_eq!(waits, 20, "10 ms in D3hot, 10 ms after D0");
        assert_eq!(dword(&config, 0x44), 0x0100, "D0, PME enable kept");
        set_dword(&mut config, 0x44, u32::from(PM_NO_SOFT_RESET));
        assert_eq!(method(&mut config, AT), None, "D3hot would not reset it");
        let mut plain = function_with(&[]);
        assert_eq!(method(&mut plain, AT), None);
    }
}

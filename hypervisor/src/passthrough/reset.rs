//! Resetting an assigned function when it is wired and when it is taken
//! back (`keel_pci::reset` chooses the method and keeps the PCI Express
//! control registers), and putting back what the reset clears.
//!
//! A reset busy-waits (100 ms for an FLR, 20 ms for a PM reset, more while
//! the function drains or comes back): Keel's one CPU does nothing else
//! meanwhile, so a DomU that reboots in a loop costs every domain that
//! much per reboot and function.

use super::*;

/// Resets `bdf` the best way it offers (`keel_pci::reset`: PCI Express
/// FLR, Advanced Features FLR, or D3hot and back), with bus mastering off,
/// then puts back what the reset clears as the host's firmware left it
/// (the BARs and Interrupt Line, read back to check), still quiet: no
/// decoding, no bus mastering, INTx disabled. `when` is for the log line.
/// An error when the function did not come back or does not take its
/// BARs back: it must not be handed to anyone then.
pub(crate) fn reset_function(
    config: &mut HostConfig,
    bdf: Bdf,
    saved_bars: &[u32; 6],
    saved_line: u8,
    when: &str,
) -> Result<(), String> {
    config.write16(bdf, header::COMMAND, COMMAND_INTX_DISABLE);
    let Some(method) = keel_pci::reset::method(config, bdf) else {
        log::warn!("{bdf}: it offers no reset (no FLR, no PM reset): it keeps its state, the previous owner's included ({when})");
        return Ok(());
    };
    keel_pci::reset::reset(config, bdf, method, wait_ms).map_err(|_| {
        format!(
            "{bdf}: not back {} ms after its {method}",
            keel_pci::reset::READY_WAIT_MS
        )
    })?;
    for (index, &value) in saved_bars.iter().enumerate() {
        config.write32(bdf, header::BAR0 + 4 * index as u16, value);
    }
    let interrupt = config.read32(bdf, header::INTERRUPT_LINE);
    config.write32(bdf, header::INTERRUPT_LINE, (interrupt & !0xff) | u32::from(saved_line));
    config.write16(bdf, header::COMMAND, COMMAND_INTX_DISABLE);
    let now: [u32; 6] = core::array::from_fn(|index| config.read32(bdf, header::BAR0 + 4 * index as u16));
    if now != *saved_bars {
        return Err(format!(
            "{bdf}: its BARs read {now:#x?} after its {method}, not {saved_bars:#x?} as the firmware set them"
        ));
    }
    log::info!("{bdf}: reset ({method}, {when})");
    Ok(())
}

/// Waits `ms` milliseconds on the TSC (its rate unknown: as if it ran at
/// 10 GHz, so the wait is never shorter than asked).
pub(super) fn wait_ms(ms: u32) {
    let hz = crate::arch::tsc::hz().unwrap_or(10_000_000_000);
    let deadline = crate::arch::tsc::read().saturating_add(hz / 1000 * u64::from(ms));
    while crate::arch::tsc::read() < deadline {
        core::hint::spin_loop();
    }
}

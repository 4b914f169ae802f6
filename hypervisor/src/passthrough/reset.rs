//! Resetting an assigned function when it is wired and when it is taken
//! back (`keel_pci::reset` chooses the method), and putting back what the
//! reset clears.

use super::*;

/// Resets `bdf` the best way it offers (`keel_pci::reset`: PCI Express
/// FLR, Advanced Features FLR, or D3hot and back), with bus mastering off,
/// then puts back what the reset clears as the host's firmware left it
/// (the BARs and Interrupt Line), still quiet: no decoding, no bus
/// mastering, INTx disabled. `when` is for the log line.
pub(crate) fn reset_function(config: &mut HostConfig, bdf: Bdf, saved_bars: &[u32; 6], saved_line: u8, when: &str) {
    config.write16(bdf, header::COMMAND, COMMAND_INTX_DISABLE);
    let Some(method) = keel_pci::reset::method(config, bdf) else {
        log::info!("{bdf}: no reset it offers (no FLR, no PM reset): it keeps its state ({when})");
        return;
    };
    keel_pci::reset::reset(config, bdf, method, wait_ms);
    for (index, &value) in saved_bars.iter().enumerate() {
        config.write32(bdf, header::BAR0 + 4 * index as u16, value);
    }
    let interrupt = config.read32(bdf, header::INTERRUPT_LINE);
    config.write32(bdf, header::INTERRUPT_LINE, (interrupt & !0xff) | u32::from(saved_line));
    config.write16(bdf, header::COMMAND, COMMAND_INTX_DISABLE);
    log::info!("{bdf}: reset ({method}, {when})");
}

/// Waits `ms` milliseconds on the TSC.
pub(super) fn wait_ms(ms: u32) {
    let hz = crate::arch::tsc::hz().unwrap_or(1_000_000_000);
    let deadline = crate::arch::tsc::read().saturating_add(hz / 1000 * u64::from(ms));
    while crate::arch::tsc::read() < deadline {
        core::hint::spin_loop();
    }
}

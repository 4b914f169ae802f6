//! The self-test's I/O APIC part: edu's INTx (raised while its MSI is off)
//! reaches Keel through the host I/O APIC and an interrupt remapping entry
//! (the path a passed-through device's INTx takes when the unit remaps
//! interrupts, which then blocks the compatibility format). Which input
//! edu's slot drives depends on the chipset's PIRQ routing (Q35 sends PCI
//! slots to inputs 16-23), so every one of those inputs gets its own
//! vector and remapping entry, and the vector that arrives names the input.

use alloc::vec::Vec;

use keel_iommu::irte::remappable_ioapic_rte;

use super::interrupts::{self, RemappedInterrupt, Requester};
use crate::arch::device_interrupts;

/// The inputs Q35-style chipsets route PCI interrupts to.
const PCI_INPUTS: core::ops::RangeInclusive<u32> = 16..=23;
/// The vectors the test borrows (no guest runs yet: passthrough routes
/// are free).
const FIRST_VECTOR: u8 = device_interrupts::FIRST_VECTOR + 1;
/// The last of them (one per input).
pub const LAST_VECTOR: u8 = FIRST_VECTOR + (*PCI_INPUTS.end() - *PCI_INPUTS.start()) as u8;

struct Armed {
    input: u32,
    vector: u8,
    entry: RemappedInterrupt,
}

/// Raises edu's INTx with `raise`, lowers it with `lower`; returns the
/// input and entry it arrived through.
pub fn run(raise: impl FnOnce(), lower: impl FnOnce(), timeout: u64) -> Result<(u32, u16, u8), &'static str> {
    let apic = crate::passthrough::host_io_apics()
        .into_iter()
        .find(|apic| apic.gsi_base == 0)
        .ok_or("the MADT lists no I/O APIC with GSI 0")?;
    let base = u64::from(apic.address);
    let inputs = crate::arch::ioapic::inputs(base).ok_or("the I/O APIC is outside the identity map")?;
    let mut armed: Vec<Armed> = Vec::new();
    let result = (|| {
        for (offset, input) in PCI_INPUTS.filter(|&input| input < inputs).enumerate() {
            let vector = FIRST_VECTOR + offset as u8;
            let entry = match interrupts::remap(Requester::IoApic(apic.id), vector, true) {
                Some(Ok(entry)) => entry,
                Some(Err(_)) => return Err("no remapping entry for the I/O APIC's inputs"),
                None => return Err("no unit remaps the I/O APIC's interrupts"),
            };
            armed.push(Armed { input, vector, entry });
            device_interrupts::set_level_input(vector, Some((base, input)));
            let rte = remappable_ioapic_rte(entry.index, vector, true, true, false);
            if !crate::arch::ioapic::write_redirection(base, input, rte) {
                return Err("writing an I/O APIC entry");
            }
        }
        device_interrupts::enable_local_apic();
        let seen: Vec<u64> = armed
            .iter()
            .map(|armed| device_interrupts::arrivals(armed.vector))
            .collect();
        raise();
        let deadline = crate::arch::tsc::read().saturating_add(timeout);
        let arrived = loop {
            let first = armed.first().map_or(FIRST_VECTOR, |armed| armed.vector);
            device_interrupts::wait_for(first, u64::MAX, crate::arch::tsc::read());
            if let Some(hit) = armed
                .iter()
                .zip(&seen)
                .find(|(armed, &before)| device_interrupts::arrivals(armed.vector) > before)
            {
                break Some((hit.0.input, hit.0.entry.index, hit.0.vector));
            }
            if crate::arch::tsc::read() >= deadline {
                break None;
            }
        };
        lower();
        arrived.ok_or("edu's INTx did not arrive through any I/O APIC input 16-23")
    })();
    for armed in armed {
        crate::arch::ioapic::set_masked(base, armed.input, true);
        device_interrupts::set_level_input(armed.vector, None);
        interrupts::release(armed.entry);
    }
    // What arrived was counted; the passthrough routes start from nothing.
    let _ = device_interrupts::take_pending();
    result
}

//! Host INTx inputs and ISA IRQs of assigned functions: their host I/O
//! APIC entries (remappable where a unit remaps the I/O APIC's
//! interrupts), routes to Keel's vectors, and the resample that unmasks a
//! level-triggered input once the guest acknowledged it.

use super::*;

/// Both channels' host IRQs go to the guest's INTx GSI of the function.
pub(super) fn route_interrupts(
    domain_id: u32,
    bdf: Bdf,
    legacy: &[&LegacyChannel],
    guest_gsi: u32,
) -> Result<(), String> {
    with(|devices| {
        for channel in legacy {
            let isa = devices.madt.isa_route(channel.irq);
            let route = devices
                .routes
                .add(Route {
                    host_gsi: isa.gsi,
                    vector: 0,
                    domain: domain_id,
                    guest_gsi,
                    level_triggered: isa.level_triggered,
                    active_low: isa.active_low,
                    intx_slot: None,
                    msi_slot: None,
                    msix_entry: None,
                    function: function_id(bdf),
                })
                .map_err(|error| format!("IRQ {}: {error:?}", channel.irq))?;
            crate::arch::device_interrupts::forget_pending(route.vector);
            if route.level_triggered {
                // A level ISA override: masked as it fires, like INTx, so a
                // line still asserted at the EOI cannot storm Keel; each
                // arrival is still one pulse for the guest, and the input
                // is unmasked again once the pulse is delivered.
                let input = devices
                    .madt
                    .io_apic_for(route.host_gsi)
                    .map(|(apic, input)| (u64::from(apic.address), input));
                crate::arch::device_interrupts::set_level_input(route.vector, input);
            }
            program_route(devices, &route, false).map_err(|why| format!("IRQ {}: {why}", channel.irq))?;
            log::info!(
                "domain {domain_id}: host IRQ {} (GSI {}{}{}) -> vector {:#x} -> guest GSI {guest_gsi}",
                channel.irq,
                isa.gsi,
                if isa.level_triggered { ", level" } else { ", edge" },
                remapping_note(devices, &route),
                route.vector
            );
        }
        Ok(())
    })
    .unwrap_or(Err(String::from("host devices not initialized")))
}

/// Routes a function's INTx (host input `host`) to the DomU's function at
/// guest slot `slot`, level-triggered: the input is masked by Keel's
/// handler whenever it fires, and unmasked by [`resample`].
pub(super) fn route_intx(
    domain_id: u32,
    bdf: Bdf,
    host: keel_acpi_tables::host_madt::IsaRoute,
    slot: u8,
    guest_gsi: u32,
) -> Result<(), String> {
    with(|devices| {
        let route = devices
            .routes
            .add(Route {
                host_gsi: host.gsi,
                vector: 0,
                domain: domain_id,
                guest_gsi,
                level_triggered: host.level_triggered,
                active_low: host.active_low,
                intx_slot: Some(slot),
                msi_slot: None,
                msix_entry: None,
                function: function_id(bdf),
            })
            .map_err(|error| match error {
                RouteError::GsiInUse => format!(
                    "host GSI {} (its INTx) is taken by another assigned function: shared host interrupts are not forwarded",
                    host.gsi
                ),
                RouteError::NoVector => String::from("no free host vector for its INTx"),
            })?;
        crate::arch::device_interrupts::forget_pending(route.vector);
        let input = devices.madt.io_apic_for(route.host_gsi);
        let level_input = input.filter(|_| route.level_triggered).map(|(apic, input)| (u64::from(apic.address), input));
        crate::arch::device_interrupts::set_level_input(route.vector, level_input);
        if let Err(why) = program_route(devices, &route, false) {
            crate::arch::device_interrupts::set_level_input(route.vector, None);
            return Err(why);
        }
        log::info!(
            "domain {domain_id}: host GSI {} ({}, {}{}) -> vector {:#x} -> guest slot {slot} INTx, GSI {guest_gsi}",
            route.host_gsi,
            if route.level_triggered { "level" } else { "edge" },
            if route.active_low { "active low" } else { "active high" },
            remapping_note(devices, &route),
            route.vector
        );
        Ok(())
    })
    .unwrap_or(Err(String::from("host devices not initialized")))
}

/// The DomU `domain` acknowledged the INTx of its function at `guest`
/// (or re-enabled it): the host input is unmasked, and fires again at once
/// if the device still asserts it.
pub fn resample(domain: u32, guest: keel_devices::pci_host::PciAddress) {
    with(|devices| {
        let Some(route) = devices.routes.by_intx_slot(domain, guest.device()) else {
            return;
        };
        if let Some((apic, input)) = devices.madt.io_apic_for(route.host_gsi) {
            crate::arch::ioapic::set_masked(u64::from(apic.address), input, false);
        }
    });
}

/// Writes the host I/O APIC's redirection entry for `route`: where a
/// remapping unit remaps the I/O APIC's interrupts (it then blocks the
/// compatibility format), through an interrupt remapping entry written on
/// first use and kept until [`unroute`]; else in compatibility format.
pub(super) fn program_route(devices: &mut HostDevices, route: &Route, masked: bool) -> Result<(), String> {
    let (apic, input) = devices
        .madt
        .io_apic_for(route.host_gsi)
        .ok_or_else(|| format!("no host I/O APIC has GSI {}", route.host_gsi))?;
    let existing = devices
        .remapped
        .iter()
        .find(|(vector, _)| *vector == route.vector)
        .map(|&(_, entry)| entry);
    let remapped = match existing {
        Some(entry) => Some(entry),
        None if masked => None,
        None => {
            match crate::iommu::interrupts::remap(Requester::IoApic(apic.id), route.vector, route.level_triggered) {
                None => None,
                Some(Ok(entry)) => {
                    devices.remapped.push((route.vector, entry));
                    Some(entry)
                }
                Some(Err(why)) => return Err(format!("host GSI {}: {why}", route.host_gsi)),
            }
        }
    };
    let entry = match remapped {
        Some(remapped) => keel_iommu::irte::remappable_ioapic_rte(
            remapped.index,
            route.vector,
            route.level_triggered,
            route.active_low,
            masked,
        ),
        None => redirection_entry(route, crate::arch::device_interrupts::local_apic_id() as u8, masked),
    };
    if !crate::arch::ioapic::write_redirection(u64::from(apic.address), input, entry) {
        return Err(format!(
            "host GSI {}: I/O APIC {} has no input {input}",
            route.host_gsi, apic.id
        ));
    }
    Ok(())
}

/// Masks `route`'s input and gives back its remapping entry.
pub(super) fn unroute(devices: &mut HostDevices, route: &Route) {
    if let Err(why) = program_route(devices, route, true) {
        log::warn!("pci: masking {why}");
    }
    crate::arch::device_interrupts::set_level_input(route.vector, None);
    release_remapped(devices, route.vector);
}

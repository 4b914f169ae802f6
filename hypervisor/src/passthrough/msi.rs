//! MSI of assigned functions, the host's side: the real device programmed
//! with a vector (and remapping entry) of Keel's while the guest has MSI
//! enabled; the message routes MSI-X shares (`add_message_route`).

use super::*;

pub(super) const MSI_ENABLE: u16 = 1 << 0;

/// Multiple Message Enable (bits 6:4): one vector.
pub(super) const MSI_MULTIPLE_ENABLE: u16 = 0b111 << 4;

pub(super) const MSI_64_BIT: u16 = 1 << 7;

pub(super) const MSI_PER_VECTOR_MASKING: u16 = 1 << 8;

/// The guest turned the MSI of its function at `guest` on or off: Keel
/// programs the real device's MSI with a vector of its own (through an
/// interrupt remapping entry where a unit remaps the device's interrupts,
/// which then blocks the compatibility format), never with the guest's
/// address and data, and forwards what arrives to the guest's model
/// (`VirtualPlatform::passthrough_msi_fired`), which delivers the
/// guest's own message. Turning it off (or a state that cannot be served)
/// disables the real device's MSI and frees the vector.
pub fn apply_msi(domain_id: u32, assigned: &[Wired], guest: keel_devices::pci_host::PciAddress, enabled: bool) {
    let Some(wired) = assigned.iter().find(|wired| wired.guest == guest) else {
        return;
    };
    let config = &mut HostConfig;
    let Some(msi) = keel_pci::capabilities::find(config, wired.host, keel_pci::capabilities::MSI) else {
        return;
    };
    with(|devices| {
        let existing = devices.routes.by_msi_slot(domain_id, guest.device());
        match (enabled, existing) {
            (true, None) => {
                if let Err(why) = route_msi(devices, domain_id, wired.host, guest.device(), msi) {
                    if should_log_msi() {
                        log::warn!("domain {domain_id}: {}: MSI not forwarded: {why}", wired.host);
                    }
                }
            }
            (false, Some(route)) => unroute_msi(devices, wired.host, msi, &route),
            _ => {}
        }
    });
}

pub(super) fn route_msi(
    devices: &mut HostDevices,
    domain_id: u32,
    host: Bdf,
    slot: u8,
    msi: u16,
) -> Result<(), String> {
    let config = &mut HostConfig;
    let (route, (address, data)) = add_message_route(devices, domain_id, host, slot, None)?;
    let data = data as u16;
    let control = config.read16(host, msi + 2);
    config.write32(host, msi + 4, address);
    let mask_bits = if control & MSI_64_BIT != 0 {
        config.write32(host, msi + 8, 0);
        config.write16(host, msi + 12, data);
        msi + 0x10
    } else {
        config.write16(host, msi + 8, data);
        msi + 0x0c
    };
    if control & MSI_PER_VECTOR_MASKING != 0 {
        // The guest's masking is the model's (pending there): the device's
        // own vector stays unmasked.
        config.write32(host, mask_bits, 0);
    }
    config.write16(host, msi + 2, (control & !MSI_MULTIPLE_ENABLE) | MSI_ENABLE);
    if !should_log_msi() {
        return Ok(());
    }
    log::info!(
        "domain {domain_id}: {host} MSI -> vector {:#x}{} -> guest slot {slot} MSI",
        route.vector,
        remapping_note(devices, &route)
    );
    Ok(())
}

/// A host vector for guest slot `slot`'s MSI (`msix_entry` `None`) or
/// MSI-X entry, and the message the real device must send for it.
pub(super) fn add_message_route(
    devices: &mut HostDevices,
    domain_id: u32,
    host: Bdf,
    slot: u8,
    msix_entry: Option<u16>,
) -> Result<(Route, (u32, u32)), String> {
    let route = devices
        .routes
        .add(Route {
            host_gsi: 0,
            vector: 0,
            domain: domain_id,
            guest_gsi: 0,
            level_triggered: false,
            active_low: false,
            intx_slot: None,
            msi_slot: Some(slot),
            msix_entry,
            function: function_id(host),
        })
        .map_err(|_| String::from("no free host vector"))?;
    crate::arch::device_interrupts::forget_pending(route.vector);
    match host_message(devices, host, route.vector) {
        Ok(message) => Ok((route, message)),
        Err(why) => {
            devices.routes.remove(route.vector);
            Err(why)
        }
    }
}

/// The message `host` must send to raise `vector` at Keel: through an
/// interrupt remapping entry (kept in `devices.remapped` until the route
/// goes) where a unit remaps the function's interrupts, else in
/// compatibility format to Keel's local APIC.
pub(super) fn host_message(devices: &mut HostDevices, host: Bdf, vector: u8) -> Result<(u32, u32), String> {
    let requester = source_id(host).map(Requester::Function);
    match requester.and_then(|requester| crate::iommu::interrupts::remap(requester, vector, false)) {
        None => {
            let (address, data) = compatibility_msi(crate::arch::device_interrupts::local_apic_id() as u8, vector);
            Ok((address, u32::from(data)))
        }
        Some(Ok(entry)) => {
            devices.remapped.push((vector, entry));
            let message = keel_iommu::irte::RemappableMsi::new(entry.index, None);
            Ok((message.address, message.data))
        }
        Some(Err(why)) => Err(why),
    }
}

/// MSI enables logged so far: the first few, then every power of two (a
/// guest can toggle MSI Enable in a loop).
pub(super) fn should_log_msi() -> bool {
    static LOGGED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let count = LOGGED.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    count <= 8 || count.is_power_of_two()
}

/// Clears MSI Enable in the capability at `msi`; returns its Message
/// Control as it was.
pub(super) fn disable_msi(config: &mut HostConfig, bdf: Bdf, msi: u16) -> u16 {
    let control = config.read16(bdf, msi + 2);
    config.write16(bdf, msi + 2, control & !MSI_ENABLE);
    control
}

/// Gives back the remapping entry of the route on `vector`, if it has one
/// (the route is going: a function short of an MSI-X vector gets another
/// try, `msix::retries`).
pub(super) fn release_remapped(devices: &mut HostDevices, vector: u8) {
    super::msix::vector_released();
    if let Some(position) = devices.remapped.iter().position(|(owner, _)| *owner == vector) {
        let (_, entry) = devices.remapped.remove(position);
        crate::iommu::interrupts::release(entry);
    }
}

/// Turns the real device's MSI off and frees its vector and entry.
pub(super) fn unroute_msi(devices: &mut HostDevices, host: Bdf, msi: u16, route: &Route) {
    disable_msi(&mut HostConfig, host, msi);
    devices.routes.remove(route.vector);
    crate::arch::device_interrupts::forget_pending(route.vector);
    release_remapped(devices, route.vector);
}

/// How `route` reaches Keel, for its log line.
pub(super) fn remapping_note(devices: &HostDevices, route: &Route) -> String {
    devices
        .remapped
        .iter()
        .find(|(vector, _)| *vector == route.vector)
        .map_or(String::new(), |(_, entry)| format!(", remapping entry {}", entry.index))
}

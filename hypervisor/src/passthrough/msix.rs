//! MSI-X of assigned functions, the host's side.
//!
//! The guest programs an emulated table (`platform_devices::assigned_msix`);
//! the real table only ever holds Keel's messages. Each entry the guest
//! unmasks while MSI-X is on gets a host vector of its own (and, where a
//! remapping unit remaps the function's interrupts, an interrupt
//! remapping entry naming the function as requester), and the real entry
//! is programmed with that message and unmasked; every other real entry
//! stays masked. Once routed, an entry keeps its vector while MSI-X stays
//! on, even if the guest masks it again: what arrives meanwhile pends in
//! the guest's PBA, as on real hardware; only when a bound is reached
//! (below) is the vector of an entry the guest masked given back (its
//! real entry masked: the device then holds an event pending itself and
//! sends it once the entry is routed and unmasked again). Turning MSI-X
//! off gives all the function's vectors back.
//!
//! Bounds: Keel has 62 device vectors for every forwarded interrupt of
//! every domain, so one function's MSI-X holds at most
//! [`VECTORS_PER_FUNCTION`] and one domain's MSI and MSI-X together at
//! most [`MESSAGE_VECTORS_PER_DOMAIN`]. An entry the guest unmasks past
//! them (or when no vector is free) is logged and gets no vector until
//! the guest changes its MSI-X again or another route gives a vector back
//! ([`retries`]) (Linux's drivers use a few entries on a one-vCPU guest: NVMe its
//! admin and one I/O queue, NICs one per queue pair and one for link
//! events).
//!
//! MSI and MSI-X are never both on at the device: while the guest has
//! MSI-X enabled, the function's MSI is off (the PCI spec forbids both;
//! Linux never does it, a hostile guest gains nothing by it).

use alloc::format;
use alloc::string::String;

use keel_devices::pci_host::PciAddress;
use keel_hypervisor::host_irq::Route;
use keel_hypervisor::platform_devices::MsixRequest;
use keel_pci::Bdf;

use super::{add_message_route, release_remapped, should_log_msi, with, HostDevices, Wired};
use crate::arch::pci::HostConfig;
use crate::host_msix::HostMsixTable;

/// Host vectors one function's MSI-X may hold.
pub const VECTORS_PER_FUNCTION: usize = 8;
/// Host vectors one domain's MSI and MSI-X may hold together (of 62).
pub const MESSAGE_VECTORS_PER_DOMAIN: usize = 24;

/// Functions (domain, guest address) with an entry the guest unmasked but
/// Keel gave no vector (the bounds, or no vector free): tried again
/// ([`retries`]) once a route gives its vector back.
static STARVED: spin::Mutex<alloc::vec::Vec<(u32, PciAddress)>> = spin::Mutex::new(alloc::vec::Vec::new());
/// A route gave its vector back since the last [`retries`].
static RELEASED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// A forwarded interrupt's vector was given back (`release_remapped`).
pub(super) fn vector_released() {
    RELEASED.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// The functions to bring in line again (`apply_msix`) because vectors
/// were given back while they were short of one; empty (one atomic load)
/// otherwise. The scheduler asks after forwarding interrupts.
pub fn retries() -> alloc::vec::Vec<(u32, PciAddress)> {
    if !RELEASED.load(core::sync::atomic::Ordering::Relaxed) {
        return alloc::vec::Vec::new();
    }
    RELEASED.store(false, core::sync::atomic::Ordering::Relaxed);
    core::mem::take(&mut *STARVED.lock())
}

fn note_starved(domain: u32, guest: PciAddress, starved: bool) {
    let mut list = STARVED.lock();
    list.retain(|&entry| entry != (domain, guest));
    if starved {
        list.push((domain, guest));
    }
}

/// The guest changed MSI-X Enable, the Function Mask or a table entry of
/// its function at `guest`: the real table is brought in line with
/// `request` (see the module documentation).
pub fn apply_msix(domain_id: u32, assigned: &mut [Wired], guest: PciAddress, request: &MsixRequest) {
    let Some(wired) = assigned.iter_mut().find(|wired| wired.guest == guest) else {
        return;
    };
    let host = wired.host;
    let Some(table) = wired.msix.as_mut() else {
        return;
    };
    let slot = guest.device();
    let config = &mut HostConfig;
    let starved = with(|devices| {
        let mut routed = devices.routes.msix_routes(domain_id, slot);
        if !request.enabled {
            for route in &routed {
                unroute_entry(devices, table, route);
            }
            table.disable(config);
            return false;
        }
        let mut starved = false;
        if let Some(route) = devices.routes.by_msi_slot(domain_id, slot) {
            if let Some(msi) = keel_pci::capabilities::find(config, host, keel_pci::capabilities::MSI) {
                super::unroute_msi(devices, host, msi, &route);
            }
        }
        for &entry in &request.unmasked {
            if routed.iter().any(|route| route.msix_entry == Some(entry)) {
                continue;
            }
            let at_bound = routed.len() >= VECTORS_PER_FUNCTION
                || devices.routes.message_routes(domain_id) >= MESSAGE_VECTORS_PER_DOMAIN;
            if at_bound {
                // The vector of an entry the guest masked again, if any.
                let idle = routed.iter().position(|route| {
                    route
                        .msix_entry
                        .is_some_and(|routed| !request.unmasked.contains(&routed))
                });
                let Some(idle) = idle else {
                    starved = true;
                    if should_log_msi() {
                        log::warn!(
                            "domain {domain_id}: {host}: MSI-X entry {entry} not forwarded: the function holds {} host vectors and the domain {} (at most {VECTORS_PER_FUNCTION} and {MESSAGE_VECTORS_PER_DOMAIN})",
                            routed.len(),
                            devices.routes.message_routes(domain_id)
                        );
                    }
                    break;
                };
                let idle = routed.remove(idle);
                unroute_entry(devices, table, &idle);
            }
            match route_entry(devices, domain_id, host, slot, table, entry) {
                Ok(route) => {
                    routed.push(route);
                    if should_log_msi() {
                        log::info!(
                            "domain {domain_id}: {host} MSI-X entry {entry} -> vector {:#x}{} -> guest slot {slot}",
                            route.vector,
                            super::remapping_note(devices, &route)
                        );
                    }
                }
                Err(why) => {
                    starved = true;
                    if should_log_msi() {
                        log::warn!("domain {domain_id}: {host}: MSI-X entry {entry} not forwarded: {why}");
                    }
                    break;
                }
            }
        }
        table.enable(config);
        starved
    });
    note_starved(domain_id, guest, starved.unwrap_or(false));
}

/// A host vector for `entry`, programmed into the real table and unmasked.
fn route_entry(
    devices: &mut HostDevices,
    domain_id: u32,
    host: Bdf,
    slot: u8,
    table: &mut HostMsixTable,
    entry: u16,
) -> Result<Route, String> {
    if entry >= table.entries() {
        return Err(format!("the table has {} entries", table.entries()));
    }
    let (route, (address, data)) = add_message_route(devices, domain_id, host, slot, Some(entry))?;
    table.program(&mut HostConfig, entry, u64::from(address), data);
    Ok(route)
}

/// Masks `route`'s real entry and frees its vector and remapping entry.
fn unroute_entry(devices: &mut HostDevices, table: &mut HostMsixTable, route: &Route) {
    if let Some(entry) = route.msix_entry {
        table.mask(&mut HostConfig, entry);
    }
    devices.routes.remove(route.vector);
    crate::arch::device_interrupts::forget_pending(route.vector);
    release_remapped(devices, route.vector);
}

/// Before a function is given back (or first wired): every entry masked
/// and MSI-X off, so nothing the guest left can fire once its vectors are
/// freed.
pub fn quiet(table: &mut HostMsixTable) {
    table.quiet(&mut HostConfig);
}

/// For the assignment's log line: what the guest is offered.
pub fn describe(table: Option<&HostMsixTable>) -> String {
    table.map_or(String::new(), |table| {
        format!(
            ", MSI-X ({} entries, up to {VECTORS_PER_FUNCTION} forwarded)",
            table.entries()
        )
    })
}

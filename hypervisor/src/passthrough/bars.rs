//! An assigned function's BARs in the guest: memory BARs mapped into its
//! EPT (in pieces around the MSI-X table's and PBA's pages) where the
//! guest's BAR decodes, following the guest when it moves them; I/O BARs
//! (and a legacy IDE controller's fixed ports) opened in its I/O bitmap,
//! pinned at the host's ports.

use super::*;

/// The guest moved a memory BAR of its function at `guest` (or turned its
/// decoding on or off): the host BAR's pages leave the old guest address
/// and appear at the new one, unless that would cover the guest's RAM or
/// MMIO Keel emulates, in which case the BAR stays unmapped (its accesses
/// read all ones) and Keel says why. The caller flushes the EPT.
pub fn move_bar(domain: &mut Domain, guest: keel_devices::pci_host::PciAddress, change: BarMove) {
    let Some(position) = domain.assigned.iter().position(|wired| wired.guest == guest) else {
        return;
    };
    let Some(&mapped) = domain.assigned[position].mapped.get(change.index) else {
        return;
    };
    // Only what Keel really mapped for this BAR is unmapped (a move the
    // guest asked for but Keel refused left nothing there).
    if let Some((at, pieces)) = mapped {
        unmap_pieces(domain, at, &pieces);
        domain.assigned[position].mapped[change.index] = None;
    }
    let Some(to) = change.to else { return };
    let id = domain.id;
    let covers_emulated = domain
        .platform
        .as_deref()
        .is_some_and(|platform| platform.overlaps_emulated_mmio(to, change.size));
    let result = if covers_emulated {
        Err(String::from("it would cover MMIO Keel emulates"))
    } else {
        map_pieces(domain, to, change.host, &change.pieces)
    };
    if result.is_ok() {
        domain.assigned[position].mapped[change.index] = Some((to, change.pieces));
    }
    let moves = BAR_MOVES_LOGGED.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    if moves > 8 && !moves.is_power_of_two() {
        return;
    }
    match result {
        Ok(()) if to != change.host => log::info!(
            "domain {id}: {:02x}:{:02x}.{} BAR {} moved by the guest to {to:#x} (host {:#x}, {} bytes)",
            guest.bus(),
            guest.device(),
            guest.function(),
            change.index,
            change.host,
            change.size
        ),
        Ok(()) => {}
        Err(why) => log::warn!(
            "domain {id}: {:02x}:{:02x}.{} BAR {} at {to:#x} not mapped ({why}): the guest reads all ones there",
            guest.bus(),
            guest.device(),
            guest.function(),
            change.index
        ),
    }
}

/// Maps the `pieces` of a memory BAR at host `host` with the BAR at guest
/// `at`: all of them, or none (and why).
pub(super) fn map_pieces(domain: &mut Domain, at: u64, host: u64, pieces: &BarPieces) -> Result<(), String> {
    for (done, (offset, len)) in pieces.iter().enumerate() {
        if let Err(error) = domain.map_device(at + offset, host + offset, len) {
            for (offset, _) in pieces.iter().take(done) {
                domain.unmap_device(at + offset);
            }
            return Err(format!("{error}"));
        }
    }
    Ok(())
}

/// Unmaps what [`map_pieces`] mapped with the BAR at guest `at`.
pub(super) fn unmap_pieces(domain: &mut Domain, at: u64, pieces: &BarPieces) {
    for (offset, _) in pieces.iter() {
        domain.unmap_device(at + offset);
    }
}

/// BAR moves and refusals logged so far: the first few and then every
/// power of two (a guest can move BARs in a loop).
pub(super) static BAR_MOVES_LOGGED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A native-mode IDE BAR at a channel's legacy ports.
pub(super) fn legacy_bar(index: u8, address: u16, size: u64) -> (usize, GuestBar) {
    (
        usize::from(index),
        GuestBar {
            kind: GuestBarKind::Io,
            size,
            address: u64::from(address),
        },
    )
}

pub(super) fn guest_bars(bars: &[Bar]) -> Vec<(usize, GuestBar)> {
    bars.iter()
        .map(|bar| {
            let kind = match bar.kind {
                BarKind::Io => GuestBarKind::Io,
                BarKind::Memory32 => GuestBarKind::Memory32 {
                    prefetchable: bar.prefetchable,
                },
                BarKind::Memory64 => GuestBarKind::Memory64 {
                    prefetchable: bar.prefetchable,
                },
            };
            (
                usize::from(bar.index),
                GuestBar {
                    kind,
                    size: bar.size,
                    address: bar.address,
                },
            )
        })
        .collect()
}

/// Every port range the guest gets: I/O BARs and legacy IDE channels.
pub(super) fn io_ranges(bars: &[Bar], legacy: &[&LegacyChannel]) -> Result<Vec<(u16, u16)>, String> {
    let mut ranges = Vec::new();
    for bar in bars.iter().filter(|bar| bar.kind == BarKind::Io) {
        let first = u16::try_from(bar.address).map_err(|_| format!("I/O BAR {} above 64 KiB", bar.index))?;
        let count = u16::try_from(bar.size).map_err(|_| format!("I/O BAR {} too large", bar.index))?;
        ranges.push((first, count));
    }
    for channel in legacy {
        ranges.push((channel.command_block, 8));
        ranges.push((channel.control_port, 1));
    }
    for &(first, count) in &ranges {
        let end = u32::from(first) + u32::from(count);
        if let Some((taken, _)) = EMULATED_PORTS
            .iter()
            .find(|&&(start, len)| u32::from(first) < u32::from(start) + u32::from(len) && u32::from(start) < end)
        {
            return Err(format!(
                "ports {first:#x}+{count} overlap Keel's emulated ports at {taken:#x}"
            ));
        }
    }
    Ok(ranges)
}

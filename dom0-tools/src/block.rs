//! `keel block-list`: a domain's virtio-blk disks, from Keel (the device
//! state the driver set) and the backend's ready file (paths and modes).

use std::io::Write;

use anyhow::Result;
use keel_abi::mgmt::virtio::{device_type, MAX_DEVICES};
use keel_abi::mgmt::{DomainId, Status, VirtioDeviceState};
use keel_virtio::status::{ACKNOWLEDGE, DEVICE_NEEDS_RESET, DRIVER, DRIVER_OK, FAILED, FEATURES_OK};
use serde::Serialize;

use crate::backend::supervisor::Backends;
use crate::client::{is_status, CallError, Client};
use crate::transport::Transport;

/// One disk of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub index: usize,
    /// From the backend's ready file; unknown without one.
    pub path: Option<String>,
    pub read_only: Option<bool>,
    pub sectors: Option<u64>,
    pub state: VirtioDeviceState,
    /// The backend serving it, if it runs.
    pub backend_pid: Option<i32>,
}

/// The most telling part of a device status, as the driver set it.
pub fn status_name(status: u8, reset_pending: bool) -> &'static str {
    if reset_pending {
        "resetting"
    } else if status & FAILED != 0 {
        "failed"
    } else if status & DEVICE_NEEDS_RESET != 0 {
        "needs-reset"
    } else if status & DRIVER_OK != 0 {
        "driver-ok"
    } else if status & FEATURES_OK != 0 {
        "features-ok"
    } else if status & DRIVER != 0 {
        "driver"
    } else if status & ACKNOWLEDGE != 0 {
        "acknowledge"
    } else {
        "reset"
    }
}

/// Domain `id`'s disks. Without a ready file, the devices are found by
/// asking Keel for indices 0, 1, ... until it refuses one; `err` gets a
/// note when no backend serves them.
pub fn list<T: Transport>(
    client: &mut Client<T>,
    id: DomainId,
    backends: &mut dyn Backends,
    err: &mut dyn Write,
    label: &str,
) -> Result<Vec<BlockRow>> {
    let backend = backends.status(id)?;
    let ready = backend.ready.filter(|ready| ready.domain == id);
    let mut rows = Vec::new();
    match ready {
        Some(ready) => {
            for disk in ready.disks {
                rows.push(BlockRow {
                    index: disk.index,
                    path: Some(disk.path),
                    read_only: Some(disk.read_only),
                    sectors: Some(disk.sectors),
                    state: client.virtio_state(id, disk.index)?,
                    backend_pid: backend.running,
                });
            }
        }
        None => {
            for (index, state) in devices_of_type(client, id, device_type::BLOCK)? {
                rows.push(BlockRow {
                    index,
                    path: None,
                    read_only: None,
                    sectors: None,
                    state,
                    backend_pid: None,
                });
            }
        }
    }
    if backend.running.is_none() && !rows.is_empty() {
        writeln!(
            err,
            "keel: no backend runs for {label}: its disks are not served; `keel backend-restart` starts it again"
        )?;
    }
    Ok(rows)
}

/// Domain `id`'s virtio devices of type `kind`, found by asking Keel for
/// indices 0, 1, ... until it refuses one (when no ready file names them).
pub fn devices_of_type<T: Transport>(
    client: &mut Client<T>,
    id: DomainId,
    kind: u16,
) -> Result<Vec<(usize, VirtioDeviceState)>> {
    let mut found = Vec::new();
    for index in 0..MAX_DEVICES {
        let state = match client.virtio_state(id, index) {
            Ok(state) => state,
            Err(error) if is_status(&error, Status::NoSuchDomain) => return Err(error),
            // Past the last device (or none at all).
            Err(error) if error.downcast_ref::<CallError>().is_some() => break,
            Err(error) => return Err(error),
        };
        if state.device_type == kind {
            found.push((index, state));
        }
    }
    Ok(found)
}

fn mode(row: &BlockRow) -> &'static str {
    match row.read_only {
        Some(true) => "ro",
        Some(false) => "rw",
        None => "?",
    }
}

/// Index, Mode, Status ("driver-ok (0x0f)"), Path.
pub fn table(rows: &[BlockRow]) -> String {
    let statuses: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} ({:#04x})",
                status_name(row.state.status, row.state.reset_pending),
                row.state.status
            )
        })
        .collect();
    let width = statuses.iter().map(String::len).max().unwrap_or(0).max(6);
    let mut text = format!("{:<5}  {:<4}  {:<width$}  {}\n", "Index", "Mode", "Status", "Path");
    for (row, status) in rows.iter().zip(&statuses) {
        text += &format!(
            "{:<5}  {:<4}  {:<width$}  {}\n",
            row.index,
            mode(row),
            status,
            row.path.as_deref().unwrap_or("?")
        );
    }
    text
}

#[derive(Serialize)]
struct BlockRecord<'a> {
    index: usize,
    path: Option<&'a str>,
    /// "rw", "ro", or null when unknown.
    mode: Option<&'static str>,
    read_only: Option<bool>,
    sectors: Option<u64>,
    /// [`status_name`].
    status: &'static str,
    /// The device status byte.
    status_bits: u8,
    reset_pending: bool,
    generation: u32,
    driver_features: u64,
    backend_pid: Option<i32>,
}

pub fn json(rows: &[BlockRow]) -> String {
    let records: Vec<_> = rows
        .iter()
        .map(|row| BlockRecord {
            index: row.index,
            path: row.path.as_deref(),
            mode: row.read_only.map(|_| mode(row)),
            read_only: row.read_only,
            sectors: row.sectors,
            status: status_name(row.state.status, row.state.reset_pending),
            status_bits: row.state.status,
            reset_pending: row.state.reset_pending,
            generation: row.state.generation,
            driver_features: row.state.driver_features,
            backend_pid: row.backend_pid,
        })
        .collect();
    serde_json::to_string_pretty(&records).expect("plain data serializes") + "\n"
}

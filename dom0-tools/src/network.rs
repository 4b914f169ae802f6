//! `keel network-list`: a domain's virtio-net interfaces, from Keel (the
//! device state the driver set) and the backend's ready file (addresses).

use std::io::Write;

use anyhow::Result;
use keel_abi::mgmt::virtio::device_type;
use keel_abi::mgmt::{DomainId, VirtioDeviceState};
use serde::Serialize;

use crate::backend::supervisor::Backends;
use crate::block::{devices_of_type, status_name};
use crate::client::Client;
use crate::transport::Transport;

/// One interface of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRow {
    pub index: usize,
    /// From the backend's ready file; unknown without one.
    pub mac: Option<String>,
    pub mtu: Option<u16>,
    pub state: VirtioDeviceState,
    /// The backend serving it, if it runs.
    pub backend_pid: Option<i32>,
}

/// Domain `id`'s interfaces; `err` gets a note when no backend serves
/// them.
pub fn list<T: Transport>(
    client: &mut Client<T>,
    id: DomainId,
    backends: &mut dyn Backends,
    err: &mut dyn Write,
    label: &str,
) -> Result<Vec<NicRow>> {
    let backend = backends.status(id)?;
    let ready = backend.ready.filter(|ready| ready.domain == id);
    let mut rows = Vec::new();
    match ready {
        Some(ready) => {
            for nic in ready.nics {
                rows.push(NicRow {
                    index: nic.index,
                    mac: Some(nic.mac),
                    mtu: nic.mtu,
                    state: client.virtio_state(id, nic.index)?,
                    backend_pid: backend.running,
                });
            }
        }
        None => {
            for (index, state) in devices_of_type(client, id, device_type::NET)? {
                rows.push(NicRow {
                    index,
                    mac: None,
                    mtu: None,
                    state,
                    backend_pid: None,
                });
            }
        }
    }
    if backend.running.is_none() && !rows.is_empty() {
        writeln!(
            err,
            "keel: no backend runs for {label}: its interfaces carry nothing; `keel backend-restart` starts it again"
        )?;
    }
    Ok(rows)
}

/// Index, MAC, MTU, Status ("driver-ok (0x0f)").
pub fn table(rows: &[NicRow]) -> String {
    let mut text = format!("{:<5}  {:<17}  {:<5}  {}\n", "Index", "MAC", "MTU", "Status");
    for row in rows {
        let mtu = row.mtu.map_or_else(|| "1500".to_string(), |mtu| mtu.to_string());
        text += &format!(
            "{:<5}  {:<17}  {:<5}  {} ({:#04x})\n",
            row.index,
            row.mac.as_deref().unwrap_or("?"),
            if row.mac.is_some() { mtu.as_str() } else { "?" },
            status_name(row.state.status, row.state.reset_pending),
            row.state.status
        );
    }
    text
}

#[derive(Serialize)]
struct NicRecord<'a> {
    index: usize,
    mac: Option<&'a str>,
    /// The MTU offered; null: none offered (the driver uses 1500), or
    /// unknown without a backend.
    mtu: Option<u16>,
    /// [`status_name`].
    status: &'static str,
    status_bits: u8,
    reset_pending: bool,
    generation: u32,
    driver_features: u64,
    backend_pid: Option<i32>,
}

pub fn json(rows: &[NicRow]) -> String {
    let records: Vec<_> = rows
        .iter()
        .map(|row| NicRecord {
            index: row.index,
            mac: row.mac.as_deref(),
            mtu: row.mtu,
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

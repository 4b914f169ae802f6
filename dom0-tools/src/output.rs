//! Text and JSON renderings of `keel list`, `keel info` and
//! `keel pci-assignable-list`.

use keel_abi::mgmt::{features, pci_function_flags, DomainInfo, HostInfo, PciFunction, VERSION};
use serde::Serialize;

use crate::client::version_string;

const MIB: u64 = 1 << 20;

/// Nanoseconds as seconds with one decimal, rounded (integer arithmetic:
/// no float rounding surprises on large values).
pub fn seconds_tenths(ns: u64) -> String {
    let tenths = (u128::from(ns) + 50_000_000) / 100_000_000;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// xl-style table: Name, ID, Mem (MiB), VCPUs, State, Time(s).
pub fn list_table(domains: &[DomainInfo]) -> String {
    let width = domains
        .iter()
        .map(|domain| domain.name.as_str().len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut text = format!(
        "{:<width$} {:>5} {:>7} {:>5}  {:<8} {:>9}\n",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    );
    for domain in domains {
        text += &format!(
            "{:<width$} {:>5} {:>7} {:>5}  {:<8} {:>9}\n",
            domain.name.as_str(),
            domain.id,
            domain.memory_bytes / MIB,
            domain.vcpus,
            domain.state.name(),
            seconds_tenths(domain.cpu_time_ns)
        );
    }
    text
}

/// Every [`DomainInfo`] field; the state by name.
#[derive(Serialize)]
struct DomainRecord<'a> {
    id: u32,
    name: &'a str,
    state: &'static str,
    memory_bytes: u64,
    vcpus: u32,
    cpu_time_ns: u64,
    exits: u64,
    exits_io: u64,
    exits_mmio: u64,
    exits_msr: u64,
    exits_halt: u64,
    exits_timer: u64,
    overhead_bytes: u64,
    image_bytes: u64,
}

pub fn list_json(domains: &[DomainInfo]) -> String {
    let records: Vec<_> = domains
        .iter()
        .map(|domain| DomainRecord {
            id: domain.id,
            name: domain.name.as_str(),
            state: domain.state.name(),
            memory_bytes: domain.memory_bytes,
            vcpus: domain.vcpus,
            cpu_time_ns: domain.cpu_time_ns,
            exits: domain.exits,
            exits_io: domain.exits_io,
            exits_mmio: domain.exits_mmio,
            exits_msr: domain.exits_msr,
            exits_halt: domain.exits_halt,
            exits_timer: domain.exits_timer,
            overhead_bytes: domain.overhead_bytes,
            image_bytes: domain.image_bytes,
        })
        .collect();
    serde_json::to_string_pretty(&records).expect("plain data serializes") + "\n"
}

/// Names of the feature bits set; unknown bits as `bitN` (a newer Keel).
pub fn feature_names(bits: u64) -> Vec<String> {
    let known: u64 = features::NAMES.iter().map(|(bit, _)| bit).fold(0, |all, bit| all | bit);
    let mut names: Vec<String> = features::NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    names.extend(
        (0..64)
            .filter(|n| bits & !known & (1 << n) != 0)
            .map(|n| format!("bit{n}")),
    );
    names
}

/// "2995.204" for 2 995 204 000 Hz.
pub fn mhz(hz: u64) -> String {
    format!("{}.{:03}", hz / 1_000_000, hz % 1_000_000 / 1000)
}

pub fn info_text(host: &HostInfo) -> String {
    let features = feature_names(host.features);
    let rows = [
        ("version", version_string(host.version)),
        ("tools_version", version_string(VERSION)),
        ("physical_cpus", host.physical_cpus.to_string()),
        ("total_memory_mib", (host.total_memory / MIB).to_string()),
        ("free_memory_mib", (host.free_memory / MIB).to_string()),
        ("tsc_mhz", mhz(host.tsc_hz)),
        (
            "features",
            if features.is_empty() {
                "(none)".into()
            } else {
                features.join(" ")
            },
        ),
        ("domains", host.domains.to_string()),
        ("max_domain_memory_mib", host.max_domain_memory_mib.to_string()),
    ];
    rows.iter()
        .map(|(key, value)| format!("{key:<21} : {value}\n"))
        .collect()
}

#[derive(Serialize)]
struct DomainMemory<'a> {
    id: u32,
    name: &'a str,
    memory_bytes: u64,
    overhead_bytes: u64,
    image_bytes: u64,
}

/// [`HostInfo`]'s fields under their own names (memory in bytes), plus
/// conveniences (MiB, MHz, feature names) and the domains' memory.
#[derive(Serialize)]
struct InfoRecord<'a> {
    version: String,
    tools_version: String,
    physical_cpus: u32,
    total_memory: u64,
    free_memory: u64,
    total_memory_mib: u64,
    free_memory_mib: u64,
    tsc_hz: u64,
    tsc_mhz: f64,
    features: Vec<String>,
    domain_count: u32,
    max_domain_memory_mib: u32,
    domains: Vec<DomainMemory<'a>>,
}

pub fn info_json(host: &HostInfo, domains: &[DomainInfo]) -> String {
    let record = InfoRecord {
        version: version_string(host.version),
        tools_version: version_string(VERSION),
        physical_cpus: host.physical_cpus,
        total_memory: host.total_memory,
        free_memory: host.free_memory,
        total_memory_mib: host.total_memory / MIB,
        free_memory_mib: host.free_memory / MIB,
        tsc_hz: host.tsc_hz,
        tsc_mhz: host.tsc_hz as f64 / 1e6,
        features: feature_names(host.features),
        domain_count: host.domains,
        max_domain_memory_mib: host.max_domain_memory_mib,
        domains: domains
            .iter()
            .map(|domain| DomainMemory {
                id: domain.id,
                name: domain.name.as_str(),
                memory_bytes: domain.memory_bytes,
                overhead_bytes: domain.overhead_bytes,
                image_bytes: domain.image_bytes,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&record).expect("plain data serializes") + "\n"
}

/// Who holds a PCI function, as the table and JSON name it.
fn pci_state(function: &PciFunction) -> &'static str {
    if function.has(pci_function_flags::HOST_BRIDGE) {
        "host bridge"
    } else if function.has(pci_function_flags::ATTACHED) {
        "attached"
    } else if function.has(pci_function_flags::ASSIGNABLE) {
        "assignable"
    } else {
        "not assignable"
    }
}

fn owner_name(function: &PciFunction, domains: &[DomainInfo]) -> Option<String> {
    domains
        .iter()
        .find(|domain| domain.id == function.owner)
        .map(|domain| domain.name.as_str().to_string())
}

/// `keel pci-assignable-list`: Address, Device (vendor:device), Class,
/// State, DMA. `domains` names the owners of attached functions.
pub fn pci_table(functions: &[PciFunction], domains: &[DomainInfo]) -> String {
    let states: Vec<String> = functions
        .iter()
        .map(|function| match pci_state(function) {
            "attached" => match owner_name(function, domains) {
                Some(name) => format!("attached to {name} (id {})", function.owner),
                None => format!("attached to id {}", function.owner),
            },
            state => state.to_string(),
        })
        .collect();
    let width = states.iter().map(String::len).max().unwrap_or(0).max(5);
    let mut text = format!(
        "{:<12}  {:<9}  {:<6}  {:<width$}  {}\n",
        "Address", "Device", "Class", "State", "DMA"
    );
    for (function, state) in functions.iter().zip(&states) {
        let dma = if function.has(pci_function_flags::DMA_CONFINED) {
            "dma confined"
        } else {
            "dma NOT confined"
        };
        text += &format!(
            "{:<12}  {:04x}:{:04x}  {:06x}  {:<width$}  {}\n",
            function.address.to_string(),
            function.vendor,
            function.device,
            function.class,
            state,
            dma
        );
    }
    text
}

/// One PCI function; ids and class in hexadecimal as lspci prints them.
#[derive(Serialize)]
struct PciRecord {
    address: String,
    vendor: String,
    device: String,
    class: String,
    /// "assignable", "attached", "host bridge" or "not assignable".
    state: &'static str,
    assignable: bool,
    attached: bool,
    host_bridge: bool,
    dma_confined: bool,
    /// The owner's id and name when attached.
    owner: Option<u32>,
    owner_name: Option<String>,
    /// The raw flag bits, a newer Keel's included.
    flags: u32,
}

pub fn pci_json(functions: &[PciFunction], domains: &[DomainInfo]) -> String {
    let records: Vec<_> = functions
        .iter()
        .map(|function| {
            let attached = function.has(pci_function_flags::ATTACHED);
            PciRecord {
                address: function.address.to_string(),
                vendor: format!("{:04x}", function.vendor),
                device: format!("{:04x}", function.device),
                class: format!("{:06x}", function.class),
                state: pci_state(function),
                assignable: function.has(pci_function_flags::ASSIGNABLE),
                attached,
                host_bridge: function.has(pci_function_flags::HOST_BRIDGE),
                dma_confined: function.has(pci_function_flags::DMA_CONFINED),
                owner: attached.then_some(function.owner),
                owner_name: attached.then(|| owner_name(function, domains)).flatten(),
                flags: function.flags,
            }
        })
        .collect();
    serde_json::to_string_pretty(&records).expect("plain data serializes") + "\n"
}

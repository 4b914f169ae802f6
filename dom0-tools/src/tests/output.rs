use keel_abi::mgmt::{features, DomainInfo, DomainState, HostInfo, VERSION};

use super::fake::{domain_info, MIB};
use crate::client::version_string;
use crate::output::{feature_names, info_json, info_text, list_json, list_table, mhz, seconds_tenths};

fn domains() -> Vec<DomainInfo> {
    let mut dom0 = domain_info(0, "Domain-0", DomainState::Running, 256);
    dom0.cpu_time_ns = 12_345_000_000;
    let mut web = domain_info(3, "web-frontend", DomainState::Blocked, 512);
    web.cpu_time_ns = 49_999_999;
    web.exits = 100;
    web.exits_io = 40;
    web.exits_mmio = 30;
    web.exits_msr = 20;
    web.exits_halt = 6;
    web.exits_timer = 4;
    web.overhead_bytes = 3 * MIB + 4096;
    vec![dom0, web]
}

#[test]
fn cpu_time_prints_in_seconds_with_one_rounded_decimal() {
    assert_eq!(seconds_tenths(0), "0.0");
    assert_eq!(seconds_tenths(49_999_999), "0.0");
    assert_eq!(seconds_tenths(50_000_000), "0.1");
    assert_eq!(seconds_tenths(12_345_000_000), "12.3");
    assert_eq!(seconds_tenths(u64::MAX), "18446744073.7");
}

#[test]
fn the_list_table_has_xls_columns() {
    assert_eq!(
        list_table(&domains()),
        "Name            ID     Mem VCPUs  State      Time(s)\n\
         Domain-0         0     256     1  running       12.3\n\
         web-frontend     3     512     1  blocked        0.0\n"
    );
    assert_eq!(list_table(&[]), "Name    ID     Mem VCPUs  State      Time(s)\n");
}

#[test]
fn the_list_json_has_every_field() {
    let json: serde_json::Value = serde_json::from_str(&list_json(&domains())).unwrap();
    assert_eq!(
        json[1],
        serde_json::json!({
            "id": 3,
            "name": "web-frontend",
            "state": "blocked",
            "memory_bytes": 512 * MIB,
            "vcpus": 1,
            "cpu_time_ns": 49_999_999,
            "exits": 100,
            "exits_io": 40,
            "exits_mmio": 30,
            "exits_msr": 20,
            "exits_halt": 6,
            "exits_timer": 4,
            "overhead_bytes": 3 * MIB + 4096,
            "image_bytes": 0,
        })
    );
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["state"], "running");
    assert_eq!(list_json(&[]), "[]\n");
}

fn host() -> HostInfo {
    HostInfo {
        version: VERSION,
        physical_cpus: 4,
        total_memory: 8192 * MIB,
        free_memory: 7000 * MIB + 12345,
        tsc_hz: 2_995_204_000,
        features: features::VMX | features::EPT | features::VPID | features::PREEMPTION_TIMER | (1 << 40),
        domains: 2,
        max_domain_memory_mib: 6900,
    }
}

#[test]
fn feature_bits_are_named_and_unknown_ones_shown() {
    assert_eq!(
        feature_names(host().features),
        ["vmx", "ept", "vpid", "preemption-timer", "bit40"]
    );
    assert_eq!(feature_names(0), Vec::<String>::new());
    let all = features::NAMES.iter().fold(0, |bits, (bit, _)| bits | bit);
    assert_eq!(feature_names(all).len(), 6);
}

#[test]
fn info_text_lists_the_host() {
    assert_eq!(mhz(2_995_204_000), "2995.204");
    assert_eq!(mhz(1_000_000_000), "1000.000");
    assert_eq!(
        info_text(&host()),
        format!(
            "version               : {tools}\n\
         tools_version         : {tools}\n\
         physical_cpus         : 4\n\
         total_memory_mib      : 8192\n\
         free_memory_mib       : 7000\n\
         tsc_mhz               : 2995.204\n\
         features              : vmx ept vpid preemption-timer bit40\n\
         domains               : 2\n\
         max_domain_memory_mib : 6900\n",
            tools = version_string(VERSION)
        )
    );
    let none = HostInfo { features: 0, ..host() };
    assert!(info_text(&none).contains("features              : (none)\n"));
}

#[test]
fn info_json_includes_each_domains_memory() {
    let json: serde_json::Value = serde_json::from_str(&info_json(&host(), &domains())).unwrap();
    assert_eq!(json["version"], version_string(VERSION));
    assert_eq!(json["tools_version"], version_string(VERSION));
    assert_eq!(json["physical_cpus"], 4);
    assert_eq!(json["total_memory_mib"], 8192);
    assert_eq!(json["free_memory_mib"], 7000);
    // Bytes under HostInfo's own names: scripts compare them exactly.
    assert_eq!(json["total_memory"], 8192 * MIB);
    assert_eq!(json["free_memory"], 7000 * MIB + 12345);
    assert_eq!(json["tsc_hz"], 2_995_204_000u64);
    assert_eq!(json["tsc_mhz"], 2995.204);
    assert_eq!(
        json["features"],
        serde_json::json!(["vmx", "ept", "vpid", "preemption-timer", "bit40"])
    );
    assert_eq!(json["domain_count"], 2);
    assert_eq!(json["max_domain_memory_mib"], 6900);
    assert_eq!(
        json["domains"],
        serde_json::json!([
            { "id": 0, "name": "Domain-0", "memory_bytes": 256 * MIB, "overhead_bytes": 2 * MIB, "image_bytes": 0 },
            { "id": 3, "name": "web-frontend", "memory_bytes": 512 * MIB, "overhead_bytes": 3 * MIB + 4096, "image_bytes": 0 },
        ])
    );
}

#[test]
fn the_pci_table_names_owners_by_name_or_id() {
    use keel_abi::mgmt::{pci_function_flags as flags, PciAddress, PciFunction};

    use crate::output::{pci_json, pci_table};

    let function = |device, flag_bits, owner| PciFunction {
        address: PciAddress::new(0, device, 0).unwrap(),
        vendor: 0x1af4,
        device: 0x1000,
        class: 0x02_00_00,
        flags: flag_bits,
        owner,
    };
    let functions = [
        function(3, flags::ASSIGNABLE | flags::ATTACHED | flags::DMA_CONFINED, 3),
        // An owner List does not know (it went away in between).
        function(4, flags::ASSIGNABLE | flags::ATTACHED, 9),
    ];
    assert_eq!(
        pci_table(&functions, &domains()),
        "Address       Device     Class   State                            DMA\n\
         0000:00:03.0  1af4:1000  020000  attached to web-frontend (id 3)  dma confined\n\
         0000:00:04.0  1af4:1000  020000  attached to id 9                 dma NOT confined\n"
    );
    assert_eq!(pci_table(&[], &[]), "Address       Device     Class   State  DMA\n");
    let json: serde_json::Value = serde_json::from_str(&pci_json(&functions, &domains())).unwrap();
    assert_eq!(
        (json[0]["owner"].as_u64(), json[0]["owner_name"].as_str()),
        (Some(3), Some("web-frontend"))
    );
    assert_eq!(
        (json[1]["owner"].as_u64(), json[1]["owner_name"].as_str()),
        (Some(9), None)
    );
    assert_eq!(pci_json(&[], &[]), "[]\n");
}

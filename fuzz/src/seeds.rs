//! The committed seed corpora (`fuzz/seeds/<target>/`), generated here so
//! they follow the input formats. `KEEL_FUZZ_WRITE_SEEDS=1 cargo test
//! --manifest-path fuzz/Cargo.toml --lib` rewrites them; without the
//! variable the test fails when a file is missing or differs.

use std::path::Path;

use keel_abi::mgmt::{
    pci_flags, pci_function_flags, Command, CreateDomain, DomainInfo, DomainState, HostInfo, ImageKind,
    LifecycleAction, Name, PciAddress, PciFunction, VERSION,
};

use crate::bzimage::{synthetic_image, Seed};
use crate::mgmt::encode_call;
use crate::paging::{decode_seed, WalkSeed};
use crate::Output;

const MIB: u64 = 1 << 20;

fn bzimage() -> Vec<(&'static str, Vec<u8>)> {
    let image = synthetic_image(0x400, 16 * MIB, true);
    let fixed = synthetic_image(0x400, 0, false);
    let typical = Seed {
        ram_mib: 64,
        hole_start_mib: 0,
        hole_pages: 0,
        reserved: &[(0xA_0000, 0x6_0000, 0), (62 * MIB, MIB, 1)],
        zero_page_gpa: 0x7000,
        cmdline_gpa: 0x2_0000,
        page_tables_gpa: 0x9000,
        gdt_gpa: 0x8000,
        identity_map_mib: 64,
        acpi_rsdp_gpa: 62 << 20,
        initrd_len: 0x5432,
        cmdline: "console=ttyS0 root=/dev/ram0",
        image: &image,
    };
    let no_initrd = Seed {
        initrd_len: 0,
        cmdline: "",
        acpi_rsdp_gpa: 0,
        image: &fixed,
        ..typical
    };
    // 5 GiB of RAM with a reserved, unbacked window below 4 GiB; the kernel
    // wants to be at 4.5 GiB.
    let high_image = synthetic_image(0x400, 0x1_2000_0000, true);
    let above_4g = Seed {
        ram_mib: 5 << 10,
        hole_start_mib: 3 << 10,
        hole_pages: 0xFFFF,
        reserved: &[(0xA_0000, 0x6_0000, 0), (3 << 30, 0xFFFF << 12, 0)],
        identity_map_mib: 5 << 10,
        image: &high_image,
        ..typical
    };
    // The hole is not reserved in the e820 map: the loader must refuse.
    let unreserved_hole = Seed {
        reserved: &[(0xA_0000, 0x6_0000, 0)],
        ..above_4g
    };
    vec![
        ("typical", typical.encode()),
        ("fixed-address-no-initrd", no_initrd.encode()),
        ("above-4g", above_4g.encode()),
        ("unreserved-hole", unreserved_hole.encode()),
    ]
}

fn mmio_decode() -> Vec<(&'static str, Vec<u8>)> {
    const CR0: u64 = (1 << 31) | (1 << 16) | 1;
    const CR4: u64 = 1 << 5;
    const EFER: u64 = (1 << 8) | (1 << 10) | (1 << 11);
    const MOV_STORE_IMM: &[u8] = &[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
    let nops = [0x90; 8];
    // 0x40_0000 through PML4 0x1000, PDPT 0x2000, PD 0x3000 (entry 2), PT 0x4000.
    let tables: [(u16, &[u8]); 3] = [
        (0x1000, &0x2003u64.to_le_bytes()),
        (0x2000, &0x3003u64.to_le_bytes()),
        (0x3010, &0x4003u64.to_le_bytes()),
    ];
    let walk = |linear_ip: u64, extra: &[(u16, &[u8])]| {
        let chunks: Vec<(u16, &[u8])> = tables.iter().chain(extra).copied().collect();
        WalkSeed {
            cr0: CR0,
            cr3: 0x1000,
            cr4: CR4,
            efer: EFER,
            max_phys_addr_bits: 39,
            linear_ip,
            chunks: &chunks,
        }
        .encode()
    };
    let page_9000 = 0x9001u64.to_le_bytes();
    let pages_9000_6000 = [0x9001u64.to_le_bytes(), 0x6001u64.to_le_bytes()].concat();
    let mmio_page = 0x1_0001u64.to_le_bytes();
    let large_page = 0x83u64.to_le_bytes();
    let mut mixed = [0u8; 15];
    // The instruction's last four bytes, then NOPs.
    mixed[..4].copy_from_slice(&MOV_STORE_IMM[3..]);
    mixed[4..12].copy_from_slice(&nops);
    let decode = [
        ("store-ecx", &[0x89, 0x08][..]),
        ("store-imm64", MOV_STORE_IMM),
        ("store-ah", &[0x88, 0x20]),
        ("store-word", &[0x66, 0x89, 0x08]),
        ("load", &[0x8B, 0x08]),
        ("movzx", &[0x0F, 0xB6, 0x08]),
        ("movsxd", &[0x48, 0x63, 0x08]),
        ("moffs64", &[0x48, 0xA1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]),
        ("rep-movsd", &[0xF3, 0xA5]),
        ("add", &[0x01, 0x08]),
    ];
    let mut seeds: Vec<(&'static str, Vec<u8>)> =
        decode.iter().map(|(name, bytes)| (*name, decode_seed(bytes))).collect();
    seeds.extend([
        (
            "walk-4k",
            walk(0x40_0010, &[(0x4000, &page_9000), (0x9010, MOV_STORE_IMM)]),
        ),
        (
            "walk-straddle",
            walk(
                0x40_0FFD,
                &[
                    (0x4000, &pages_9000_6000),
                    (0x9FFD, &MOV_STORE_IMM[..3]),
                    (0x6000, &mixed),
                ],
            ),
        ),
        (
            "walk-2m",
            walk(0x40_0010, &[(0x3010, &large_page), (0x10, MOV_STORE_IMM)]),
        ),
        ("walk-mmio", walk(0x40_0010, &[(0x4000, &mmio_page)])),
        (
            "paging-off",
            WalkSeed {
                cr0: 1,
                cr3: 0,
                cr4: 0,
                efer: 0,
                max_phys_addr_bits: 0,
                linear_ip: 0x7C00,
                chunks: &[(0x7C00, &[0xC6, 0x07, 0x05])],
            }
            .encode(),
        ),
    ]);
    seeds
}

fn mgmt_abi() -> Vec<(&'static str, Vec<u8>)> {
    let name = |text| Name::new(text).unwrap();
    let create = CreateDomain {
        name: name("web"),
        memory_mib: 64,
        vcpus: 1,
        on_poweroff: LifecycleAction::Destroy,
        on_reboot: LifecycleAction::Restart,
        on_crash: LifecycleAction::Preserve,
    };
    let mut create_bytes = [0; CreateDomain::BYTES];
    create.encode(&mut create_bytes).unwrap();

    let mut session = Output::default();
    let call = |out: &mut Output, command: Command, args: [u64; 6], input: &[u8], output_len: u16| {
        encode_call(out, command as u32, args, input, output_len);
    };
    call(
        &mut session,
        Command::Hello,
        [u64::from(VERSION), 0, 0, 0, 0, 0],
        &[],
        64,
    );
    call(&mut session, Command::Create, [0; 6], &create_bytes, 64);
    call(&mut session, Command::Create, [0; 6], &create_bytes, 64);
    let chunk = [0x5A; 100];
    call(
        &mut session,
        Command::LoadImage,
        [1, ImageKind::Kernel as u64, 0, 1000, 0, 0],
        &chunk,
        64,
    );
    call(
        &mut session,
        Command::LoadImage,
        [1, ImageKind::Cmdline as u64, 950, 1000, 0, 0],
        &chunk,
        64,
    );
    call(&mut session, Command::Boot, [1, 1, 0, 0, 0, 0], &[], 64);
    call(
        &mut session,
        Command::ConsoleWrite,
        [1, 0, 0, 0, 0, 0],
        b"hello, console",
        64,
    );
    call(&mut session, Command::ConsoleRead, [1, 3, 0, 0, 0, 0], &[], 8);
    call(&mut session, Command::List, [0; 6], &[], 1024);
    call(&mut session, Command::Info, [0; 6], &[], 64);
    call(&mut session, Command::Dmesg, [0, 5, 0, 0, 0, 0], &[], 16);
    call(&mut session, Command::Destroy, [0; 6], &[], 64);
    call(&mut session, Command::Pause, [1 << 33, 0, 0, 0, 0, 0], &[], 64);
    let nic = u64::from(PciAddress::new(0, 4, 0).unwrap().raw());
    call(&mut session, Command::PciList, [0; 6], &[], 256);
    call(&mut session, Command::PciAssignable, [nic, 1, 0, 0, 0, 0], &[], 64);
    call(
        &mut session,
        Command::PciAttach,
        [1, nic, pci_flags::UNCONFINED_DMA, 0, 0, 0],
        &[],
        64,
    );
    call(&mut session, Command::PciAssignable, [nic, 0, 0, 0, 0, 0], &[], 64);
    encode_call(&mut session, 99, [0; 6], &[], 4);

    let info = DomainInfo {
        id: 3,
        state: DomainState::Running,
        name: name("db-1"),
        memory_bytes: 96 << 20,
        vcpus: 1,
        cpu_time_ns: 5,
        exits: 6,
        exits_io: 1,
        exits_mmio: 2,
        exits_msr: 3,
        exits_halt: 4,
        exits_timer: 5,
        overhead_bytes: 6,
        image_bytes: 7,
    };
    let mut info_bytes = [0; DomainInfo::BYTES];
    info.encode(&mut info_bytes).unwrap();
    let host = HostInfo {
        version: VERSION,
        physical_cpus: 1,
        total_memory: 1 << 30,
        ..HostInfo::default()
    };
    let mut host_bytes = [0; HostInfo::BYTES];
    host.encode(&mut host_bytes).unwrap();
    let function = PciFunction {
        address: PciAddress::new(0x3a, 0x1f, 7).unwrap(),
        vendor: 0x8086,
        device: 0x10d3,
        class: 0x02_00_00,
        flags: pci_function_flags::ASSIGNABLE | pci_function_flags::DMA_CONFINED,
        owner: 2,
    };
    let mut function_bytes = [0; PciFunction::BYTES];
    function.encode(&mut function_bytes).unwrap();
    vec![
        ("session", session.bytes),
        ("pci-function", function_bytes.to_vec()),
        ("pci-address", b"0000:3a:1f.7".to_vec()),
        ("create-domain", create_bytes.to_vec()),
        ("domain-info", info_bytes.to_vec()),
        ("host-info", host_bytes.to_vec()),
        ("name", b"domu-1".to_vec()),
    ]
}

fn domain_config() -> Vec<(&'static str, Vec<u8>)> {
    let text = |name, text: &str| (name, text.as_bytes().to_vec());
    vec![
        text("minimal", "name = \"web\"\nmemory = 512\nkernel = \"bzImage\"\n"),
        text(
            "every-key",
            "name = \"db-1\"\nmemory = 16\nvcpus = 1\nkernel = \"/boot/vmlinuz\"\ninitrd = \"images/initrd.img\"\n\
             cmdline = \"console=ttyS0 quiet\"\non_poweroff = \"preserve\"\non_reboot = \"destroy\"\n\
             on_crash = \"restart\"\n",
        ),
        text(
            "pci",
            "name = \"nic\"\nmemory = 96\nkernel = \"bzImage\"\npci = [\"0000:00:04.0\", \"01:00.1\"]\n\
             pci_unconfined_dma = true\n",
        ),
        text(
            "odd-values",
            "# comment\nname = 'w\\u00e9b'\nmemory = 0x400\nkernel = '''k'''\ncmdline = \"\"\"\na\"\"\"\n\
             on_crash = 1\n[extra]\nkey = [1, 2.5, true, 1979-05-27T07:32:00Z]\n",
        ),
    ]
}

fn cmdline() -> Vec<(&'static str, Vec<u8>)> {
    let text = |name, text: &str| (name, text.as_bytes().to_vec());
    vec![
        text(
            "every-option",
            "log=debug guest=bench exit=emulator bench-iterations=50 dom0-mem=512",
        ),
        text("dom0", "guest=dom0 exit=emulator"),
        text("bad", "log=loud bogus guest=bench bench-iterations=0 exit= dom0-mem=33"),
    ]
}

fn dmar() -> Vec<(&'static str, Vec<u8>)> {
    use keel_iommu::dmar::{DmarBuilder, DmarFlags, DrhdSpec, RmrrSpec, ScopeSpec};
    let qemu_like = DmarBuilder::new(39)
        .flags(DmarFlags::INTR_REMAP)
        .drhd(
            DrhdSpec::new(0xfed9_0000)
                .include_pci_all()
                .scope(ScopeSpec::ioapic(0, 0xff, &[(0, 0)])),
        )
        .build();
    let listed = DmarBuilder::new(46)
        .drhd(DrhdSpec::new(0xfed9_1000).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
        .drhd(DrhdSpec::new(0xfed9_0000).include_pci_all())
        .rmrr(RmrrSpec::new(0, 0x7b80_0000, 0x7fff_ffff).scope(ScopeSpec::endpoint(0, &[(0x14, 0)])))
        .build();
    vec![("qemu-like", qemu_like), ("listed-and-rmrr", listed)]
}

/// An ACPI table: signature, body, correct length and checksum.
fn acpi_table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 36];
    bytes[..4].copy_from_slice(signature);
    bytes.extend_from_slice(body);
    let length = bytes.len() as u32;
    bytes[4..8].copy_from_slice(&length.to_le_bytes());
    let sum = bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b));
    bytes[9] = 0u8.wrapping_sub(sum);
    bytes
}

fn host_acpi() -> Vec<(&'static str, Vec<u8>)> {
    // An XSDT at 0x1000 (the target's memory base) naming a MADT right after it.
    let mut madt_body = vec![0u8; 8];
    madt_body.extend_from_slice(&[1, 12, 2, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0]);
    madt_body.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    let madt = acpi_table(b"APIC", &madt_body);
    let xsdt_len = 36 + 8;
    let xsdt = acpi_table(b"XSDT", &(0x1000u64 + xsdt_len).to_le_bytes());
    let mut tables = xsdt;
    tables.extend_from_slice(&madt);
    let mut mcfg_body = vec![0u8; 8];
    mcfg_body.extend_from_slice(&0xb000_0000u64.to_le_bytes());
    mcfg_body.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
    vec![
        ("xsdt-and-madt", tables),
        ("madt", madt),
        ("mcfg", acpi_table(b"MCFG", &mcfg_body)),
    ]
}

fn passthrough() -> Vec<(&'static str, Vec<u8>)> {
    use crate::passthrough::examples;
    vec![
        ("msix-session", examples::msix_session()),
        ("msi-session", examples::msi_session()),
        ("bar-moves", examples::bar_moves()),
    ]
}

#[test]
fn seeds_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = std::env::var_os("KEEL_FUZZ_WRITE_SEEDS").is_some();
    type Seeds = fn() -> Vec<(&'static str, Vec<u8>)>;
    let targets: [(&str, Seeds); 8] = [
        ("bzimage", bzimage),
        ("mmio_decode", mmio_decode),
        ("mgmt_abi", mgmt_abi),
        ("domain_config", domain_config),
        ("cmdline", cmdline),
        ("dmar", dmar),
        ("host_acpi", host_acpi),
        ("passthrough", passthrough),
    ];
    let mut stale = Vec::new();
    for (target, seeds) in targets {
        let dir = root.join(target);
        for (name, bytes) in seeds() {
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from their generator (rerun with KEEL_FUZZ_WRITE_SEEDS=1): {stale:?}"
    );
}

/// The seeds reach the paths they are named after.
#[test]
fn seeds_reach_their_paths() {
    use keel_guest_loader::{load_linux, LoadError};
    use keel_insn::mmio::decode_mmio;
    use keel_insn::walk::{fetch_instruction, WalkError, MAX_INSTRUCTION_LEN};

    use crate::paging::Case as PagingCase;
    use crate::SparseMemory;

    let load = |bytes: &[u8]| {
        let case = crate::bzimage::Case::parse(bytes);
        let initrd = case.initrd();
        let mut memory = SparseMemory::new(case.ram_ranges());
        let initrd = Some(initrd).filter(|initrd| !initrd.is_empty());
        load_linux(&mut memory, case.image, initrd, &case.cmdline, &case.layout())
    };
    let seeds: std::collections::HashMap<_, _> = bzimage().into_iter().collect();
    let typical = load(&seeds["typical"]).unwrap();
    assert_eq!(typical.kernel.start, 16 * MIB);
    assert!(typical.initrd.is_some());
    assert!(load(&seeds["fixed-address-no-initrd"]).unwrap().initrd.is_none());
    assert_eq!(load(&seeds["above-4g"]).unwrap().kernel.start, 0x1_2000_0000);
    assert!(matches!(
        load(&seeds["unreserved-hole"]),
        Err(LoadError::NotBacked { .. })
    ));

    let fetch = |bytes: &[u8]| {
        let PagingCase::Walk(case) = PagingCase::parse(bytes) else {
            panic!("not a walk seed");
        };
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        fetch_instruction(&case.memory, &case.paging, case.linear_ip, &mut buf).map(|len| (buf, len))
    };
    let seeds: std::collections::HashMap<_, _> = mmio_decode().into_iter().collect();
    for name in ["walk-4k", "walk-straddle", "walk-2m"] {
        let (buf, len) = fetch(&seeds[name]).unwrap();
        assert_eq!(len, MAX_INSTRUCTION_LEN, "{name}");
        let instruction = decode_mmio(&buf, keel_insn::mmio::CodeBitness::Bits64).unwrap();
        assert_eq!(instruction.len, 7, "{name}");
    }
    assert!(matches!(
        fetch(&seeds["walk-mmio"]),
        Err(WalkError::InstructionUnreadable { gpa: 0x1_0010 })
    ));
    assert!(fetch(&seeds["paging-off"]).is_ok());
}

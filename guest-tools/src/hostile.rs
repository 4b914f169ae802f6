//! `keel-stress hostile`: the pure half of the hostile-guest load. A seeded
//! generator ([`Rng`], SplitMix64) plans each round's operations
//! ([`plan_round`]) deterministically, so a seed names one exact run; the
//! binary (`src/hostile_ops.rs`) carries them out against Keel:
//!
//! - CPUID: a sweep of the basic, hypervisor (0x4000_0000..) and extended
//!   leaves once, then random leaves and subleaves;
//! - MSRs through the `msr` driver: architectural MSRs and random indices
//!   read; random values written only to indices the guest's own kernel
//!   does not depend on ([`msr_write_allowed`]); and a few writes that the
//!   architecture makes #GP (reserved bits, a locked register), which Keel
//!   must refuse ([`MUST_REFUSE`]);
//! - ports (IN/OUT after `iopl(3)`, else `/dev/port`), 1, 2 and 4 bytes
//!   wide: random ports read, random values written to ports no device of
//!   the guest's kernel uses and that cannot reset or power off the machine
//!   ([`port_write_allowed`]);
//! - guest-physical addresses outside RAM and devices (the holes of
//!   `/proc/iomem`, [`holes`], above 4 GiB too) mapped through `/dev/mem`,
//!   read and written 1, 2, 4 and 8 bytes wide: reads must give all ones
//!   (or zeros); and string MMIO (`rep movs`/`rep stos`) on them;
//! - VMCALL from user mode with random registers;
//! - single-stepping (RFLAGS.TF) over CPUID, VMCALL and IN, which Keel
//!   emulates: the #DB must come after each; over REP string instructions
//!   on a hole and a port, which Keel emulates too: one #DB per iteration,
//!   as the CPU gives on RAM; #AC from a misaligned access with RFLAGS.AC;
//!   hardware breakpoints (`perf_event_open`) and INT1 for #DB;
//! - string port I/O (`rep ins`/`rep outs`, with `ioperm`).
//!
//! Nothing here touches the machine, so all of it is host-tested.

use std::fmt;
use std::time::Duration;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough to
/// spread operations; every run of a seed makes the same choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        self.next_u64() % bound
    }

    /// A number in `start..end` (non-empty).
    pub fn in_range(&mut self, start: u64, end: u64) -> u64 {
        start + self.below(end - start)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The groups of operations, each of which `--skip` can leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Cpuid,
    Msr,
    Port,
    Mem,
    Vmcall,
    /// Single-stepping with RFLAGS.TF.
    Tf,
    /// Single-stepping REP string instructions (one #DB per iteration).
    TfString,
    /// Alignment checks with RFLAGS.AC.
    Ac,
    /// Hardware breakpoints through `perf_event_open`.
    Db,
    /// String MMIO and string port I/O.
    String,
}

impl Group {
    pub const ALL: [Group; 10] = [
        Group::Cpuid,
        Group::Msr,
        Group::Port,
        Group::Mem,
        Group::Vmcall,
        Group::Tf,
        Group::TfString,
        Group::Ac,
        Group::Db,
        Group::String,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Group::Cpuid => "cpuid",
            Group::Msr => "msr",
            Group::Port => "port",
            Group::Mem => "mem",
            Group::Vmcall => "vmcall",
            Group::Tf => "tf",
            Group::TfString => "tf-string",
            Group::Ac => "ac",
            Group::Db => "db",
            Group::String => "string",
        }
    }

    pub fn from_name(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|group| group.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Groups(u16);

impl Groups {
    pub fn none() -> Self {
        Groups(0)
    }

    pub fn contains(self, group: Group) -> bool {
        self.0 & group.bit() != 0
    }

    pub fn with(self, group: Group) -> Self {
        Groups(self.0 | group.bit())
    }

    /// `cpuid,msr,...`: the groups named, comma-separated.
    pub fn parse(list: &str) -> Result<Groups, String> {
        list.split(',')
            .filter(|name| !name.is_empty())
            .try_fold(Groups::none(), |groups, name| match Group::from_name(name) {
                Some(group) => Ok(groups.with(group)),
                None => Err(format!("unknown group `{name}`")),
            })
    }
}

impl fmt::Display for Groups {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = Group::ALL
            .into_iter()
            .filter(|group| self.contains(*group))
            .map(Group::name)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// How long `hostile` runs and what it leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    /// Stop after this long (checked between operations)...
    pub duration: Option<Duration>,
    /// ...or after this many rounds, whichever comes first.
    pub rounds: Option<u64>,
    pub skip: Groups,
}

/// Without `--seconds` or `--rounds`.
pub const DEFAULT_SECONDS: u64 = 60;

impl Options {
    /// The arguments after `hostile`.
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let mut seed = None;
        let mut duration = None;
        let mut rounds = None;
        let mut skip = Groups::none();
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let mut value = || {
                rest.next()
                    .copied()
                    .ok_or_else(|| format!("hostile: `{flag}` needs a value"))
            };
            match *flag {
                "--seed" => {
                    let text = value()?;
                    seed = Some(crate::number(text).ok_or_else(|| format!("hostile: bad seed `{text}`"))?);
                }
                "--seconds" => {
                    let text = value()?;
                    let seconds = crate::number(text)
                        .filter(|&seconds| seconds > 0)
                        .ok_or_else(|| format!("hostile: `{text}` is not a positive number of seconds"))?;
                    duration = Some(Duration::from_secs(seconds));
                }
                "--rounds" => {
                    let text = value()?;
                    rounds = Some(
                        crate::number(text)
                            .filter(|&rounds| rounds > 0)
                            .ok_or_else(|| format!("hostile: `{text}` is not a positive number of rounds"))?,
                    );
                }
                "--skip" => {
                    let groups = Groups::parse(value()?).map_err(|error| format!("hostile: --skip: {error}"))?;
                    skip = Groups(skip.0 | groups.0);
                }
                other => return Err(format!("hostile: unknown argument `{other}`")),
            }
        }
        let seed = seed.ok_or("hostile: --seed is required")?;
        if duration.is_none() && rounds.is_none() {
            duration = Some(Duration::from_secs(DEFAULT_SECONDS));
        }
        Ok(Options {
            seed,
            duration,
            rounds,
            skip,
        })
    }
}

// --- CPUID -------------------------------------------------------------------

/// The leaves the first round sweeps: basic, hypervisor and extended.
pub fn cpuid_sweep() -> impl Iterator<Item = u32> {
    (0..=0x30u32)
        .chain(0x4000_0000..=0x4000_00ff)
        .chain(0x8000_0000..=0x8000_0030)
}

/// Subleaves the sweep also asks for (leaves with subleaves: caches,
/// features, topology, XSAVE, RDT, SGX, PT, ...): 0..=SWEEP_SUBLEAVES.
pub const SWEEP_SUBLEAVES: u32 = 4;

fn random_cpuid_leaf(rng: &mut Rng) -> u32 {
    match rng.below(4) {
        0 => rng.in_range(0, 0x40) as u32,
        1 => rng.in_range(0x4000_0000, 0x4000_0100) as u32,
        2 => rng.in_range(0x8000_0000, 0x8000_0040) as u32,
        _ => rng.next_u32(),
    }
}

fn random_subleaf(rng: &mut Rng) -> u32 {
    if rng.chance(70) {
        rng.below(8) as u32
    } else {
        rng.next_u32()
    }
}

// --- MSRs --------------------------------------------------------------------

pub const IA32_EFER: u32 = 0xc000_0080;
pub const IA32_APIC_BASE: u32 = 0x1b;
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
pub const IA32_SPEC_CTRL: u32 = 0x48;
pub const IA32_MISC_ENABLE: u32 = 0x1a0;
pub const IA32_DEBUGCTL: u32 = 0x1d9;
/// The x2APIC task priority register, #GP while the APIC is in xAPIC mode.
pub const X2APIC_TPR: u32 = 0x808;
pub const EFER_LME: u64 = 1 << 8;
/// APIC_BASE bit 10: x2APIC mode.
pub const APIC_BASE_X2APIC: u64 = 1 << 10;

/// Architectural and well-known MSRs every round reads a few of.
pub const READ_MSRS: &[u32] = &[
    0x10,        // TSC
    0x17,        // PLATFORM_ID
    0x1b,        // APIC_BASE
    0x3a,        // FEATURE_CONTROL
    0x3b,        // TSC_ADJUST
    0x48,        // SPEC_CTRL
    0x8b,        // BIOS_SIGN_ID
    0xce,        // PLATFORM_INFO
    0xe7,        // MPERF
    0xe8,        // APERF
    0xfe,        // MTRRCAP
    0x10a,       // ARCH_CAPABILITIES
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0x179,       // MCG_CAP
    0x17a,       // MCG_STATUS
    0x186,       // PERFEVTSEL0
    0x198,       // PERF_STATUS
    0x199,       // PERF_CTL
    0x19c,       // THERM_STATUS
    0x1a0,       // MISC_ENABLE
    0x1b0,       // ENERGY_PERF_BIAS
    0x1d9,       // DEBUGCTL
    0x200,       // MTRR_PHYSBASE0
    0x201,       // MTRR_PHYSMASK0
    0x250,       // MTRR_FIX64K
    0x277,       // PAT
    0x2ff,       // MTRR_DEF_TYPE
    0x345,       // PERF_CAPABILITIES
    0x38d,       // FIXED_CTR_CTRL
    0x38f,       // PERF_GLOBAL_CTRL
    0x400,       // MC0_CTL
    0x401,       // MC0_STATUS
    0x480,       // VMX_BASIC: no VMX for guests
    0x48b,       // VMX_PROCBASED_CTLS2
    0x6e0,       // TSC_DEADLINE
    0x802,       // x2APIC ID (xAPIC mode: #GP)
    0x808,       // x2APIC TPR
    0x80b,       // x2APIC EOI (write-only)
    0xda0,       // XSS
    0xc000_0080, // EFER
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // FMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
    0xc001_0000, // AMD PERF_CTL0
    0xc001_0114, // AMD VM_CR
    0x4000_0000, // Hyper-V guest OS id
    0x4b56_4d00, // KVM wall clock
    0x4b56_4d01, // KVM system time
];

/// MSRs random values are never written to, inclusive ranges: what the
/// guest's own kernel depends on (mode, system calls, segment bases, APIC,
/// caching, time, speculation controls, performance counters, machine
/// checks, CET, paravirtual interfaces), so a random value there would kill
/// the guest itself rather than test Keel.
pub const MSR_WRITE_DENY: &[(u32, u32)] = &[
    (0x10, 0x12),               // TSC; KVM's old wall clock/system time
    (0x1b, 0x1b),               // APIC_BASE
    (0x3a, 0x3b),               // FEATURE_CONTROL, TSC_ADJUST
    (0x48, 0x49),               // SPEC_CTRL, PRED_CMD
    (0x10b, 0x10b),             // FLUSH_CMD
    (0x122, 0x123),             // TSX_CTRL, MCU_OPT_CTRL
    (0xc1, 0xc8),               // PMC0-7
    (0xe7, 0xe8),               // MPERF, APERF
    (0x174, 0x176),             // SYSENTER_*
    (0x179, 0x17b),             // MCG_CAP, MCG_STATUS, MCG_CTL
    (0x186, 0x18f),             // PERFEVTSEL0-9
    (0x198, 0x19a),             // PERF_STATUS, PERF_CTL, CLOCK_MODULATION
    (0x1a0, 0x1a0),             // MISC_ENABLE
    (0x1a4, 0x1a4),             // MISC_FEATURE_CONTROL
    (0x1c9, 0x1c9),             // LASTBRANCH_TOS
    (0x1d9, 0x1dc),             // DEBUGCTL, LBR from/to
    (0x200, 0x2ff),             // MTRRs, PAT, MC CTL2, MTRR_DEF_TYPE
    (0x309, 0x30b),             // FIXED_CTR0-2
    (0x38d, 0x391),             // FIXED_CTR_CTRL, PERF_GLOBAL_*
    (0x3f1, 0x3f2),             // PEBS_ENABLE, PEBS_LD_LAT
    (0x400, 0x47f),             // MCi_CTL/STATUS/ADDR/MISC
    (0x480, 0x491),             // VMX capabilities
    (0x4c1, 0x4c8),             // full-width PMCs
    (0x600, 0x600),             // DS_AREA
    (0x6a0, 0x6a8),             // CET: U_CET, S_CET, PLn_SSP, ISST
    (0x6e0, 0x6e0),             // TSC_DEADLINE
    (0x800, 0x8ff),             // x2APIC
    (0xd90, 0xd90),             // BNDCFGS
    (0xda0, 0xda0),             // XSS
    (0x4000_0000, 0x4000_00ff), // Hyper-V
    (0x4b56_4d00, 0x4b56_4dff), // KVM
    (0xc000_0080, 0xc000_0084), // EFER, STAR, LSTAR, CSTAR, FMASK
    (0xc000_0100, 0xc000_0104), // FS/GS/KERNEL_GS_BASE, TSC_AUX, TSC_RATIO
];

pub fn msr_write_allowed(msr: u32) -> bool {
    !MSR_WRITE_DENY
        .iter()
        .any(|&(first, last)| (first..=last).contains(&msr))
}

fn random_msr_index(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0..=3 => rng.below(0x2000) as u32,
        4 | 5 => rng.in_range(0xc000_0000, 0xc000_0200) as u32,
        6 => rng.in_range(0xc001_0000, 0xc001_0400) as u32,
        _ => rng.next_u32(),
    }
}

/// A random MSR that may be written: drawn until allowed.
pub fn random_writable_msr(rng: &mut Rng) -> u32 {
    loop {
        let msr = random_msr_index(rng);
        if msr_write_allowed(msr) {
            return msr;
        }
    }
}

fn random_value(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 => u64::MAX,
        2 => 1 << rng.below(64),
        3 => u64::from(rng.next_u32()),
        _ => rng.next_u64(),
    }
}

/// A write the architecture answers with #GP, so Keel must refuse it too;
/// its value is made from the MSR's current value (read first).
#[derive(Clone, Copy, Debug)]
pub struct MustRefuse {
    pub msr: u32,
    pub what: &'static str,
    /// The value to write, from the current one; None: not applicable now.
    pub value: fn(current: u64) -> Option<u64>,
}

pub const MUST_REFUSE: &[MustRefuse] = &[
    MustRefuse {
        msr: IA32_EFER,
        what: "EFER reserved bit 63",
        value: |current| Some(current | 1 << 63),
    },
    MustRefuse {
        msr: IA32_EFER,
        what: "EFER reserved bit 12 (SVME, AMD only)",
        value: |current| Some(current | 1 << 12),
    },
    MustRefuse {
        msr: IA32_EFER,
        what: "EFER.LME toggled with paging on",
        value: |current| Some(current ^ EFER_LME),
    },
    MustRefuse {
        msr: IA32_APIC_BASE,
        what: "APIC_BASE reserved bit 63",
        value: |current| Some(current | 1 << 63),
    },
    MustRefuse {
        msr: IA32_FEATURE_CONTROL,
        what: "FEATURE_CONTROL while locked",
        // Locked (bit 0): any write faults.
        value: |current| (current & 1 != 0).then_some(current),
    },
    MustRefuse {
        msr: IA32_MISC_ENABLE,
        what: "MISC_ENABLE reserved bit 63",
        value: |current| Some(current | 1 << 63),
    },
    MustRefuse {
        msr: IA32_DEBUGCTL,
        what: "DEBUGCTL reserved bit 63",
        value: |current| Some(current | 1 << 63),
    },
    MustRefuse {
        msr: IA32_SPEC_CTRL,
        what: "SPEC_CTRL reserved bit 63",
        value: |current| Some(current | 1 << 63),
    },
];

// --- ports -------------------------------------------------------------------

/// Ports never read: COM1, whose receive buffer and interrupt identification
/// registers change state when read (the guest's console).
pub const PORT_READ_DENY: &[(u16, u16)] = &[(0x3f8, 0x3ff)];

/// Ports never written, inclusive ranges: the guest kernel's devices and
/// whatever can reset or power off the machine.
pub const PORT_WRITE_DENY: &[(u16, u16)] = &[
    (0x20, 0x21),     // PIC 1
    (0x40, 0x43),     // PIT
    (0x60, 0x64),     // keyboard controller (0x64 0xfe: reset)
    (0x70, 0x71),     // CMOS RTC
    (0x80, 0x80),     // POST / I/O delay
    (0x92, 0x92),     // system control port A (fast reset)
    (0xa0, 0xa1),     // PIC 2
    (0xf0, 0xf4),     // FPU error ports; 0xf4 QEMU's isa-debug-exit
    (0x2f8, 0x2ff),   // COM2
    (0x3f8, 0x3ff),   // COM1: the console
    (0x400, 0x401),   // ACPI and ELCR (0x4d0-0x4d1), but not Bochs'
    (0x403, 0x4ff),   // debug port 0x402
    (0x600, 0x6ff),   // Keel's ACPI PM block
    (0xcf8, 0xcff),   // PCI configuration, 0xcf9 reset control
    (0x8900, 0x8900), // Bochs' shutdown port
    (0xb000, 0xb0ff), // QEMU's ACPI PM block
];

fn in_ranges(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|&(first, last)| (first..=last).contains(&port))
}

/// The ports an access of `size` bytes at `port` touches; None past 0xffff.
fn port_bytes(port: u16, size: u8) -> Option<impl Iterator<Item = u16>> {
    let last = u32::from(port) + u32::from(size.max(1)) - 1;
    (last <= 0xffff).then_some(port..=last as u16)
}

/// Whether `size` bytes at `port` may be read: none in [`PORT_READ_DENY`].
pub fn port_read_allowed(port: u16, size: u8) -> bool {
    port_bytes(port, size).is_some_and(|mut ports| ports.all(|port| !in_ranges(PORT_READ_DENY, port)))
}

/// Whether `size` bytes at `port` may be written: none in
/// [`PORT_WRITE_DENY`] or `extra` (the ACPI blocks the FADT names,
/// [`fadt_port_ranges`]).
pub fn port_write_allowed(port: u16, size: u8, extra: &[(u16, u16)]) -> bool {
    port_bytes(port, size)
        .is_some_and(|mut ports| ports.all(|port| !in_ranges(PORT_WRITE_DENY, port) && !in_ranges(extra, port)))
}

/// An access width: 1 byte half the time, else 2 or 4.
pub fn random_port_size(rng: &mut Rng) -> u8 {
    match rng.below(4) {
        0 | 1 => 1,
        2 => 2,
        _ => 4,
    }
}

fn random_port(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0..=4 => rng.below(0x400) as u16,
        5 | 6 => rng.in_range(0x400, 0x1000) as u16,
        _ => rng.below(0x1_0000) as u16,
    }
}

pub fn random_readable_port(rng: &mut Rng, size: u8) -> u16 {
    loop {
        let port = random_port(rng);
        if port_read_allowed(port, size) {
            return port;
        }
    }
}

pub fn random_writable_port(rng: &mut Rng, size: u8, extra: &[(u16, u16)]) -> u16 {
    loop {
        let port = random_port(rng);
        if port_write_allowed(port, size, extra) {
            return port;
        }
    }
}

/// The I/O port ranges an ACPI FADT (the `/sys/firmware/acpi/tables/FACP`
/// file, header included) names: SMI_CMD, the PM1a/b event and control
/// blocks, PM2 control, the PM timer, both GPE blocks, and the reset, sleep
/// control and sleep status registers (generic addresses in system I/O
/// space). Fields past the table's length are absent.
pub fn fadt_port_ranges(table: &[u8]) -> Vec<(u16, u16)> {
    let length = table
        .get(4..8)
        .map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap()) as usize)
        .unwrap_or(0)
        .min(table.len());
    let table = &table[..length];
    let u32_at = |offset: usize| {
        table
            .get(offset..offset + 4)
            .map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap()))
    };
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    let mut add = |port: u32, len: u32| {
        if port != 0 && len != 0 && port <= 0xffff {
            let last = (port + len - 1).min(0xffff);
            ranges.push((port as u16, last as u16));
        }
    };
    if let Some(smi_cmd) = u32_at(48) {
        add(smi_cmd, 1);
    }
    // (block offset, length byte offset)
    for (block, len) in [
        (56, 88),
        (60, 88),
        (64, 89),
        (68, 89),
        (72, 90),
        (76, 91),
        (80, 92),
        (84, 93),
    ] {
        if let (Some(port), Some(&len)) = (u32_at(block), table.get(len)) {
            add(port, u32::from(len));
        }
    }
    // Generic addresses: space (0: memory, 1: system I/O), bit width, bit
    // offset, access size, 64-bit address. RESET_REG, then the X_ blocks
    // (PM1a/b event and control, PM2 control, PM timer, GPE0/1), then
    // SLEEP_CONTROL_REG and SLEEP_STATUS_REG.
    let gas_offsets = [116, 148, 160, 172, 184, 196, 208, 220, 232, 244, 256];
    for offset in gas_offsets {
        let Some(gas) = table.get(offset..offset + 12) else {
            continue;
        };
        if gas[0] != 1 {
            continue;
        }
        let address = u64::from_le_bytes(gas[4..12].try_into().unwrap());
        let bytes = u32::from(gas[1]).div_ceil(8).max(1);
        if address <= 0xffff {
            add(address as u32, bytes);
        }
    }
    // The X_ blocks usually repeat the legacy ones.
    ranges.sort();
    ranges.dedup();
    ranges
}

// --- guest-physical memory ---------------------------------------------------

pub const PAGE_SIZE: u64 = 4096;

/// The address ranges `/proc/iomem` lists (every line, nested ones too),
/// inclusive, as `(first, last)`. Lines it cannot read are skipped.
pub fn parse_iomem(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let (range, _name) = line.trim().split_once(" : ")?;
            let (first, last) = range.split_once('-')?;
            let first = u64::from_str_radix(first, 16).ok()?;
            let last = u64::from_str_radix(last, 16).ok()?;
            (first <= last).then_some((first, last))
        })
        .collect()
}

/// Where the local and I/O APICs decode on every PC (and Keel's platform),
/// kept out of the holes even if `/proc/iomem` does not list them.
pub const ALWAYS_DEVICES: &[(u64, u64)] = &[(0xfec0_0000, 0xfeef_ffff)];

/// The whole pages below `limit` (the physical address width) that no range
/// covers: `(first, end)` with `end` exclusive, in address order, split at
/// 4 GiB.
pub fn holes(ranges: &[(u64, u64)], limit: u64) -> Vec<(u64, u64)> {
    let mut covered: Vec<(u64, u64)> = ranges.iter().chain(ALWAYS_DEVICES).copied().collect();
    covered.sort();
    let mut holes = Vec::new();
    let mut next = 0u64; // the first address not known to be covered
    for (first, last) in covered {
        if first > next {
            push_hole(&mut holes, next, first.min(limit));
        }
        next = next.max(last.saturating_add(1));
        if next >= limit {
            break;
        }
    }
    if next < limit {
        push_hole(&mut holes, next, limit);
    }
    holes
}

/// Adds the whole pages of `start..end`, split at 4 GiB.
fn push_hole(holes: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    const FOUR_GIB: u64 = 1 << 32;
    if start < FOUR_GIB && end > FOUR_GIB {
        push_hole(holes, start, FOUR_GIB);
        push_hole(holes, FOUR_GIB, end);
        return;
    }
    let start = start.next_multiple_of(PAGE_SIZE);
    let end = end / PAGE_SIZE * PAGE_SIZE;
    if start < end {
        holes.push((start, end));
    }
}

/// The physical address width from `/proc/cpuinfo` ("address sizes : 39
/// bits physical, 48 bits virtual"); None if it is not there.
pub fn physical_address_bits(cpuinfo: &str) -> Option<u32> {
    let line = cpuinfo.lines().find(|line| line.starts_with("address sizes"))?;
    let (_, sizes) = line.split_once(':')?;
    let bits = sizes.trim().split(' ').next()?.parse().ok()?;
    (12..=52).contains(&bits).then_some(bits)
}

/// A page-aligned address in one of `holes`, chosen by `pick`: half the
/// time in the hole below 4 GiB, half the time above it when there is one,
/// near either end of a hole or anywhere in it.
pub fn page_in_holes(holes: &[(u64, u64)], pick: u64) -> Option<u64> {
    if holes.is_empty() {
        return None;
    }
    let mut rng = Rng::new(pick);
    const FOUR_GIB: u64 = 1 << 32;
    let low: Vec<&(u64, u64)> = holes.iter().filter(|(start, _)| *start < FOUR_GIB).collect();
    let high: Vec<&(u64, u64)> = holes.iter().filter(|(start, _)| *start >= FOUR_GIB).collect();
    let pool = if (rng.chance(50) || high.is_empty()) && !low.is_empty() {
        low
    } else {
        high
    };
    let &(start, end) = pool[rng.below(pool.len() as u64) as usize];
    let pages = (end - start) / PAGE_SIZE;
    let page = match rng.below(3) {
        0 => 0,
        1 => pages - 1,
        _ => rng.below(pages),
    };
    Some(start + page * PAGE_SIZE)
}

/// Whether a value read at an address with no memory or device is what an
/// empty bus gives: all ones for its width, or zeros.
pub fn empty_bus_value(value: u64, size: u8) -> bool {
    let ones = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
    value == 0 || value == ones
}

// --- the plan ----------------------------------------------------------------

/// One operation of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Cpuid {
        leaf: u32,
        subleaf: u32,
    },
    MsrRead {
        msr: u32,
    },
    MsrWrite {
        msr: u32,
        value: u64,
    },
    /// Every [`MUST_REFUSE`] write.
    MsrMustRefuse,
    /// IN of `size` bytes.
    PortRead {
        port: u16,
        size: u8,
    },
    /// OUT of the low `size` bytes of `value`; the port is drawn at run time
    /// from `pick` ([`random_writable_port`] with the FADT's ranges, which
    /// only the machine knows).
    PortWrite {
        pick: u64,
        size: u8,
        value: u32,
    },
    /// Map one page of a hole ([`page_in_holes`] with `pick`), read each
    /// width at `offset` (aligned down to it), write `value`, read again.
    Mem {
        pick: u64,
        offset: u16,
        value: u64,
    },
    /// `pread` of a hole through `/dev/mem` (the kernel's copy loop).
    MemPread {
        pick: u64,
    },
    Vmcall {
        rax: u64,
        rdi: u64,
        rsi: u64,
        rdx: u64,
    },
    /// CPUID, RDTSC, VMCALL and IN single-stepped.
    SingleStep,
    /// `rep movsb` single-stepped from RAM, then from a hole (`pick`), and
    /// `rep insb`: each iteration must trap, as the CPU does on RAM.
    StepString {
        pick: u64,
    },
    /// INT1 (ICEBP): one #DB, delivered past the instruction.
    Int1,
    /// A misaligned load and store with RFLAGS.AC.
    AlignmentCheck,
    /// Hardware breakpoints: data, instruction and stack.
    Breakpoints,
    /// `rep movs`/`rep stos` on a hole page.
    StringMmio {
        pick: u64,
    },
    /// `rep ins`/`rep outs`.
    StringPort,
}

impl Op {
    pub fn group(&self) -> Group {
        match self {
            Op::Cpuid { .. } => Group::Cpuid,
            Op::MsrRead { .. } | Op::MsrWrite { .. } | Op::MsrMustRefuse => Group::Msr,
            Op::PortRead { .. } | Op::PortWrite { .. } => Group::Port,
            Op::Mem { .. } | Op::MemPread { .. } => Group::Mem,
            Op::Vmcall { .. } => Group::Vmcall,
            Op::SingleStep => Group::Tf,
            Op::StepString { .. } => Group::TfString,
            Op::Int1 => Group::Db,
            Op::AlignmentCheck => Group::Ac,
            Op::Breakpoints => Group::Db,
            Op::StringMmio { .. } | Op::StringPort => Group::String,
        }
    }
}

/// How many of each operation a round has.
pub const CPUID_PER_ROUND: usize = 16;
pub const MSR_READS_PER_ROUND: usize = 12;
pub const MSR_WRITES_PER_ROUND: usize = 8;
pub const PORT_READS_PER_ROUND: usize = 16;
pub const PORT_WRITES_PER_ROUND: usize = 8;
pub const MEM_PAGES_PER_ROUND: usize = 4;
pub const VMCALLS_PER_ROUND: usize = 8;
/// The must-refuse MSR writes come in round 0 and then every this many.
pub const MUST_REFUSE_EVERY: u64 = 8;

/// Round `round`'s operations, in the order they run, from `rng` (the same
/// state and round always give the same plan). Groups in `skip` are left
/// out, but their numbers are still drawn, so skipping one group does not
/// change the others'.
pub fn plan_round(rng: &mut Rng, round: u64, skip: Groups) -> Vec<Op> {
    let mut ops = Vec::new();
    for _ in 0..CPUID_PER_ROUND {
        let leaf = random_cpuid_leaf(rng);
        let subleaf = random_subleaf(rng);
        ops.push(Op::Cpuid { leaf, subleaf });
    }
    if round.is_multiple_of(MUST_REFUSE_EVERY) {
        ops.push(Op::MsrMustRefuse);
    }
    for index in 0..MSR_READS_PER_ROUND {
        let msr = if index % 2 == 0 {
            READ_MSRS[rng.below(READ_MSRS.len() as u64) as usize]
        } else {
            random_msr_index(rng)
        };
        ops.push(Op::MsrRead { msr });
    }
    for _ in 0..MSR_WRITES_PER_ROUND {
        let msr = random_writable_msr(rng);
        let value = random_value(rng);
        ops.push(Op::MsrWrite { msr, value });
    }
    for _ in 0..PORT_READS_PER_ROUND {
        let size = random_port_size(rng);
        let port = random_readable_port(rng, size);
        ops.push(Op::PortRead { port, size });
    }
    for _ in 0..PORT_WRITES_PER_ROUND {
        let pick = rng.next_u64();
        let size = random_port_size(rng);
        let value = rng.next_u32();
        ops.push(Op::PortWrite { pick, size, value });
    }
    for _ in 0..MEM_PAGES_PER_ROUND {
        let pick = rng.next_u64();
        let offset = rng.below(PAGE_SIZE) as u16;
        let value = random_value(rng);
        ops.push(Op::Mem { pick, offset, value });
    }
    ops.push(Op::MemPread { pick: rng.next_u64() });
    for _ in 0..VMCALLS_PER_ROUND {
        let rax = if rng.chance(30) { rng.below(16) } else { rng.next_u64() };
        let (rdi, rsi, rdx) = (random_value(rng), random_value(rng), random_value(rng));
        ops.push(Op::Vmcall { rax, rdi, rsi, rdx });
    }
    ops.push(Op::SingleStep);
    ops.push(Op::StepString { pick: rng.next_u64() });
    ops.push(Op::AlignmentCheck);
    ops.push(Op::Breakpoints);
    ops.push(Op::Int1);
    ops.push(Op::StringMmio { pick: rng.next_u64() });
    ops.push(Op::StringPort);
    // Interleave the groups: a seeded shuffle (Fisher-Yates).
    for index in (1..ops.len()).rev() {
        let other = rng.below(index as u64 + 1) as usize;
        ops.swap(index, other);
    }
    ops.retain(|op| !skip.contains(op.group()));
    ops
}

// --- what happened -------------------------------------------------------------

/// Whether hardware breakpoints could be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BreakpointState {
    /// Not tried yet (or skipped).
    #[default]
    Untried,
    /// `perf_event_open` worked and the breakpoints fired.
    Working,
    /// `perf_event_open` refused breakpoints (this errno).
    Unavailable(i32),
    /// They were set up but never fired: the CPU (an emulator without
    /// debug-register breakpoints) does not implement them.
    NeverFired,
}

impl fmt::Display for BreakpointState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BreakpointState::Untried => f.write_str("untried"),
            BreakpointState::Working => f.write_str("ok"),
            BreakpointState::Unavailable(errno) => write!(f, "unavailable(errno {errno})"),
            BreakpointState::NeverFired => f.write_str("never-fired"),
        }
    }
}

/// Every operation's count, for the final line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub rounds: u64,
    pub cpuid: u64,
    pub msr_read: u64,
    pub msr_write: u64,
    /// Reads and writes the MSR device answered with EIO: a #GP.
    pub msr_gp: u64,
    /// Must-refuse writes refused.
    pub msr_refused: u64,
    pub port_read: u64,
    pub port_write: u64,
    pub mem_read: u64,
    pub mem_write: u64,
    /// Pages `/dev/mem` would not map.
    pub mem_unmappable: u64,
    /// `pread`s of a hole: answered, and refused (EFAULT, EIO, EPERM).
    pub mem_pread: u64,
    pub mem_pread_refused: u64,
    pub vmcall: u64,
    /// VMCALLs answered with an error code (RAX changed).
    pub vmcall_error: u64,
    /// VMCALLs that raised a fault (SIGILL/SIGSEGV).
    pub vmcall_fault: u64,
    /// Single-step traps (SIGTRAP) during the stepped sequences.
    pub tf_steps: u64,
    pub ac_traps: u64,
    pub db_traps: u64,
    /// Single-step traps of stepped REP string instructions (on RAM, on a
    /// hole and on a port).
    pub tf_string_steps: u64,
    /// #DBs from INT1.
    pub int1_traps: u64,
    pub string_mmio: u64,
    pub string_io: u64,
    pub breakpoints: BreakpointState,
    pub failures: u64,
}

impl Counts {
    /// `keel-stress: hostile done seed=N ...`: every count, the figures the
    /// boot test and its documentation name first.
    pub fn summary(&self, seed: u64) -> String {
        format!(
            "keel-stress: hostile done seed={seed} rounds={} cpuid={} msr_read={} msr_write={} msr_gp={} \
             port_read={} port_write={} mem_read={} mem_write={} vmcall={} tf_steps={} ac_traps={} db_traps={} \
             msr_refused={} mem_unmappable={} mem_pread={} mem_pread_refused={} vmcall_error={} vmcall_fault={} \
             string_mmio={} string_io={} tf_string_steps={} int1_traps={} breakpoints={} failures={}",
            self.rounds,
            self.cpuid,
            self.msr_read,
            self.msr_write,
            self.msr_gp,
            self.port_read,
            self.port_write,
            self.mem_read,
            self.mem_write,
            self.vmcall,
            self.tf_steps,
            self.ac_traps,
            self.db_traps,
            self.msr_refused,
            self.mem_unmappable,
            self.mem_pread,
            self.mem_pread_refused,
            self.vmcall_error,
            self.vmcall_fault,
            self.string_mmio,
            self.string_io,
            self.tf_string_steps,
            self.int1_traps,
            self.breakpoints,
            self.failures,
        )
    }

    /// The progress line: the round and the main counts so far.
    pub fn progress(&self, round: u64) -> String {
        format!(
            "keel-stress: hostile round {round}: cpuid={} msr={} port={} mem={} vmcall={} tf_steps={} ac_traps={} \
             db_traps={} failures={}",
            self.cpuid,
            self.msr_read + self.msr_write,
            self.port_read + self.port_write,
            self.mem_read + self.mem_write,
            self.vmcall,
            self.tf_steps,
            self.ac_traps,
            self.db_traps,
            self.failures
        )
    }
}

/// The start of every line that reports a failure (and fails the run).
pub const FAILED_PREFIX: &str = "keel-stress: hostile FAILED: ";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn splitmix64_gives_its_reference_sequence() {
        // The first outputs for seed 0 (the generator's published reference).
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            assert!(rng.below(10) < 10);
            let value = rng.in_range(5, 9);
            assert!((5..9).contains(&value));
        }
    }

    #[test]
    fn options_need_a_seed_and_default_to_a_minute() {
        assert_eq!(
            Options::parse(&args("--seed 7")),
            Ok(Options {
                seed: 7,
                duration: Some(Duration::from_secs(DEFAULT_SECONDS)),
                rounds: None,
                skip: Groups::none(),
            })
        );
        let options = Options::parse(&args("--seed 0x10 --rounds 3 --seconds 90 --skip string,db --skip tf")).unwrap();
        assert_eq!(options.seed, 16);
        assert_eq!(options.rounds, Some(3));
        assert_eq!(options.duration, Some(Duration::from_secs(90)));
        assert_eq!(options.skip.to_string(), "tf,db,string");
        assert!(options.skip.contains(Group::String) && !options.skip.contains(Group::Mem));
        let error = Options::parse(&args("--seed 1 --skip tf-string --skip")).unwrap_err();
        assert!(error.contains("needs a value"), "{error}");
        let skip = Options::parse(&args("--seed 1 --skip tf-string")).unwrap().skip;
        assert_eq!(skip.to_string(), "tf-string");
        // Rounds alone: no time limit.
        assert_eq!(Options::parse(&args("--seed 1 --rounds 2")).unwrap().duration, None);
        for bad in [
            "",
            "--rounds 3",
            "--seed",
            "--seed x",
            "--seed 1 --seconds 0",
            "--seed 1 --rounds 0",
            "--seed 1 --skip bogus",
            "--seed 1 --fast",
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad}");
        }
        assert_eq!(Groups::parse("").unwrap(), Groups::none());
        assert_eq!(Groups::none().to_string(), "none");
    }

    #[test]
    fn the_sweep_covers_basic_hypervisor_and_extended_leaves() {
        let leaves: Vec<u32> = cpuid_sweep().collect();
        assert_eq!(leaves.len(), 0x31 + 0x100 + 0x31);
        for leaf in [0, 0x30, 0x4000_0000, 0x4000_00ff, 0x8000_0000, 0x8000_0030] {
            assert!(leaves.contains(&leaf), "{leaf:#x}");
        }
    }

    #[test]
    fn random_msr_writes_never_hit_what_the_kernel_depends_on() {
        for msr in [
            0x10,
            0x1b,
            0x3b,
            0x48,
            0x49,
            0x10b,
            0xc1,
            0x174,
            0x179,
            0x186,
            0x1a0,
            0x1d9,
            0x200,
            0x250,
            0x277,
            0x2ff,
            0x309,
            0x38d,
            0x390,
            0x400,
            0x47f,
            0x6e0,
            0x800,
            0x808,
            0x8ff,
            0x4000_0000,
            0x4b56_4d00,
            0xc000_0080,
            0xc000_0081,
            0xc000_0084,
            0xc000_0100,
            0xc000_0102,
            0xc000_0103,
        ] {
            assert!(!msr_write_allowed(msr), "{msr:#x}");
        }
        for msr in [0x0, 0x79, 0x8b, 0x1b0, 0x1000, 0xc000_0090, 0xc001_0000, 0xdead_beef] {
            assert!(msr_write_allowed(msr), "{msr:#x}");
        }
        let mut rng = Rng::new(1);
        let mut high = 0;
        for _ in 0..100_000 {
            let msr = random_writable_msr(&mut rng);
            assert!(msr_write_allowed(msr), "{msr:#x}");
            if msr >= 0xc000_0000 {
                high += 1;
            }
        }
        assert!(high > 10_000, "{high}: the 0xc000_0000 ranges are drawn too");
        for range in MSR_WRITE_DENY {
            assert!(range.0 <= range.1, "{range:x?}");
        }
    }

    #[test]
    fn random_port_writes_never_hit_the_kernels_devices_or_the_reset_ports() {
        for port in [
            0x20, 0x21, 0x40, 0x43, 0x60, 0x64, 0x70, 0x71, 0x80, 0x92, 0xa0, 0xa1, 0xf4, 0x2f8, 0x3f8, 0x3fd, 0x400,
            0x4d0, 0x600, 0x604, 0x6ff, 0xcf8, 0xcf9, 0xcfc, 0xcff, 0x8900, 0xb000, 0xb004,
        ] {
            assert!(!port_write_allowed(port, 1, &[]), "{port:#x}");
        }
        for port in [0xe9, 0x402, 0x510, 0x1000, 0xffff] {
            assert!(port_write_allowed(port, 1, &[]), "{port:#x}");
        }
        // Wider accesses: every byte counts, and none runs past 0xffff.
        assert!(port_write_allowed(0x3f4, 4, &[]) && !port_write_allowed(0x3f5, 4, &[]));
        assert!(port_write_allowed(0xcf6, 2, &[]) && !port_write_allowed(0xcf7, 2, &[]));
        assert!(!port_write_allowed(0xfffe, 4, &[]));
        assert!(port_write_allowed(0xfffc, 4, &[]));
        assert!(!port_write_allowed(0x1800, 1, &[(0x1800, 0x1803)]));
        assert!(!port_write_allowed(0x17fe, 4, &[(0x1800, 0x1803)]));
        let mut rng = Rng::new(2);
        let mut sizes = [0; 5];
        for _ in 0..100_000 {
            let size = random_port_size(&mut rng);
            sizes[usize::from(size)] += 1;
            let port = random_writable_port(&mut rng, size, &[(0x1800, 0x18ff)]);
            assert!(port_write_allowed(port, size, &[(0x1800, 0x18ff)]), "{port:#x}");
            assert!(port_read_allowed(random_readable_port(&mut rng, size), size));
        }
        assert!(sizes[1] > 40_000 && sizes[2] > 20_000 && sizes[4] > 20_000, "{sizes:?}");
        assert!(!port_read_allowed(0x3f8, 1) && !port_read_allowed(0x3ff, 1) && port_read_allowed(0x3f7, 1));
        assert!(!port_read_allowed(0x3f6, 4) && !port_read_allowed(0xffff, 2));
    }

    /// A FADT with the fields `fadt_port_ranges` reads, the rest zeros.
    fn fadt(length: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut table = vec![0u8; length.max(8)];
        table[0..4].copy_from_slice(b"FACP");
        table[4..8].copy_from_slice(&(length as u32).to_le_bytes());
        for (offset, bytes) in fields {
            table[*offset..*offset + bytes.len()].copy_from_slice(bytes);
        }
        table
    }

    #[test]
    fn the_fadt_names_the_acpi_port_blocks() {
        let mut reset = [0u8; 12];
        reset[0] = 1; // system I/O
        reset[1] = 8;
        reset[4..12].copy_from_slice(&0xcf9u64.to_le_bytes());
        // X_PM1a_EVT_BLK repeats PM1a_EVT_BLK: named once.
        let mut x_pm1a = [0u8; 12];
        x_pm1a[0] = 1;
        x_pm1a[1] = 32;
        x_pm1a[4..12].copy_from_slice(&0x600u64.to_le_bytes());
        let mut memory_gas = [0u8; 12];
        memory_gas[1] = 32;
        memory_gas[4..12].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
        let table = fadt(
            276,
            &[
                (48, &0xb2u32.to_le_bytes()),
                (56, &0x600u32.to_le_bytes()),
                (64, &0x604u32.to_le_bytes()),
                (76, &0x608u32.to_le_bytes()),
                (80, &0x620u32.to_le_bytes()),
                (88, &[4, 2, 0, 4, 8, 0]),
                (116, &reset),
                (148, &x_pm1a),
                (244, &memory_gas),
            ],
        );
        assert_eq!(
            fadt_port_ranges(&table),
            [
                (0xb2, 0xb2),
                (0x600, 0x603),
                (0x604, 0x605),
                (0x608, 0x60b),
                (0x620, 0x627),
                (0xcf9, 0xcf9)
            ]
        );
        // A short table (ACPI 1.0) has no generic addresses; garbage is no table.
        let short = fadt(116, &[(56, &0x1000u32.to_le_bytes()), (88, &[4])]);
        assert_eq!(fadt_port_ranges(&short), [(0x1000, 0x1003)]);
        assert_eq!(fadt_port_ranges(b"FACP"), []);
        assert_eq!(fadt_port_ranges(&[]), []);
    }

    const IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009ffff : System RAM
000a0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-0fffffff : System RAM
  01000000-01dfffff : Kernel code
c0000000-febfffff : PCI Bus 0000:00
  c0000000-c0000fff : 0000:00:01.0
fec00000-fec003ff : IOAPIC 0
fee00000-fee00fff : Local APIC
  fee00000-fee00fff : Reserved
not a line
";

    #[test]
    fn holes_are_the_pages_nothing_in_iomem_covers() {
        let ranges = parse_iomem(IOMEM);
        assert_eq!(ranges.len(), 11);
        assert_eq!(ranges[0], (0, 0xfff));
        assert_eq!(ranges[3], (0xf_0000, 0xf_ffff));
        // Split at 4 GiB, so that picks can go either side.
        assert_eq!(
            holes(&ranges, 1 << 39),
            [
                (0x1000_0000, 0xc000_0000),
                (0xfef0_0000, 0x1_0000_0000),
                (0x1_0000_0000, 1 << 39)
            ]
        );
        // Below a 4 GiB limit there is nothing above it; an empty map is one hole.
        assert_eq!(holes_below(&ranges, 1 << 32).last(), Some(&(0xfef0_0000, 1 << 32)));
        assert_eq!(holes_below(&[], 1 << 20), [(0, 1 << 20)]);
        // Partial pages are not holes.
        assert_eq!(holes_below(&[(0, 0x10)], 0x1800), []);
        assert_eq!(holes_below(&[(0, 0x10)], 0x2000), [(0x1000, 0x2000)]);
    }

    fn holes_below(ranges: &[(u64, u64)], limit: u64) -> Vec<(u64, u64)> {
        holes(ranges, limit)
    }

    #[test]
    fn picked_pages_lie_in_holes_below_and_above_4_gib() {
        let holes = holes(&parse_iomem(IOMEM), 1 << 39);
        let mut above = 0;
        let mut below = 0;
        for pick in 0..10_000 {
            let page = page_in_holes(&holes, pick).unwrap();
            assert_eq!(page % PAGE_SIZE, 0);
            assert!(
                holes.iter().any(|&(start, end)| (start..end).contains(&page)),
                "{page:#x}"
            );
            assert!(!(0xfec0_0000..0xfef0_0000).contains(&page));
            if page >= 1 << 32 {
                above += 1;
            } else {
                below += 1;
            }
        }
        assert!(above > 3000 && below > 3000, "{above} above, {below} below");
        assert_eq!(page_in_holes(&[], 1), None);
        assert_eq!(page_in_holes(&holes, 42), page_in_holes(&holes, 42));
    }

    #[test]
    fn the_address_width_comes_from_cpuinfo() {
        let cpuinfo = "flags\t\t: fpu vme\naddress sizes\t: 39 bits physical, 48 bits virtual\n";
        assert_eq!(physical_address_bits(cpuinfo), Some(39));
        assert_eq!(physical_address_bits("flags : fpu\n"), None);
        assert_eq!(physical_address_bits("address sizes : 99 bits physical\n"), None);
    }

    #[test]
    fn an_empty_bus_reads_all_ones_or_zeros() {
        assert!(empty_bus_value(0xff, 1) && empty_bus_value(0, 1));
        assert!(empty_bus_value(0xffff, 2) && empty_bus_value(0xffff_ffff, 4));
        assert!(empty_bus_value(u64::MAX, 8) && empty_bus_value(0, 8));
        assert!(!empty_bus_value(0x4c45_454b, 4));
        assert!(!empty_bus_value(0xffff, 4));
        assert!(!empty_bus_value(0xfe, 1));
    }

    #[test]
    fn a_seed_gives_one_plan_and_skipping_a_group_changes_no_other() {
        let plan = |seed: u64, skip: Groups| {
            let mut rng = Rng::new(seed);
            (0..4)
                .map(|round| plan_round(&mut rng, round, skip))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(5, Groups::none()), plan(5, Groups::none()));
        assert_ne!(plan(5, Groups::none()), plan(6, Groups::none()));
        let all = plan(5, Groups::none());
        let without = plan(5, Groups::none().with(Group::String).with(Group::Msr));
        for (all, without) in all.iter().zip(&without) {
            let kept: Vec<Op> = all
                .iter()
                .filter(|op| !matches!(op.group(), Group::String | Group::Msr))
                .copied()
                .collect();
            assert_eq!(&kept, without);
        }
        // Every group has work in every round; the must-refuse writes come
        // in round 0 and every MUST_REFUSE_EVERY rounds.
        for (round, ops) in all.iter().enumerate() {
            for group in Group::ALL {
                assert!(ops.iter().any(|op| op.group() == group), "round {round}: {group:?}");
            }
            assert_eq!(ops.contains(&Op::MsrMustRefuse), round == 0);
            for op in ops {
                match *op {
                    Op::MsrWrite { msr, .. } => assert!(msr_write_allowed(msr)),
                    Op::PortRead { port, size } => assert!(port_read_allowed(port, size)),
                    _ => {}
                }
            }
        }
        let mut rng = Rng::new(5);
        let round_8 = (0..=MUST_REFUSE_EVERY)
            .map(|round| plan_round(&mut rng, round, Groups::none()))
            .last()
            .unwrap();
        assert!(round_8.contains(&Op::MsrMustRefuse));
    }

    #[test]
    fn must_refuse_values_set_reserved_bits_or_write_a_locked_register() {
        for refuse in MUST_REFUSE {
            if refuse.msr == IA32_FEATURE_CONTROL {
                assert_eq!((refuse.value)(0), None, "unlocked: nothing to refuse");
                assert_eq!((refuse.value)(5), Some(5));
            } else {
                let value = (refuse.value)(0xd01).unwrap();
                assert_ne!(value, 0xd01, "{}", refuse.what);
            }
        }
        let lme = MUST_REFUSE.iter().find(|r| r.what.contains("LME")).unwrap();
        assert_eq!((lme.value)(0xd01), Some(0xc01));
    }

    #[test]
    fn the_summary_names_every_figure() {
        let counts = Counts {
            rounds: 3,
            cpuid: 400,
            msr_gp: 9,
            tf_steps: 12,
            breakpoints: BreakpointState::Unavailable(13),
            failures: 1,
            ..Counts::default()
        };
        let line = counts.summary(7);
        assert!(line.starts_with(
            "keel-stress: hostile done seed=7 rounds=3 cpuid=400 msr_read=0 msr_write=0 msr_gp=9 port_read=0 \
             port_write=0 mem_read=0 mem_write=0 vmcall=0 tf_steps=12 ac_traps=0 db_traps=0 "
        ));
        // The boot test (tests/src/cases.rs, hostile_dom0_summary) reads these in this order.
        assert!(
            line.ends_with(
                " string_mmio=0 string_io=0 tf_string_steps=0 int1_traps=0 breakpoints=unavailable(errno 13) failures=1"
            ),
            "{line}"
        );
        assert!(counts
            .progress(2)
            .starts_with("keel-stress: hostile round 2: cpuid=400 "));
        assert!(!counts.progress(2).contains("FAILED") && !line.contains("FAILED"));
        assert_eq!(BreakpointState::NeverFired.to_string(), "never-fired");
    }
}

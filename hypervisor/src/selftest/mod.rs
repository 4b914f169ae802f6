//! Keel's built-in test guest and the scenarios that drive it: the boot
//! self-test (every exit class, a contained memory fault, a contained
//! triple fault)
//! and the exit-cost benchmark.

use keel_abi::cpuid::{signature_registers, HYPERVISOR_LEAF_BASE};
use keel_abi::hypercall::{
    BenchKind, ABI_VERSION, HC_BENCH_REPORT, HC_DOMAIN_STOP, HC_SELFTEST_DONE, HC_TIMER_TICKS, HC_VERSION,
};
use keel_abi::DEBUG_CONSOLE_PORT;
use keel_guest_loader::long_mode::{long_mode_tables_size, setup_long_mode, LongModeLayout};
use keel_memory::{GuestMemory, GuestMemoryError, GuestMemoryRead, GuestPhysAddr, HostPhysAddr, PAGE_SIZE_2M};

use crate::domain::Domain;
use crate::exits::{report_stop, run_until_stopped, StopReason, TimeSplit};
use crate::halt::Outcome;
use crate::memory;
use crate::vcpu::LongModeEntry;
use crate::vmx::{VmxCpu, VmxVcpu};
use keel_hypervisor::cmdline::{GuestMode, Options};

/// Never mapped in a test domain (RAM ends far below), but inside the
/// guest's own identity map, so touching it is an EPT violation.
const UNMAPPED_GPA: u64 = 0x3000_0000;

/// The most TSC cycles between a test domain's creation (its TSC is zero
/// then) and its first instruction; the host's own TSC is far beyond it by
/// the time Keel runs (firmware, loader and Keel's boot).
const TSC_START_BOUND: u64 = 1 << 26;

core::arch::global_asm!(
    include_str!("guest.s"),
    CPUID_HV_LEAF = const HYPERVISOR_LEAF_BASE,
    SIG_EBX = const signature_registers()[0],
    SIG_ECX = const signature_registers()[1],
    SIG_EDX = const signature_registers()[2],
    DEBUG_PORT = const DEBUG_CONSOLE_PORT,
    HC_VERSION = const HC_VERSION,
    ABI_VERSION = const ABI_VERSION,
    HC_TIMER_TICKS = const HC_TIMER_TICKS,
    HC_SELFTEST_DONE = const HC_SELFTEST_DONE,
    HC_DOMAIN_STOP = const HC_DOMAIN_STOP,
    HC_BENCH_REPORT = const HC_BENCH_REPORT,
    BENCH_CPUID = const BenchKind::Cpuid as u64,
    BENCH_VMCALL = const BenchKind::Vmcall as u64,
    BENCH_IO = const BenchKind::Io as u64,
    UNMAPPED_GPA = const UNMAPPED_GPA,
    IDT_GPA = const IDT_GPA,
    TSC_START_BOUND = const TSC_START_BOUND,
    CODE_SELECTOR = const keel_guest_loader::long_mode::BOOT_CODE_SELECTOR,
);

extern "C" {
    static test_guest_start: u8;
    static test_guest_end: u8;
}

/// Guest-physical layout of a test domain. Its RAM is two 2 MiB host blocks
/// apart from each other in host memory ([`ScatteredRam`]); the code
/// straddles the boundary between them and the stack is in the second, so
/// the guest runs across both and Keel loads it through both.
const RAM_SIZE: u64 = 2 * PAGE_SIZE_2M;
const RAM_BLOCK: u64 = PAGE_SIZE_2M;
const GDT_GPA: u64 = 0x800;
const PAGE_TABLES_GPA: u64 = 0x1000;
const IDT_GPA: u64 = 0x8000;
/// Test guests' time slice in TSC cycles: long enough that the timer check
/// (which spins between hypercalls) sees slices expire only while computing.
const TIME_SLICE_TSC: u64 = 2_000_000;
const CODE_GPA: u64 = RAM_BLOCK - 0x200;
const STACK_TOP_GPA: u64 = RAM_SIZE;
const IDENTITY_MAP_BYTES: u64 = 1 << 30;

#[derive(Clone, Copy)]
#[repr(u64)]
enum GuestProgram {
    Selftest = 0,
    Bench = 1,
    ContainedFailure = 2,
}

/// How a test domain ended.
struct DomainResult {
    stop: StopReason,
    selftest_report: Option<u64>,
    /// Its RAM was several host blocks, none next to the one before it.
    scattered_ram: bool,
}

/// Runs the scenario the command line asks for.
pub fn run(cpu: &VmxCpu, options: &Options) -> Outcome {
    match options.guest {
        Some(GuestMode::Bench) => bench(cpu, options.bench_iterations),
        _ => selftest(cpu),
    }
}

fn selftest(cpu: &VmxCpu) -> Outcome {
    let free_before = crate::memory::free_bytes();
    let first = run_test_domain(cpu, 1, GuestProgram::Selftest, 0);
    let second = run_test_domain(cpu, 2, GuestProgram::ContainedFailure, 0);
    let leaked = free_before.saturating_sub(crate::memory::free_bytes());
    let verdict = match (first, second) {
        (Some(first), Some(second)) => judge(&first, &second),
        _ => Err("a test domain could not be created"),
    };
    let verdict = match verdict {
        Ok(()) if leaked != 0 => Err("destroyed domains did not return all their memory"),
        other => other,
    };
    log::info!(
        "selftest: {} KiB not returned after both domains were destroyed",
        leaked / 1024
    );
    match verdict {
        Ok(()) => {
            log::info!("selftest passed");
            Outcome::Success
        }
        Err(reason) => {
            log::info!("selftest FAILED: {reason}");
            Outcome::Failure
        }
    }
}

fn judge(first: &DomainResult, second: &DomainResult) -> Result<(), &'static str> {
    match first.selftest_report {
        Some(0) => {}
        Some(_) => return Err("the guest reported a failed check"),
        None => return Err("the guest never finished its checks"),
    }
    if !matches!(first.stop, StopReason::MemoryFault { fault, .. } if fault.gpa == UNMAPPED_GPA) {
        return Err("domain 1 did not stop on its unmapped access");
    }
    if !matches!(
        second.stop,
        StopReason::Unhandled {
            reason: "triple-fault",
            ..
        }
    ) {
        return Err("domain 2 did not stop on its triple fault");
    }
    if !first.scattered_ram || !second.scattered_ram {
        return Err("a test domain's RAM was not scattered over separate host blocks");
    }
    Ok(())
}

fn bench(cpu: &VmxCpu, iterations: u32) -> Outcome {
    match run_test_domain(cpu, 1, GuestProgram::Bench, u64::from(iterations)) {
        Some(DomainResult {
            stop: StopReason::Requested { status: 0 },
            ..
        }) => {
            log::info!("bench finished");
            Outcome::Success
        }
        _ => {
            log::info!("bench FAILED");
            Outcome::Failure
        }
    }
}

/// Builds a domain around the test guest, runs it to its end, reports how
/// it stopped and what it did, and tears it down.
fn run_test_domain(cpu: &VmxCpu, id: u16, program: GuestProgram, argument: u64) -> Option<DomainResult> {
    let scattered = ScatteredRam::prepare();
    let domain = Domain::with_max_chunk(id, RAM_SIZE, RAM_BLOCK);
    drop(scattered);
    let mut domain = match domain {
        Ok(domain) => domain,
        Err(error) => {
            log::error!("domain {id}: {error}");
            return None;
        }
    };
    let scattered_ram = ram_is_scattered(&domain);
    domain.cpu = cpu.guest_cpu(None, 0);
    let entry = match load_test_guest(&mut domain, program, argument) {
        Ok(entry) => entry,
        Err(error) => {
            log::error!("domain {id}: loading the test guest: {error}");
            domain.destroy();
            return None;
        }
    };
    let mut vcpu = match VmxVcpu::new(cpu, &entry, domain.eptp(), id, TIME_SLICE_TSC, domain.tsc_offset) {
        Ok(vcpu) => vcpu,
        Err(error) => {
            log::error!("domain {id}: creating its vCPU: {error}");
            domain.destroy();
            return None;
        }
    };
    log::info!(
        "domain {id}: entering the test guest (its TSC started at zero when the host's was {})",
        domain.tsc_offset.wrapping_neg()
    );
    let mut time = TimeSplit::default();
    let stop = run_until_stopped(&mut domain, &mut vcpu, TIME_SLICE_TSC, &mut time);
    report_stop(id, &stop, &vcpu, &time);
    let result = DomainResult {
        stop,
        selftest_report: domain.selftest_report,
        scattered_ram,
    };
    vcpu.destroy();
    domain.destroy();
    Some(result)
}

/// Makes the next 2 MiB-block allocations land apart: takes a free 4 MiB
/// block and gives its first half back, so the first-fit allocator hands out
/// that half (or a lower lone 2 MiB gap) and must skip the held second half
/// for the next one. Dropping it releases the held half.
struct ScatteredRam {
    held: Option<HostPhysAddr>,
}

impl ScatteredRam {
    fn prepare() -> Self {
        let held = memory::allocate_zeroed(2 * RAM_BLOCK, RAM_BLOCK).map(|block| {
            memory::free(block, RAM_BLOCK);
            HostPhysAddr::new(block.as_u64() + RAM_BLOCK)
        });
        Self { held }
    }
}

impl Drop for ScatteredRam {
    fn drop(&mut self) {
        if let Some(held) = self.held {
            memory::free(held, RAM_BLOCK);
        }
    }
}

/// Whether the domain's RAM is several host blocks, each away from the end
/// of the one before it (so nothing can get by assuming one host block).
fn ram_is_scattered(domain: &Domain) -> bool {
    let blocks = domain.memory().regions();
    let hosts: alloc::vec::Vec<(u64, u64)> = blocks
        .iter()
        .filter_map(|region| Some((region.host()?.as_u64(), region.len())))
        .collect();
    let apart = hosts
        .windows(2)
        .all(|pair| matches!(pair, [(first, len), (second, _)] if first + len != *second));
    log::info!(
        "domain {}: RAM in {} host blocks at {:x?}",
        domain.id,
        domain.ram_blocks(),
        hosts.iter().map(|(host, _)| host).collect::<alloc::vec::Vec<_>>()
    );
    domain.ram_blocks() > 1 && apart
}

fn load_test_guest(
    domain: &mut Domain,
    program: GuestProgram,
    argument: u64,
) -> Result<LongModeEntry, LoadTestGuestError> {
    // SAFETY: both symbols come from guest.s and delimit the guest's bytes in .rodata.
    let code = unsafe {
        let start = &raw const test_guest_start;
        let len = (&raw const test_guest_end as usize).saturating_sub(start as usize);
        core::slice::from_raw_parts(start, len)
    };
    let memory = domain.memory_mut();
    debug_assert!(long_mode_tables_size(IDENTITY_MAP_BYTES) <= IDT_GPA - PAGE_TABLES_GPA);
    let state = setup_long_mode(
        memory,
        &LongModeLayout {
            page_tables_gpa: PAGE_TABLES_GPA,
            gdt_gpa: GDT_GPA,
            identity_map_bytes: IDENTITY_MAP_BYTES,
        },
    )
    .map_err(LoadTestGuestError::LongMode)?;
    let code_gpa = GuestPhysAddr::new(CODE_GPA);
    memory.write(code_gpa, code).map_err(LoadTestGuestError::Code)?;
    // Read back across the block boundary: what the guest will execute.
    let mut check = [0u8; 64];
    let offset = (RAM_BLOCK - CODE_GPA) as usize - check.len() / 2;
    if let Some(expected) = code.get(offset..offset + check.len()) {
        let at = GuestPhysAddr::new(CODE_GPA + offset as u64);
        memory.read(at, &mut check).map_err(LoadTestGuestError::Code)?;
        if check != expected {
            return Err(LoadTestGuestError::ReadBack);
        }
    }
    Ok(LongModeEntry {
        rip: CODE_GPA,
        rsp: STACK_TOP_GPA,
        rdi: program as u64,
        rsi: argument,
        state,
    })
}

enum LoadTestGuestError {
    LongMode(keel_guest_loader::LoadError),
    Code(GuestMemoryError),
    ReadBack,
}

impl core::fmt::Display for LoadTestGuestError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::LongMode(error) => write!(f, "{error}"),
            Self::Code(error) => write!(f, "the test guest does not fit its RAM: {error}"),
            Self::ReadBack => f.write_str("the test guest's code reads back differently"),
        }
    }
}

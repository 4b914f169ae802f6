//! `keel-stress hostile`: carries out the rounds `keel_guest_tools::hostile`
//! plans, against the hypervisor under this kernel. Needs root: the `msr`
//! driver (`/dev/cpu/0/msr`), `/dev/port`, `/dev/mem`, `ioperm` and
//! hardware breakpoints.
//!
//! Faults are part of the plan. One signal handler serves them all:
//! - SIGTRAP while a single-stepped sequence runs: its RIP is recorded (the
//!   trap comes after each instruction while RFLAGS.TF is set);
//! - SIGBUS with BUS_ADRALN while an alignment check is armed: counted, and
//!   RFLAGS.AC cleared in the saved context, so the access runs again and
//!   passes;
//! - any signal while a guarded instruction runs (VMCALL, a load or store
//!   on a hole, a string instruction): the saved RIP moves to the address
//!   the guard names (just past the instruction) and the signal is noted;
//! - anything else is a failure: one line, and the program exits.

use std::arch::asm;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_guest_tools::hostile::{
    cpuid_sweep, empty_bus_value, fadt_port_ranges, holes, page_in_holes, parse_iomem, physical_address_bits,
    plan_round, random_writable_port, BreakpointState, Counts, Group, Op, Options, Rng, FAILED_PREFIX, MUST_REFUSE,
    PAGE_SIZE, SWEEP_SUBLEAVES,
};
use keel_guest_tools::MSR_DEVICE;

const PORT_DEVICE: &str = "/dev/port";
const MEM_DEVICE: &str = "/dev/mem";
const FADT: &str = "/sys/firmware/acpi/tables/FACP";
/// A port no PC device decodes (QEMU's fw_cfg lives there; Keel has
/// nothing): read with IN under single-step and by `rep ins`.
const STEP_PORT: u16 = 0x510;
/// The debug console port: `rep outs` writes there.
const STRING_OUT_PORT: u16 = 0xe9;
/// Physical address width when /proc/cpuinfo does not say.
const DEFAULT_PHYSICAL_BITS: u32 = 36;
/// Times each hardware breakpoint is triggered per round.
const BREAKPOINT_HITS: u64 = 4;
/// How often a progress line comes at most (and at least, while rounds go on).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_AC: u64 = 1 << 18;

// --- the signal handler's state ---------------------------------------------

/// Where a faulting guarded instruction resumes (0: no guard).
static GUARD_RESUME: AtomicU64 = AtomicU64::new(0);
/// The signal a guarded instruction raised (0: none).
static GUARD_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether a single-stepped sequence runs, and the RIPs of its traps.
static STEPPING: AtomicBool = AtomicBool::new(false);
const MAX_TRAPS: usize = 64;
static TRAP_RIPS: [AtomicU64; MAX_TRAPS] = [const { AtomicU64::new(0) }; MAX_TRAPS];
static TRAP_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Traps in one recorded sequence after which it counts as a loop.
const LOOP_LIMIT: usize = 48;
/// Whether an alignment check is armed, and the #AC traps it got.
static AC_ARMED: AtomicBool = AtomicBool::new(false);
static AC_TRAPS: AtomicU64 = AtomicU64::new(0);

/// A line written from the signal handler: no allocation, no locks.
struct StackLine {
    bytes: [u8; 256],
    len: usize,
}

impl core::fmt::Write for StackLine {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an
    // SA_SIGINFO handler; changes to the ucontext take effect on return.
    let (code, address, context) = unsafe {
        (
            (*info).si_code,
            (*info).si_addr() as u64,
            &mut *(context as *mut libc::ucontext_t),
        )
    };
    let registers = &mut context.uc_mcontext.gregs;
    let rip = registers[libc::REG_RIP as usize] as u64;
    if signal == libc::SIGTRAP && STEPPING.load(Ordering::SeqCst) {
        let index = TRAP_COUNT.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = TRAP_RIPS.get(index) {
            slot.store(rip, Ordering::SeqCst);
        }
        // A #DB delivered back onto its own instruction (INT1 injected
        // without its length) would trap forever: past the limit, leave
        // for the guard's address, and let the count tell.
        if index >= LOOP_LIMIT {
            let resume = GUARD_RESUME.swap(0, Ordering::SeqCst);
            if resume != 0 {
                registers[libc::REG_RIP as usize] = resume as i64;
            }
        }
        return;
    }
    if signal == libc::SIGBUS && code == libc::BUS_ADRALN && AC_ARMED.load(Ordering::SeqCst) {
        AC_TRAPS.fetch_add(1, Ordering::SeqCst);
        registers[libc::REG_EFL as usize] &= !(RFLAGS_AC as i64);
        return;
    }
    let resume = GUARD_RESUME.swap(0, Ordering::SeqCst);
    if resume != 0 {
        GUARD_SIGNAL.store(signal, Ordering::SeqCst);
        registers[libc::REG_RIP as usize] = resume as i64;
        return;
    }
    use core::fmt::Write;
    let mut line = StackLine {
        bytes: [0; 256],
        len: 0,
    };
    let _ = writeln!(
        line,
        "{FAILED_PREFIX}unexpected signal {signal} (code {code}) at rip {rip:#x}, address {address:#x}"
    );
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(1, line.bytes.as_ptr().cast(), line.len);
        libc::_exit(3);
    }
}

fn install_signal_handlers() -> io::Result<()> {
    for signal in [libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGTRAP, libc::SIGFPE] {
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // async-signal-safe extern "C" function taking SA_SIGINFO's arguments.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// One instruction with the fault guard armed: a signal it raises makes
/// the handler resume right after it (at the address stored in the guard).
macro_rules! guarded_asm {
    ($instruction:literal, $($operands:tt)*) => {
        asm!(
            "lea {resume}, [rip + 2f]",
            "mov qword ptr [{guard}], {resume}",
            $instruction,
            "2:",
            guard = in(reg) guard(),
            resume = out(reg) _,
            $($operands)*
        )
    };
}

/// Takes the signal a guarded instruction raised, if any.
fn take_guard_signal() -> Option<i32> {
    GUARD_RESUME.store(0, Ordering::SeqCst);
    match GUARD_SIGNAL.swap(0, Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

fn guard() -> *mut u64 {
    GUARD_RESUME.as_ptr()
}

// --- the guarded instructions ------------------------------------------------

/// A load of `size` bytes at `address` (a mapped hole), guarded.
///
/// # Safety
/// `address` must be mapped (or the fault must be one the guard catches).
unsafe fn guarded_load(address: *const u8, size: u8) -> Result<u64, i32> {
    let value: u64;
    match size {
        1 => guarded_asm!("movzx {value:e}, byte ptr [{address}]", address = in(reg) address, value = out(reg) value),
        2 => guarded_asm!("movzx {value:e}, word ptr [{address}]", address = in(reg) address, value = out(reg) value),
        4 => guarded_asm!("mov {value:e}, dword ptr [{address}]", address = in(reg) address, value = out(reg) value),
        _ => guarded_asm!("mov {value}, qword ptr [{address}]", address = in(reg) address, value = out(reg) value),
    }
    match take_guard_signal() {
        None => Ok(value),
        Some(signal) => Err(signal),
    }
}

/// A store of the low `size` bytes of `value` at `address`, guarded.
///
/// # Safety
/// As [`guarded_load`].
unsafe fn guarded_store(address: *mut u8, size: u8, value: u64) -> Result<(), i32> {
    match size {
        1 => guarded_asm!("mov byte ptr [{address}], {value:l}", address = in(reg) address, value = in(reg) value),
        2 => guarded_asm!("mov word ptr [{address}], {value:x}", address = in(reg) address, value = in(reg) value),
        4 => guarded_asm!("mov dword ptr [{address}], {value:e}", address = in(reg) address, value = in(reg) value),
        _ => guarded_asm!("mov qword ptr [{address}], {value}", address = in(reg) address, value = in(reg) value),
    }
    match take_guard_signal() {
        None => Ok(()),
        Some(signal) => Err(signal),
    }
}

/// VMCALL from user mode with these registers, guarded; RAX afterwards.
fn guarded_vmcall(rax: u64, rdi: u64, rsi: u64, rdx: u64) -> Result<u64, i32> {
    let out: u64;
    // SAFETY: VMCALL changes no memory of ours; of the registers a
    // hypervisor may answer in, the caller-saved ones are declared
    // clobbered (Keel answers in RAX only).
    unsafe {
        guarded_asm!("vmcall", inout("rax") rax => out,
            inout("rdi") rdi => _,
            inout("rsi") rsi => _,
            inout("rdx") rdx => _,
            out("rcx") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    match take_guard_signal() {
        None => Ok(out),
        Some(signal) => Err(signal),
    }
}

/// Where the single-step traps of [`stepped_sequence`] must come: just
/// after each instruction Keel emulates or passes through.
struct StepLabels {
    after_cpuid: u64,
    after_rdtsc: u64,
    after_vmcall: u64,
    after_in: u64,
}

/// CPUID, RDTSC, VMCALL and (with `with_in`) IN from STEP_PORT, with
/// RFLAGS.TF set: the CPU (or the hypervisor emulating the instruction)
/// must raise a single-step #DB after each. Returns the labels and whether
/// the VMCALL faulted.
fn stepped_sequence(with_in: bool) -> (StepLabels, bool) {
    let (after_cpuid, after_rdtsc, after_vmcall, after_in): (u64, u64, u64, u64);
    TRAP_COUNT.store(0, Ordering::SeqCst);
    STEPPING.store(true, Ordering::SeqCst);
    // SAFETY: only registers change (declared; CPUID's RBX is restored at
    // once, as operands may live in RBX); TF is cleared again before the
    // block ends; a VMCALL fault resumes past it.
    unsafe {
        asm!(
            "lea {a0}, [rip + 31f]",
            "lea {a1}, [rip + 32f]",
            "lea {a2}, [rip + 33f]",
            "lea {a3}, [rip + 34f]",
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "mov {saved}, rbx",
            "xor eax, eax",
            "xor ecx, ecx",
            "cpuid",
            "31:",
            "mov rbx, {saved}",
            "rdtsc",
            "32:",
            "mov qword ptr [{guard}], {a2}",
            "xor eax, eax",
            "vmcall",
            "33:",
            "mov qword ptr [{guard}], 0",
            "test {with_in}, {with_in}",
            "jz 35f",
            "mov edx, {port}",
            "in al, dx",
            "34:",
            "35:",
            "pushfq",
            "and qword ptr [rsp], {not_tf}",
            "popfq",
            a0 = out(reg) after_cpuid,
            a1 = out(reg) after_rdtsc,
            a2 = out(reg) after_vmcall,
            a3 = out(reg) after_in,
            saved = out(reg) _,
            guard = in(reg) guard(),
            with_in = in(reg) u64::from(with_in),
            port = const STEP_PORT as u32,
            tf = const RFLAGS_TF,
            not_tf = const !(RFLAGS_TF as i32),
            out("rax") _, out("rcx") _, out("rdx") _,
        );
    }
    STEPPING.store(false, Ordering::SeqCst);
    let vmcall_faulted = take_guard_signal().is_some();
    (
        StepLabels {
            after_cpuid,
            after_rdtsc,
            after_vmcall,
            after_in,
        },
        vmcall_faulted,
    )
}

/// Traps recorded since the last reset, by RIP: at `at` and at `after`.
fn traps_at(at: u64, after: u64) -> (u64, u64, usize) {
    let count = TRAP_COUNT.load(Ordering::SeqCst);
    let rips: Vec<u64> = TRAP_RIPS[..count.min(MAX_TRAPS)]
        .iter()
        .map(|rip| rip.load(Ordering::SeqCst))
        .collect();
    let on = |address| rips.iter().filter(|&&rip| rip == address).count() as u64;
    (on(at), on(after), count)
}

/// What a single-stepped REP string instruction did: the traps with RIP
/// still on it (an iteration done, more to come), the traps past it, all
/// traps of the sequence, and the signal it raised, if any.
#[derive(Debug)]
struct SteppedRep {
    on_instruction: u64,
    past: u64,
    traps: usize,
    signal: Option<i32>,
}

impl SteppedRep {
    /// Traps of the instruction itself.
    fn iterations(&self) -> u64 {
        self.on_instruction + self.past
    }
}

/// `rep movsb` of `len` bytes from `source` to `target` with RFLAGS.TF:
/// the CPU traps after each iteration (RIP back on the instruction while
/// RCX is not zero), as for any instruction.
///
/// # Safety
/// Both ranges must be mapped (faults on `source` are caught).
unsafe fn stepped_rep_movsb(target: *mut u8, source: *const u8, len: usize) -> SteppedRep {
    let (at, after): (u64, u64);
    TRAP_COUNT.store(0, Ordering::SeqCst);
    STEPPING.store(true, Ordering::SeqCst);
    asm!(
        "lea {at}, [rip + 41f]",
        "lea {after}, [rip + 42f]",
        "mov qword ptr [{guard}], {after}",
        "pushfq",
        "or qword ptr [rsp], {tf}",
        "popfq",
        "41:",
        "rep movsb",
        "42:",
        "pushfq",
        "and qword ptr [rsp], {not_tf}",
        "popfq",
        at = out(reg) at,
        after = out(reg) after,
        guard = in(reg) guard(),
        tf = const RFLAGS_TF,
        not_tf = const !(RFLAGS_TF as i32),
        inout("rdi") target => _, inout("rsi") source => _, inout("rcx") len => _,
    );
    STEPPING.store(false, Ordering::SeqCst);
    let signal = take_guard_signal();
    let (on_instruction, past, traps) = traps_at(at, after);
    SteppedRep {
        on_instruction,
        past,
        traps,
        signal,
    }
}

/// `rep insb` of `buffer.len()` bytes from `port` with RFLAGS.TF.
fn stepped_rep_insb(port: u16, buffer: &mut [u8]) -> SteppedRep {
    let (at, after): (u64, u64);
    TRAP_COUNT.store(0, Ordering::SeqCst);
    STEPPING.store(true, Ordering::SeqCst);
    // SAFETY: writes only `buffer`; TF is cleared again before the end.
    unsafe {
        asm!(
            "lea {at}, [rip + 41f]",
            "lea {after}, [rip + 42f]",
            "mov qword ptr [{guard}], {after}",
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "41:",
            "rep insb",
            "42:",
            "pushfq",
            "and qword ptr [rsp], {not_tf}",
            "popfq",
            at = out(reg) at,
            after = out(reg) after,
            guard = in(reg) guard(),
            tf = const RFLAGS_TF,
            not_tf = const !(RFLAGS_TF as i32),
            in("dx") port, inout("rdi") buffer.as_mut_ptr() => _, inout("rcx") buffer.len() => _,
        );
    }
    STEPPING.store(false, Ordering::SeqCst);
    let signal = take_guard_signal();
    let (on_instruction, past, traps) = traps_at(at, after);
    SteppedRep {
        on_instruction,
        past,
        traps,
        signal,
    }
}

/// INT1 (ICEBP): a #DB the hypervisor reflects as a privileged software
/// exception, so the handler's frame points past the instruction. Returns
/// the traps on INT1 itself (a loop when more than zero), past it, and all.
fn int1() -> (u64, u64, usize) {
    let (at, after): (u64, u64);
    TRAP_COUNT.store(0, Ordering::SeqCst);
    STEPPING.store(true, Ordering::SeqCst);
    // SAFETY: INT1 changes no state of ours; a loop is broken by the
    // handler (LOOP_LIMIT) at the guard's address.
    unsafe {
        asm!(
            "lea {at}, [rip + 51f]",
            "lea {after}, [rip + 52f]",
            "mov qword ptr [{guard}], {after}",
            "51:",
            ".byte 0xf1",
            "52:",
            "mov qword ptr [{guard}], 0",
            at = out(reg) at,
            after = out(reg) after,
            guard = in(reg) guard(),
        );
    }
    STEPPING.store(false, Ordering::SeqCst);
    GUARD_RESUME.store(0, Ordering::SeqCst);
    traps_at(at, after)
}

/// A misaligned load and a misaligned store, each with RFLAGS.AC set:
/// both must raise #AC (Linux keeps CR0.AM set); returns the traps.
fn misaligned_accesses() -> u64 {
    let mut buffer = [0u64; 4];
    let base = buffer.as_mut_ptr().cast::<u8>();
    AC_TRAPS.store(0, Ordering::SeqCst);
    AC_ARMED.store(true, Ordering::SeqCst);
    // SAFETY: both accesses lie inside `buffer`; AC is cleared again
    // before the block ends (the handler clears it after each trap).
    unsafe {
        asm!(
            "pushfq",
            "or qword ptr [rsp], {ac}",
            "popfq",
            "mov {value:e}, dword ptr [{base} + 1]",
            "pushfq",
            "or qword ptr [rsp], {ac}",
            "popfq",
            "mov dword ptr [{base} + 13], {value:e}",
            "pushfq",
            "and qword ptr [rsp], {not_ac}",
            "popfq",
            base = in(reg) base,
            value = out(reg) _,
            ac = const RFLAGS_AC,
            not_ac = const !(RFLAGS_AC as i32),
        );
    }
    AC_ARMED.store(false, Ordering::SeqCst);
    std::hint::black_box(&buffer);
    AC_TRAPS.load(Ordering::SeqCst)
}

/// `rep movsb` of `len` bytes from `source` to `target`, guarded.
///
/// # Safety
/// Both ranges must be mapped (faults on `source` are caught).
unsafe fn guarded_rep_movsb(target: *mut u8, source: *const u8, len: usize) -> Result<(), i32> {
    guarded_asm!("rep movsb", inout("rdi") target => _, inout("rsi") source => _, inout("rcx") len => _,
    );
    take_guard_signal().map_or(Ok(()), Err)
}

/// `rep movsq` of `count` quadwords, guarded.
///
/// # Safety
/// As [`guarded_rep_movsb`].
unsafe fn guarded_rep_movsq(target: *mut u64, source: *const u64, count: usize) -> Result<(), i32> {
    guarded_asm!("rep movsq", inout("rdi") target => _, inout("rsi") source => _, inout("rcx") count => _,
    );
    take_guard_signal().map_or(Ok(()), Err)
}

/// `rep stosb` of `len` bytes of `byte` at `target`, guarded.
///
/// # Safety
/// As [`guarded_rep_movsb`].
unsafe fn guarded_rep_stosb(target: *mut u8, byte: u8, len: usize) -> Result<(), i32> {
    guarded_asm!("rep stosb", inout("rdi") target => _, in("al") byte, inout("rcx") len => _,
    );
    take_guard_signal().map_or(Ok(()), Err)
}

/// IN of `size` bytes from `port`, guarded (needs `iopl` or `ioperm`).
fn guarded_in(port: u16, size: u8) -> Result<u32, i32> {
    let value: u32;
    // SAFETY: reads a port; no memory changes.
    unsafe {
        match size {
            1 => guarded_asm!("in al, dx", in("dx") port, inout("eax") 0u32 => value),
            2 => guarded_asm!("in ax, dx", in("dx") port, inout("eax") 0u32 => value),
            _ => guarded_asm!("in eax, dx", in("dx") port, out("eax") value,
            ),
        }
    }
    take_guard_signal().map_or(Ok(value), Err)
}

/// OUT of the low `size` bytes of `value` to `port`, guarded.
fn guarded_out(port: u16, size: u8, value: u32) -> Result<(), i32> {
    // SAFETY: writes a port; no memory changes.
    unsafe {
        match size {
            1 => guarded_asm!("out dx, al", in("dx") port, in("eax") value,
            ),
            2 => guarded_asm!("out dx, ax", in("dx") port, in("eax") value,
            ),
            _ => guarded_asm!("out dx, eax", in("dx") port, in("eax") value,
            ),
        }
    }
    take_guard_signal().map_or(Ok(()), Err)
}

/// IN of one byte from `port`, guarded (needs `ioperm`).
fn guarded_inb(port: u16) -> Result<u8, i32> {
    let value: u8;
    // SAFETY: reads a port this process has permission for; no memory changes.
    unsafe {
        guarded_asm!("in al, dx", in("dx") port, out("al") value,
        );
    }
    take_guard_signal().map_or(Ok(value), Err)
}

/// `rep insb`: `buffer.len()` bytes from `port`, guarded.
fn guarded_rep_insb(port: u16, buffer: &mut [u8]) -> Result<(), i32> {
    // SAFETY: writes only `buffer`.
    unsafe {
        guarded_asm!("rep insb", in("dx") port, inout("rdi") buffer.as_mut_ptr() => _, inout("rcx") buffer.len() => _,
        );
    }
    take_guard_signal().map_or(Ok(()), Err)
}

/// `rep insd`: `buffer.len()` doublewords from `port`, guarded.
fn guarded_rep_insd(port: u16, buffer: &mut [u32]) -> Result<(), i32> {
    // SAFETY: writes only `buffer`.
    unsafe {
        guarded_asm!("rep insd", in("dx") port, inout("rdi") buffer.as_mut_ptr() => _, inout("rcx") buffer.len() => _,
        );
    }
    take_guard_signal().map_or(Ok(()), Err)
}

/// IN of a doubleword from `port`, guarded.
fn guarded_ind(port: u16) -> Result<u32, i32> {
    let value: u32;
    // SAFETY: as guarded_inb.
    unsafe {
        guarded_asm!("in eax, dx", in("dx") port, out("eax") value,
        );
    }
    take_guard_signal().map_or(Ok(value), Err)
}

/// `rep outsb`: `buffer` to `port`, guarded.
fn guarded_rep_outsb(port: u16, buffer: &[u8]) -> Result<(), i32> {
    // SAFETY: reads only `buffer`.
    unsafe {
        guarded_asm!("rep outsb", in("dx") port, inout("rsi") buffer.as_ptr() => _, inout("rcx") buffer.len() => _,
        );
    }
    take_guard_signal().map_or(Ok(()), Err)
}

// --- /dev/mem pages ------------------------------------------------------------

/// One page of `/dev/mem`, mapped uncached (the file is opened O_SYNC).
struct MappedPage {
    address: *mut u8,
}

impl MappedPage {
    fn map(mem: &File, physical: u64) -> Result<MappedPage, i32> {
        // SAFETY: a fresh shared mapping of one page of the device; nothing
        // else refers to that range of our address space.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                mem.as_raw_fd(),
                physical as libc::off_t,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(MappedPage {
            address: address.cast(),
        })
    }
}

impl Drop for MappedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the page `map` mapped.
        unsafe {
            libc::munmap(self.address.cast(), PAGE_SIZE as usize);
        }
    }
}

// --- hardware breakpoints ------------------------------------------------------

/// `struct perf_event_attr` up to PERF_ATTR_SIZE_VER5 (112 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    bp_addr: u64,
    bp_len: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_W: u32 = 2;
const HW_BREAKPOINT_X: u32 = 4;
/// `flags` bits: exclude_kernel (5), exclude_hv (6).
const PERF_EXCLUDE_KERNEL_HV: u64 = (1 << 5) | (1 << 6);
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// A hardware breakpoint of this process on `address`, counting hits.
fn open_breakpoint(address: u64, len: u64, kind: u32) -> Result<File, i32> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_BREAKPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        sample_period: 1,
        flags: PERF_EXCLUDE_KERNEL_HV,
        bp_type: kind,
        bp_addr: address,
        bp_len: len,
        ..PerfEventAttr::default()
    };
    // SAFETY: perf_event_open reads `attr` (of the size it says) and returns
    // a new file descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0 as libc::pid_t,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: the descriptor is new and ours alone.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

fn breakpoint_count(mut file: &File) -> u64 {
    use std::io::Read;
    // read(2), not pread: a perf event's file has no offsets (ESPIPE).
    let mut bytes = [0u8; 8];
    match file.read(&mut bytes) {
        Ok(8) => u64::from_le_bytes(bytes),
        _ => 0,
    }
}

static WATCHED: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
extern "C" fn watched_function(value: u64) -> u64 {
    std::hint::black_box(value).wrapping_add(1)
}

// --- the run -------------------------------------------------------------------

/// How ports are reached.
enum Ports {
    /// IN and OUT from here: `iopl(3)` (Linux grants every port through
    /// the I/O bitmap).
    Instructions,
    /// `/dev/port` (one byte per IN/OUT of the kernel's).
    Device(File),
    Unavailable,
}

/// The machine as this run found it.
struct Machine {
    msr: Option<File>,
    ports: Ports,
    mem: Option<File>,
    holes: Vec<(u64, u64)>,
    acpi_ports: Vec<(u16, u16)>,
    /// IN and OUT work on STEP_PORT (4 bytes) and STRING_OUT_PORT.
    io_permitted: bool,
}

struct Run<'a> {
    machine: Machine,
    counts: Counts,
    say: &'a dyn Fn(String),
    /// Notes said once (a refusal of the kernel's, say), by key.
    noted: Vec<String>,
}

impl Run<'_> {
    fn fail(&mut self, what: String) {
        self.counts.failures += 1;
        (self.say)(format!("{FAILED_PREFIX}{what}"));
    }

    /// Says `what` once per `key`.
    fn note_once(&mut self, key: &str, what: impl FnOnce() -> String) {
        if !self.noted.iter().any(|noted| noted == key) {
            self.noted.push(key.to_string());
            (self.say)(format!("keel-stress: hostile note: {}", what()));
        }
    }

    fn cpuid(&mut self, leaf: u32, subleaf: u32) {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU.
        let result = unsafe { std::arch::x86_64::__cpuid_count(leaf, subleaf) };
        std::hint::black_box(result);
        self.counts.cpuid += 1;
    }

    fn sweep_cpuid(&mut self) {
        for leaf in cpuid_sweep() {
            for subleaf in 0..=SWEEP_SUBLEAVES {
                self.cpuid(leaf, subleaf);
            }
        }
    }

    /// Reads an MSR; None when it faulted (EIO: a #GP) or failed.
    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        let Some(device) = &self.machine.msr else {
            return None;
        };
        let mut bytes = [0u8; 8];
        let result = device.read_at(&mut bytes, u64::from(msr));
        self.counts.msr_read += 1;
        match result {
            Ok(8) => Some(u64::from_le_bytes(bytes)),
            Ok(short) => {
                self.note_once("msr-short", || format!("a read of MSR {msr:#x} returned {short} bytes"));
                None
            }
            Err(error) => {
                self.msr_error(msr, "read", &error);
                None
            }
        }
    }

    /// Writes an MSR; whether the write was accepted.
    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        let Some(device) = &self.machine.msr else {
            return false;
        };
        let result = device.write_at(&value.to_le_bytes(), u64::from(msr));
        self.counts.msr_write += 1;
        match result {
            Ok(8) => true,
            Ok(short) => {
                self.note_once("msr-short", || format!("a write of MSR {msr:#x} took {short} bytes"));
                false
            }
            Err(error) => {
                self.msr_error(msr, "write", &error);
                false
            }
        }
    }

    fn msr_error(&mut self, msr: u32, access: &str, error: &io::Error) {
        if error.raw_os_error() == Some(libc::EIO) {
            self.counts.msr_gp += 1;
        } else {
            let key = format!("msr-{:?}", error.raw_os_error());
            self.note_once(&key, || {
                format!("the msr driver refused a {access} of MSR {msr:#x}: {error}")
            });
        }
    }

    fn must_refuse(&mut self) {
        for refuse in MUST_REFUSE {
            // An MSR that cannot be read (absent: #GP) must refuse writes
            // all the more.
            let current = self.read_msr(refuse.msr).unwrap_or(0);
            let Some(value) = (refuse.value)(current) else {
                continue;
            };
            if self.write_msr(refuse.msr, value) {
                self.fail(format!(
                    "WRMSR {:#x} = {value:#x} ({}) was accepted; the architecture makes it #GP (it was {current:#x})",
                    refuse.msr, refuse.what
                ));
                self.write_msr(refuse.msr, current);
            } else {
                self.counts.msr_refused += 1;
            }
        }
    }

    fn read_port(&mut self, port: u16, size: u8) {
        let result = match &self.machine.ports {
            Ports::Instructions => guarded_in(port, size)
                .map(|_| ())
                .map_err(|signal| format!("signal {signal}")),
            Ports::Device(device) => {
                let mut bytes = [0u8; 4];
                device
                    .read_at(&mut bytes[..usize::from(size)], u64::from(port))
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            }
            Ports::Unavailable => return,
        };
        self.counts.port_read += 1;
        if let Err(error) = result {
            self.fail(format!("a {size}-byte IN from port {port:#x} failed: {error}"));
        }
    }

    fn write_port(&mut self, pick: u64, size: u8, value: u32) {
        let port = random_writable_port(&mut Rng::new(pick), size, &self.machine.acpi_ports);
        let result = match &self.machine.ports {
            Ports::Instructions => guarded_out(port, size, value).map_err(|signal| format!("signal {signal}")),
            Ports::Device(device) => device
                .write_at(&value.to_le_bytes()[..usize::from(size)], u64::from(port))
                .map(|_| ())
                .map_err(|error| error.to_string()),
            Ports::Unavailable => return,
        };
        self.counts.port_write += 1;
        if let Err(error) = result {
            self.fail(format!(
                "a {size}-byte OUT of {value:#x} to port {port:#x} failed: {error}"
            ));
        }
    }

    /// Maps the hole page `pick` chooses; None (noted) when there is none
    /// or the kernel refuses.
    fn map_hole(&mut self, pick: u64) -> Option<(u64, MappedPage)> {
        let Some(mem) = &self.machine.mem else {
            return None;
        };
        let Some(physical) = page_in_holes(&self.machine.holes, pick) else {
            self.note_once("no-holes", || "/proc/iomem leaves no hole to probe".to_string());
            return None;
        };
        match MappedPage::map(mem, physical) {
            Ok(page) => Some((physical, page)),
            Err(errno) => {
                self.counts.mem_unmappable += 1;
                let key = format!("mmap-{errno}");
                self.note_once(&key, || {
                    format!(
                        "{MEM_DEVICE} would not map {physical:#x}: {}",
                        io::Error::from_raw_os_error(errno)
                    )
                });
                None
            }
        }
    }

    fn probe_memory(&mut self, pick: u64, offset: u16, value: u64) {
        let Some((physical, page)) = self.map_hole(pick) else {
            return;
        };
        for size in [1u8, 2, 4, 8] {
            let offset = u64::from(offset) & !(u64::from(size) - 1);
            let at = physical + offset;
            // SAFETY: inside the mapped page.
            let address = unsafe { page.address.add(offset as usize) };
            self.check_load(address, size, at, "read");
            // SAFETY: as above.
            let stored = unsafe { guarded_store(address, size, value) };
            self.counts.mem_write += 1;
            if let Err(signal) = stored {
                self.fail(format!("a {size}-byte write at {at:#x} raised signal {signal}"));
            }
            self.check_load(address, size, at, "reread");
        }
    }

    fn check_load(&mut self, address: *const u8, size: u8, at: u64, what: &str) {
        // SAFETY: `address` lies in a mapped page.
        let loaded = unsafe { guarded_load(address, size) };
        self.counts.mem_read += 1;
        match loaded {
            Ok(value) if empty_bus_value(value, size) => {}
            Ok(value) => self.fail(format!("read {value:#x} at {at:#x} ({size} bytes, {what})")),
            Err(signal) => self.fail(format!("a {size}-byte {what} at {at:#x} raised signal {signal}")),
        }
    }

    fn pread_memory(&mut self, pick: u64) {
        let Some(mem) = &self.machine.mem else {
            return;
        };
        let Some(physical) = page_in_holes(&self.machine.holes, pick) else {
            return;
        };
        let at = physical + ((pick % PAGE_SIZE) & !15);
        let mut bytes = [0u8; 16];
        match mem.read_at(&mut bytes, at) {
            Ok(read) => {
                self.counts.mem_pread += 1;
                if let Some(byte) = bytes[..read].iter().find(|&&byte| byte != 0 && byte != 0xff) {
                    self.fail(format!(
                        "read {byte:#x} at {at:#x} (pread of {MEM_DEVICE}): {:02x?}",
                        &bytes[..read]
                    ));
                }
            }
            Err(error) => {
                self.counts.mem_pread_refused += 1;
                let key = format!("pread-{:?}", error.raw_os_error());
                self.note_once(&key, || {
                    format!("pread of {MEM_DEVICE} at {at:#x}: {error} (the kernel reads only below the end of RAM)")
                });
            }
        }
    }

    fn vmcall(&mut self, rax: u64, rdi: u64, rsi: u64, rdx: u64) {
        self.counts.vmcall += 1;
        match guarded_vmcall(rax, rdi, rsi, rdx) {
            Ok(out) if out != rax => self.counts.vmcall_error += 1,
            Ok(_) => {}
            Err(_signal) => self.counts.vmcall_fault += 1,
        }
    }

    fn single_step(&mut self) {
        let with_in = self.machine.io_permitted;
        let (labels, vmcall_faulted) = stepped_sequence(with_in);
        let traps = TRAP_COUNT.load(Ordering::SeqCst).min(MAX_TRAPS);
        let rips: Vec<u64> = TRAP_RIPS[..traps]
            .iter()
            .map(|rip| rip.load(Ordering::SeqCst))
            .collect();
        self.counts.tf_steps += traps as u64;
        let mut expected = vec![("CPUID", labels.after_cpuid), ("RDTSC", labels.after_rdtsc)];
        if !vmcall_faulted {
            expected.push(("VMCALL", labels.after_vmcall));
        }
        if with_in {
            expected.push(("IN", labels.after_in));
        }
        for (instruction, label) in expected {
            if !rips.contains(&label) {
                self.fail(format!(
                    "no single-step #DB after {instruction} (expected one at rip {label:#x}; {traps} traps at {rips:x?})"
                ));
            }
        }
    }

    /// Single-stepped `rep movsb` on RAM (the CPU's own behaviour), from a
    /// hole (Keel emulates it) and `rep insb` (Keel emulates it): both
    /// emulated ones must trap after every iteration, as the CPU does.
    fn step_string(&mut self, pick: u64) {
        const LEN: usize = 8;
        let source = [0x11u8; LEN];
        let mut target = [0u8; LEN];
        // SAFETY: both are ours.
        let ram = unsafe { stepped_rep_movsb(target.as_mut_ptr(), source.as_ptr(), LEN) };
        self.counts.tf_string_steps += ram.iterations();
        if ram.signal.is_some() || ram.iterations() == 0 {
            self.fail(format!("single-stepped rep movsb on RAM: {ram:?}"));
            return;
        }
        self.note_once("tf-string", || {
            format!(
                "single-stepped rep movsb of {LEN} bytes on RAM traps {} times ({} with RIP still on it)",
                ram.iterations(),
                ram.on_instruction
            )
        });
        if self.machine.mem.is_some() {
            if let Some((physical, page)) = self.map_hole(pick) {
                let offset = ((pick >> 40) % (PAGE_SIZE - LEN as u64)) & !7;
                // SAFETY: LEN bytes from `offset` lie in the mapped page.
                let hole = unsafe { stepped_rep_movsb(target.as_mut_ptr(), page.address.add(offset as usize), LEN) };
                self.counts.tf_string_steps += hole.iterations();
                self.counts.string_mmio += 1;
                self.compare_stepped("rep movsb from a hole", physical + offset, &hole, &ram);
                if let Some(byte) = target.iter().find(|&&byte| byte != 0 && byte != 0xff) {
                    self.fail(format!(
                        "read {byte:#x} at {:#x} (single-stepped rep movsb)",
                        physical + offset
                    ));
                }
            }
        }
        if self.machine.io_permitted {
            let mut bytes = [0u8; LEN];
            let port = stepped_rep_insb(STEP_PORT, &mut bytes);
            self.counts.tf_string_steps += port.iterations();
            self.counts.string_io += 1;
            self.compare_stepped("rep insb", u64::from(STEP_PORT), &port, &ram);
        }
    }

    fn compare_stepped(&mut self, what: &str, at: u64, emulated: &SteppedRep, native: &SteppedRep) {
        if emulated.signal.is_some() || emulated.on_instruction != native.on_instruction || emulated.past != native.past
        {
            self.fail(format!(
                "single-stepped {what} ({at:#x}) trapped {} times, {} with RIP still on it ({} traps in all, \
                 signal {:?}); the CPU's own rep movsb on RAM traps {} times, {} on it (one #DB per iteration)",
                emulated.iterations(),
                emulated.on_instruction,
                emulated.traps,
                emulated.signal,
                native.iterations(),
                native.on_instruction
            ));
        }
    }

    fn int1(&mut self) {
        let (on_instruction, past, traps) = int1();
        self.counts.int1_traps += past + on_instruction;
        if on_instruction != 0 || past != 1 {
            self.fail(format!(
                "INT1 raised {traps} #DB: {on_instruction} returning onto INT1 itself, {past} past it (expected one, past it)"
            ));
        }
    }

    fn alignment_check(&mut self) {
        let traps = misaligned_accesses();
        self.counts.ac_traps += traps;
        if traps != 2 {
            self.fail(format!(
                "{traps} #AC (SIGBUS BUS_ADRALN) for 2 misaligned accesses with RFLAGS.AC set"
            ));
        }
    }

    fn breakpoints(&mut self) {
        if matches!(self.counts.breakpoints, BreakpointState::Unavailable(_)) {
            return;
        }
        let mut stack_slot = [0u64; 2];
        let targets: [(&str, u64, u64, u32); 3] = [
            ("data", WATCHED.as_ptr() as u64, 8, HW_BREAKPOINT_W),
            ("instruction", watched_function as *const () as u64, 8, HW_BREAKPOINT_X),
            ("stack", stack_slot.as_mut_ptr() as u64, 8, HW_BREAKPOINT_W),
        ];
        let mut hits = Vec::new();
        for (what, address, len, kind) in targets {
            let breakpoint = match open_breakpoint(address, len, kind) {
                Ok(breakpoint) => breakpoint,
                Err(errno) => {
                    self.counts.breakpoints = BreakpointState::Unavailable(errno);
                    self.note_once("perf", || {
                        format!(
                            "no hardware breakpoints: perf_event_open: {} (#DB via breakpoints skipped)",
                            io::Error::from_raw_os_error(errno)
                        )
                    });
                    return;
                }
            };
            for hit in 0..BREAKPOINT_HITS {
                match what {
                    "data" => WATCHED.store(hit, Ordering::SeqCst),
                    "instruction" => {
                        let function: extern "C" fn(u64) -> u64 = std::hint::black_box(watched_function);
                        std::hint::black_box(function(hit));
                    }
                    _ => {
                        // SAFETY: a store to our own stack slot.
                        unsafe { std::ptr::write_volatile(stack_slot.as_mut_ptr(), hit) };
                    }
                }
            }
            hits.push((what, breakpoint_count(&breakpoint)));
            drop(breakpoint);
        }
        std::hint::black_box(&stack_slot);
        let total: u64 = hits.iter().map(|(_, count)| count).sum();
        self.counts.db_traps += total;
        if total == 0 {
            if self.counts.breakpoints != BreakpointState::Working {
                self.counts.breakpoints = BreakpointState::NeverFired;
            }
            self.note_once("never-fired", || {
                "hardware breakpoints never fired (no debug-register breakpoints in this CPU?)".to_string()
            });
            return;
        }
        self.counts.breakpoints = BreakpointState::Working;
        for (what, count) in hits {
            if count != BREAKPOINT_HITS {
                self.fail(format!(
                    "the {what} breakpoint counted {count} #DB for {BREAKPOINT_HITS} hits"
                ));
            }
        }
    }

    fn string_mmio(&mut self, pick: u64) {
        let Some((physical, page)) = self.map_hole(pick) else {
            return;
        };
        let offset = ((pick >> 32) % (PAGE_SIZE - 64)) & !15;
        let at = physical + offset;
        // SAFETY: 64 bytes from `offset` lie inside the mapped page.
        let source = unsafe { page.address.add(offset as usize) };
        let mut bytes = [0x33u8; 16];
        // SAFETY: `bytes` is ours; the source is mapped.
        let copied = unsafe { guarded_rep_movsb(bytes.as_mut_ptr(), source, bytes.len()) };
        self.counts.string_mmio += 1;
        self.check_string_read("rep movsb", at, copied, &bytes);
        let mut quads = [0x3333_3333_3333_3333u64; 2];
        // SAFETY: as above, 16 bytes.
        let copied = unsafe { guarded_rep_movsq(quads.as_mut_ptr(), source.cast(), quads.len()) };
        self.counts.string_mmio += 1;
        let quad_bytes: Vec<u8> = quads.iter().flat_map(|quad| quad.to_le_bytes()).collect();
        self.check_string_read("rep movsq", at, copied, &quad_bytes);
        // SAFETY: 16 bytes of the mapped page.
        let stored = unsafe { guarded_rep_stosb(page.address.add(offset as usize + 32), 0x5a, 16) };
        self.counts.string_mmio += 1;
        if let Err(signal) = stored {
            self.fail(format!("rep stosb to {:#x} raised signal {signal}", at + 32));
        }
        // SAFETY: inside the mapped page.
        self.check_load(
            unsafe { page.address.add(offset as usize + 32) },
            8,
            at + 32,
            "reread after rep stosb",
        );
    }

    fn check_string_read(&mut self, what: &str, at: u64, result: Result<(), i32>, bytes: &[u8]) {
        match result {
            Err(signal) => self.fail(format!("{what} from {at:#x} raised signal {signal}")),
            Ok(()) => {
                if let Some(byte) = bytes.iter().find(|&&byte| byte != 0 && byte != 0xff) {
                    self.fail(format!("read {byte:#x} at {at:#x} ({what}): {bytes:02x?}"));
                }
            }
        }
    }

    fn string_port(&mut self) {
        if !self.machine.io_permitted {
            return;
        }
        let single = guarded_inb(STEP_PORT);
        let mut bytes = [0x33u8; 8];
        let repeated = guarded_rep_insb(STEP_PORT, &mut bytes);
        self.counts.string_io += 1;
        match (single, repeated) {
            (Ok(byte), Ok(())) => {
                if bytes.iter().any(|&other| other != byte) {
                    self.fail(format!(
                        "rep insb from port {STEP_PORT:#x} gave {bytes:02x?} where in gave {byte:#04x}"
                    ));
                }
            }
            (single, repeated) => self.fail(format!(
                "port {STEP_PORT:#x}: in gave {single:?}, rep insb {repeated:?} (Err: the signal raised)"
            )),
        }
        let single = guarded_ind(STEP_PORT);
        let mut words = [0x3333_3333u32; 4];
        let repeated = guarded_rep_insd(STEP_PORT, &mut words);
        self.counts.string_io += 1;
        match (single, repeated) {
            (Ok(word), Ok(())) => {
                if words.iter().any(|&other| other != word) {
                    self.fail(format!(
                        "rep insd from port {STEP_PORT:#x} gave {words:08x?} where in gave {word:#010x}"
                    ));
                }
            }
            (single, repeated) => self.fail(format!(
                "port {STEP_PORT:#x}: in (32-bit) gave {single:?}, rep insd {repeated:?} (Err: the signal raised)"
            )),
        }
        let text = b"keel-stress rep outsb\n";
        self.counts.string_io += 1;
        if let Err(signal) = guarded_rep_outsb(STRING_OUT_PORT, text) {
            self.fail(format!("rep outsb to port {STRING_OUT_PORT:#x} raised signal {signal}"));
        }
    }

    fn perform(&mut self, op: Op) {
        match op {
            Op::Cpuid { leaf, subleaf } => self.cpuid(leaf, subleaf),
            Op::MsrRead { msr } => {
                self.read_msr(msr);
            }
            Op::MsrWrite { msr, value } => {
                self.write_msr(msr, value);
            }
            Op::MsrMustRefuse => self.must_refuse(),
            Op::PortRead { port, size } => self.read_port(port, size),
            Op::PortWrite { pick, size, value } => self.write_port(pick, size, value),
            Op::Mem { pick, offset, value } => self.probe_memory(pick, offset, value),
            Op::MemPread { pick } => self.pread_memory(pick),
            Op::Vmcall { rax, rdi, rsi, rdx } => self.vmcall(rax, rdi, rsi, rdx),
            Op::SingleStep => self.single_step(),
            Op::StepString { pick } => self.step_string(pick),
            Op::Int1 => self.int1(),
            Op::AlignmentCheck => self.alignment_check(),
            Op::Breakpoints => self.breakpoints(),
            Op::StringMmio { pick } => self.string_mmio(pick),
            Op::StringPort => self.string_port(),
        }
    }
}

/// Opens `path` read-write (O_SYNC: uncached mappings of /dev/mem);
/// failing that is a failure of the run, as the group cannot be tested.
fn open_device(path: &str, fail: &mut Vec<String>) -> Option<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(error) => {
            fail.push(format!("cannot open {path}: {error}"));
            None
        }
    }
}

/// Permission for `count` ports from `port`.
fn ioperm(port: u16, count: u16) -> bool {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    unsafe { libc::ioperm(libc::c_ulong::from(port), libc::c_ulong::from(count), 1) == 0 }
}

/// Permission for every port (Linux emulates IOPL 3 with a full I/O bitmap).
fn iopl() -> bool {
    // SAFETY: iopl only changes this process's I/O permissions.
    unsafe { libc::iopl(3) == 0 }
}

/// Runs `options`' rounds, saying progress and the summary through `say`;
/// whether no failure was seen.
pub fn run(options: Options, say: &dyn Fn(String)) -> bool {
    let mut failures = Vec::new();
    if let Err(error) = install_signal_handlers() {
        failures.push(format!("cannot install the signal handlers: {error}"));
    }
    let wanted = |group| !options.skip.contains(group);
    let msr = if wanted(Group::Msr) {
        open_device(MSR_DEVICE, &mut failures)
    } else {
        None
    };
    // iopl(3) lets IN and OUT reach every port from here; without it (a
    // kernel without CONFIG_X86_IOPL_IOPERM), /dev/port.
    let all_ports = iopl();
    let ports = if !wanted(Group::Port) {
        Ports::Unavailable
    } else if all_ports {
        Ports::Instructions
    } else {
        open_device(PORT_DEVICE, &mut failures).map_or(Ports::Unavailable, Ports::Device)
    };
    let mem = if wanted(Group::Mem) || wanted(Group::String) {
        open_device(MEM_DEVICE, &mut failures)
    } else {
        None
    };
    let physical_bits = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|cpuinfo| physical_address_bits(&cpuinfo))
        .unwrap_or(DEFAULT_PHYSICAL_BITS);
    let iomem = fs::read_to_string("/proc/iomem").unwrap_or_default();
    let holes = holes(&parse_iomem(&iomem), 1u64 << physical_bits);
    let acpi_ports = fs::read(FADT).map(|table| fadt_port_ranges(&table)).unwrap_or_default();
    let io_permitted = all_ports || (ioperm(STEP_PORT, 4) && ioperm(STRING_OUT_PORT, 1));
    let machine = Machine {
        msr,
        ports,
        mem,
        holes,
        acpi_ports,
        io_permitted,
    };
    let mut run = Run {
        machine,
        counts: Counts::default(),
        say,
        noted: Vec::new(),
    };
    let hole_list: Vec<String> = run
        .machine
        .holes
        .iter()
        .map(|(start, end)| format!("{start:#x}-{:#x}", end - 1))
        .collect();
    say(format!(
        "keel-stress: hostile start seed={} seconds={} rounds={} skip={} phys_bits={physical_bits} holes={} acpi_ports={:x?} ports={} string_ports={}",
        options.seed,
        options.duration.map_or("-".to_string(), |d| d.as_secs().to_string()),
        options.rounds.map_or("-".to_string(), |r| r.to_string()),
        options.skip,
        hole_list.join(","),
        run.machine.acpi_ports,
        match run.machine.ports {
            Ports::Instructions => "in/out",
            Ports::Device(_) => PORT_DEVICE,
            Ports::Unavailable => "none",
        },
        if io_permitted { "yes" } else { "no" },
    ));
    if !io_permitted && (wanted(Group::Tf) || wanted(Group::String)) {
        run.note_once("ioperm", || {
            format!(
                "iopl and ioperm refused ports {STEP_PORT:#x} and {STRING_OUT_PORT:#x}: {} (no IN under single-step, no string port I/O)",
                io::Error::last_os_error()
            )
        });
    }
    for failure in failures {
        run.fail(failure);
    }

    let start = Instant::now();
    let mut last_progress = start;
    let mut rng = Rng::new(options.seed);
    let over = |round: u64| {
        options.rounds.is_some_and(|rounds| round >= rounds)
            || options.duration.is_some_and(|duration| start.elapsed() >= duration)
    };
    if wanted(Group::Cpuid) {
        run.sweep_cpuid();
    }
    let mut round = 0;
    'rounds: while !over(round) {
        run.counts.rounds += 1;
        for op in plan_round(&mut rng, round, options.skip) {
            run.perform(op);
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                say(run.counts.progress(round));
                last_progress = Instant::now();
            }
            if options.duration.is_some_and(|duration| start.elapsed() >= duration) {
                break 'rounds;
            }
        }
        round += 1;
    }
    say(run.counts.summary(options.seed));
    run.counts.failures == 0
}

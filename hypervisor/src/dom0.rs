//! Dom0: an unmodified Linux kernel (multiboot2 module `dom0-kernel`, its
//! module command line is the kernel's) with its initramfs (`dom0-initrd`),
//! booted through the 64-bit Linux boot protocol on Keel's virtual platform.
//!
//! Guest-physical layout: RAM from 0 (the legacy hole 0xA0000-0xFFFFF is
//! reserved in the e820 map and holds the ACPI tables at 0xE0000), boot
//! structures in low memory, the kernel at 16 MiB, the initrd at the top of
//! RAM; the I/O APIC at 0xFEC00000 is emulated MMIO; the local APIC is in
//! x2APIC mode (MSRs only).

use alloc::boxed::Box;

use keel_acpi_tables::{
    build_guest_acpi, BootArchFlags, CmosRtc, GuestAcpiConfig, IoApicConfig, PowerManagement, ResetRegister,
    SerialPort, SleepRegisters, DEFAULT_LOCAL_APIC_ADDRESS, KEEL_OEM_ID,
};
use keel_devices::acpi_pm::{PM1A_CONTROL_PORT, PM1A_EVENT_PORT, PM_TIMER_PORT, SLEEP_CONTROL_PORT, SLEEP_STATUS_PORT};
use keel_devices::ioapic::IOAPIC_BASE;
use keel_devices::PowerAction;
use keel_guest_loader::boot_params::{GuestMemoryLayout, LEGACY_HOLE};
use keel_guest_loader::linux::{load_linux, LinuxLayout};
use keel_guest_loader::long_mode::LongModeLayout;
use keel_hypervisor::cmdline::Options;
use multiboot2::BootInformation;

use crate::domain::Domain;
use crate::exits::{report_stop, run_until_stopped, StopReason, TimeSplit};
use crate::platform::Outcome;
use crate::vcpu::LongModeEntry;
use crate::vmx::{VmxCpu, VmxVcpu};
use crate::vplatform::{Host, VirtualPlatform, COM1_BASE, COM1_IRQ, IOAPIC_ID};

const DOM0_ID: u16 = 0;
const DOM0_VPID: u16 = 1;
const GDT_GPA: u64 = 0x1000;
const STACK_TOP_GPA: u64 = 0x7000;
const ZERO_PAGE_GPA: u64 = 0x7000;
const PAGE_TABLES_GPA: u64 = 0x10000;
const CMDLINE_GPA: u64 = 0x20000;
const ACPI_TABLES_GPA: u64 = 0xe0000;
/// The boot page tables map the low 4 GiB: RAM, the boot structures and
/// everything the kernel touches before it builds its own tables.
const IDENTITY_MAP_BYTES: u64 = 4 << 30;
/// Guest wall clock when the host RTC is unreadable (2026-01-01T00:00:00Z).
const FALLBACK_WALLCLOCK: u64 = 1_767_225_600;
const SCI_IRQ: u16 = 9;
/// The RTC's ISA IRQ; Keel's RTC raises no interrupts (no alarms or update
/// interrupts), but the description lets Linux bind its driver.
const RTC_IRQ: u32 = 8;

/// The kernel, initramfs and command line found among the boot modules.
struct Dom0Images<'a> {
    kernel: &'a [u8],
    initrd: Option<&'a [u8]>,
    cmdline: &'a str,
}

/// Whether the bootloader passed a Dom0 kernel.
pub fn kernel_present(boot_info: &BootInformation) -> bool {
    boot_info
        .module_tags()
        .any(|module| module_role(module.cmdline().unwrap_or("")).0 == "dom0-kernel")
}

fn module_role(cmdline: &str) -> (&str, &str) {
    let cmdline = cmdline.trim();
    cmdline
        .split_once(' ')
        .map_or((cmdline, ""), |(role, rest)| (role, rest.trim()))
}

fn find_images<'a>(boot_info: &'a BootInformation) -> Option<Dom0Images<'a>> {
    let mut kernel = None;
    let mut initrd = None;
    for module in boot_info.module_tags() {
        let (role, rest) = module_role(module.cmdline().unwrap_or(""));
        let start = module.start_address() as usize;
        let len = (module.end_address() as usize).saturating_sub(start);
        // SAFETY: GRUB loaded the module at [start, end) below 4 GiB, which
        // is identity-mapped; memory::init reserved it, so nothing else
        // writes there while Keel runs.
        let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
        match role {
            "dom0-kernel" => kernel = Some((bytes, rest)),
            "dom0-initrd" => initrd = Some(bytes),
            other => log::warn!("ignoring boot module with unknown role `{other}`"),
        }
    }
    let (kernel, cmdline) = kernel?;
    Some(Dom0Images {
        kernel,
        initrd,
        cmdline,
    })
}

/// Boots Dom0 and runs it until it powers off or fails; a reset boots it
/// again from the same images, like a machine's reset button.
pub fn run(cpu: &VmxCpu, boot_info: &BootInformation, options: &Options, tsc_hz: Option<u64>) -> Outcome {
    let outcome = match find_images(boot_info) {
        Some(images) => loop {
            match boot(cpu, &images, options, tsc_hz) {
                Ok(StopReason::Power(PowerAction::Reset)) => log::info!("dom0 reset: booting it again"),
                Ok(StopReason::Power(PowerAction::PowerOff)) => break Outcome::Success,
                Ok(_) | Err(()) => break Outcome::Failure,
            }
        },
        None => {
            log::error!("dom0: no `dom0-kernel` boot module");
            Outcome::Failure
        }
    };
    log::info!("dom0 finished");
    outcome
}

/// One boot of Dom0, from loading its images to its stop.
fn boot(cpu: &VmxCpu, images: &Dom0Images, options: &Options, tsc_hz: Option<u64>) -> Result<StopReason, ()> {
    let ram_bytes = u64::from(options.dom0_mem_mib) << 20;
    log::info!(
        "dom0: loading Linux ({} KiB kernel, {} KiB initrd, {} MiB RAM): {}",
        images.kernel.len() / 1024,
        images.initrd.map_or(0, |initrd| initrd.len() / 1024),
        options.dom0_mem_mib,
        images.cmdline
    );
    let mut domain = Domain::new(DOM0_ID, ram_bytes).map_err(|error| log::error!("dom0: {error}"))?;
    domain.cpu = cpu.guest_cpu(tsc_hz, 0);
    let stop = prepare(&mut domain, images, ram_bytes, tsc_hz).and_then(|entry| run_vcpu(cpu, &mut domain, &entry));
    domain.destroy();
    stop
}

/// Platform, ACPI tables and the kernel in guest memory; returns the entry state.
fn prepare(domain: &mut Domain, images: &Dom0Images, ram_bytes: u64, tsc_hz: Option<u64>) -> Result<LongModeEntry, ()> {
    let wallclock = crate::arch::rtc::read_unix_seconds().unwrap_or(FALLBACK_WALLCLOCK);
    let platform = VirtualPlatform::new(Host, tsc_hz.unwrap_or(1_000_000_000), wallclock)
        .map_err(|error| log::error!("dom0: {error}"))?;
    domain.platform = Some(Box::new(platform));

    let acpi = build_guest_acpi(&acpi_config(), ACPI_TABLES_GPA)
        .map_err(|error| log::error!("dom0: building ACPI tables: {error:?}"))?;
    let ram = domain.ram_mut();
    let start = ACPI_TABLES_GPA as usize;
    ram.get_mut(start..start + acpi.bytes.len())
        .ok_or_else(|| log::error!("dom0: the ACPI tables do not fit below 1 MiB"))?
        .copy_from_slice(&acpi.bytes);
    install_reset_vector(ram)?;

    let reserved = [LEGACY_HOLE];
    let layout = LinuxLayout {
        memory: GuestMemoryLayout {
            ram_bytes,
            reserved: &reserved,
        },
        zero_page_gpa: ZERO_PAGE_GPA,
        cmdline_gpa: CMDLINE_GPA,
        long_mode: LongModeLayout {
            page_tables_gpa: PAGE_TABLES_GPA,
            gdt_gpa: GDT_GPA,
            identity_map_bytes: IDENTITY_MAP_BYTES,
        },
        acpi_rsdp_gpa: Some(acpi.rsdp_gpa),
    };
    let entry = load_linux(ram, images.kernel, images.initrd, images.cmdline, &layout)
        .map_err(|error| log::error!("dom0: cannot load the kernel: {error}"))?;
    log::info!(
        "dom0: kernel at {:#x}, entry {:#x}, initrd {}",
        entry.kernel.start,
        entry.rip,
        entry
            .initrd
            .map_or(alloc::string::String::from("none"), |region| alloc::format!(
                "at {:#x}",
                region.start
            ))
    );
    Ok(LongModeEntry {
        rip: entry.rip,
        rsp: STACK_TOP_GPA,
        rdi: 0,
        rsi: entry.rsi,
        state: entry.long_mode,
    })
}

/// Where an x86 CPU starts after reset (F000:FFF0): Linux's BIOS reboot
/// method (its fallback when it does not pick ACPI) jumps here in real mode.
const RESET_VECTOR_GPA: u64 = 0xffff0;
/// `mov al, 0xfe; out 0x64, al; cli; hlt`: the keyboard-controller reset
/// pulse, which Keel turns into a reset of the domain, as firmware would.
const RESET_VECTOR_CODE: [u8; 7] = [0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xf4];

fn install_reset_vector(ram: &mut [u8]) -> Result<(), ()> {
    let start = RESET_VECTOR_GPA as usize;
    ram.get_mut(start..start + RESET_VECTOR_CODE.len())
        .ok_or_else(|| log::error!("dom0: RAM does not reach the reset vector"))?
        .copy_from_slice(&RESET_VECTOR_CODE);
    Ok(())
}

fn run_vcpu(cpu: &VmxCpu, domain: &mut Domain, entry: &LongModeEntry) -> Result<StopReason, ()> {
    let mut vcpu = VmxVcpu::new(cpu, entry, domain.eptp(), DOM0_VPID, time_slice_tsc(domain.cpu.tsc_hz))
        .map_err(|error| log::error!("dom0: creating its vCPU: {error}"))?;
    crate::msr::pass_through_msrs(&mut vcpu);
    let mut time = TimeSplit::default();
    let stop = run_until_stopped(domain, &mut vcpu, &mut time);
    if let StopReason::Power(PowerAction::PowerOff) = stop {
        log::info!("dom0 powered off");
    }
    report_stop(DOM0_ID, &stop, &vcpu, &time);
    vcpu.destroy();
    Ok(stop)
}

/// 10 ms of Dom0 running between looks at its timers and the console; an
/// idle Dom0 is woken every 1 ms instead (see `exits::handlers::halt`).
fn time_slice_tsc(tsc_hz: Option<u64>) -> u64 {
    tsc_hz.map_or(2_000_000, |hz| hz / 100)
}

fn acpi_config() -> GuestAcpiConfig<'static> {
    GuestAcpiConfig {
        cpus: &[0],
        local_apic_address: DEFAULT_LOCAL_APIC_ADDRESS,
        io_apic: Some(IoApicConfig {
            id: IOAPIC_ID,
            address: IOAPIC_BASE as u32,
            gsi_base: 0,
        }),
        isa_overrides: &[],
        pm: PowerManagement {
            pm1a_event_block: PM1A_EVENT_PORT,
            pm1a_control_block: PM1A_CONTROL_PORT,
            pm_timer_block: Some(PM_TIMER_PORT),
            sci_irq: SCI_IRQ,
            reset_register: ResetRegister::PCI_RESET_CONTROL,
            sleep_registers: Some(SleepRegisters {
                control_port: SLEEP_CONTROL_PORT,
                status_port: SLEEP_STATUS_PORT,
            }),
        },
        // Hardware-reduced ACPI: Linux then uses no legacy PIC or PIT, and
        // the local APIC timer (TSC deadline) is its clock event device.
        hw_reduced: true,
        boot_arch_flags: BootArchFlags::VGA_NOT_PRESENT,
        oem_id: KEEL_OEM_ID,
        serial_ports: &[SerialPort {
            io_base: COM1_BASE,
            gsi: COM1_IRQ,
        }],
        cmos_rtc: Some(CmosRtc {
            io_base: 0x70,
            gsi: RTC_IRQ,
        }),
    }
}

//! Keel: a Type-1 hypervisor for Intel VMX. GRUB loads this image with
//! multiboot2; `arch/boot.s` switches to long mode and calls [`keel_main`].
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod console;
mod dom0;
mod domain;
mod domains;
mod exits;
mod halt;
mod host_acpi;
mod host_msix;
mod iommu;
mod linux_domain;
mod memory;
mod mmio;
mod msr;
mod passthrough;
mod scheduler;
mod selftest;
mod string_emulation;
mod vcpu;
mod vmx;
mod vplatform;

use halt::Outcome;
use keel_hypervisor::cmdline::{self, GuestMode, IommuMode, Options};
use multiboot2::{BootInformation, BootInformationHeader};

const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

#[no_mangle]
extern "C" fn keel_main(boot_info_addr: u32, magic: u32) -> ! {
    console::init(log::LevelFilter::Info);
    log::info!("Keel hypervisor {} starting", env!("CARGO_PKG_VERSION"));
    if magic != MULTIBOOT2_BOOTLOADER_MAGIC {
        log::error!("not loaded by a multiboot2 bootloader (magic {magic:#x}); stopping");
        halt::stop(Outcome::Failure);
    }
    // SAFETY: the magic says a multiboot2 loader passed this address; the
    // crate validates the header (size, alignment) before using it.
    let boot_info = match unsafe { BootInformation::load(boot_info_addr as usize as *const BootInformationHeader) } {
        Ok(info) => info,
        Err(error) => {
            log::error!("boot information unreadable: {error:?}; stopping");
            halt::stop(Outcome::Failure);
        }
    };
    let command_line = boot_info
        .command_line_tag()
        .and_then(|tag| tag.cmdline().ok())
        .unwrap_or("");
    let options: Options = cmdline::parse(command_line, |bad| {
        log::warn!("ignoring command-line option `{}`: {}", bad.option, bad.reason)
    });
    log::set_max_level(options.log_level);
    log::info!("command line: `{command_line}`");
    if !console::uart_present() {
        // Nobody will read this, but a debugger's memory dump might.
        log::warn!("no UART at COM1: console output is dropped and Dom0 gets no console input");
    }
    if options.exit_emulator {
        let firmware = boot_info
            .rsdp_v2_tag()
            .and_then(|tag| tag.oem_id().ok())
            .or_else(|| boot_info.rsdp_v1_tag().and_then(|tag| tag.oem_id().ok()));
        if keel_hypervisor::host_probe::is_emulator_firmware(firmware) {
            halt::set_exit_emulator(true);
        } else {
            log::warn!(
                "ignoring exit=emulator: the firmware (ACPI OEM ID {:?}) is not an emulator's",
                firmware.unwrap_or("none")
            );
        }
    }

    let host_tables = arch::init();
    match arch::stack_guard::unmapped_guard() {
        Some(guard) => log::info!("boot stack guard page at {guard:#x}: not mapped"),
        None => log::warn!("the boot stack's guard page is mapped: a stack overflow would go unnoticed"),
    }
    let total_memory = match memory::init(&boot_info) {
        Ok(free) => {
            console::keep_log();
            log::info!("memory: {} MiB free for guests and tables", free >> 20);
            free
        }
        Err(error) => {
            log::error!("memory setup failed: {error}; stopping");
            halt::stop(Outcome::Failure);
        }
    };

    host_pci_init(&boot_info);
    match options.iommu {
        IommuMode::Off => log::info!("iommu: left alone (iommu=off): DMA is not confined"),
        IommuMode::On | IommuMode::Selftest => iommu::init(&boot_info, options.iommu_dmar),
    }

    let tsc_hz = arch::tsc::calibrate();
    if !arch::host_timer::init() {
        log::info!("no x2APIC TSC-deadline timer: the idle loop spins");
    }
    match tsc_hz {
        Some(hz) => log::info!("TSC: {}.{:03} MHz", hz / 1_000_000, (hz / 1_000) % 1_000),
        None => log::warn!("TSC: the PIT did not count; guests get no TSC frequency"),
    }

    if options.iommu == IommuMode::Selftest && !iommu::selftest(tsc_hz) {
        halt::stop(Outcome::Failure);
    }

    let cpu = match vmx::enable(host_tables) {
        Ok(cpu) => cpu,
        Err(vmx::VmxError::NotSupported) => {
            log::info!("VMX not supported by this CPU (CPUID.1:ECX.VMX = 0); nothing to run, stopping");
            halt::stop(Outcome::Success);
        }
        Err(error) => {
            log::error!("cannot enter VMX root mode: {error}; stopping");
            halt::stop(Outcome::Failure);
        }
    };
    log::info!("VMX root mode entered (VMCS revision {:#x})", cpu.revision_id());
    let run_dom0 = match options.guest {
        Some(GuestMode::Dom0) => true,
        None => dom0::kernel_present(&boot_info),
        Some(_) => false,
    };
    let outcome = if run_dom0 {
        dom0::run(&cpu, &boot_info, &options, tsc_hz, total_memory)
    } else {
        selftest::run(&cpu, &options)
    };
    halt::stop(outcome)
}

/// ECAM from the firmware's MCFG where it has a usable window, else
/// configuration mechanism #1.
fn host_pci_init(boot_info: &BootInformation) {
    let windows = match host_acpi::find(boot_info, *b"MCFG") {
        Ok(Some(table)) => keel_pci::mcfg::parse(&table).unwrap_or_else(|error| {
            log::warn!("pci: MCFG refused ({error:?}): configuration mechanism #1 only");
            alloc::vec::Vec::new()
        }),
        Ok(None) => alloc::vec::Vec::new(),
        Err(error) => {
            log::warn!("pci: {error}: configuration mechanism #1 only");
            alloc::vec::Vec::new()
        }
    };
    arch::pci::init(&windows);
    match windows.first() {
        Some(window) if arch::pci::ecam_in_use() => log::info!(
            "pci: ECAM at {:#x} for buses {:#x}-{:#x}",
            window.base,
            window.start_bus,
            window.end_bus
        ),
        _ => log::info!("pci: configuration mechanism #1 (ports 0xcf8/0xcfc)"),
    }
    const LISTED: usize = 32;
    let functions = keel_pci::enumerate::enumerate(&mut arch::pci::HostConfig);
    let listed = functions.clone();
    for function in functions.iter().take(LISTED) {
        log::info!(
            "pci: {} {:04x}:{:04x} class {:06x}",
            function.bdf,
            function.vendor,
            function.device,
            function.class
        );
    }
    if functions.len() > LISTED {
        log::info!("pci: ... {} functions in all", functions.len());
    }
    passthrough::init(boot_info, listed);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::write_fmt_emergency(format_args!("KEEL PANIC: {info}\n"));
    halt::stop(Outcome::Failure)
}

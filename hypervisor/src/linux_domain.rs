//! Building a Linux domain, Dom0 or DomU: its virtual platform, ACPI
//! tables and the kernel loaded through the 64-bit Linux boot protocol.
//!
//! Guest-physical layout: RAM from 0 (the legacy hole 0xA0000-0xFFFFF is
//! reserved in the e820 map and holds the ACPI tables at 0xE0000 and a
//! reset stub at the reset vector), boot structures in low memory, the
//! kernel at 16 MiB, the initrd at the top of RAM; the I/O APIC at
//! 0xFEC00000 and the local APIC at 0xFEE00000 are emulated MMIO (recorded
//! as such in the domain's memory map). Everything is written through the
//! domain's guest memory, whatever host blocks back its RAM.

use alloc::boxed::Box;
use alloc::string::{String, ToString};

use keel_acpi_tables::{
    build_guest_acpi, BootArchFlags, CmosRtc, GuestAcpiConfig, IoApicConfig, PowerManagement, ResetRegister,
    SerialPort, SleepRegisters, DEFAULT_LOCAL_APIC_ADDRESS, KEEL_OEM_ID,
};
use keel_devices::acpi_pm::{PM1A_CONTROL_PORT, PM1A_EVENT_PORT, PM_TIMER_PORT, SLEEP_CONTROL_PORT, SLEEP_STATUS_PORT};
use keel_devices::ioapic::{IOAPIC_BASE, IOAPIC_MMIO_LEN};
use keel_guest_loader::boot_params::{GuestMemoryLayout, LEGACY_HOLE};
use keel_guest_loader::linux::{load_linux, LinuxLayout};
use keel_guest_loader::long_mode::LongModeLayout;
use keel_memory::{GuestMemory, GuestPhysAddr};

use crate::domain::{Domain, GuestRam};
use crate::vcpu::LongModeEntry;
use crate::vplatform::{Host, VirtualPlatform, COM1_BASE, COM1_IRQ, IOAPIC_ID, LOCAL_APIC_BASE};

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

/// What a Linux domain boots from.
pub struct LinuxImages<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// Gives `domain` its platform (reporting to `host`), ACPI tables and the
/// kernel; returns where its vCPU starts. Errors are messages for the
/// domain's creator.
pub fn prepare(
    domain: &mut Domain,
    images: &LinuxImages,
    host: Host,
    tsc_hz: Option<u64>,
) -> Result<LongModeEntry, String> {
    let wallclock = crate::arch::rtc::read_unix_seconds().unwrap_or(FALLBACK_WALLCLOCK);
    let platform =
        VirtualPlatform::new(host, tsc_hz.unwrap_or(1_000_000_000), wallclock).map_err(|error| error.to_string())?;
    domain.platform = Some(Box::new(platform));

    let acpi = build_guest_acpi(&acpi_config(), ACPI_TABLES_GPA)
        .map_err(|error| alloc::format!("building ACPI tables: {error:?}"))?;
    let ram_bytes = domain.ram_size();
    let memory = domain.memory_mut();
    record_device_ranges(memory)?;
    let acpi_end = ACPI_TABLES_GPA.saturating_add(acpi.bytes.len() as u64);
    if acpi_end > RESET_VECTOR_GPA {
        return Err(String::from("the ACPI tables do not fit below the reset vector"));
    }
    memory
        .write(GuestPhysAddr::new(ACPI_TABLES_GPA), &acpi.bytes)
        .map_err(|error| alloc::format!("writing the ACPI tables: {error}"))?;
    install_reset_vector(memory)?;

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
    let entry = load_linux(memory, images.kernel, images.initrd, images.cmdline, &layout)
        .map_err(|error| alloc::format!("cannot load the kernel: {error}"))?;
    log::info!(
        "domain {}: kernel at {:#x}, entry {:#x}, initrd {}",
        domain.id,
        entry.kernel.start,
        entry.rip,
        entry
            .initrd
            .map_or(String::from("none"), |region| alloc::format!("at {:#x}", region.start))
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

fn install_reset_vector(memory: &mut GuestRam) -> Result<(), String> {
    memory
        .write(GuestPhysAddr::new(RESET_VECTOR_GPA), &RESET_VECTOR_CODE)
        .map_err(|error| alloc::format!("installing the reset vector: {error}"))
}

/// The local APIC's register page (the platform emulates one 4 KiB page).
const LOCAL_APIC_MMIO_LEN: u64 = 0x1000;

/// Records the fixed emulated device windows (I/O APIC, local APIC) in the
/// guest's memory map, so nothing can be mapped over them and a guest-memory
/// access there fails as device memory. The platform still decides which
/// device an access reaches, including the management function's movable
/// BARs.
fn record_device_ranges(memory: &mut GuestRam) -> Result<(), String> {
    for (base, len) in [(IOAPIC_BASE, IOAPIC_MMIO_LEN), (LOCAL_APIC_BASE, LOCAL_APIC_MMIO_LEN)] {
        memory
            .add_mmio(GuestPhysAddr::new(base), len)
            .map_err(|error| alloc::format!("guest memory map: {error}"))?;
    }
    Ok(())
}

/// 10 ms of guest time between looks at the other domains, timers and the
/// console.
pub fn time_slice_tsc(tsc_hz: Option<u64>) -> u64 {
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
        pci: Some(crate::vplatform::PCI_ROOT),
        power_button: Some(crate::vplatform::POWER_BUTTON),
    }
}

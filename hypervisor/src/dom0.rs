//! Dom0: an unmodified Linux kernel (multiboot2 module `dom0-kernel`, its
//! module command line is the kernel's) with its initramfs (`dom0-initrd`),
//! booted through the 64-bit Linux boot protocol on Keel's virtual platform
//! (`linux_domain`), plus the management interface. It is the first domain
//! the scheduler runs; the run ends when Dom0 powers off.

use alloc::boxed::Box;
use alloc::string::String;

use keel_abi::mgmt::{DomainState, LifecycleAction, Name, DOM0};
use keel_hypervisor::cmdline::Options;
use multiboot2::BootInformation;

use crate::arch::unswitched::UnswitchedState;
use crate::domains::{DomainEntry, Images, Lifecycle};
use crate::halt::Outcome;
use crate::scheduler::Scheduler;
use crate::vmx::VmxCpu;

/// Dom0's name in `keel list`, as on Xen.
const DOM0_NAME: &str = "Domain-0";

/// The kernel, initramfs and command line found among the boot modules.
struct Dom0Images {
    kernel: &'static [u8],
    initrd: Option<&'static [u8]>,
    cmdline: String,
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

fn find_images(boot_info: &BootInformation) -> Option<Dom0Images> {
    let mut kernel = None;
    let mut initrd = None;
    for module in boot_info.module_tags() {
        let (role, rest) = module_role(module.cmdline().unwrap_or(""));
        let start = module.start_address() as usize;
        let len = (module.end_address() as usize).saturating_sub(start);
        // SAFETY: GRUB loaded the module at [start, end) below 4 GiB, which
        // is identity-mapped; memory::init reserved it, so nothing else
        // writes there for as long as Keel runs ('static).
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
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
        cmdline: String::from(cmdline),
    })
}

/// Boots Dom0 and runs every domain until Dom0 powers off or fails; a
/// reset boots Dom0 again from the same images, like a machine's reset button.
pub fn run(
    cpu: &VmxCpu,
    boot_info: &BootInformation,
    options: &Options,
    tsc_hz: Option<u64>,
    total_memory: u64,
) -> Outcome {
    let Some(images) = find_images(boot_info) else {
        log::error!("dom0: no `dom0-kernel` boot module");
        return Outcome::Failure;
    };
    log::info!(
        "dom0: loading Linux ({} KiB kernel, {} KiB initrd, {} MiB RAM): {}",
        images.kernel.len() / 1024,
        images.initrd.map_or(0, |initrd| initrd.len() / 1024),
        options.dom0_mem_mib,
        images.cmdline
    );
    let mut scheduler = match Scheduler::new(cpu, tsc_hz, total_memory) {
        Ok(scheduler) => scheduler,
        Err(error) => {
            log::error!("dom0: {error}");
            return Outcome::Failure;
        }
    };
    let outcome = scheduler.run(entry(images, options));
    log::info!("dom0 finished");
    outcome
}

fn entry(images: Dom0Images, options: &Options) -> DomainEntry {
    // Dom0's lifecycle is fixed (see `scheduler::lifecycle`); these only
    // show in listings.
    let action = LifecycleAction::Restart;
    DomainEntry {
        id: DOM0,
        name: Name::new(DOM0_NAME).unwrap_or_else(|_| unreachable!("a valid name")),
        state: DomainState::Building,
        memory_bytes: u64::from(options.dom0_mem_mib) << 20,
        domain: None,
        vcpu: None,
        vpid: 0,
        unswitched: Box::new(UnswitchedState::reset()),
        images: Images::Boot {
            kernel: images.kernel,
            initrd: images.initrd,
            cmdline: images.cmdline,
        },
        lifecycle: Lifecycle {
            on_poweroff: LifecycleAction::Destroy,
            on_reboot: action,
            on_crash: action,
        },
        console_input: Default::default(),
        tables_bytes: 0,
        run_cycles: 0,
        assignments: alloc::vec::Vec::new(),
        virtio: alloc::vec::Vec::new(),
        boots: 0,
    }
}

//! Whether this host's KVM can run Keel (a VMX guest): `xtask run` then
//! prefers QEMU with KVM over Bochs. The detection lives in the boot-test
//! harness (`keel_boot_tests::host_kvm`, with its tests), whose runner uses
//! the same function to skip tests that need nested VMX.

pub use keel_boot_tests::host_kvm::accepts_vmx_guests;

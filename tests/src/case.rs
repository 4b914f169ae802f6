//! A boot test: which machine boots Keel with which command line, and what
//! the serial log must (and must not) show.

use std::time::Duration;

use crate::console::ConsoleStep;
use crate::dom0::Dom0Modules;
use crate::machine::Machine;
use crate::marker::Marker;

/// When a run may stop before its time-out.
#[derive(Debug, Clone)]
pub enum Finish {
    /// As soon as this marker appears; it must also come after every
    /// expected marker for the test to pass.
    OnMarker(Marker),
    /// When the emulator exits on its own (Keel stops it with `exit=emulator`).
    OnEmulatorExit,
}

/// What a test needs from the host besides its emulator. The runner checks
/// each once per run (`crate::runner::HostSupport`); a test whose
/// requirement is not met is not started and is reported as skipped, with
/// the reason, which does not fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// QEMU with KVM and `-cpu host` that can run Keel: /dev/kvm usable
    /// and nested VMX (`crate::host_kvm`). CI machines (a paravirtual
    /// /dev/kvm without VMX) and Bochs-only hosts lack it.
    NestedKvm,
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: &'static str,
    pub machine: Machine,
    /// The hypervisor command line (after the kernel path in grub.cfg).
    pub cmdline: &'static str,
    /// The Dom0 kernel and initramfs the ISO carries as modules, if any.
    pub dom0: Option<Dom0Modules>,
    pub timeout: Duration,
    /// Markers that must appear, in this order.
    pub expected: Vec<Marker>,
    /// Markers that fail the test wherever they appear.
    pub forbidden: Vec<Marker>,
    pub finish: Finish,
    /// Typed into the serial console, step by step. Empty: COM1 only writes
    /// the serial log (no input side); otherwise it is a pseudo-terminal the
    /// harness owns (`crate::console`).
    pub console_input: Vec<ConsoleStep>,
    /// Required process exit status. Only meaningful for QEMU: Bochs always
    /// exits with 1, so Bochs tests are judged by the log alone.
    pub expected_exit_status: Option<i32>,
    /// What the host must offer for the test to run at all.
    pub requirements: Vec<Requirement>,
}

impl TestCase {
    pub fn new(name: &'static str, machine: Machine, cmdline: &'static str, timeout: Duration) -> Self {
        TestCase {
            name,
            machine,
            cmdline,
            dom0: None,
            timeout,
            expected: Vec::new(),
            forbidden: Vec::new(),
            finish: Finish::OnEmulatorExit,
            console_input: Vec::new(),
            expected_exit_status: None,
            requirements: Vec::new(),
        }
    }

    /// The test runs only where KVM can run Keel (nested VMX); elsewhere
    /// it is skipped and reported as such.
    pub fn requires_nested_kvm(mut self) -> Self {
        if !self.requirements.contains(&Requirement::NestedKvm) {
            self.requirements.push(Requirement::NestedKvm);
        }
        self
    }

    pub fn with_dom0(mut self, modules: Dom0Modules) -> Self {
        self.dom0 = Some(modules);
        self
    }

    pub fn expect_text(mut self, text: &str) -> Self {
        self.expected.push(Marker::text(text));
        self
    }

    pub fn expect_regex(mut self, pattern: &str) -> Self {
        self.expected.push(Marker::regex(pattern));
        self
    }

    pub fn forbid_text(mut self, text: &str) -> Self {
        self.forbidden.push(Marker::text(text));
        self
    }

    pub fn finish_on_text(mut self, text: &str) -> Self {
        self.finish = Finish::OnMarker(Marker::text(text));
        self
    }

    /// Adds a console input step: once the serial output shows `wait_for`
    /// (after the previous step's text was typed), type `send`, paced for
    /// the emulated UART (`crate::console::pace`). End commands with `\r`.
    pub fn type_after(mut self, wait_for: &str, send: &str) -> Self {
        self.console_input.push(ConsoleStep::new(wait_for, send));
        self
    }

    pub fn expect_exit_status(mut self, status: i32) -> Self {
        self.expected_exit_status = Some(status);
        self
    }

    /// Every marker the log must show in order: the expected ones, then the
    /// finish marker.
    pub fn ordered_markers(&self) -> Vec<Marker> {
        let mut markers = self.expected.clone();
        if let Finish::OnMarker(finish) = &self.finish {
            markers.push(finish.clone());
        }
        markers
    }

    pub fn finish_marker(&self) -> Option<&Marker> {
        match &self.finish {
            Finish::OnMarker(marker) => Some(marker),
            Finish::OnEmulatorExit => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_marker_is_checked_after_the_expected_ones() {
        let case = TestCase::new("t", Machine::qemu_tcg(), "", Duration::from_secs(1))
            .expect_text("first")
            .finish_on_text("last");
        let rendered: Vec<String> = case.ordered_markers().iter().map(|m| m.to_string()).collect();
        assert_eq!(rendered, ["\"first\"", "\"last\""]);
    }

    #[test]
    fn a_test_requires_nothing_unless_it_says_so() {
        let plain = TestCase::new("t", Machine::qemu_tcg(), "", Duration::from_secs(1));
        assert!(plain.requirements.is_empty());
        let kvm = plain.requires_nested_kvm().requires_nested_kvm();
        assert_eq!(kvm.requirements, [Requirement::NestedKvm], "listed once");
    }

    #[test]
    fn emulator_exit_finish_adds_no_marker() {
        let case = TestCase::new("t", Machine::qemu_tcg(), "", Duration::from_secs(1)).expect_text("only");
        assert_eq!(case.ordered_markers().len(), 1);
        assert!(case.finish_marker().is_none());
    }
}

//! The VMX backend behind the vendor-neutral [`Vcpu`] interface.

use super::VmxVcpu;
use crate::vcpu::{EntryError, GuestFault, GuestRegisters, Vcpu, VcpuExit};

impl Vcpu for VmxVcpu {
    #[inline(always)]
    fn run(&mut self) -> Result<VcpuExit, EntryError> {
        VmxVcpu::run(self)
    }
    #[inline(always)]
    fn regs(&mut self) -> &mut GuestRegisters {
        VmxVcpu::regs(self)
    }
    fn gpr(&self, number: usize) -> u64 {
        VmxVcpu::gpr(self, number)
    }
    fn set_gpr(&mut self, number: usize, value: u64) {
        VmxVcpu::set_gpr(self, number, value)
    }
    fn rip(&self) -> u64 {
        VmxVcpu::rip(self)
    }
    #[inline(always)]
    fn skip_instruction(&mut self) {
        VmxVcpu::skip_instruction(self)
    }
    fn single_step_iteration(&mut self) {
        VmxVcpu::single_step_iteration(self)
    }
    fn advance_rip(&mut self, len: u64) {
        VmxVcpu::advance_rip(self, len)
    }
    fn privilege_level(&self) -> u8 {
        VmxVcpu::privilege_level(self)
    }
    fn paging_registers(&self) -> (u64, u64, u64, u64) {
        VmxVcpu::paging_registers(self)
    }
    fn code_bitness(&self) -> keel_insn::mmio::CodeBitness {
        VmxVcpu::code_bitness(self)
    }
    fn segment_base(&self, segment: keel_insn::string::Segment) -> u64 {
        VmxVcpu::segment_base(self, segment)
    }
    fn rflags(&self) -> u64 {
        VmxVcpu::rflags(self)
    }
    fn speculation_msr_read(&self, msr: u32) -> Option<Result<u64, GuestFault>> {
        VmxVcpu::speculation_msr_read(self, msr)
    }
    fn speculation_msr_write(&mut self, msr: u32, value: u64) -> Option<Result<(), GuestFault>> {
        VmxVcpu::speculation_msr_write(self, msr, value)
    }
    fn inject_fault(&mut self, fault: GuestFault) {
        VmxVcpu::inject_fault(self, fault)
    }
    fn try_inject_interrupt(&mut self, vector: u8) -> bool {
        VmxVcpu::try_inject_interrupt(self, vector)
    }
    fn set_interrupt_window(&mut self, enabled: bool) {
        VmxVcpu::set_interrupt_window(self, enabled)
    }
    fn interrupts_enabled(&self) -> bool {
        VmxVcpu::interrupts_enabled(self)
    }
    fn guest_cr4(&self) -> u64 {
        VmxVcpu::guest_cr4(self)
    }
    fn set_control_register(&mut self, cr: u8, value: u64) -> Result<(), GuestFault> {
        VmxVcpu::set_control_register(self, cr, value)
    }
    fn efer(&self) -> u64 {
        VmxVcpu::efer(self)
    }
    fn set_efer(&mut self, value: u64) -> Result<(), GuestFault> {
        VmxVcpu::set_efer(self, value)
    }
    fn arm_timer(&mut self, deadline_tsc: Option<u64>) {
        VmxVcpu::arm_timer(self, deadline_tsc)
    }
    fn flush_guest_mappings(&mut self) {
        VmxVcpu::flush_guest_mappings(self)
    }
    fn start_slice(&mut self, slice_tsc: u64) {
        VmxVcpu::start_slice(self, slice_tsc)
    }
    fn slice_expired(&self) -> bool {
        VmxVcpu::slice_expired(self)
    }
    fn software_tpr(&self) -> u64 {
        self.cr8
    }
    fn set_software_tpr(&mut self, value: u64) {
        self.cr8 = value;
    }
    fn guest_tsc_cycles(&self) -> Option<u64> {
        VmxVcpu::guest_tsc_cycles(self)
    }
    fn exit_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        VmxVcpu::exit_counts(self)
    }
}

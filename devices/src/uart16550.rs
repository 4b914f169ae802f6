//! A 16550A UART, the PC serial port Linux's 8250 driver knows best (normally
//! COM1 at 0x3F8, IRQ 4; registered with 8 ports).
//!
//! Output is instant: a THR write goes straight to the hypervisor console, so
//! the transmitter always reads as empty (LSR.THRE|TEMT). Input comes from
//! the hypervisor console through [`Uart16550::push_input`] into a bounded
//! receive FIFO. Baud rate, parity and FIFO trigger levels are stored for the
//! guest to read back but change nothing: the "line" is not a real wire. The
//! receive-data interrupt fires as soon as one byte is queued (trigger level
//! 1), so the character-timeout interrupt is never needed.

use crate::bus::{read_bytewise, write_bytewise};
use crate::{Device, Offset, Platform};

/// Bytes of typed input the UART holds before dropping more (and flagging an
/// overrun). Larger than a real 16550's 16 so a fast typist or a paste does
/// not overrun a guest that is slow to service the interrupt.
pub const RX_FIFO_CAPACITY: usize = 64;

// Register offsets. With LCR.DLAB set, offsets 0 and 1 are the divisor latch.
const RBR_THR_DLL: Offset = 0;
const IER_DLM: Offset = 1;
const IIR_FCR: Offset = 2;
const LCR: Offset = 3;
const MCR: Offset = 4;
const LSR: Offset = 5;
const MSR: Offset = 6;
const SCR: Offset = 7;

// IER: only the low four bits exist on a 16550A (Linux's probe checks that
// the upper ones read back as zero to rule out XScale/16750 variants).
const IER_RX_DATA: u8 = 1 << 0;
const IER_THR_EMPTY: u8 = 1 << 1;
const IER_LINE_STATUS: u8 = 1 << 2;
const IER_MODEM_STATUS: u8 = 1 << 3;
const IER_IMPLEMENTED: u8 = 0x0F;

// IIR interrupt identification, highest priority first.
const IIR_NO_INTERRUPT: u8 = 0x01;
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RX_DATA: u8 = 0x04;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
/// Both bits set: "FIFOs enabled and working", which tells Linux this is a
/// 16550A rather than a 16550 with the broken FIFO.
const IIR_FIFOS_ENABLED: u8 = 0xC0;

const FCR_ENABLE_FIFOS: u8 = 1 << 0;
const FCR_CLEAR_RX: u8 = 1 << 1;

const LCR_DLAB: u8 = 1 << 7;

const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOPBACK: u8 = 1 << 4;
const MCR_IMPLEMENTED: u8 = 0x1F;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_OVERRUN: u8 = 1 << 1;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

const MSR_DELTA_CTS: u8 = 1 << 0;
const MSR_DELTA_DSR: u8 = 1 << 1;
const MSR_TRAILING_EDGE_RI: u8 = 1 << 2;
const MSR_DELTA_DCD: u8 = 1 << 3;
const MSR_CTS: u8 = 1 << 4;
const MSR_DSR: u8 = 1 << 5;
const MSR_RI: u8 = 1 << 6;
const MSR_DCD: u8 = 1 << 7;

/// A fixed-capacity byte queue: no allocation, no indexing that can fail.
struct RxFifo {
    bytes: [u8; RX_FIFO_CAPACITY],
    head: usize,
    len: usize,
}

impl RxFifo {
    const fn new() -> Self {
        Self {
            bytes: [0; RX_FIFO_CAPACITY],
            head: 0,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len >= RX_FIFO_CAPACITY
    }

    /// Returns false (dropping `byte`) when full.
    fn push(&mut self, byte: u8) -> bool {
        if self.is_full() {
            return false;
        }
        let tail = (self.head + self.len) % RX_FIFO_CAPACITY;
        match self.bytes.get_mut(tail) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn pop(&mut self) -> Option<u8> {
        if self.is_empty() {
            return None;
        }
        let byte = self.bytes.get(self.head).copied();
        self.head = (self.head + 1) % RX_FIFO_CAPACITY;
        self.len -= 1;
        byte
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

pub struct Uart16550 {
    irq: u32,
    rx: RxFifo,
    interrupt_enable: u8,
    line_control: u8,
    modem_control: u8,
    scratch: u8,
    divisor_latch: [u8; 2],
    fifos_enabled: bool,
    /// The THR-empty interrupt condition. The transmitter is always empty, so
    /// this is what a real 16550 latches: set when ETBEI is turned on and
    /// after each transmitted byte, cleared by reading IIR while it is the
    /// reported source.
    thr_empty_pending: bool,
    /// A received byte was dropped; cleared by reading LSR.
    overrun: bool,
    /// MSR bits 0-3: modem inputs changed since MSR was last read.
    modem_status_deltas: u8,
    /// The level last driven on `irq`, so the platform only sees changes.
    irq_asserted: bool,
}

impl Uart16550 {
    /// A UART after reset, wired to interrupt line `irq` (a GSI).
    pub const fn new(irq: u32) -> Self {
        Self {
            irq,
            rx: RxFifo::new(),
            interrupt_enable: 0,
            line_control: 0,
            modem_control: 0,
            scratch: 0,
            divisor_latch: [0; 2],
            fifos_enabled: false,
            thr_empty_pending: false,
            overrun: false,
            modem_status_deltas: 0,
            irq_asserted: false,
        }
    }

    /// Queues a byte typed on the hypervisor console for the guest. Returns
    /// false when the byte was not received: the FIFO was full (the byte is
    /// dropped and an overrun reported, as on hardware) or the UART is in
    /// loopback mode, where the receiver is disconnected from the line.
    pub fn push_input(&mut self, byte: u8, platform: &mut dyn Platform) -> bool {
        if self.loopback() {
            return false;
        }
        let received = self.receive(byte);
        self.update_irq(platform);
        received
    }

    /// Whether [`Self::push_input`] would take a byte now, for a console that
    /// prefers to hold input back rather than lose it.
    pub fn can_accept_input(&self) -> bool {
        !self.loopback() && !self.rx.is_full()
    }

    fn receive(&mut self, byte: u8) -> bool {
        let received = self.rx.push(byte);
        if !received {
            self.overrun = true;
        }
        received
    }

    fn dlab(&self) -> bool {
        self.line_control & LCR_DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.modem_control & MCR_LOOPBACK != 0
    }

    fn enabled(&self, ier_bit: u8) -> bool {
        self.interrupt_enable & ier_bit != 0
    }

    /// MSR bits 4-7. In loopback mode the modem outputs are wired back to
    /// the inputs (Linux's probe sets RTS|OUT2 and expects CTS|DCD = 0x90);
    /// otherwise a terminal is always attached and ready.
    fn modem_status_lines(&self) -> u8 {
        if !self.loopback() {
            return MSR_CTS | MSR_DSR | MSR_DCD;
        }
        let mcr = self.modem_control;
        let mut lines = 0;
        for (output, input) in [
            (MCR_RTS, MSR_CTS),
            (MCR_DTR, MSR_DSR),
            (MCR_OUT1, MSR_RI),
            (MCR_OUT2, MSR_DCD),
        ] {
            if mcr & output != 0 {
                lines |= input;
            }
        }
        lines
    }

    fn line_status(&self) -> u8 {
        let mut status = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
        if !self.rx.is_empty() {
            status |= LSR_DATA_READY;
        }
        if self.overrun {
            status |= LSR_OVERRUN;
        }
        status
    }

    /// The highest-priority pending, enabled interrupt (IIR bits 0-3).
    fn pending_interrupt(&self) -> u8 {
        if self.enabled(IER_LINE_STATUS) && self.overrun {
            IIR_LINE_STATUS
        } else if self.enabled(IER_RX_DATA) && !self.rx.is_empty() {
            IIR_RX_DATA
        } else if self.enabled(IER_THR_EMPTY) && self.thr_empty_pending {
            IIR_THR_EMPTY
        } else if self.enabled(IER_MODEM_STATUS) && self.modem_status_deltas != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NO_INTERRUPT
        }
    }

    /// Drives the IRQ line to match the interrupt state. On a PC the UART's
    /// interrupt output reaches the interrupt controller only through a
    /// buffer enabled by MCR.OUT2, and loopback mode forces OUT2 inactive.
    fn update_irq(&mut self, platform: &mut dyn Platform) {
        let level =
            self.pending_interrupt() != IIR_NO_INTERRUPT && self.modem_control & MCR_OUT2 != 0 && !self.loopback();
        if level != self.irq_asserted {
            self.irq_asserted = level;
            platform.set_irq_line(self.irq, level);
        }
    }

    fn transmit(&mut self, byte: u8, platform: &mut dyn Platform) {
        if self.loopback() {
            self.receive(byte);
        } else {
            platform.console_output(byte);
        }
        // The byte left at once, so THR is empty again: the THRE interrupt
        // that this write cleared is re-raised, as when a real 16550 finishes
        // sending.
        self.thr_empty_pending = true;
    }

    fn set_modem_control(&mut self, value: u8) {
        let before = self.modem_status_lines();
        self.modem_control = value & MCR_IMPLEMENTED;
        let after = self.modem_status_lines();
        let changed = before ^ after;
        for (line, delta) in [
            (MSR_CTS, MSR_DELTA_CTS),
            (MSR_DSR, MSR_DELTA_DSR),
            (MSR_DCD, MSR_DELTA_DCD),
        ] {
            if changed & line != 0 {
                self.modem_status_deltas |= delta;
            }
        }
        // TERI flags only the trailing edge of ring indicate.
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.modem_status_deltas |= MSR_TRAILING_EDGE_RI;
        }
    }

    fn write_fifo_control(&mut self, value: u8) {
        let enable = value & FCR_ENABLE_FIFOS != 0;
        // Switching FIFO mode resets the FIFOs; the clear bits are only
        // honoured while the FIFOs are (being) enabled.
        if enable != self.fifos_enabled || (enable && value & FCR_CLEAR_RX != 0) {
            self.rx.clear();
        }
        self.fifos_enabled = enable;
    }

    fn read_register(&mut self, offset: Offset) -> u8 {
        match offset {
            RBR_THR_DLL if self.dlab() => self.divisor_latch[0],
            RBR_THR_DLL => self.rx.pop().unwrap_or(0),
            IER_DLM if self.dlab() => self.divisor_latch[1],
            IER_DLM => self.interrupt_enable,
            IIR_FCR => {
                let source = self.pending_interrupt();
                // Reading IIR is how a driver acknowledges THRE.
                if source == IIR_THR_EMPTY {
                    self.thr_empty_pending = false;
                }
                let fifo_bits = if self.fifos_enabled { IIR_FIFOS_ENABLED } else { 0 };
                source | fifo_bits
            }
            LCR => self.line_control,
            MCR => self.modem_control,
            LSR => {
                let status = self.line_status();
                self.overrun = false;
                status
            }
            MSR => {
                let status = self.modem_status_lines() | self.modem_status_deltas;
                self.modem_status_deltas = 0;
                status
            }
            SCR => self.scratch,
            _ => 0xff,
        }
    }

    fn write_register(&mut self, offset: Offset, value: u8, platform: &mut dyn Platform) {
        match offset {
            RBR_THR_DLL if self.dlab() => self.divisor_latch[0] = value,
            RBR_THR_DLL => self.transmit(value, platform),
            IER_DLM if self.dlab() => self.divisor_latch[1] = value,
            IER_DLM => {
                let newly_enabled = value & !self.interrupt_enable;
                self.interrupt_enable = value & IER_IMPLEMENTED;
                // Enabling ETBEI while THR is empty raises THRE at once;
                // Linux's startup test relies on it being raised again each
                // time ETBEI goes from 0 to 1.
                if newly_enabled & IER_THR_EMPTY != 0 {
                    self.thr_empty_pending = true;
                }
            }
            IIR_FCR => self.write_fifo_control(value),
            LCR => self.line_control = value,
            MCR => self.set_modem_control(value),
            SCR => self.scratch = value,
            // LSR and MSR writes are factory-test features; ignored.
            _ => {}
        }
    }
}

impl Device for Uart16550 {
    fn name(&self) -> &'static str {
        "uart16550"
    }

    fn read(&mut self, offset: Offset, size: u8, platform: &mut dyn Platform) -> u64 {
        let value = read_bytewise(offset, size, |byte_offset| self.read_register(byte_offset));
        self.update_irq(platform);
        value
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        write_bytewise(offset, size, value, |byte_offset, byte| {
            self.write_register(byte_offset, byte, platform)
        });
        self.update_irq(platform);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    const IRQ: u32 = 4;

    struct Harness {
        uart: Uart16550,
        platform: RecordingPlatform,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                uart: Uart16550::new(IRQ),
                platform: RecordingPlatform::default(),
            }
        }
        fn read(&mut self, offset: Offset) -> u8 {
            self.uart.read(offset, 1, &mut self.platform) as u8
        }
        fn write(&mut self, offset: Offset, value: u8) {
            self.uart.write(offset, 1, value.into(), &mut self.platform);
        }
        fn push(&mut self, byte: u8) -> bool {
            self.uart.push_input(byte, &mut self.platform)
        }
    }

    #[test]
    fn passes_linux_ier_and_scratch_probe() {
        let mut h = Harness::new();
        h.write(IER_DLM, 0);
        assert_eq!(h.read(IER_DLM) & 0x0F, 0);
        h.write(IER_DLM, 0x0F);
        assert_eq!(h.read(IER_DLM), 0x0F);
        // Bit 6 (XScale UUE) and the other upper bits do not exist.
        h.write(IER_DLM, 0xFF);
        assert_eq!(h.read(IER_DLM), 0x0F);
        for pattern in [0xA5, 0x5A, 0x00, 0xFF] {
            h.write(SCR, pattern);
            assert_eq!(h.read(SCR), pattern);
        }
    }

    #[test]
    fn passes_linux_loopback_probe() {
        let mut h = Harness::new();
        // serial8250 autoconfig: MCR = LOOP | RTS | OUT2, expect CTS | DCD.
        h.write(MCR, MCR_LOOPBACK | 0x0A);
        assert_eq!(h.read(MSR) & 0xF0, 0x90);
        h.write(MCR, MCR_LOOPBACK | 0x0F);
        assert_eq!(h.read(MSR) & 0xF0, 0xF0);
        h.write(MCR, 0x0B);
        assert_eq!(h.read(MSR) & 0xF0, MSR_CTS | MSR_DSR | MSR_DCD);
        assert_eq!(h.read(MCR), 0x0B);
    }

    #[test]
    fn dlab_switches_offsets_zero_and_one_to_the_divisor_latch() {
        let mut h = Harness::new();
        h.write(IER_DLM, 0x05);
        h.write(LCR, LCR_DLAB | 0x03);
        h.write(RBR_THR_DLL, 0x01);
        h.write(IER_DLM, 0x00);
        assert_eq!(h.read(RBR_THR_DLL), 0x01);
        assert_eq!(h.read(IER_DLM), 0x00);
        assert!(h.platform.console.is_empty(), "DLL write is not output");
        h.write(LCR, 0x03);
        assert_eq!(h.read(LCR), 0x03);
        assert_eq!(h.read(IER_DLM), 0x05);
        h.write(LCR, LCR_DLAB);
        assert_eq!(h.read(RBR_THR_DLL), 0x01);
    }

    #[test]
    fn fifo_enable_is_visible_in_iir_top_bits() {
        let mut h = Harness::new();
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
        h.write(IIR_FCR, FCR_ENABLE_FIFOS);
        assert_eq!(h.read(IIR_FCR) >> 6, 3, "16550A, not 16550 or 16450");
        assert_eq!(h.read(IIR_FCR), 0xC1);
        // 16750 detection: FCR bit 5 with DLAB set must not show a 64-byte FIFO.
        h.write(LCR, LCR_DLAB);
        h.write(IIR_FCR, FCR_ENABLE_FIFOS | 0x20);
        assert_eq!(h.read(IIR_FCR) & 0x20, 0);
        h.write(IIR_FCR, 0);
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
    }

    #[test]
    fn lsr_reports_an_idle_transmitter_and_is_never_all_ones() {
        let mut h = Harness::new();
        assert_eq!(h.read(LSR), LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY);
    }

    #[test]
    fn thr_writes_reach_the_console() {
        let mut h = Harness::new();
        for byte in b"ok\n" {
            h.write(RBR_THR_DLL, *byte);
        }
        assert_eq!(h.platform.console, b"ok\n");
        assert!(h.platform.irq_lines.is_empty());
    }

    #[test]
    fn received_byte_raises_and_reading_it_lowers_the_irq() {
        let mut h = Harness::new();
        h.write(MCR, MCR_OUT2 | MCR_RTS | MCR_DTR);
        h.write(IER_DLM, IER_RX_DATA);
        assert!(h.platform.irq_lines.is_empty());
        assert!(h.push(b'x'));
        assert!(h.push(b'y'));
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true)], "raised once");
        assert_eq!(h.read(LSR) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(h.read(IIR_FCR), IIR_RX_DATA);
        assert_eq!(h.read(RBR_THR_DLL), b'x');
        assert_eq!(h.platform.irq_lines.len(), 1, "still data: still high");
        assert_eq!(h.read(RBR_THR_DLL), b'y');
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true), (IRQ, false)]);
        assert_eq!(h.read(LSR) & LSR_DATA_READY, 0);
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
    }

    #[test]
    fn out2_gates_the_irq_line() {
        let mut h = Harness::new();
        h.write(IER_DLM, IER_RX_DATA);
        h.push(b'a');
        assert_eq!(h.read(IIR_FCR), IIR_RX_DATA, "pending inside the UART");
        assert!(h.platform.irq_lines.is_empty(), "but OUT2 is off");
        h.write(MCR, MCR_OUT2);
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true)]);
        h.write(MCR, 0);
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true), (IRQ, false)]);
    }

    #[test]
    fn thre_interrupt_follows_linux_startup_test() {
        let mut h = Harness::new();
        h.write(IIR_FCR, FCR_ENABLE_FIFOS);
        h.write(MCR, MCR_OUT2);
        h.write(IER_DLM, IER_THR_EMPTY);
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true)]);
        assert_eq!(h.read(IIR_FCR), 0xC0 | IIR_THR_EMPTY);
        // The IIR read acknowledged it.
        assert_eq!(h.read(IIR_FCR), 0xC0 | IIR_NO_INTERRUPT);
        assert_eq!(h.platform.irq_lines, vec![(IRQ, true), (IRQ, false)]);
        // Toggling ETBEI re-raises it (no UART_BUG_THRE for Linux).
        h.write(IER_DLM, 0);
        h.write(IER_DLM, IER_THR_EMPTY);
        assert_eq!(h.read(IIR_FCR), 0xC0 | IIR_THR_EMPTY);
        // Writing ETBEI again while already set does not.
        h.write(IER_DLM, IER_THR_EMPTY);
        assert_eq!(h.read(IIR_FCR), 0xC0 | IIR_NO_INTERRUPT);
        // Transmitting a byte empties THR again: interrupt again.
        h.write(RBR_THR_DLL, b'!');
        assert_eq!(h.read(IIR_FCR), 0xC0 | IIR_THR_EMPTY);
        assert_eq!(h.platform.console, b"!");
    }

    #[test]
    fn thre_source_is_not_acknowledged_by_reading_iir_while_rx_outranks_it() {
        let mut h = Harness::new();
        h.write(IER_DLM, IER_RX_DATA | IER_THR_EMPTY);
        h.push(b'z');
        assert_eq!(h.read(IIR_FCR), IIR_RX_DATA);
        assert_eq!(h.read(RBR_THR_DLL), b'z');
        assert_eq!(h.read(IIR_FCR), IIR_THR_EMPTY);
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
    }

    #[test]
    fn full_fifo_drops_input_and_reports_overrun_first() {
        let mut h = Harness::new();
        h.write(
            IER_DLM,
            IER_RX_DATA | IER_THR_EMPTY | IER_LINE_STATUS | IER_MODEM_STATUS,
        );
        for byte in 0..RX_FIFO_CAPACITY {
            assert!(h.push(byte as u8));
        }
        assert!(!h.uart.can_accept_input());
        assert!(!h.push(0xEE));
        assert_eq!(h.read(IIR_FCR), IIR_LINE_STATUS);
        assert_eq!(h.read(LSR) & LSR_OVERRUN, LSR_OVERRUN);
        assert_eq!(h.read(LSR) & LSR_OVERRUN, 0, "cleared by reading LSR");
        assert_eq!(h.read(IIR_FCR), IIR_RX_DATA);
        for expected in 0..RX_FIFO_CAPACITY {
            assert_eq!(h.read(RBR_THR_DLL), expected as u8);
        }
        assert_eq!(h.read(RBR_THR_DLL), 0, "empty FIFO reads as zero");
        assert_eq!(h.read(IIR_FCR), IIR_THR_EMPTY);
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
    }

    #[test]
    fn modem_status_changes_interrupt_and_clear_on_msr_read() {
        let mut h = Harness::new();
        h.write(IER_DLM, IER_MODEM_STATUS);
        h.write(MCR, MCR_LOOPBACK | MCR_OUT1 | MCR_RTS);
        assert_eq!(h.read(IIR_FCR), IIR_MODEM_STATUS);
        // Entering loopback dropped DSR and DCD, kept CTS, raised RI.
        assert_eq!(h.read(MSR), MSR_CTS | MSR_RI | MSR_DELTA_DSR | MSR_DELTA_DCD);
        assert_eq!(h.read(IIR_FCR), IIR_NO_INTERRUPT);
        h.write(MCR, MCR_LOOPBACK);
        assert_eq!(h.read(MSR), MSR_DELTA_CTS | MSR_TRAILING_EDGE_RI);
        assert!(h.platform.irq_lines.is_empty(), "loopback masks the line");
    }

    #[test]
    fn loopback_echoes_output_into_the_receiver_not_the_console() {
        let mut h = Harness::new();
        h.write(MCR, MCR_LOOPBACK | MCR_OUT2);
        h.write(IER_DLM, IER_RX_DATA);
        h.write(RBR_THR_DLL, 0x55);
        assert!(h.platform.console.is_empty());
        assert!(!h.push(b'k'), "line input is disconnected in loopback");
        assert_eq!(h.read(LSR) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(h.read(RBR_THR_DLL), 0x55);
        assert_eq!(h.read(LSR) & LSR_DATA_READY, 0);
        assert!(h.platform.irq_lines.is_empty());
    }

    #[test]
    fn fifo_reset_discards_received_bytes() {
        let mut h = Harness::new();
        h.write(IIR_FCR, FCR_ENABLE_FIFOS);
        h.push(1);
        h.write(IIR_FCR, FCR_ENABLE_FIFOS | FCR_CLEAR_RX);
        assert_eq!(h.read(LSR) & LSR_DATA_READY, 0);
        h.push(2);
        h.write(IIR_FCR, FCR_ENABLE_FIFOS);
        assert_eq!(h.read(RBR_THR_DLL), 2, "no clear bit, no clear");
    }

    #[test]
    fn wide_accesses_split_into_byte_registers() {
        let mut h = Harness::new();
        h.uart.write(SCR, 1, 0x77, &mut h.platform);
        // A word read at LCR covers LCR and MCR.
        h.write(LCR, 0x03);
        h.write(MCR, 0x08);
        assert_eq!(h.uart.read(LCR, 2, &mut h.platform), 0x0803);
        assert_eq!(h.uart.read(MSR, 2, &mut h.platform) >> 8, 0x77);
        // Bytes past the eight registers read as nothing.
        assert_eq!(h.uart.read(SCR, 2, &mut h.platform) >> 8, 0xFF);
    }

    #[test]
    fn survives_any_offset_size_and_value() {
        let mut h = Harness::new();
        let offsets = (0..20).chain([u64::MAX - 3, u64::MAX]);
        for offset in offsets {
            for size in [0, 1, 2, 3, 4, 8, 255] {
                for value in [0, 0xFF, 0x1F, u64::MAX] {
                    h.uart.write(offset, size, value, &mut h.platform);
                    h.uart.read(offset, size, &mut h.platform);
                    h.push(value as u8);
                }
            }
        }
    }
}

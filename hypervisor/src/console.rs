//! The hypervisor console: COM1 through `uart_16550`, behind the `log` facade.
//!
//! Log lines read `keel: <message>` at info level and `keel: <level>: <message>`
//! otherwise, so boot tests can match plain markers.
//!
//! A console domain's output goes through a transmit ring instead of waiting
//! for the line byte by byte: at 115200 baud each byte takes 87 us, time in
//! which the guest would not run (and would miss timer ticks). The ring
//! drains in 16-byte FIFO bursts whenever Keel touches the console; Keel's
//! own messages first flush it, so the output stays in order.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use keel_hypervisor::console_guard::LineGuard;
use keel_hypervisor::console_ring::{ConsoleRing, ReadResult};
use keel_hypervisor::tx_ring::TxRing;
use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;
use uart_16550::SerialPort;

use crate::arch::instructions::{inb, outb};

const COM1: u16 = 0x3F8;

struct Console {
    port: SerialPort,
    pending: TxRing,
    /// Marks console-domain lines that start like Keel's own.
    guard: LineGuard,
}

static SERIAL: Mutex<Option<Console>> = Mutex::new(None);
const LINE_STATUS: u16 = COM1 + 5;
const TRANSMIT_HOLDING_EMPTY: u8 = 1 << 5;
/// The 16550's transmit FIFO: this many bytes fit whenever THRE is set.
const TRANSMIT_FIFO: usize = 16;
static LOGGER: ConsoleLogger = ConsoleLogger;
/// Keel's own log lines, for `keel dmesg` (kept from the moment the heap
/// exists; see [`keep_log`]).
static LOG_RING: Mutex<Option<ConsoleRing>> = Mutex::new(None);
const LOG_RING_BYTES: usize = 64 * 1024;

/// Brings up COM1 and installs the logger at `level`.
pub fn init(level: LevelFilter) {
    // SAFETY: COM1 is a standard 16550 at 0x3F8 that nothing else in the
    // hypervisor drives; the port is only used through the `SERIAL` lock.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    UART_PRESENT.store(probe_uart(), Ordering::Relaxed);
    // SAFETY: the registers of the same COM1, programmed before anyone else
    // uses it: 115200 baud 8N1 (the crate's init leaves 38400, three times
    // slower for every byte Keel and its console domain print), and IER = 0
    // because Keel polls: an interrupt would only reach the host's PIC,
    // which Keel masks and never acknowledges.
    unsafe {
        outb(COM1 + 3, 0x80); // LCR: divisor latch access
        outb(COM1, 1); // divisor 1 = 115200 baud
        outb(COM1 + 1, 0);
        outb(COM1 + 3, 0x03); // LCR: 8N1, latch closed
        outb(COM1 + 1, 0); // IER: no interrupts
    }
    *SERIAL.lock() = Some(Console {
        port,
        pending: TxRing::new(),
        guard: LineGuard::default(),
    });
    // A second call fails harmlessly; the first logger stays installed.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

impl Console {
    /// Moves queued bytes into the UART's FIFO if the transmitter is idle.
    fn pump(&mut self) {
        // SAFETY: reading COM1's line status has no side effects.
        if unsafe { inb(LINE_STATUS) } & TRANSMIT_HOLDING_EMPTY == 0 {
            return;
        }
        for _ in 0..TRANSMIT_FIFO {
            let Some(byte) = self.pending.pop() else { break };
            // SAFETY: THRE said the FIFO is empty, so 16 bytes fit.
            unsafe { outb(COM1, byte) };
        }
    }

    /// Sends everything queued, waiting for the line as needed.
    fn flush(&mut self) {
        while let Some(byte) = self.pending.pop() {
            self.port.send_raw(byte);
        }
    }

    /// Queues a byte, waiting for the line only when the ring is full.
    fn queue(&mut self, byte: u8) {
        if !self.pending.push(byte) {
            self.flush();
            self.pending.push(byte);
        }
    }
}

/// Starts keeping log lines in memory (needs the heap).
pub fn keep_log() {
    *LOG_RING.lock() = Some(ConsoleRing::new(LOG_RING_BYTES));
}

/// Reads Keel's log from `cursor` (see [`ConsoleRing::read`]).
pub fn read_log(cursor: u64, out: &mut [u8]) -> ReadResult {
    match LOG_RING.lock().as_ref() {
        Some(ring) => ring.read(cursor, out),
        None => ReadResult { start: 0, end: 0 },
    }
}

struct RingWriter<'a>(&'a mut ConsoleRing);

impl Write for RingWriter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.extend(text.as_bytes());
        Ok(())
    }
}

fn log_line(args: fmt::Arguments) {
    if let Some(ring) = LOG_RING.try_lock().as_mut().and_then(|ring| ring.as_mut()) {
        let _ = RingWriter(ring).write_fmt(args);
    }
    write_fmt(args);
}

/// Writes formatted text to the console without any prefix.
pub fn write_fmt(args: fmt::Arguments) {
    let mut serial = SERIAL.lock();
    if let Some(console) = serial.as_mut() {
        // A guest's held partial line goes first, so Keel's text cannot
        // complete a forged line start.
        let mut guard = core::mem::take(&mut console.guard);
        guard.flush(&mut |held| held.iter().for_each(|&byte| console.queue(byte)));
        console.guard = guard;
        console.flush();
        let _ = console.port.write_fmt(args);
    }
}

/// Queues the console domain's serial output (see `LineGuard`); waits for
/// the line only when the ring is full.
pub fn write_guest_bytes(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    if let Some(console) = serial.as_mut() {
        let mut guard = core::mem::take(&mut console.guard);
        for &byte in bytes {
            guard.push(byte, &mut |out| out.iter().for_each(|&byte| console.queue(byte)));
        }
        console.guard = guard;
        console.pump();
    }
}

/// Gives queued output a chance to move on (called at time-slice ends).
pub fn pump() {
    if let Some(console) = SERIAL.lock().as_mut().filter(|console| !console.pending.is_empty()) {
        console.pump();
    }
}

/// Whether COM1 answered like a 16550 at boot. Without one, every port
/// reads all ones, which would look like an endless stream of 0xFF bytes
/// typed on the console.
static UART_PRESENT: AtomicBool = AtomicBool::new(false);

pub fn uart_present() -> bool {
    UART_PRESENT.load(Ordering::Relaxed)
}

/// The scratch register keeps what was written to it on a 16550; an empty
/// bus reads all ones whatever was written.
fn probe_uart() -> bool {
    const SCRATCH: u16 = COM1 + 7;
    let mut answers = [0u8; 2];
    for (pattern, answer) in [0x5A, 0xA5].into_iter().zip(&mut answers) {
        // SAFETY: the scratch register of COM1 has no effect on the UART.
        unsafe {
            outb(SCRATCH, pattern);
            *answer = inb(SCRATCH);
        }
    }
    // SAFETY: reading COM1's line status has no side effects.
    let status = unsafe { inb(LINE_STATUS) };
    keel_hypervisor::host_probe::looks_like_uart(answers, status)
}

/// Whether a byte typed on the console is waiting (without taking it).
pub fn input_waiting() -> bool {
    const DATA_READY: u8 = 1;
    // SAFETY: reading COM1's line status has no side effects.
    uart_present() && unsafe { inb(LINE_STATUS) & DATA_READY != 0 }
}

/// A byte typed on the console, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    if !uart_present() {
        return None;
    }
    let mut serial = SERIAL.lock();
    serial.as_mut().and_then(|console| console.port.try_receive().ok())
}

/// Writes formatted text even if the console lock is held, for the panic
/// and exception paths where the holder may never release it.
pub fn write_fmt_emergency(args: fmt::Arguments) {
    // SAFETY: this path only runs when the hypervisor is about to stop; a
    // fresh handle to the same UART may interleave bytes with an interrupted
    // writer, which is acceptable for a last diagnostic.
    let mut port = unsafe { SerialPort::new(COM1) };
    let _ = port.write_fmt(args);
}

/// Waits (bounded) until the UART has sent every byte, so a message written
/// just before the machine stops is not lost in its transmit FIFO.
pub fn drain() {
    const TRANSMITTER_EMPTY: u8 = 1 << 6;
    if let Some(mut serial) = SERIAL.try_lock() {
        if let Some(console) = serial.as_mut() {
            console.flush();
        }
    }
    for _ in 0..100_000 {
        // SAFETY: reading the 16550 line-status register has no side effects.
        let status = unsafe { crate::arch::instructions::inb(LINE_STATUS) };
        if status & TRANSMITTER_EMPTY != 0 {
            return;
        }
    }
}

/// Prints like `println!` on the hypervisor console, with no prefix.
#[macro_export]
macro_rules! console_println {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match record.level() {
            Level::Info => log_line(format_args!("keel: {}\n", record.args())),
            level => {
                let name = match level {
                    Level::Error => "error",
                    Level::Warn => "warning",
                    Level::Debug => "debug",
                    _ => "trace",
                };
                log_line(format_args!("keel: {name}: {}\n", record.args()))
            }
        }
    }

    fn flush(&self) {}
}

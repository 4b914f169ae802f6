//! The hypervisor console: COM1 through `uart_16550`, behind the `log` facade.
//!
//! Log lines read `keel: <message>` at info level and `keel: <level>: <message>`
//! otherwise, so boot tests can match plain markers.

use core::fmt::{self, Write};

use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;
use uart_16550::SerialPort;

const COM1: u16 = 0x3F8;

static SERIAL: Mutex<Option<SerialPort>> = Mutex::new(None);
static LOGGER: ConsoleLogger = ConsoleLogger;

/// Brings up COM1 and installs the logger at `level`.
pub fn init(level: LevelFilter) {
    // SAFETY: COM1 is a standard 16550 at 0x3F8 that nothing else in the
    // hypervisor drives; the port is only used through the `SERIAL` lock.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    // Keel polls the UART; its interrupt would only reach the host's PIC,
    // which Keel masks and never acknowledges.
    // SAFETY: IER of the same COM1; 0 disables the UART's interrupt sources.
    unsafe { crate::arch::instructions::outb(COM1 + 1, 0) };
    *SERIAL.lock() = Some(port);
    // A second call fails harmlessly; the first logger stays installed.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Writes formatted text to the console without any prefix.
pub fn write_fmt(args: fmt::Arguments) {
    let mut serial = SERIAL.lock();
    if let Some(port) = serial.as_mut() {
        let _ = port.write_fmt(args);
    }
}

/// Writes raw bytes to the console (a console domain's serial output).
pub fn write_bytes(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    if let Some(port) = serial.as_mut() {
        for &byte in bytes {
            port.send_raw(byte);
        }
    }
}

/// A byte typed on the console, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    let mut serial = SERIAL.lock();
    serial.as_mut().and_then(|port| port.try_receive().ok())
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
    const LINE_STATUS: u16 = COM1 + 5;
    const TRANSMITTER_EMPTY: u8 = 1 << 6;
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
            Level::Info => write_fmt(format_args!("keel: {}\n", record.args())),
            level => {
                let name = match level {
                    Level::Error => "error",
                    Level::Warn => "warning",
                    Level::Debug => "debug",
                    _ => "trace",
                };
                write_fmt(format_args!("keel: {name}: {}\n", record.args()))
            }
        }
    }

    fn flush(&self) {}
}

//! Keeps a console domain from forging Keel's own console lines.
//!
//! Dom0's serial output reaches Keel's console unchanged (its shell needs
//! prompts and escape sequences to pass through), on the same line as
//! Keel's log, whose lines start with `keel:`, and `KEEL PANIC` marks a
//! crash. Whoever reads the console (a person, the boot tests) must be able
//! to trust those lines, so a guest line that starts like one gets a
//! visible mark in front: `dom0| keel: ...`. Bytes that might begin such a
//! prefix at the start of a line are held until the next byte decides.

/// Line starts that belong to Keel.
const RESERVED: [&[u8]; 2] = [b"keel:", b"KEEL PANIC"];
/// What a guest line that starts like Keel's gets in front.
pub const GUEST_MARK: &[u8] = b"dom0| ";
const HELD_MAX: usize = 10;

pub struct LineGuard {
    at_line_start: bool,
    held: [u8; HELD_MAX],
    held_len: usize,
}

impl Default for LineGuard {
    fn default() -> Self {
        Self {
            at_line_start: true,
            held: [0; HELD_MAX],
            held_len: 0,
        }
    }
}

fn is_reserved_prefix(bytes: &[u8]) -> bool {
    RESERVED.iter().any(|reserved| reserved.starts_with(bytes))
}

fn is_reserved(bytes: &[u8]) -> bool {
    RESERVED.contains(&bytes)
}

impl LineGuard {
    /// Passes one guest byte through, emitting what may be shown now.
    pub fn push(&mut self, byte: u8, emit: &mut impl FnMut(&[u8])) {
        if self.held_len == 0 && !self.at_line_start {
            emit(&[byte]);
            self.at_line_start = byte == b'\n' || byte == b'\r';
            return;
        }
        self.held[self.held_len] = byte;
        self.held_len += 1;
        let held = &self.held[..self.held_len];
        if is_reserved(held) {
            emit(GUEST_MARK);
            emit(held);
            self.held_len = 0;
            self.at_line_start = false;
        } else if !is_reserved_prefix(held) || self.held_len == HELD_MAX {
            emit(held);
            self.held_len = 0;
            self.at_line_start = byte == b'\n' || byte == b'\r';
        }
    }

    /// Emits bytes still held (Keel is about to print a line of its own,
    /// so the guest's partial line cannot become a forged start).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.held_len > 0 {
            emit(&self.held[..self.held_len]);
            self.held_len = 0;
            self.at_line_start = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Vec<u8> {
        let mut guard = LineGuard::default();
        let mut out = Vec::new();
        for &byte in input {
            guard.push(byte, &mut |bytes| out.extend_from_slice(bytes));
        }
        guard.flush(&mut |bytes| out.extend_from_slice(bytes));
        out
    }

    #[test]
    fn ordinary_output_passes_unchanged() {
        let text = b"[    1.0] Linux\r\n/ # echo keel: in the middle\r\nkeel: in the middle\r\n";
        let out = run(&text[..40]);
        assert_eq!(out, &text[..40]);
        assert_eq!(
            run(b"/ # ls\r\nbin  dev\r\n\x1b[1;34mproc\x1b[0m\r\n"),
            b"/ # ls\r\nbin  dev\r\n\x1b[1;34mproc\x1b[0m\r\n"
        );
    }

    #[test]
    fn a_guest_line_that_starts_like_keels_is_marked() {
        assert_eq!(run(b"keel: dom0 powered off\n"), b"dom0| keel: dom0 powered off\n");
        assert_eq!(
            run(b"ok\nkeel: selftest passed\n"),
            b"ok\ndom0| keel: selftest passed\n"
        );
        assert_eq!(run(b"x\r\nKEEL PANIC: no\r\n"), b"x\r\ndom0| KEEL PANIC: no\r\n");
    }

    #[test]
    fn near_misses_and_mid_line_text_are_left_alone() {
        assert_eq!(run(b"kee\nkeep\n"), b"kee\nkeep\n");
        assert_eq!(run(b"a keel: b\n"), b"a keel: b\n");
        assert_eq!(run(b"KEEL PANIX\n"), b"KEEL PANIX\n");
        assert_eq!(run(b"kkeel: x\n"), b"kkeel: x\n");
    }

    #[test]
    fn a_prompt_is_not_held_back() {
        let mut guard = LineGuard::default();
        let mut out = Vec::new();
        for &byte in b"\n/ # " {
            guard.push(byte, &mut |bytes| out.extend_from_slice(bytes));
        }
        assert_eq!(out, b"\n/ # ", "nothing that cannot start a reserved prefix waits");
    }

    #[test]
    fn flushing_releases_a_held_start_without_a_mark() {
        let mut guard = LineGuard::default();
        let mut out = Vec::new();
        for &byte in b"kee" {
            guard.push(byte, &mut |bytes| out.extend_from_slice(bytes));
        }
        assert!(out.is_empty());
        guard.flush(&mut |bytes| out.extend_from_slice(bytes));
        assert_eq!(out, b"kee");
        // The rest of that line is mid-line now.
        guard.push(b'l', &mut |bytes| out.extend_from_slice(bytes));
        assert_eq!(out, b"keel");
    }
}

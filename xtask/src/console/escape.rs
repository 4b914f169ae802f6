//! The escape sequence that stops an interactive run: Ctrl-A x, as in QEMU
//! and screen. Every other key, Ctrl-C included, goes to the guest.

/// Ctrl-A.
pub const ESCAPE: u8 = 0x01;
/// After Ctrl-A: stop the run.
pub const QUIT: u8 = b'x';

/// Splits typed bytes into what goes to the guest and the quit request.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    /// The last byte seen was a Ctrl-A, held back until the next one.
    after_escape: bool,
}

impl EscapeFilter {
    /// Appends the bytes meant for the guest to `guest`; returns true when
    /// Ctrl-A x was typed (what follows it is dropped). Ctrl-A Ctrl-A sends
    /// one Ctrl-A; Ctrl-A before any other key is sent along with it.
    pub fn filter(&mut self, typed: &[u8], guest: &mut Vec<u8>) -> bool {
        for &byte in typed {
            if self.after_escape {
                self.after_escape = false;
                match byte {
                    QUIT => return true,
                    ESCAPE => guest.push(ESCAPE),
                    _ => guest.extend([ESCAPE, byte]),
                }
            } else if byte == ESCAPE {
                self.after_escape = true;
            } else {
                guest.push(byte);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut filter = EscapeFilter::default();
        let mut guest = Vec::new();
        let quit = chunks.iter().any(|chunk| filter.filter(chunk, &mut guest));
        (guest, quit)
    }

    #[test]
    fn plain_keys_and_ctrl_c_go_to_the_guest() {
        assert_eq!(filtered(&[b"uname -a\r", b"\x03"]), (b"uname -a\r\x03".to_vec(), false));
    }

    #[test]
    fn ctrl_a_x_quits_and_drops_what_follows() {
        assert_eq!(filtered(&[b"ls\x01xrm\r"]), (b"ls".to_vec(), true));
    }

    #[test]
    fn the_sequence_may_be_split_between_reads() {
        assert_eq!(filtered(&[b"a\x01", b"x"]), (b"a".to_vec(), true));
    }

    #[test]
    fn ctrl_a_twice_sends_one_ctrl_a() {
        assert_eq!(filtered(&[b"\x01\x01x"]), (b"\x01x".to_vec(), false));
    }

    #[test]
    fn ctrl_a_before_another_key_is_sent_with_it() {
        assert_eq!(filtered(&[b"\x01", b"e"]), (b"\x01e".to_vec(), false));
    }

    #[test]
    fn a_lone_ctrl_a_waits_for_the_next_key() {
        assert_eq!(filtered(&[b"\x01"]), (Vec::new(), false));
    }
}

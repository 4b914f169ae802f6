//! Collects a guest's debug-console bytes into lines, so Keel can print
//! each line with the domain's name in front. Guest bytes are untrusted:
//! control characters are escaped and overlong lines are split.

pub const LINE_CAPACITY: usize = 160;

pub struct ConsoleLine {
    bytes: [u8; LINE_CAPACITY],
    len: usize,
}

impl Default for ConsoleLine {
    fn default() -> Self {
        Self {
            bytes: [0; LINE_CAPACITY],
            len: 0,
        }
    }
}

impl ConsoleLine {
    /// Adds one byte; returns a finished line on newline or when full.
    pub fn push(&mut self, byte: u8) -> Option<&str> {
        match byte {
            b'\n' => return Some(self.take()),
            b'\r' => return None,
            0x20..=0x7e => self.append(byte),
            _ => self.append(b'?'),
        }
        if self.len == LINE_CAPACITY {
            return Some(self.take());
        }
        None
    }

    fn append(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn take(&mut self) -> &str {
        let len = core::mem::take(&mut self.len);
        // Only printable ASCII is ever stored, so this cannot fail.
        core::str::from_utf8(self.bytes.get(..len).unwrap_or_default()).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(line: &mut ConsoleLine, bytes: &[u8]) -> Vec<String> {
        bytes.iter().filter_map(|&b| line.push(b).map(String::from)).collect()
    }

    #[test]
    fn splits_on_newline_and_escapes_control_bytes() {
        let mut line = ConsoleLine::default();
        assert_eq!(feed(&mut line, b"hello\r\nx\x1b[0m\n"), vec!["hello", "x?[0m"]);
    }

    #[test]
    fn overlong_lines_are_split_not_dropped() {
        let mut line = ConsoleLine::default();
        let input = vec![b'a'; LINE_CAPACITY + 5];
        let lines = feed(&mut line, &input);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), LINE_CAPACITY);
        assert_eq!(feed(&mut line, b"\n"), vec!["aaaaa"]);
    }
}

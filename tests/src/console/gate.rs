//! Holding input back until the guest is ready for it: bytes that reach
//! the emulated UART before Linux's serial driver runs are lost.

/// Watches the guest's output for a marker, across read boundaries.
#[derive(Debug)]
pub struct InputGate {
    marker: Vec<u8>,
    /// The end of the output seen so far, too short to hold the marker.
    tail: Vec<u8>,
    open: bool,
}

impl InputGate {
    /// A gate that opens once `marker` has appeared in the output; an empty
    /// marker opens it at once.
    pub fn until(marker: &[u8]) -> InputGate {
        InputGate {
            marker: marker.to_vec(),
            tail: Vec::new(),
            open: marker.is_empty(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn observe(&mut self, output: &[u8]) {
        if self.open {
            return;
        }
        self.tail.extend_from_slice(output);
        if self.tail.windows(self.marker.len()).any(|window| window == self.marker) {
            self.open = true;
            self.tail = Vec::new();
            return;
        }
        let keep = self.marker.len() - 1;
        let drop = self.tail.len().saturating_sub(keep);
        self.tail.drain(..drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_when_the_marker_appears() {
        let mut gate = InputGate::until(b"ready");
        gate.observe(b"booting\r\n");
        assert!(!gate.is_open());
        gate.observe(b"[ 1.0] ready\r\n");
        assert!(gate.is_open());
    }

    #[test]
    fn finds_a_marker_split_between_reads() {
        let mut gate = InputGate::until(b"ready");
        for chunk in [&b"..re"[..], b"a", b"dy.."] {
            gate.observe(chunk);
        }
        assert!(gate.is_open());
    }

    #[test]
    fn stays_closed_on_a_partial_match() {
        let mut gate = InputGate::until(b"ready");
        gate.observe(b"rea");
        gate.observe(b"d!y");
        assert!(!gate.is_open());
    }

    #[test]
    fn an_empty_marker_is_open_at_once() {
        assert!(InputGate::until(b"").is_open());
    }
}

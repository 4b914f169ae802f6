//! Scripted console input: text typed into the guest's serial console once
//! its output shows what each step waits for (pure).

use std::fmt;

use super::gate::InputGate;

/// One step of a console script: wait for `wait_for` in the output, then
/// type `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleStep {
    /// Text the guest's output must show first (empty: at once). Only output
    /// that arrives after the previous step's text was typed counts, so two
    /// steps can wait for the same shell prompt.
    pub wait_for: String,
    /// What is typed: end a command with `\r`, as the Enter key does.
    pub send: String,
}

impl ConsoleStep {
    pub fn new(wait_for: &str, send: &str) -> Self {
        ConsoleStep {
            wait_for: wait_for.to_string(),
            send: send.to_string(),
        }
    }
}

impl fmt::Display for ConsoleStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type {:?} after {:?}", self.send, self.wait_for)
    }
}

/// Works through a list of steps as the guest's output arrives.
#[derive(Debug)]
pub struct ConsoleScript {
    steps: Vec<ConsoleStep>,
    /// Index of the step whose text is not typed yet.
    next: usize,
    /// Watches for the next step's `wait_for`.
    gate: InputGate,
}

impl ConsoleScript {
    pub fn new(steps: Vec<ConsoleStep>) -> Self {
        let gate = InputGate::until(steps.first().map_or(&b""[..], |step| step.wait_for.as_bytes()));
        ConsoleScript { steps, next: 0, gate }
    }

    /// Sees guest output; returns what is to be typed now (often nothing).
    /// Observing no output at all types the leading steps with an empty
    /// `wait_for`.
    /// Output in the same chunk after a match is not searched for the next
    /// step: it was written before that step's text was typed.
    pub fn observe(&mut self, output: &[u8]) -> Vec<u8> {
        if self.is_done() {
            return Vec::new();
        }
        self.gate.observe(output);
        self.advance()
    }

    /// Queues the text of every step whose wait is over, in order.
    fn advance(&mut self) -> Vec<u8> {
        let mut typed = Vec::new();
        while self.gate.is_open() {
            let Some(step) = self.steps.get(self.next) else {
                break;
            };
            typed.extend_from_slice(step.send.as_bytes());
            self.next += 1;
            let marker = self
                .steps
                .get(self.next)
                .map_or(&b""[..], |step| step.wait_for.as_bytes());
            self.gate = InputGate::until(marker);
        }
        typed
    }

    /// How many steps have had their text queued for typing.
    pub fn steps_typed(&self) -> usize {
        self.next
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.steps.len()
    }

    /// The first step still waiting for its text, if any.
    pub fn waiting_step(&self) -> Option<&ConsoleStep> {
        self.steps.get(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_script() -> ConsoleScript {
        ConsoleScript::new(vec![
            ConsoleStep::new("/ # ", "echo hi\r"),
            ConsoleStep::new("/ # ", "poweroff -f\r"),
        ])
    }

    #[test]
    fn nothing_is_typed_before_the_first_wait_is_over() {
        let mut script = shell_script();
        assert_eq!(script.observe(b""), b"");
        assert_eq!(script.observe(b"[ 2.2] dom0: userspace started\r\n"), b"");
        assert_eq!(script.steps_typed(), 0);
        assert_eq!(script.waiting_step(), Some(&ConsoleStep::new("/ # ", "echo hi\r")));
    }

    #[test]
    fn steps_are_typed_in_order_each_after_its_own_prompt() {
        let mut script = shell_script();
        assert_eq!(script.observe(b"shell on the console\r\n/ "), b"");
        assert_eq!(script.observe(b"# "), b"echo hi\r", "prompt split between reads");
        // The echo of the typed line is no prompt.
        assert_eq!(script.observe(b"echo hi\r\n"), b"");
        assert_eq!(script.observe(b"hi\r\n/ # "), b"poweroff -f\r");
        assert!(script.is_done());
        assert_eq!(script.observe(b"/ # "), b"", "a finished script types nothing");
        assert_eq!(script.steps_typed(), 2);
        assert_eq!(script.waiting_step(), None);
    }

    #[test]
    fn a_second_prompt_in_the_same_output_does_not_count_for_the_next_step() {
        let mut script = shell_script();
        assert_eq!(script.observe(b"/ # \r\n/ # "), b"echo hi\r");
        assert_eq!(script.steps_typed(), 1);
        assert_eq!(script.observe(b"hi\r\n/ # "), b"poweroff -f\r");
    }

    #[test]
    fn steps_without_a_wait_follow_at_once() {
        let mut script = ConsoleScript::new(vec![
            ConsoleStep::new("", "a"),
            ConsoleStep::new("", "b"),
            ConsoleStep::new("ready", "c"),
            ConsoleStep::new("", "d"),
        ]);
        assert_eq!(script.observe(b""), b"ab");
        assert_eq!(script.observe(b"not yet"), b"");
        assert_eq!(script.observe(b"ready!"), b"cd");
        assert!(script.is_done());
    }

    #[test]
    fn an_empty_script_is_done_at_once() {
        let mut script = ConsoleScript::new(Vec::new());
        assert!(script.is_done());
        assert_eq!(script.observe(b""), b"");
        assert_eq!(script.observe(b"/ # "), b"");
    }

    #[test]
    fn a_step_describes_itself() {
        assert_eq!(
            ConsoleStep::new("/ # ", "poweroff -f\r").to_string(),
            r#"type "poweroff -f\r" after "/ # ""#
        );
    }
}

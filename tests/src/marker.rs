//! Markers: what a boot test expects (or forbids) in the serial log, and the
//! pure matching logic behind the verdict.
//!
//! Markers match within a single line. Expected markers are ordered: each one
//! must match on the same line as the previous one or a later line. Allowing
//! the same line lets several regexes check different fields of one line
//! (e.g. each counter of `keel: domain 1 exits: ...`).

use std::fmt;

use regex::Regex;

#[derive(Debug, Clone)]
pub enum Marker {
    /// A plain substring of a line.
    Text(String),
    /// A regular expression matched against each line.
    Pattern(Regex),
}

impl Marker {
    pub fn text(text: impl Into<String>) -> Self {
        Marker::Text(text.into())
    }

    /// A regex marker from a pattern written in the test table.
    ///
    /// # Panics
    /// On an invalid pattern: test tables are code, and the unit tests build
    /// every table entry, so a typo fails `cargo test` rather than a boot run.
    pub fn regex(pattern: &str) -> Self {
        match Regex::new(pattern) {
            Ok(regex) => Marker::Pattern(regex),
            Err(error) => panic!("invalid marker regex {pattern:?}: {error}"),
        }
    }

    pub fn matches_line(&self, line: &str) -> bool {
        match self {
            Marker::Text(text) => line.contains(text.as_str()),
            Marker::Pattern(regex) => regex.is_match(line),
        }
    }

    /// Index (0-based) of the first line at or after `from_line` that matches.
    fn find_from(&self, lines: &[&str], from_line: usize) -> Option<usize> {
        lines
            .iter()
            .enumerate()
            .skip(from_line)
            .find(|(_, line)| self.matches_line(line))
            .map(|(index, _)| index)
    }

    /// Whether any line of `log` matches.
    pub fn appears_in(&self, log: &str) -> bool {
        log.lines().any(|line| self.matches_line(line))
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Marker::Text(text) => write!(f, "{text:?}"),
            Marker::Pattern(regex) => write!(f, "regex /{}/", regex.as_str()),
        }
    }
}

/// An expected marker that was not found where the order required it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMarker {
    /// Position of the marker in the expected list.
    pub index: usize,
    /// 1-based line the search started from: the line of the previous
    /// marker's match, `None` for the first marker (searched from the start).
    pub searched_from_line: Option<usize>,
    /// 1-based line where the marker does appear, before the required
    /// position: points at an ordering problem rather than a missing line.
    pub found_earlier_at_line: Option<usize>,
}

/// Finds `markers` in order; on success returns the 1-based line of each match.
pub fn find_in_order(log: &str, markers: &[Marker]) -> Result<Vec<usize>, MissingMarker> {
    let lines: Vec<&str> = log.lines().collect();
    let mut matched_lines = Vec::with_capacity(markers.len());
    let mut from_line = 0;
    for (index, marker) in markers.iter().enumerate() {
        match marker.find_from(&lines, from_line) {
            Some(line_index) => {
                matched_lines.push(line_index + 1);
                from_line = line_index;
            }
            None => {
                let earlier = marker.find_from(&lines[..from_line], 0);
                return Err(MissingMarker {
                    index,
                    searched_from_line: (index > 0).then_some(from_line + 1),
                    found_earlier_at_line: earlier.map(|line_index| line_index + 1),
                });
            }
        }
    }
    Ok(matched_lines)
}

/// A forbidden marker found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenHit {
    /// Position of the marker in the forbidden list.
    pub index: usize,
    /// 1-based line number.
    pub line_number: usize,
    pub line: String,
}

/// The earliest line that matches any forbidden marker.
pub fn find_forbidden(log: &str, forbidden: &[Marker]) -> Option<ForbiddenHit> {
    log.lines().enumerate().find_map(|(line_index, line)| {
        forbidden
            .iter()
            .position(|marker| marker.matches_line(line))
            .map(|index| ForbiddenHit {
                index,
                line_number: line_index + 1,
                line: line.to_string(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
keel: Keel hypervisor
keel: VMX root mode entered
guest1: selftest: started
keel: domain 1 exits: cpuid=3 io=2 vmcall=1 hlt=1 ept-violation=1
keel: selftest passed
";

    #[test]
    fn text_marker_matches_substring_of_a_line() {
        let marker = Marker::text("VMX root");
        assert!(marker.matches_line("keel: VMX root mode entered"));
        assert!(!marker.matches_line("keel: VMX not supported"));
    }

    #[test]
    fn regex_marker_matches_within_a_line() {
        let marker = Marker::regex(r"EPT violation at GPA 0x[0-9a-f]+");
        assert!(marker.matches_line("keel: domain 1 stopped: EPT violation at GPA 0xdead000"));
        assert!(!marker.matches_line("keel: domain 1 stopped: EPT violation at GPA ?"));
    }

    #[test]
    fn markers_in_order_report_their_line_numbers() {
        let markers = [
            Marker::text("keel: Keel hypervisor"),
            Marker::text("selftest: started"),
            Marker::text("selftest passed"),
        ];
        assert_eq!(find_in_order(LOG, &markers), Ok(vec![1, 3, 5]));
    }

    #[test]
    fn several_markers_may_check_the_same_line() {
        let markers = [
            Marker::regex(r"keel: domain 1 exits:.*\bcpuid=[1-9]"),
            Marker::regex(r"keel: domain 1 exits:.*\bio=[1-9]"),
            Marker::regex(r"keel: domain 1 exits:.*\bept-violation=1\b"),
        ];
        assert_eq!(find_in_order(LOG, &markers), Ok(vec![4, 4, 4]));
    }

    #[test]
    fn a_counter_of_zero_fails_its_marker() {
        let log = "keel: domain 1 exits: cpuid=0 io=2\n";
        let markers = [
            Marker::regex(r"keel: domain 1 exits:.*\bio=[1-9]"),
            Marker::regex(r"keel: domain 1 exits:.*\bcpuid=[1-9]"),
        ];
        let missing = find_in_order(log, &markers).unwrap_err();
        assert_eq!(missing.index, 1);
        assert_eq!(missing.found_earlier_at_line, None);
    }

    #[test]
    fn out_of_order_marker_is_reported_with_its_earlier_line() {
        let markers = [Marker::text("selftest: started"), Marker::text("VMX root mode entered")];
        assert_eq!(
            find_in_order(LOG, &markers),
            Err(MissingMarker {
                index: 1,
                searched_from_line: Some(3),
                found_earlier_at_line: Some(2),
            })
        );
    }

    #[test]
    fn absent_first_marker_is_reported_as_searched_from_the_start() {
        let markers = [Marker::text("never printed")];
        assert_eq!(
            find_in_order(LOG, &markers),
            Err(MissingMarker {
                index: 0,
                searched_from_line: None,
                found_earlier_at_line: None,
            })
        );
    }

    #[test]
    fn empty_marker_list_always_matches() {
        assert_eq!(find_in_order("", &[]), Ok(vec![]));
    }

    #[test]
    fn windows_line_endings_do_not_break_anchored_regexes() {
        let markers = [Marker::regex(r"^keel: selftest passed$")];
        assert_eq!(find_in_order("x\r\nkeel: selftest passed\r\n", &markers), Ok(vec![2]));
    }

    #[test]
    fn forbidden_reports_the_earliest_offending_line() {
        let log = "ok\nkeel: CPU exception #GP\nKEEL PANIC at foo\n";
        let forbidden = [Marker::text("KEEL PANIC"), Marker::text("keel: CPU exception")];
        assert_eq!(
            find_forbidden(log, &forbidden),
            Some(ForbiddenHit {
                index: 1,
                line_number: 2,
                line: "keel: CPU exception #GP".to_string(),
            })
        );
    }

    #[test]
    fn clean_log_has_no_forbidden_hit() {
        assert_eq!(find_forbidden(LOG, &[Marker::text("KEEL PANIC")]), None);
    }

    #[test]
    fn display_distinguishes_text_and_regex() {
        assert_eq!(Marker::text("a b").to_string(), "\"a b\"");
        assert_eq!(Marker::regex("a+").to_string(), "regex /a+/");
    }
}

//! The hypervisor's command-line parser.
//!
//! `keel_hypervisor::cmdline::parse`: what the boot loader entry says,
//! before anything else runs.
//!
//! Beyond "no panic": every value applied is in its documented range; each
//! reported option is one of the line's words with a reason; and the words
//! that were not reported, parsed on their own, give the same options with
//! nothing reported.
#![no_main]

use keel_hypervisor::cmdline::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let mut bad = Vec::new();
    let options = parse(&text, |option| bad.push((option.option, option.reason)));
    assert!(bad.len() <= words.len());
    for (option, reason) in &bad {
        assert!(words.contains(option), "reported {option:?}, not a word of the line");
        assert!(!reason.is_empty());
    }
    assert!((1..=1_000_000).contains(&options.bench_iterations));
    assert!((32..=3072).contains(&options.dom0_mem_mib) && options.dom0_mem_mib % 2 == 0);

    let mut remaining = bad.iter().map(|(option, _)| *option).collect::<Vec<_>>();
    let good: Vec<&str> = words
        .iter()
        .copied()
        .filter(|word| match remaining.iter().position(|bad| bad == word) {
            Some(index) => {
                remaining.remove(index);
                false
            }
            None => true,
        })
        .collect();
    let mut reported = 0;
    let again = parse(&good.join(" "), |_| reported += 1);
    assert_eq!(reported, 0, "a word accepted before is refused on its own");
    assert_eq!(format!("{again:?}"), format!("{options:?}"));
});

use std::time::Duration;

use keel_abi::mgmt::{Command, DomainInfo, DomainState};

use super::fake::{domain_info, FakeKeel};
use crate::client::Client;
use crate::top::{frame, rows, run, TopRow};

fn sample(cpu_ns: u64, exits: [u64; 6]) -> DomainInfo {
    let mut info = domain_info(3, "web", DomainState::Running, 512);
    info.cpu_time_ns = cpu_ns;
    [
        info.exits,
        info.exits_io,
        info.exits_mmio,
        info.exits_msr,
        info.exits_halt,
        info.exits_timer,
    ] = exits;
    info
}

#[test]
fn cpu_percent_is_guest_time_over_wall_time() {
    let before = [sample(1_000_000_000, [0; 6])];
    // 500 ms of guest time in 2 s: 25 %.
    let after = [sample(1_500_000_000, [4000, 1000, 800, 600, 400, 200])];
    let rows = rows(&before, &after, Duration::from_secs(2));
    assert_eq!(
        rows,
        [TopRow {
            name: "web".into(),
            id: 3,
            state: "running",
            cpu_percent: Some(25.0),
            exits: [
                Some(2000.0),
                Some(500.0),
                Some(400.0),
                Some(300.0),
                Some(200.0),
                Some(100.0)
            ],
            memory_mib: 512,
        }]
    );
    // A fully busy vCPU over 250 ms is 100 %.
    let after = [sample(1_250_000_000, [0; 6])];
    let busy = crate::top::rows(&before, &after, Duration::from_millis(250));
    assert!((busy[0].cpu_percent.unwrap() - 100.0).abs() < 1e-9);
}

#[test]
fn new_domains_and_reset_counters_have_no_rates() {
    let before = [sample(5_000_000_000, [10; 6])];
    let mut newcomer = domain_info(4, "db", DomainState::Paused, 64);
    newcomer.cpu_time_ns = 7;
    let after = [sample(1_000, [20, 20, 20, 20, 20, 5]), newcomer];
    let rows = rows(&before, &after, Duration::from_secs(1));
    assert_eq!(rows[0].cpu_percent, None);
    assert_eq!(
        rows[0].exits,
        [Some(10.0), Some(10.0), Some(10.0), Some(10.0), Some(10.0), None]
    );
    assert_eq!((rows[1].id, rows[1].state, rows[1].cpu_percent), (4, "paused", None));
    assert_eq!(rows[1].exits, [None; 6]);
}

#[test]
fn frames_show_every_column() {
    let before = [sample(0, [0; 6])];
    let after = [sample(123_456_789, [3001, 1000, 1000, 1000, 0, 1])];
    let text = frame(&rows(&before, &after, Duration::from_secs(1)), Duration::from_secs(1));
    assert_eq!(
        text,
        "keel top: 1 domains, 1.0 s sample\n\
         Name    ID  State      CPU%   Exits/s     IO/s   MMIO/s    MSR/s    HLT/s  Timer/s Mem(MiB)\n\
         web      3  running    12.3      3001     1000     1000     1000        0        1      512\n"
    );
    let text = frame(&rows(&[], &after, Duration::from_secs(1)), Duration::from_secs(1));
    assert!(
        text.ends_with("web      3  running       -         -        -        -        -        -        -      512\n")
    );
}

#[test]
fn batch_mode_prints_n_frames_from_fresh_samples_separated_by_blank_lines() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Running, 64);
    let mut out = Vec::new();
    run(
        &mut Client::connect(&mut keel).unwrap(),
        Duration::from_millis(1),
        Some(3),
        true,
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("keel top: 2 domains").count(), 3);
    assert_eq!(text.matches("\n\nkeel top:").count(), 2);
    assert!(!text.contains('\x1b'));
    // One sample before the first frame, then one per frame.
    assert_eq!(keel.count(Command::List), 4);

    let mut out = Vec::new();
    run(
        &mut Client::connect(&mut keel).unwrap(),
        Duration::from_millis(1),
        Some(2),
        false,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out)
            .unwrap()
            .matches("\x1b[H\x1b[2Jkeel top:")
            .count(),
        2
    );
}

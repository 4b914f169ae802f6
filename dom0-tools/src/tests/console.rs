use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_abi::mgmt::{Command, DomainState, Status};

use super::fake::FakeKeel;
use crate::client::Client;
use crate::console::{attach, dmesg, ConsoleEnd, ConsoleOptions, KeelConsole, Matcher, DETACH};

fn options(until: Option<&str>, timeout_ms: Option<u64>) -> ConsoleOptions {
    ConsoleOptions {
        until: until.map(str::to_string),
        timeout: timeout_ms.map(Duration::from_millis),
        interactive: false,
        poll: Duration::from_millis(1),
    }
}

/// Runs a console session against `keel`: (end, stdout, stderr).
fn session(
    keel: &mut FakeKeel,
    id: u32,
    options: &ConsoleOptions,
    input: Option<mpsc::Receiver<Vec<u8>>>,
) -> (anyhow::Result<ConsoleEnd>, String, String) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let mut client = Client::connect(keel).unwrap();
    let end = attach(
        &mut KeelConsole::new(&mut client, id),
        "web (id 1)",
        options,
        input,
        &mut out,
        &mut notes,
    );
    (end, String::from_utf8(out).unwrap(), String::from_utf8(notes).unwrap())
}

#[test]
fn the_matcher_finds_text_split_across_pieces() {
    let mut matcher = Matcher::new("login:");
    assert!(!matcher.feed(b"Debian GNU/Linux 12 web ttyS0\r\n\r\nweb lo"));
    assert!(!matcher.feed(b"gi"));
    assert!(matcher.feed(b"n: "));
    let mut matcher = Matcher::new("ab");
    assert!(!matcher.feed(b"a"));
    assert!(!matcher.feed(b"xb"));
    assert!(matcher.feed(b"aab"));
    assert!(Matcher::new("").feed(b""));
    // Across lost bytes the halves do not make a match.
    let mut matcher = Matcher::new("login:");
    assert!(!matcher.feed(b"log"));
    matcher.gap();
    assert!(!matcher.feed(b"in:"));
}

#[test]
fn output_from_before_attaching_is_shown_and_until_stops_at_the_text() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.domain(id).console = b"[    0.000000] Linux version 6.1\r\n".to_vec();
    keel.domain(id).script = [&b""[..], b"Welcome\r\nweb lo", b"", b"gin: ", b"never shown"]
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let (end, out, notes) = session(&mut keel, id, &options(Some("login:"), Some(10_000)), None);
    assert_eq!(end.unwrap(), ConsoleEnd::Matched);
    assert_eq!(out, "[    0.000000] Linux version 6.1\r\nWelcome\r\nweb login: ");
    assert_eq!(notes, "");
    // Cursors advance by what was returned: 0, then the end each time.
    let cursors: Vec<u64> = keel
        .calls
        .iter()
        .filter(|call| call.command == Command::ConsoleRead as u32)
        .map(|call| call.args[1])
        .collect();
    assert_eq!(cursors, [0, 34, 49, 49]);
}

#[test]
fn bytes_lost_from_the_ring_are_noted_on_stderr() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.ring_bytes = 10;
    keel.read_limit = 4;
    keel.domain(id).console = b"0123456789abcdefghij".to_vec();
    keel.domain(id).script = [
        b"".to_vec(),
        b"".to_vec(),
        b"".to_vec(),
        b"0123456789012345END".to_vec(),
    ]
    .into();
    let (end, out, notes) = session(&mut keel, id, &options(Some("END"), Some(10_000)), None);
    assert_eq!(end.unwrap(), ConsoleEnd::Matched);
    // Reads of 4 bytes from the 10 the ring holds; then 19 more arrive, of
    // which the ring keeps the last 10.
    assert_eq!(out, "abcdefghij9012345END");
    assert_eq!(
        notes,
        "keel: [10 bytes of console output lost: older than the ring holds]\n\
         keel: [9 bytes of console output lost: older than the ring holds]\n"
    );
}

#[test]
fn a_timeout_fails_with_a_message() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.domain(id).console = b"booting".to_vec();
    let started = Instant::now();
    let (end, out, _) = session(&mut keel, id, &options(Some("login:"), Some(50)), None);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        end.unwrap_err().to_string(),
        "timed out after 0.05 s waiting for `login:` on web (id 1)'s console"
    );
    assert_eq!(out, "booting");

    let (end, _, _) = session(&mut keel, id, &options(None, Some(20)), None);
    assert_eq!(
        end.unwrap_err().to_string(),
        "timed out after 0.02 s on web (id 1)'s console"
    );
}

#[test]
fn a_vanished_domain_ends_the_session_with_a_note() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.domain(id).script = [b"reboot: Power down\r\n".to_vec()].into();
    keel.domain(id).vanish_after_reads = Some(1);
    let (end, out, notes) = session(&mut keel, id, &options(None, Some(10_000)), None);
    assert_eq!(end.unwrap(), ConsoleEnd::DomainGone);
    assert_eq!(out, "reboot: Power down\r\n");
    assert_eq!(notes, "keel: domain web (id 1) no longer exists\n");

    // Waiting for text that never came is a failure, though.
    let id = keel.add("db", DomainState::Running, 64);
    keel.domain(id).vanish_after_reads = Some(2);
    let (end, _, _) = session(&mut keel, id, &options(Some("login:"), Some(10_000)), None);
    assert_eq!(
        end.unwrap_err().to_string(),
        "domain web (id 1) no longer exists; `login:` never appeared on its console"
    );
}

#[test]
fn other_errors_end_the_session_as_errors() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.fail(Command::ConsoleRead, 1, Status::InvalidArgument, "cursor");
    let (end, _, _) = session(&mut keel, id, &options(None, None), None);
    assert_eq!(end.unwrap_err().to_string(), "invalid argument: cursor");
}

#[test]
fn input_is_forwarded_and_what_the_uart_refused_is_retried() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.input_room = 4;
    keel.domain(id).script = [b"".to_vec(), b"".to_vec(), b"".to_vec(), b"".to_vec(), b"# ".to_vec()].into();
    let (sender, receiver) = mpsc::channel();
    sender.send(b"uname -r\n".to_vec()).unwrap();
    // Not interactive: Ctrl-] is just a byte for the guest.
    sender.send(vec![DETACH]).unwrap();
    drop(sender);
    let (end, _, _) = session(&mut keel, id, &options(Some("# "), Some(10_000)), Some(receiver));
    assert_eq!(end.unwrap(), ConsoleEnd::Matched);
    assert_eq!(keel.domain(id).typed, b"uname -r\n\x1d");
    let writes: Vec<u32> = keel
        .calls
        .iter()
        .filter(|call| call.command == Command::ConsoleWrite as u32)
        .map(|call| call.data_len)
        .collect();
    assert_eq!(writes, [10, 6, 2]);
}

#[test]
fn ctrl_close_bracket_detaches_an_interactive_console() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    let (sender, receiver) = mpsc::channel();
    sender.send(b"ls\r\x1dnot sent".to_vec()).unwrap();
    let options = ConsoleOptions {
        interactive: true,
        ..options(None, Some(10_000))
    };
    let (end, _, _) = session(&mut keel, id, &options, Some(receiver));
    assert_eq!(end.unwrap(), ConsoleEnd::Detached);
    assert_eq!(keel.domain(id).typed, b"ls\r");
    drop(sender);
}

#[test]
fn after_stdin_ends_output_keeps_coming() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.domain(id).script = [b"a".to_vec(), b"".to_vec(), b"b".to_vec(), b"c".to_vec()].into();
    let (sender, receiver) = mpsc::channel::<Vec<u8>>();
    drop(sender);
    let (end, out, _) = session(&mut keel, id, &options(Some("c"), Some(10_000)), Some(receiver));
    assert_eq!(end.unwrap(), ConsoleEnd::Matched);
    assert_eq!(out, "abc");
    assert_eq!(keel.count(Command::ConsoleWrite), 0);
}

#[test]
fn interactive_notes_end_lines_with_carriage_returns() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.domain(id).vanish_after_reads = Some(1);
    let options = ConsoleOptions {
        interactive: true,
        ..options(None, Some(10_000))
    };
    let (_, _, notes) = session(&mut keel, id, &options, None);
    assert_eq!(notes, "keel: domain web (id 1) no longer exists\r\n");
}

#[test]
fn dmesg_reads_the_log_from_the_start_until_it_is_drained() {
    let mut keel = FakeKeel::new();
    keel.read_limit = 8;
    keel.dmesg = b"keel: Keel hypervisor\nkeel: dom0 started\n".to_vec();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    dmesg(&mut Client::connect(&mut keel).unwrap(), &mut out, &mut notes).unwrap();
    assert_eq!(out, keel.dmesg);
    assert!(notes.is_empty());
    let cursors: Vec<u64> = keel.calls[1..].iter().map(|call| call.args[1]).collect();
    assert_eq!(cursors, [0, 8, 16, 24, 32, 40, 41]);

    keel.ring_bytes = 19;
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    dmesg(&mut Client::connect(&mut keel).unwrap(), &mut out, &mut notes).unwrap();
    assert_eq!(out, b"keel: dom0 started\n");
    assert_eq!(
        String::from_utf8(notes).unwrap(),
        "keel: [22 bytes of Keel's log lost: older than the ring holds]\n"
    );
}

#[test]
fn input_a_domain_refuses_is_dropped_with_a_note() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Shutdown, 64);
    keel.domain(id).script = [b"".to_vec(), b"".to_vec(), b"bye".to_vec()].into();
    keel.fail(Command::ConsoleWrite, 0, Status::BadState, "shutdown");
    let (sender, receiver) = mpsc::channel();
    sender.send(b"ls\n".to_vec()).unwrap();
    sender.send(b"pwd\n".to_vec()).unwrap();
    drop(sender);
    let (end, out, notes) = session(&mut keel, id, &options(Some("bye"), Some(10_000)), Some(receiver));
    assert_eq!(end.unwrap(), ConsoleEnd::Matched);
    assert_eq!(out, "bye");
    assert_eq!(
        notes,
        "keel: input dropped: the domain's state does not allow that: shutdown\n"
    );
    // One refused write; nothing retried.
    assert_eq!(keel.count(Command::ConsoleWrite), 1);
    assert!(keel.domain(id).typed.is_empty());
}

//! Frames between ports: learning, anti-spoofing, bad input, full
//! receivers, departures and reconnection.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::*;
use crate::switch_daemon::files::PortRecord;
use crate::switch_daemon::protocol::Hello;

#[test]
fn broadcast_floods_and_replies_go_only_where_learned() {
    let dir = scratch("learn");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let (mut a, mut b, mut c) = (connect(&dir, 1, A), connect(&dir, 2, B), connect(&dir, 3, C));
    pump(&mut server, &mut log);
    assert_eq!(server.port_records().len(), 3, "{}", log_text(&log));
    // A's broadcast reaches B and C, not A itself.
    assert!(a.send(&frame(BROADCAST, A, 1, 60)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!(drain(&mut b), [frame(BROADCAST, A, 1, 60)]);
    assert_eq!(drain(&mut c), [frame(BROADCAST, A, 1, 60)]);
    assert!(drain(&mut a).is_empty());
    // B answers: A was learned, so only A gets it (C does not).
    assert!(b.send(&frame(A, B, 2, 100)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!(drain(&mut a), [frame(A, B, 2, 100)]);
    assert!(drain(&mut c).is_empty());
    // And back: B is learned now.
    assert!(a.send(&frame(B, A, 3, 1514)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!(drain(&mut b), [frame(B, A, 3, 1514)]);
    assert!(drain(&mut c).is_empty());
    // A station nobody has heard of: flooded.
    let unknown = [0x02, 0, 0, 0, 0, 0x0D];
    assert!(c.send(&frame(unknown, C, 4, 60)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!((drain(&mut a).len(), drain(&mut b).len()), (1, 1));
    assert_eq!(
        server.lookup(&A),
        server.port_records().first().map(|record| record.port)
    );
    let counters = server.counters(1).unwrap();
    assert_eq!((counters.rx, counters.tx), (2, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spoofed_and_malformed_frames_go_nowhere() {
    let dir = scratch("spoof");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let mut a = connect(&dir, 1, A);
    let mut b = connect(&dir, 2, B);
    pump(&mut server, &mut log);
    // A poses as C, or sends from a group address.
    assert!(a.send(&frame(BROADCAST, C, 1, 60)).unwrap());
    assert!(a.send(&frame(BROADCAST, BROADCAST, 1, 60)).unwrap());
    // The port refuses to send what no switch carries.
    assert!(!a.send(&frame(BROADCAST, A, 1, 60)[..13]).unwrap());
    assert!(!a.send(&frame(BROADCAST, A, 1, 9023)).unwrap());
    // A raw connection sends them anyway, and more.
    let hello = Hello {
        domain: 3,
        device: 1,
        mac: C,
    };
    let evil = raw(&dir);
    ffi::send(evil.as_fd(), &hello.encode()).unwrap();
    for message in [
        vec![1],
        frame(BROADCAST, C, 2, 13),
        frame(BROADCAST, C, 2, 9023),
        vec![0; 70000],
    ] {
        ffi::send(evil.as_fd(), &message).unwrap();
    }
    ffi::send(evil.as_fd(), &frame(BROADCAST, C, 3, 9022)).unwrap();
    pump(&mut server, &mut log);
    assert_eq!(drain(&mut b), [frame(BROADCAST, C, 3, 9022)], "only the good one");
    assert_eq!(server.lookup(&C), Some(3), "learned from its own port only");
    let spoofer = server.counters(1).unwrap();
    assert_eq!((spoofer.spoofed, spoofer.rx), (2, 0));
    let evil_counters = server.counters(3).unwrap();
    assert_eq!((evil_counters.malformed, evil_counters.rx), (4, 1));
    // An empty message is the end of the connection.
    ffi::send(evil.as_fd(), &[]).unwrap();
    pump(&mut server, &mut log);
    assert_eq!(server.port_records().len(), 2);
    assert_eq!(server.lookup(&C), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_connection_that_does_not_say_hello_is_closed() {
    let dir = scratch("hello");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let stranger = raw(&dir);
    ffi::send(stranger.as_fd(), &frame(BROADCAST, A, 1, 60)).unwrap();
    let old = raw(&dir);
    let mut hello = Hello {
        domain: 1,
        device: 0,
        mac: A,
    }
    .encode();
    hello[8] = 9;
    ffi::send(old.as_fd(), &hello).unwrap();
    let huge = raw(&dir);
    ffi::send(huge.as_fd(), &vec![0; 70000]).unwrap();
    // Connecting and leaving without a word (ensure_running's probe) is
    // not worth a line.
    drop(raw(&dir));
    pump(&mut server, &mut log);
    assert!(server.port_records().is_empty());
    for socket in [&stranger, &old, &huge] {
        assert_eq!(ffi::recv(socket.as_fd(), &mut [0; 64]).unwrap(), 0, "closed");
    }
    let text = log_text(&log);
    assert!(
        text.contains("first message is not a hello (60 bytes, not a 21-byte hello)"),
        "{text}"
    );
    assert!(text.contains("(hello version 9, this switch speaks 1)"), "{text}");
    assert!(text.contains("(65536 bytes, not a 21-byte hello)"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_port_that_leaves_is_forgotten_and_logged() {
    let dir = scratch("leave");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let mut a = SwitchPort::connect(&dir, 7, 2, A).unwrap();
    let mut b = connect(&dir, 8, B);
    pump(&mut server, &mut log);
    let ports = std::fs::read_to_string(dir.join("switch.ports")).unwrap();
    assert!(
        ports.ends_with("1 7 2 02:00:00:00:00:0a\n2 8 0 02:00:00:00:00:0b\n"),
        "{ports}"
    );
    assert!(a.send(&frame(BROADCAST, A, 1, 60)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!(server.lookup(&A), Some(1));
    drop(a);
    pump(&mut server, &mut log);
    assert_eq!(server.lookup(&A), None);
    assert_eq!(
        server.port_records(),
        [PortRecord {
            port: 2,
            domain: 8,
            device: 0,
            mac: B
        }]
    );
    let ports = std::fs::read_to_string(dir.join("switch.ports")).unwrap();
    assert!(ports.ends_with("\n2 8 0 02:00:00:00:00:0b\n"), "{ports}");
    // Frames for A flood again (to nobody but B's own port is excluded).
    assert!(b.send(&frame(A, B, 2, 60)).unwrap());
    pump(&mut server, &mut log);
    assert_eq!(server.counters(2).unwrap().rx, 1);
    let text = log_text(&log);
    assert!(
        text.contains(
            "port 1: domain 7 device 2 (02:00:00:00:00:0a) gone: the backend closed it; received 1 frames, sent 0;"
        ),
        "{text}"
    );
    // A new port gets a new number.
    let _c = connect(&dir, 9, C);
    pump(&mut server, &mut log);
    assert_eq!(server.lookup(&C), None);
    assert_eq!(server.port_records().last().unwrap().port, 3);
    drop(server);
    assert!(!dir.join(SOCKET_NAME).exists() && !dir.join("switch.ports").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_receiver_that_does_not_read_costs_only_its_own_frames() {
    let dir = scratch("full");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let mut a = connect(&dir, 1, A);
    let _b = connect(&dir, 2, B);
    let mut c = connect(&dir, 3, C);
    pump(&mut server, &mut log);
    // B never reads; C does. Enough frames to fill any socket buffer.
    let started = Instant::now();
    let mut sent = 0u64;
    let mut received = 0usize;
    while sent < 4000 {
        for _ in 0..32 {
            sent += u64::from(a.send(&frame(BROADCAST, A, 1, 1514)).unwrap());
        }
        server.step(Duration::ZERO, &mut log).unwrap();
        received += drain(&mut c).len();
        assert!(started.elapsed() < Duration::from_secs(30), "stuck: {sent} sent");
    }
    pump(&mut server, &mut log);
    received += drain(&mut c).len();
    let (from_a, to_b, to_c) = (
        server.counters(1).unwrap(),
        server.counters(2).unwrap(),
        server.counters(3).unwrap(),
    );
    assert_eq!(from_a.rx, sent);
    assert!(to_b.dropped > 0, "{to_b:?}");
    assert_eq!(to_b.tx + to_b.dropped, sent);
    assert_eq!((to_c.tx, to_c.dropped), (sent, 0));
    assert_eq!(received as u64, sent);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_port_sends_receives_and_polls() {
    let dir = scratch("port");
    let mut server = server(&dir);
    let mut log = Vec::new();
    let mut a = connect(&dir, 1, A);
    let mut b = connect(&dir, 2, B);
    assert!(a.is_connected());
    // Bad arguments are refused before connecting.
    assert!(SwitchPort::connect(&dir, 1, 70000, A).is_err());
    assert!(SwitchPort::connect(&dir, 1, 0, BROADCAST).is_err());
    let missing = SwitchPort::connect(&dir.join("nowhere"), 1, 0, A).unwrap_err();
    assert!(
        missing.to_string().starts_with("cannot connect to the switch at "),
        "{missing}"
    );
    pump(&mut server, &mut log);
    let mut buffer = [0u8; 2048];
    assert_eq!(b.recv(&mut buffer).unwrap(), None);
    assert!(a.send(&frame(B, A, 5, 1000)).unwrap());
    assert!(a.send(&frame(B, A, 6, 1500)).unwrap());
    assert!(a.send(&frame(B, A, 7, 100)).unwrap());
    pump(&mut server, &mut log);
    let mut fds = [libc::pollfd {
        fd: b.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(ffi::poll(&mut fds, Duration::from_secs(1)).unwrap(), 1);
    let mut small = [0u8; 1200];
    assert_eq!(b.recv(&mut small).unwrap(), Some(1000));
    assert_eq!(small[..1000], frame(B, A, 5, 1000));
    // Too long for the buffer: dropped, the next one comes.
    assert_eq!(b.recv(&mut small).unwrap(), Some(100));
    assert_eq!(small[..100], frame(B, A, 7, 100));
    assert_eq!(b.recv(&mut small).unwrap(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ports_reconnect_when_the_switch_comes_back() {
    let dir = scratch("restart");
    let mut log = Vec::new();
    let mut server1 = server(&dir);
    let interval = Duration::from_millis(50);
    let mut a = connect(&dir, 1, A).with_reconnect_interval(interval);
    let mut b = connect(&dir, 2, B).with_reconnect_interval(interval);
    pump(&mut server1, &mut log);
    let old_fd = a.as_raw_fd();
    drop(server1);
    // A notices at its next read; B when it sends. Both drop meanwhile.
    assert_eq!(a.recv(&mut [0; 64]).unwrap(), None);
    assert!(!a.is_connected());
    assert!(!b.send(&frame(BROADCAST, B, 1, 60)).unwrap());
    assert!(!b.is_connected());
    assert_ne!(a.as_raw_fd(), old_fd, "a timer while disconnected");
    let mut server2 = server(&dir);
    // A's timer wakes the poller; its next recv reconnects.
    let mut fds = [libc::pollfd {
        fd: a.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(ffi::poll(&mut fds, Duration::from_secs(2)).unwrap(), 1);
    assert_eq!(a.recv(&mut [0; 64]).unwrap(), None);
    assert!(a.is_connected());
    std::thread::sleep(interval);
    assert!(b.send(&frame(BROADCAST, B, 2, 60)).unwrap());
    assert!(b.is_connected());
    pump(&mut server2, &mut log);
    assert_eq!(server2.port_records().len(), 2);
    assert_eq!(drain(&mut a), [frame(BROADCAST, B, 2, 60)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

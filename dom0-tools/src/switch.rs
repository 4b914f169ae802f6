//! A learning Ethernet switch, as pure logic: it decides where a frame
//! goes and moves no bytes. The Dom0 network backend (to come) connects
//! each DomU's virtio-net device, and a TAP for Dom0, to one port.
//!
//! Rules (`docs/virtio.md`, "virtio-net"):
//!
//! - a frame shorter than the 14-byte Ethernet header, from a port the
//!   switch does not have, or with a multicast (including broadcast) or
//!   all-zero source address is dropped, as Linux's bridge does: no
//!   station sends from such an address;
//! - otherwise the source address is learned on the input port (a MAC
//!   seen on another port moves there);
//! - a multicast or broadcast destination, or a unicast one not learned
//!   (or aged out), is flooded to every port but the input port; a learned
//!   one goes to its port only, and is dropped when that is the input port
//!   (the station is on the sender's own segment);
//! - an entry not refreshed for [`Switch::max_age`] (300 s by default,
//!   Linux's bridge default) ages out;
//! - the table holds at most [`Switch::capacity`] entries: learning a new
//!   MAC into a full table evicts the least recently seen entry, so a DomU
//!   sending from millions of addresses costs a bounded table (it can
//!   still push other stations out, and their traffic is then flooded
//!   until they send again, as on a hardware switch);
//! - [`Switch::remove_port`] forgets the port's addresses.
//!
//! Time comes from the caller (`now`, monotonic), so the switch is
//! deterministic and tests need no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A switch port: a small integer the backend assigns.
pub type Port = u16;

/// A 48-bit Ethernet address.
pub type Mac = [u8; 6];

/// Bytes of an Ethernet header: destination, source, EtherType.
pub const ETH_HEADER_LEN: usize = 14;

/// How long an address stays learned without being seen (Linux's bridge
/// default ageing time).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// Whether `mac` is a group (multicast or broadcast) address: bit 0 of the
/// first byte.
pub fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// Whether `mac` is usable as a station's source address: neither a group
/// address nor all zeros.
pub fn is_valid_source(mac: &Mac) -> bool {
    !is_multicast(mac) && *mac != [0; 6]
}

/// Why a frame goes nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    TooShort,
    /// The input port is not on the switch.
    UnknownPort,
    /// A multicast or all-zero source address.
    InvalidSource,
    /// The destination was learned on the input port.
    SamePort,
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To the port the destination was learned on.
    Unicast(Port),
    /// To every port but the input port, in ascending order (empty when
    /// the input port is alone).
    Flood(Vec<Port>),
    Drop(DropReason),
}

/// One learned address.
#[derive(Clone, Copy, Debug)]
struct Entry {
    port: Port,
    last_seen: Instant,
    /// Key in `Switch::by_age`: larger is more recently seen.
    stamp: u64,
}

/// A learning switch with a bounded address table.
#[derive(Debug)]
pub struct Switch {
    ports: BTreeSet<Port>,
    table: HashMap<Mac, Entry>,
    /// The table's addresses, least recently seen first.
    by_age: BTreeMap<u64, Mac>,
    next_stamp: u64,
    capacity: usize,
    max_age: Duration,
}

impl Switch {
    /// A switch with no ports whose table holds at most `capacity`
    /// addresses (0: nothing is learned and every frame floods, a hub).
    pub fn new(capacity: usize) -> Self {
        Self {
            ports: BTreeSet::new(),
            table: HashMap::new(),
            by_age: BTreeMap::new(),
            next_stamp: 0,
            capacity,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// Sets how long an address stays learned without being seen.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Addresses in the table (aged ones included until the next
    /// [`forward`](Self::forward) or [`expire`](Self::expire)).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Adds a port; false if it was there already.
    pub fn add_port(&mut self, port: Port) -> bool {
        self.ports.insert(port)
    }

    /// Removes a port and forgets every address learned on it; false if
    /// there was no such port.
    pub fn remove_port(&mut self, port: Port) -> bool {
        if !self.ports.remove(&port) {
            return false;
        }
        let by_age = &mut self.by_age;
        self.table.retain(|_, entry| {
            let keep = entry.port != port;
            if !keep {
                by_age.remove(&entry.stamp);
            }
            keep
        });
        true
    }

    /// The ports, in ascending order.
    pub fn ports(&self) -> impl Iterator<Item = Port> + '_ {
        self.ports.iter().copied()
    }

    fn is_fresh(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_seen) < self.max_age
    }

    /// The port `mac` was learned on, unless it aged out.
    pub fn lookup(&self, mac: &Mac, now: Instant) -> Option<Port> {
        self.table
            .get(mac)
            .filter(|entry| self.is_fresh(entry, now))
            .map(|entry| entry.port)
    }

    /// Forgets the addresses not seen for [`max_age`](Self::max_age);
    /// returns how many. Cheap when nothing is due: it looks at the least
    /// recently seen entries only.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((&stamp, &mac)) = self.by_age.first_key_value() {
            let fresh = self.table.get(&mac).is_some_and(|entry| self.is_fresh(entry, now));
            if fresh {
                break;
            }
            self.by_age.remove(&stamp);
            self.table.remove(&mac);
            removed += 1;
        }
        removed
    }

    /// Learns (or refreshes) `mac` on `port`, evicting the least recently
    /// seen address when the table is full.
    fn learn(&mut self, mac: Mac, port: Port, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(entry) = self.table.get_mut(&mac) {
            self.by_age.remove(&entry.stamp);
            *entry = Entry {
                port,
                last_seen: now,
                stamp,
            };
        } else {
            while self.table.len() >= self.capacity {
                let Some((_, oldest)) = self.by_age.pop_first() else {
                    break;
                };
                self.table.remove(&oldest);
            }
            self.table.insert(
                mac,
                Entry {
                    port,
                    last_seen: now,
                    stamp,
                },
            );
        }
        self.by_age.insert(stamp, mac);
    }

    /// Decides where `frame`, received on `in_port` at `now`, goes, and
    /// learns its source address (see the module documentation for the
    /// rules).
    pub fn forward(&mut self, in_port: Port, frame: &[u8], now: Instant) -> Forward {
        if frame.len() < ETH_HEADER_LEN {
            return Forward::Drop(DropReason::TooShort);
        }
        if !self.ports.contains(&in_port) {
            return Forward::Drop(DropReason::UnknownPort);
        }
        let mut destination = [0u8; 6];
        let mut source = [0u8; 6];
        destination.copy_from_slice(&frame[..6]);
        source.copy_from_slice(&frame[6..12]);
        if !is_valid_source(&source) {
            return Forward::Drop(DropReason::InvalidSource);
        }
        self.expire(now);
        self.learn(source, in_port, now);
        if !is_multicast(&destination) {
            match self.lookup(&destination, now) {
                Some(port) if port == in_port => return Forward::Drop(DropReason::SamePort),
                Some(port) => return Forward::Unicast(port),
                None => {}
            }
        }
        Forward::Flood(self.ports().filter(|&port| port != in_port).collect())
    }
}

/// A stable MAC address for NIC `index` of domain `domain_name`:
/// locally administered and unicast (first byte `xxxxxx10`), the same for
/// the same name and index on every run, machine and Keel version.
///
/// The 64-bit FNV-1a hash of the name's length (8 bytes, little-endian),
/// the name's bytes and the index (8 bytes, little-endian), passed through
/// SplitMix64's finaliser; the address is the first 6 bytes of the result
/// (little-endian) with bit 0 of the first byte cleared and bit 1 set.
/// 46 bits come from the hash, so two NICs share an address with
/// probability about n² / 2^47 for n NICs. For example, NIC 0 of `domu1`
/// is `36:fd:18:b4:1a:11`.
pub fn generated_mac(domain_name: &str, index: usize) -> Mac {
    const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash = FNV_OFFSET;
    let length = (domain_name.len() as u64).to_le_bytes();
    let index = (index as u64).to_le_bytes();
    for &byte in length.iter().chain(domain_name.as_bytes()).chain(&index) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64's finaliser: every input bit reaches every output bit.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    hash ^= hash >> 31;
    let bytes = hash.to_le_bytes();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[..6]);
    mac[0] = (mac[0] & !0b01) | 0b10;
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0, 0, 0, 0, 0x0A];
    const B: Mac = [0x02, 0, 0, 0, 0, 0x0B];
    const C: Mac = [0x02, 0, 0, 0, 0, 0x0C];
    const BROADCAST: Mac = [0xFF; 6];

    fn frame(destination: Mac, source: Mac) -> Vec<u8> {
        let mut frame = Vec::with_capacity(60);
        frame.extend_from_slice(&destination);
        frame.extend_from_slice(&source);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.resize(60, 0x55);
        frame
    }

    fn with_ports(ports: &[Port]) -> Switch {
        let mut switch = Switch::new(16);
        for &port in ports {
            assert!(switch.add_port(port));
        }
        switch
    }

    #[test]
    fn floods_unknown_then_forwards_learned() {
        let now = Instant::now();
        let mut switch = with_ports(&[1, 2, 3]);
        assert_eq!(switch.forward(1, &frame(B, A), now), Forward::Flood(vec![2, 3]));
        assert_eq!(switch.lookup(&A, now), Some(1));
        // B answers A: unicast, and B is learned.
        assert_eq!(switch.forward(2, &frame(A, B), now), Forward::Unicast(1));
        assert_eq!(switch.forward(1, &frame(B, A), now), Forward::Unicast(2));
        // Still unknown C: flooded.
        assert_eq!(switch.forward(2, &frame(C, B), now), Forward::Flood(vec![1, 3]));
        assert_eq!(switch.len(), 2);
        // A frame for a station on the sender's own port goes nowhere.
        assert_eq!(
            switch.forward(1, &frame(A, [0x02, 0, 0, 0, 0, 0x0D]), now),
            Forward::Drop(DropReason::SamePort)
        );
    }

    #[test]
    fn floods_broadcast_and_multicast() {
        let now = Instant::now();
        let mut switch = with_ports(&[4, 1, 9]);
        switch.forward(1, &frame(B, A), now);
        for destination in [BROADCAST, [0x01, 0x00, 0x5E, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]] {
            assert_eq!(
                switch.forward(4, &frame(destination, B), now),
                Forward::Flood(vec![1, 9])
            );
        }
        // Group addresses are never learned, even if one appears as a
        // destination on a port.
        assert_eq!(switch.lookup(&BROADCAST, now), None);
        // A port alone floods to nobody.
        let mut lonely = with_ports(&[7]);
        assert_eq!(lonely.forward(7, &frame(BROADCAST, A), now), Forward::Flood(vec![]));
    }

    #[test]
    fn drops_bad_frames_without_learning() {
        let now = Instant::now();
        let mut switch = with_ports(&[1, 2]);
        assert_eq!(
            switch.forward(1, &frame(B, A)[..13], now),
            Forward::Drop(DropReason::TooShort)
        );
        assert_eq!(switch.forward(1, &[], now), Forward::Drop(DropReason::TooShort));
        assert_eq!(
            switch.forward(1, &frame(B, A)[..14], now),
            Forward::Flood(vec![2]),
            "a bare header is a frame"
        );
        assert_eq!(
            switch.forward(5, &frame(B, C), now),
            Forward::Drop(DropReason::UnknownPort)
        );
        for source in [BROADCAST, [0x01, 0, 0, 0, 0, 1], [0; 6]] {
            assert_eq!(
                switch.forward(2, &frame(A, source), now),
                Forward::Drop(DropReason::InvalidSource)
            );
            assert_eq!(switch.lookup(&source, now), None);
        }
        assert_eq!(switch.lookup(&C, now), None);
        assert_eq!(switch.len(), 1);
    }

    #[test]
    fn a_moving_mac_is_learned_again() {
        let now = Instant::now();
        let mut switch = with_ports(&[1, 2, 3]);
        switch.forward(1, &frame(BROADCAST, A), now);
        assert_eq!(switch.forward(2, &frame(A, B), now), Forward::Unicast(1));
        // A migrates to port 3.
        switch.forward(3, &frame(BROADCAST, A), now);
        assert_eq!(switch.lookup(&A, now), Some(3));
        assert_eq!(switch.forward(2, &frame(A, B), now), Forward::Unicast(3));
        assert_eq!(switch.len(), 2);
    }

    #[test]
    fn entries_age_out() {
        let start = Instant::now();
        let mut switch = with_ports(&[1, 2]).with_max_age(Duration::from_secs(10));
        assert_eq!(switch.max_age(), Duration::from_secs(10));
        switch.forward(1, &frame(BROADCAST, A), start);
        switch.forward(2, &frame(BROADCAST, B), start + Duration::from_secs(5));
        let just_before = start + Duration::from_millis(9_999);
        assert_eq!(switch.lookup(&A, just_before), Some(1));
        let at = start + Duration::from_secs(10);
        assert_eq!(switch.lookup(&A, at), None, "aged out at max_age");
        assert_eq!(switch.forward(2, &frame(A, B), at), Forward::Flood(vec![1]));
        assert_eq!(switch.len(), 1, "A forgotten, B refreshed");
        // Seen again: refreshed.
        switch.forward(2, &frame(BROADCAST, B), start + Duration::from_secs(14));
        assert_eq!(switch.lookup(&B, start + Duration::from_secs(23)), Some(2));
        assert_eq!(switch.expire(start + Duration::from_secs(23)), 0);
        assert_eq!(switch.expire(start + Duration::from_secs(24)), 1);
        assert!(switch.is_empty());
        // A clock that goes backwards ages nothing.
        switch.forward(1, &frame(BROADCAST, A), start + Duration::from_secs(30));
        assert_eq!(switch.lookup(&A, start), Some(1));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_seen() {
        let now = Instant::now();
        let mut switch = Switch::new(3);
        switch.add_port(1);
        switch.add_port(2);
        let mac = |n: u8| [0x02, 0, 0, 0, 1, n];
        for n in 0..3 {
            switch.forward(1, &frame(BROADCAST, mac(n)), now);
        }
        // Refresh mac(0): mac(1) is now the least recently seen.
        switch.forward(1, &frame(BROADCAST, mac(0)), now);
        switch.forward(2, &frame(BROADCAST, mac(3)), now);
        assert_eq!(switch.len(), 3);
        assert_eq!(switch.lookup(&mac(1), now), None);
        for n in [0, 2] {
            assert_eq!(switch.lookup(&mac(n), now), Some(1));
        }
        assert_eq!(switch.lookup(&mac(3), now), Some(2));
        assert_eq!(switch.capacity(), 3);
    }

    #[test]
    fn a_mac_flood_stays_bounded() {
        let start = Instant::now();
        let mut switch = Switch::new(1024);
        switch.add_port(1);
        switch.add_port(2);
        switch.forward(2, &frame(BROADCAST, B), start);
        // Sources 06:66:00:00:00:00 onwards: never B.
        let mut frame = frame(B, [0x06, 0x66, 0, 0, 0, 0]);
        for n in 0u32..200_000 {
            frame[8..12].copy_from_slice(&n.to_be_bytes());
            let now = start + Duration::from_micros(u64::from(n));
            let result = switch.forward(1, &frame, now);
            assert!(
                result == Forward::Unicast(2) || result == Forward::Flood(vec![2]),
                "{result:?}"
            );
            assert!(switch.len() <= 1024);
        }
        assert_eq!(switch.len(), 1024);
        assert_eq!(switch.by_age.len(), 1024);
        assert!(
            switch.table.capacity() <= 4 * 1024,
            "the map did not grow past its bound"
        );
        // B was pushed out by the flood: its traffic floods until it sends again.
        assert_eq!(switch.lookup(&B, start), None);
    }

    #[test]
    fn removing_a_port_forgets_its_macs() {
        let now = Instant::now();
        let mut switch = with_ports(&[1, 2, 3]);
        switch.forward(1, &frame(BROADCAST, A), now);
        switch.forward(2, &frame(BROADCAST, B), now);
        switch.forward(2, &frame(BROADCAST, C), now);
        assert!(switch.remove_port(2));
        assert!(!switch.remove_port(2));
        assert_eq!(switch.ports().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(switch.lookup(&B, now), None);
        assert_eq!(switch.lookup(&C, now), None);
        assert_eq!(switch.lookup(&A, now), Some(1));
        assert_eq!(switch.len(), 1);
        assert_eq!(switch.by_age.len(), 1);
        assert_eq!(switch.forward(1, &frame(B, A), now), Forward::Flood(vec![3]));
        assert_eq!(
            switch.forward(2, &frame(A, B), now),
            Forward::Drop(DropReason::UnknownPort)
        );
        assert!(!switch.add_port(1));
    }

    #[test]
    fn capacity_zero_is_a_hub() {
        let now = Instant::now();
        let mut hub = Switch::new(0);
        hub.add_port(1);
        hub.add_port(2);
        hub.forward(1, &frame(B, A), now);
        assert_eq!(hub.forward(2, &frame(A, B), now), Forward::Flood(vec![1]));
        assert!(hub.is_empty());
    }

    #[test]
    fn generated_macs_are_stable_local_unicast() {
        let mac = generated_mac("domu1", 0);
        assert_eq!(mac, generated_mac("domu1", 0));
        assert_eq!(mac[0] & 0b11, 0b10, "locally administered unicast: {mac:02x?}");
        // Pinned: the documented algorithm must not change under our feet
        // (a DomU's address is part of its identity on the network).
        assert_eq!(mac, PINNED);
        let mut seen = std::collections::HashSet::new();
        for name in ["", "domu1", "domu2", "1domu", "a-rather-long-domain-name-for-a-guest"] {
            for index in 0..64 {
                let mac = generated_mac(name, index);
                assert_eq!(mac[0] & 0b11, 0b10);
                assert!(is_valid_source(&mac));
                assert!(seen.insert(mac), "{name} {index}");
            }
        }
        // Length-prefixed: ("ab", 0) and ("a", ...) cannot collide by
        // shifting bytes between name and index.
        assert_ne!(generated_mac("ab", 0), generated_mac("a", 0x62));
    }

    const PINNED: Mac = [0x36, 0xFD, 0x18, 0xB4, 0x1A, 0x11];
}

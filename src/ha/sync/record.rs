//! A connection change as a record on the wire and back, and records
//! gathered into stream messages by the room each takes (an IPv6 record
//! takes two of a message's places: `wire::ha::sync`).

use super::Body;
use crate::lvs::conn::{ConnState, PortableConn, PortableKey};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::sync::Record;
use crate::wire::ha::sync::{MAX_RECORDS, RECORD_LEN, SyncRecord};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn forward_code(f: Forward) -> u8 {
    match f {
        Forward::Route => 0,
        Forward::Tunnel => 1,
        Forward::Masq => 2,
    }
}

fn forward_from(b: u8) -> Option<Forward> {
    [Forward::Route, Forward::Tunnel, Forward::Masq]
        .get(usize::from(b))
        .copied()
}

fn protocol_from(b: u8) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Ip]
        .into_iter()
        .find(|p| p.number() == b)
}

/// Whether a record's key can be its op's: a firewall-mark service's
/// template (protocol IP, 0) has client and virtual port 0 and its mark,
/// not 0, for virtual address (an IPv6 one: the mark, then zeros), and
/// only a template's ops name it.
fn key_fits(op: u8, k: &PortableKey) -> bool {
    match k.protocol {
        Protocol::Ip => {
            matches!(op, OP_TEMPLATE | OP_REMOVE_TEMPLATE)
                && k.template_mark().is_some_and(|m| m != 0)
                && k.cport == 0
                && k.vport == 0
        }
        _ => true,
    }
}

/// A record's kinds: a connection's upsert and removal, and a
/// persistence template's (its own kinds: a template's key, client port
/// 0, is not a connection's). A firewall-mark service's template is a
/// template's record with protocol 0 (IPVS's IPPROTO_IP) and the mark in
/// the virtual address, as its key is: the peer finds its service by
/// that mark.
pub(super) const OP_UPSERT: u8 = 1;
pub(super) const OP_REMOVE: u8 = 2;
pub(super) const OP_TEMPLATE: u8 = 3;
pub(super) const OP_REMOVE_TEMPLATE: u8 = 4;

/// A connection change as a record on the wire.
pub(super) fn to_wire(r: &Record) -> SyncRecord {
    let (op, k) = match r {
        Record::Upsert(p) if p.is_template() => (OP_TEMPLATE, p.key()),
        Record::Upsert(p) => (OP_UPSERT, p.key()),
        Record::Remove(k) => (OP_REMOVE, *k),
        Record::RemoveTemplate(k) => (OP_REMOVE_TEMPLATE, *k),
    };
    // A removal names no real server: the unspecified address of the
    // key's family, so the record is of that family.
    let none = match k.caddr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut w = SyncRecord {
        op,
        protocol: k.protocol.number(),
        raddr: none,
        caddr: k.caddr,
        cport: k.cport,
        vaddr: k.vaddr,
        vport: k.vport,
        ..SyncRecord::default()
    };
    if let Record::Upsert(p) = r {
        w.forward = forward_code(p.fwd);
        w.state = p.state.code();
        w.raddr = p.raddr;
        w.rport = p.rport;
        w.client_link = p.client_link;
        w.seen_twice = u8::from(p.seen_twice);
        w.client_mac = p.client_mac;
        w.expires_ms = u32::try_from(p.expires_in_ms).unwrap_or(u32::MAX);
    }
    w
}

/// A record from the wire, if every code in it means something. An IPv6
/// record's addresses are all IPv6's.
pub(super) fn from_wire(w: &SyncRecord) -> Option<Record> {
    let key = PortableKey {
        protocol: protocol_from(w.protocol)?,
        caddr: w.caddr,
        cport: w.cport,
        vaddr: w.vaddr,
        vport: w.vport,
    };
    if !key_fits(w.op, &key) {
        return None;
    }
    match w.op {
        OP_REMOVE => Some(Record::Remove(key)),
        OP_REMOVE_TEMPLATE => Some(Record::RemoveTemplate(key)),
        OP_UPSERT | OP_TEMPLATE if w.seen_twice <= 1 => {
            let state = ConnState::from_code(w.state)?;
            // A template's state in a connection's record (or the
            // reverse), or a state of the other protocol, is nonsense.
            if state.is_template() != (w.op == OP_TEMPLATE)
                || (!state.is_template()
                    && matches!(state, ConnState::Udp) != (key.protocol == Protocol::Udp))
            {
                return None;
            }
            Some(Record::Upsert(PortableConn {
                protocol: key.protocol,
                caddr: key.caddr,
                cport: key.cport,
                vaddr: key.vaddr,
                vport: key.vport,
                raddr: w.raddr,
                rport: w.rport,
                fwd: forward_from(w.forward)?,
                state,
                expires_in_ms: u64::from(w.expires_ms),
                client_link: w.client_link,
                client_mac: w.client_mac,
                seen_twice: w.seen_twice == 1,
                fwmark: key.template_mark().unwrap_or(0),
            }))
        }
        _ => None,
    }
}

/// The bytes of records a message has room for.
const ROOM: usize = MAX_RECORDS * RECORD_LEN;

/// Records gathered into stream messages, in order: a message is sent
/// once the next record would not fit in it (36 IPv4 records, 18 IPv6
/// ones, or a mix), or when something else must follow what came before.
#[derive(Debug, Default)]
pub struct Batch {
    records: Vec<Record>,
    bytes: usize,
    bodies: Vec<Body>,
}

impl Batch {
    /// A record into the message being filled.
    pub fn push(&mut self, r: Record) {
        let len = to_wire(&r).wire_len();
        if self.bytes + len > ROOM {
            self.flush();
        }
        self.records.push(r);
        self.bytes += len;
        if self.bytes == ROOM {
            self.flush();
        }
    }

    /// Another kind of message (a digest), after the records so far.
    pub fn push_body(&mut self, b: Body) {
        self.flush();
        self.bodies.push(b);
    }

    /// The records so far, as a message.
    pub fn flush(&mut self) {
        if !self.records.is_empty() {
            self.bodies
                .push(Body::Records(std::mem::take(&mut self.records)));
            self.bytes = 0;
        }
    }

    /// Every message, the last records' included.
    pub fn into_bodies(mut self) -> Vec<Body> {
        self.flush();
        self.bodies
    }
}

/// `records` as stream messages, each as full as it can be.
pub fn batches(records: impl IntoIterator<Item = Record>) -> Vec<Body> {
    let mut b = Batch::default();
    for r in records {
        b.push(r);
    }
    b.into_bodies()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::{ConnKey, TcpState};

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An IPv6 connection of `state` from client port `cport`.
    fn conn6(cport: u16, state: ConnState) -> PortableConn {
        PortableConn {
            protocol: match state {
                ConnState::Udp => Protocol::Udp,
                _ => Protocol::Tcp,
            },
            caddr: v6("2001:2:0:7::10"),
            cport,
            vaddr: v6("2001:2::100"),
            vport: 443,
            raddr: v6("2001:2::21"),
            rport: 8443,
            fwd: Forward::Masq,
            state,
            expires_in_ms: 900_000,
            client_link: 1,
            client_mac: [2, 0, 0, 0, 0, 10],
            seen_twice: true,
            fwmark: 0,
        }
    }

    #[test]
    fn ipv6_records_of_every_kind_survive_the_wire() {
        let est = conn6(1000, ConnState::Tcp(TcpState::Established));
        let tpl = PortableConn {
            caddr: v6("2001:2:0:7::"),
            cport: 0,
            ..conn6(0, ConnState::Assured)
        };
        let mk = ConnKey::mark_template(Ipv6Addr::new(0x2001, 2, 0, 7, 0, 0, 0, 0), 100);
        let mark_tpl = PortableConn {
            protocol: mk.protocol,
            vaddr: mk.vaddr.into(),
            vport: 0,
            fwmark: 100,
            ..tpl
        };
        for r in [
            Record::Upsert(est),
            Record::Upsert(conn6(1001, ConnState::Udp)),
            Record::Remove(est.key()),
            Record::Upsert(tpl),
            Record::RemoveTemplate(tpl.key()),
            Record::Upsert(mark_tpl),
            Record::RemoveTemplate(mk.portable()),
        ] {
            let w = to_wire(&r);
            assert!(w.is_v6());
            let mut b = [0u8; 72];
            w.emit(&mut b);
            assert_eq!(SyncRecord::parse(&b), Some(w));
            assert_eq!(from_wire(&w), Some(r), "{r:?}");
        }
    }

    /// A protocol-IP (mark template) record whose IPv6 "mark" has bits
    /// past the first 32 names no mark: refused, as nonsense is.
    #[test]
    fn an_ipv6_mark_template_needs_a_marks_address() {
        let tpl = PortableConn {
            protocol: Protocol::Ip,
            cport: 0,
            vport: 0,
            fwmark: 100,
            ..conn6(0, ConnState::Template)
        };
        let mut w = to_wire(&Record::Upsert(tpl));
        w.vaddr = v6("0:64::");
        assert!(from_wire(&w).is_some());
        w.vaddr = v6("0:64::1");
        assert_eq!(from_wire(&w), None);
        w.vaddr = v6("::");
        assert_eq!(from_wire(&w), None, "mark 0");
    }

    /// Messages hold 36 IPv4 records, 18 IPv6 ones, or a mix in 36
    /// places; the order is kept across messages.
    #[test]
    fn batches_fill_messages_by_the_room_records_take() {
        let v4 = Record::Remove(
            ConnKey {
                protocol: Protocol::Tcp,
                caddr: Ipv4Addr::new(198, 18, 0, 10),
                cport: 1,
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                vport: 80,
            }
            .portable(),
        );
        let six = Record::Upsert(conn6(1, ConnState::Udp));
        let sizes = |bodies: &[Body]| -> Vec<usize> {
            bodies
                .iter()
                .map(|b| match b {
                    Body::Records(r) => r.len(),
                    _ => 0,
                })
                .collect()
        };
        assert_eq!(sizes(&batches(vec![v4; 73])), vec![36, 36, 1]);
        assert_eq!(sizes(&batches(vec![six; 37])), vec![18, 18, 1]);
        // 35 IPv4 records leave one place: the IPv6 record starts the
        // next message.
        let mixed: Vec<Record> = std::iter::repeat_n(v4, 35).chain([six, v4, six]).collect();
        let bodies = batches(mixed.clone());
        assert_eq!(sizes(&bodies), vec![35, 3]);
        let back: Vec<Record> = bodies
            .into_iter()
            .flat_map(|b| match b {
                Body::Records(r) => r,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(back, mixed);
        // Something else in the stream ends the message being filled.
        let mut b = Batch::default();
        b.push(six);
        b.push_body(Body::ResyncEnd);
        b.push(v4);
        assert_eq!(sizes(&b.into_bodies()), vec![1, 0, 1]);
    }
}

//! The connection sync stream's messages: a 48-byte header, records, the
//! MAC. A record is an IPv4 connection's (36 bytes, as before IPv6) or an
//! IPv6 connection's (72 bytes: the same fields in the same order, with
//! 16-byte addresses, and the op's [`OP_V6`] bit set). A message has
//! [`MAX_RECORDS`] places of 36 bytes: an IPv4 record takes one, an IPv6
//! record two, and both families mix in one message. What the header's
//! kind and two numbers mean, and what a record names, is `ha::sync`'s:
//! here are the bytes, checked.
//!
//! Why a bit of the op and not a message kind of its own: a record says
//! its own length in its first byte, so records of both families keep
//! the stream's order in one message, and a message stays one numbered
//! message whatever it carries (the MAC, the sequence numbers, the
//! resends and the replay window do not change). A director of the
//! version before IPv6 reads an IPv4-only stream as before; a message
//! with an IPv6 record is longer than its count of 36-byte records says,
//! so that director refuses the message as malformed: it never reads an
//! IPv6 record as an IPv4 one.

use super::{MAC_LEN, Refused, emit_head, read_u64, seal, sealed, write_u64};
use crate::wire::{Result, read_u16, read_u32, write_u16, write_u32};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

view! { SyncPacket }

pub const MAGIC: &[u8; 4] = b"UVSS";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 48;
/// An IPv4 record, and a message's place.
pub const RECORD_LEN: usize = 36;
/// An IPv6 record: two places.
pub const RECORD6_LEN: usize = 72;
/// The op's bit that says the record is an IPv6 one (ops are 1 to 4).
pub const OP_V6: u8 = 0x80;
/// Places per message (IPv4 records; half as many IPv6 ones): a message
/// stays under 1400 bytes, inside any MTU a director's link has.
pub const MAX_RECORDS: usize = 36;
/// The largest message.
pub const MAX_LEN: usize = HEADER_LEN + MAX_RECORDS * RECORD_LEN + MAC_LEN;

mod field {
    pub use crate::wire::ha::head::*;
    pub const KIND: usize = 5;
    pub const COUNT: usize = 6;
    pub const X: usize = 32;
    pub const Y: usize = 40;
}

/// A record's fields, from its start; the addresses' length moves the
/// fields after each of them ([`V4`], [`V6`]).
mod rec {
    pub const OP: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const FORWARD: usize = 2;
    pub const STATE: usize = 3;
    pub const CADDR: usize = 4;

    /// Where the fields after the first address are.
    pub struct Fields {
        pub addr_len: usize,
        pub cport: usize,
        pub vaddr: usize,
        pub vport: usize,
        pub raddr: usize,
        pub rport: usize,
        pub client_link: usize,
        pub seen_twice: usize,
        pub client_mac: usize,
        pub expires_ms: usize,
        /// The record's length (two bytes kept after the timer).
        pub len: usize,
    }

    const fn fields(addr_len: usize) -> Fields {
        let cport = CADDR + addr_len;
        let vaddr = cport + 2;
        let vport = vaddr + addr_len;
        let raddr = vport + 2;
        let rport = raddr + addr_len;
        let client_link = rport + 2;
        let client_mac = client_link + 2;
        let expires_ms = client_mac + 6;
        Fields {
            addr_len,
            cport,
            vaddr,
            vport,
            raddr,
            rport,
            client_link,
            seen_twice: client_link + 1,
            client_mac,
            expires_ms,
            len: expires_ms + 4 + 2,
        }
    }

    pub const V4: Fields = fields(4);
    pub const V6: Fields = fields(16);
}

/// The length of a record whose op byte is `op`.
#[inline]
pub fn record_len(op: u8) -> usize {
    match op & OP_V6 {
        0 => RECORD_LEN,
        _ => RECORD6_LEN,
    }
}

getters!(SyncPacket + head {
    kind: u8 @ field::KIND,
});

impl<T: AsRef<[u8]>> SyncPacket<T> {
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The buffer holds the header, the records its count names (each as
    /// long as its op says, [`MAX_RECORDS`] places at most), and the MAC,
    /// and nothing more.
    pub fn check_len(&self) -> Result<()> {
        let b = self.b();
        crate::wire::need(b, HEADER_LEN + MAC_LEN)?;
        let n = usize::from(read_u16(b, field::COUNT));
        let end = b.len() - MAC_LEN;
        if n > MAX_RECORDS || end > HEADER_LEN + MAX_RECORDS * RECORD_LEN {
            return Err(crate::wire::Error::Malformed);
        }
        let mut at = HEADER_LEN;
        for _ in 0..n {
            if at >= end {
                return Err(crate::wire::Error::Malformed);
            }
            at += record_len(b[at]);
        }
        match at == end {
            true => Ok(()),
            false => Err(crate::wire::Error::Malformed),
        }
    }

    pub fn count(&self) -> usize {
        usize::from(read_u16(self.b(), field::COUNT))
    }

    /// The records' bytes, in order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let b = self.b();
        let mut at = HEADER_LEN;
        (0..self.count()).map(move |_| {
            let r = &b[at..at + record_len(b[at])];
            at += r.len();
            r
        })
    }

    /// Record `i`'s bytes (empty past the count).
    pub fn record(&self, i: usize) -> &[u8] {
        self.records().nth(i).unwrap_or(&[])
    }
}

/// A sync message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncHeader {
    pub kind: u8,
    pub boot: u64,
    /// In the stream: its place; otherwise the sender's count of requests.
    pub seq: u64,
    pub sent_ms: u64,
    /// Two numbers whose meaning is the kind's (a digest's count and sum,
    /// a resend request's range).
    pub x: u64,
    pub y: u64,
}

/// One record as it is on the wire: a connection's key, and for an
/// upsert its real server and state. Codes are checked by `ha::sync`.
/// Its addresses say its family: an IPv6 record when any of them is
/// IPv6's (an IPv4 address among them is written v4-mapped), an IPv4
/// record otherwise; read back, an IPv6 record's addresses are IPv6's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    /// 1: upsert; 2: remove; 3, 4: a template's (without [`OP_V6`],
    /// which is written from the addresses).
    pub op: u8,
    pub protocol: u8,
    pub forward: u8,
    pub state: u8,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
    pub client_link: u8,
    pub seen_twice: u8,
    pub client_mac: [u8; 6],
    pub expires_ms: u32,
}

impl Default for SyncRecord {
    fn default() -> SyncRecord {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        SyncRecord {
            op: 0,
            protocol: 0,
            forward: 0,
            state: 0,
            caddr: none,
            cport: 0,
            vaddr: none,
            vport: 0,
            raddr: none,
            rport: 0,
            client_link: 0,
            seen_twice: 0,
            client_mac: [0; 6],
            expires_ms: 0,
        }
    }
}

/// Reads an address of `len` bytes at `at`; a v4-mapped one in 16 is
/// the IPv4 address it maps (a tunnel's connection mixes the families:
/// its IPv4 addresses are written so in an IPv6 record).
fn read_addr(b: &[u8], at: usize, len: usize) -> IpAddr {
    match len {
        4 => IpAddr::V4(super::read_ip(b, at)),
        _ => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[at..at + 16]);
            let a = Ipv6Addr::from(a);
            a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
        }
    }
}

/// Writes `a` in `len` bytes at `at` (an IPv4 address v4-mapped in 16).
fn write_addr(b: &mut [u8], at: usize, len: usize, a: IpAddr) {
    match (a, len) {
        (IpAddr::V4(a), 4) => b[at..at + 4].copy_from_slice(&a.octets()),
        (IpAddr::V4(a), _) => b[at..at + 16].copy_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), _) => b[at..at + 16].copy_from_slice(&a.octets()),
    }
}

impl SyncRecord {
    /// Whether it is written as an IPv6 record.
    pub fn is_v6(&self) -> bool {
        [self.caddr, self.vaddr, self.raddr]
            .iter()
            .any(IpAddr::is_ipv6)
    }

    /// Its length on the wire.
    pub fn wire_len(&self) -> usize {
        self.fields().len
    }

    fn fields(&self) -> &'static rec::Fields {
        match self.is_v6() {
            true => &rec::V6,
            false => &rec::V4,
        }
    }

    /// A record from its bytes (36, or 72 for an IPv6 record).
    pub fn parse(b: &[u8]) -> Option<SyncRecord> {
        let op = *b.first()?;
        let f = match op & OP_V6 {
            0 => &rec::V4,
            _ => &rec::V6,
        };
        if b.len() < f.len {
            return None;
        }
        let mut client_mac = [0u8; 6];
        client_mac.copy_from_slice(&b[f.client_mac..f.client_mac + 6]);
        let l = f.addr_len;
        Some(SyncRecord {
            op: op & !OP_V6,
            protocol: b[rec::PROTOCOL],
            forward: b[rec::FORWARD],
            state: b[rec::STATE],
            caddr: read_addr(b, rec::CADDR, l),
            cport: read_u16(b, f.cport),
            vaddr: read_addr(b, f.vaddr, l),
            vport: read_u16(b, f.vport),
            raddr: read_addr(b, f.raddr, l),
            rport: read_u16(b, f.rport),
            client_link: b[f.client_link],
            seen_twice: b[f.seen_twice],
            client_mac,
            expires_ms: read_u32(b, f.expires_ms),
        })
    }

    /// Writes the record into its [`wire_len`](Self::wire_len) bytes.
    pub fn emit(&self, b: &mut [u8]) {
        let f = self.fields();
        let l = f.addr_len;
        b[rec::OP] = match l {
            4 => self.op,
            _ => self.op | OP_V6,
        };
        b[rec::PROTOCOL] = self.protocol;
        b[rec::FORWARD] = self.forward;
        b[rec::STATE] = self.state;
        write_addr(b, rec::CADDR, l, self.caddr);
        write_u16(b, f.cport, self.cport);
        write_addr(b, f.vaddr, l, self.vaddr);
        write_u16(b, f.vport, self.vport);
        write_addr(b, f.raddr, l, self.raddr);
        write_u16(b, f.rport, self.rport);
        b[f.client_link] = self.client_link;
        b[f.seen_twice] = self.seen_twice;
        b[f.client_mac..f.client_mac + 6].copy_from_slice(&self.client_mac);
        write_u32(b, f.expires_ms, self.expires_ms);
    }
}

/// How many of `records`, from the first, fit in one message.
pub fn fitting(records: &[SyncRecord]) -> usize {
    let mut room = MAX_RECORDS * RECORD_LEN;
    records
        .iter()
        .take_while(|r| match room.checked_sub(r.wire_len()) {
            Some(left) => {
                room = left;
                true
            }
            None => false,
        })
        .count()
}

/// A checked, keyed message: its header and its records' bytes.
pub fn parse<'a>(
    b: &'a [u8],
    key: &[u8],
) -> std::result::Result<(SyncHeader, SyncPacket<&'a [u8]>), Refused> {
    if b.len() < HEADER_LEN + MAC_LEN || &b[field::MAGIC] != MAGIC || b[field::VERSION] != VERSION {
        return Err(Refused::Malformed);
    }
    let p = SyncPacket::new_checked(b)?;
    if !sealed(b, key) {
        return Err(Refused::BadMac);
    }
    let h = SyncHeader {
        kind: p.kind(),
        boot: read_u64(b, field::BOOT),
        seq: read_u64(b, field::SEQ),
        sent_ms: read_u64(b, field::SENT_MS),
        x: read_u64(b, field::X),
        y: read_u64(b, field::Y),
    };
    Ok((h, p))
}

/// A message of `header` and `records` (as many as [`fitting`] says),
/// keyed.
pub fn emit(header: &SyncHeader, records: &[SyncRecord], key: &[u8]) -> Vec<u8> {
    let records = &records[..fitting(records)];
    let body: usize = records.iter().map(SyncRecord::wire_len).sum();
    let mut b = vec![0u8; HEADER_LEN + body + MAC_LEN];
    emit_head(
        &mut b,
        MAGIC,
        VERSION,
        (header.boot, header.seq, header.sent_ms),
    );
    b[field::KIND] = header.kind;
    write_u16(&mut b, field::COUNT, records.len() as u16);
    write_u64(&mut b, field::X, header.x);
    write_u64(&mut b, field::Y, header.y);
    let mut at = HEADER_LEN;
    for r in records {
        r.emit(&mut b[at..at + r.wire_len()]);
        at += r.wire_len();
    }
    seal(&mut b, key);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A records message's header.
    const RECORDS: SyncHeader = SyncHeader {
        kind: 1,
        boot: 7,
        seq: 9,
        sent_ms: 11,
        x: 0,
        y: 0,
    };

    #[test]
    fn a_record_and_a_header_survive_the_wire_and_lengths_are_checked() {
        let r = SyncRecord {
            op: 1,
            protocol: 6,
            forward: 2,
            state: 3,
            caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 100).into(),
            vport: 80,
            raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
            rport: 8080,
            client_link: 1,
            seen_twice: 1,
            client_mac: [2, 0, 0, 0, 0, 10],
            expires_ms: 900_000,
        };
        let h = RECORDS;
        let b = emit(&h, &[r, r], b"k");
        let (h2, p) = parse(&b, b"k").unwrap();
        assert_eq!(h2, h);
        assert_eq!(p.count(), 2);
        assert_eq!(SyncRecord::parse(p.record(1)), Some(r));
        assert_eq!(p.record(2), &[] as &[u8]);
        // One byte more or less than the count says: refused.
        let mut long = b.clone();
        long.push(0);
        assert_eq!(parse(&long, b"k").err(), Some(Refused::Malformed));
        assert_eq!(
            parse(&b[..b.len() - 1], b"k").err(),
            Some(Refused::Malformed)
        );
        assert_eq!(parse(&b, b"other").err(), Some(Refused::BadMac));
    }

    /// The IPv4 record's fields are where they were before IPv6 (an
    /// older director reads them); the IPv6 record has the same fields
    /// in the same order, with 16-byte addresses, in 72 bytes.
    #[test]
    fn record_fields_are_where_each_family_puts_them() {
        let f = &rec::V4;
        let at = [
            f.cport,
            f.vaddr,
            f.vport,
            f.raddr,
            f.rport,
            f.client_link,
            f.seen_twice,
            f.client_mac,
            f.expires_ms,
            f.len,
        ];
        assert_eq!(at, [8, 10, 14, 16, 20, 22, 23, 24, 30, RECORD_LEN]);
        let f = &rec::V6;
        let at = [f.cport, f.vaddr, f.vport, f.raddr, f.rport, f.expires_ms];
        assert_eq!(at, [20, 22, 38, 40, 56, 66]);
        assert_eq!(
            (f.len, record_len(OP_V6 | 1), record_len(1)),
            (RECORD6_LEN, 72, 36)
        );
    }

    fn record6() -> SyncRecord {
        SyncRecord {
            op: 1,
            protocol: 17,
            forward: 2,
            state: 0xff,
            caddr: "2001:2:0:7::10".parse().unwrap(),
            cport: 40000,
            vaddr: "2001:2::100".parse().unwrap(),
            vport: 53,
            raddr: "2001:2::11".parse().unwrap(),
            rport: 5353,
            client_link: 2,
            seen_twice: 1,
            client_mac: [2, 0, 0, 0, 0, 10],
            expires_ms: 300_000,
        }
    }

    #[test]
    fn an_ipv6_record_survives_the_wire_beside_ipv4_ones() {
        let r6 = record6();
        let r4 = SyncRecord {
            caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            vaddr: Ipv4Addr::new(198, 18, 0, 100).into(),
            raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
            ..r6
        };
        let mut b = [0u8; RECORD6_LEN];
        r6.emit(&mut b);
        assert_eq!(b[0], OP_V6 | 1);
        let IpAddr::V6(c) = r6.caddr else {
            unreachable!()
        };
        assert_eq!(&b[rec::CADDR..rec::CADDR + 16], &c.octets());
        assert_eq!(SyncRecord::parse(&b), Some(r6));
        assert_eq!(SyncRecord::parse(&b[..RECORD6_LEN - 1]), None);
        assert_eq!(SyncRecord::parse(&[]), None);
        // An IPv4 address among IPv6 ones (a tunnel's mixed families) is
        // written v4-mapped, and read back as IPv4.
        let odd = SyncRecord {
            raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
            ..r6
        };
        odd.emit(&mut b);
        assert_eq!(b[0] & OP_V6, OP_V6);
        let back = SyncRecord::parse(&b).unwrap();
        assert_eq!(back, odd);
        let h = RECORDS;
        let m = emit(&h, &[r4, r6, r4], b"k");
        assert_eq!(m.len(), HEADER_LEN + 144 + MAC_LEN);
        let (_, p) = parse(&m, b"k").unwrap();
        let recs: Vec<_> = p.records().map(SyncRecord::parse).collect();
        assert_eq!(recs, vec![Some(r4), Some(r6), Some(r4)]);
        assert_eq!(SyncRecord::parse(p.record(1)), Some(r6));
        // 18 IPv6 records fill a message; the 19th is left out.
        let full = emit(&h, &[r6; 19], b"k");
        assert_eq!(full.len(), MAX_LEN);
        assert_eq!(parse(&full, b"k").unwrap().1.count(), 18);
    }

    /// Lengths that disagree with the ops are refused before anything
    /// else, even under a valid MAC (a peer with a bug).
    #[test]
    fn records_whose_lengths_disagree_with_the_message_are_refused() {
        let h = RECORDS;
        let r4 = SyncRecord {
            caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            ..SyncRecord::default()
        };
        let forged = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut m = emit(&h, &[record6(), r4], b"k");
            edit(&mut m);
            seal(&mut m, b"k");
            parse(&m, b"k").err()
        };
        assert_eq!(forged(&|_| ()), None);
        // The IPv6 record said to be an IPv4 one: 36 bytes left over.
        assert_eq!(
            forged(&|m| m[HEADER_LEN] &= !OP_V6),
            Some(Refused::Malformed)
        );
        // The last, IPv4, record said to be an IPv6 one: 36 bytes short.
        let last = HEADER_LEN + RECORD6_LEN;
        assert_eq!(forged(&|m| m[last] |= OP_V6), Some(Refused::Malformed));
        // A count that names more or fewer records than there are.
        assert_eq!(
            forged(&|m| m[field::COUNT + 1] = 3),
            Some(Refused::Malformed)
        );
        assert_eq!(
            forged(&|m| m[field::COUNT + 1] = 1),
            Some(Refused::Malformed)
        );
        // More than a message's room, however the count says it.
        let over = |m: &mut Vec<u8>| {
            let mac = m.split_off(m.len() - MAC_LEN);
            let mut r = [0u8; RECORD6_LEN];
            record6().emit(&mut r);
            for _ in 0..17 {
                m.extend_from_slice(&r);
            }
            m[field::COUNT + 1] = 19;
            m.extend(mac);
        };
        assert_eq!(forged(&over), Some(Refused::Malformed));
    }
}

//! The connection sync stream's messages: a 48-byte header, up to
//! [`MAX_RECORDS`] records of 36 bytes, the MAC. What the header's kind
//! and two numbers mean, and what a record names, is `ha::sync`'s: here
//! are the bytes, checked.

use super::{MAC_LEN, Refused, emit_head, read_ip, read_u64, seal, sealed, write_u64};
use crate::wire::{Result, read_u16, read_u32, write_u16, write_u32};
use std::net::Ipv4Addr;

view! { SyncPacket }

pub const MAGIC: &[u8; 4] = b"UVSS";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 48;
pub const RECORD_LEN: usize = 36;
/// Records per message: a message stays under 1400 bytes, inside any MTU
/// a director's link has.
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

/// A record's fields, from its start.
mod rec {
    pub const OP: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const FORWARD: usize = 2;
    pub const STATE: usize = 3;
    pub const CADDR: usize = 4;
    pub const CPORT: usize = 8;
    pub const VADDR: usize = 10;
    pub const VPORT: usize = 14;
    pub const RADDR: usize = 16;
    pub const RPORT: usize = 20;
    pub const CLIENT_LINK: usize = 22;
    pub const SEEN_TWICE: usize = 23;
    pub const CLIENT_MAC: usize = 24;
    pub const EXPIRES_MS: usize = 30;
}

getters!(SyncPacket + head {
    kind: u8 @ field::KIND,
});

impl<T: AsRef<[u8]>> SyncPacket<T> {
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The buffer holds the header, the records its count names, and the
    /// MAC, and nothing more.
    pub fn check_len(&self) -> Result<()> {
        let b = self.b();
        crate::wire::need(b, HEADER_LEN + MAC_LEN)?;
        let n = usize::from(read_u16(b, field::COUNT));
        if n > MAX_RECORDS || b.len() != HEADER_LEN + n * RECORD_LEN + MAC_LEN {
            return Err(crate::wire::Error::Malformed);
        }
        Ok(())
    }

    pub fn count(&self) -> usize {
        usize::from(read_u16(self.b(), field::COUNT))
    }

    /// Record `i`'s bytes (empty past the count).
    pub fn record(&self, i: usize) -> &[u8] {
        let at = HEADER_LEN + i * RECORD_LEN;
        match i < self.count() {
            true => &self.b()[at..at + RECORD_LEN],
            false => &[],
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    /// 1: upsert; 2: remove.
    pub op: u8,
    pub protocol: u8,
    pub forward: u8,
    pub state: u8,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub raddr: Ipv4Addr,
    pub rport: u16,
    pub client_link: u8,
    pub seen_twice: u8,
    pub client_mac: [u8; 6],
    pub expires_ms: u32,
}

impl Default for SyncRecord {
    fn default() -> SyncRecord {
        let none = Ipv4Addr::UNSPECIFIED;
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

impl SyncRecord {
    /// A record from its 36 bytes.
    pub fn parse(b: &[u8]) -> Option<SyncRecord> {
        if b.len() < RECORD_LEN {
            return None;
        }
        let mut client_mac = [0u8; 6];
        client_mac.copy_from_slice(&b[rec::CLIENT_MAC..rec::CLIENT_MAC + 6]);
        Some(SyncRecord {
            op: b[rec::OP],
            protocol: b[rec::PROTOCOL],
            forward: b[rec::FORWARD],
            state: b[rec::STATE],
            caddr: read_ip(b, rec::CADDR),
            cport: read_u16(b, rec::CPORT),
            vaddr: read_ip(b, rec::VADDR),
            vport: read_u16(b, rec::VPORT),
            raddr: read_ip(b, rec::RADDR),
            rport: read_u16(b, rec::RPORT),
            client_link: b[rec::CLIENT_LINK],
            seen_twice: b[rec::SEEN_TWICE],
            client_mac,
            expires_ms: read_u32(b, rec::EXPIRES_MS),
        })
    }

    /// Writes the record into its 36 bytes.
    pub fn emit(&self, b: &mut [u8]) {
        b[rec::OP] = self.op;
        b[rec::PROTOCOL] = self.protocol;
        b[rec::FORWARD] = self.forward;
        b[rec::STATE] = self.state;
        b[rec::CADDR..rec::CADDR + 4].copy_from_slice(&self.caddr.octets());
        write_u16(b, rec::CPORT, self.cport);
        b[rec::VADDR..rec::VADDR + 4].copy_from_slice(&self.vaddr.octets());
        write_u16(b, rec::VPORT, self.vport);
        b[rec::RADDR..rec::RADDR + 4].copy_from_slice(&self.raddr.octets());
        write_u16(b, rec::RPORT, self.rport);
        b[rec::CLIENT_LINK] = self.client_link;
        b[rec::SEEN_TWICE] = self.seen_twice;
        b[rec::CLIENT_MAC..rec::CLIENT_MAC + 6].copy_from_slice(&self.client_mac);
        write_u32(b, rec::EXPIRES_MS, self.expires_ms);
    }
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

/// A message of `header` and `records` (at most [`MAX_RECORDS`]), keyed.
pub fn emit(header: &SyncHeader, records: &[SyncRecord], key: &[u8]) -> Vec<u8> {
    let records = &records[..records.len().min(MAX_RECORDS)];
    let mut b = vec![0u8; HEADER_LEN + records.len() * RECORD_LEN + MAC_LEN];
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
    for (i, r) in records.iter().enumerate() {
        let at = HEADER_LEN + i * RECORD_LEN;
        r.emit(&mut b[at..at + RECORD_LEN]);
    }
    seal(&mut b, key);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_and_a_header_survive_the_wire_and_lengths_are_checked() {
        let r = SyncRecord {
            op: 1,
            protocol: 6,
            forward: 2,
            state: 3,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            raddr: Ipv4Addr::new(198, 18, 0, 11),
            rport: 8080,
            client_link: 1,
            seen_twice: 1,
            client_mac: [2, 0, 0, 0, 0, 10],
            expires_ms: 900_000,
        };
        let h = SyncHeader {
            kind: 1,
            boot: 7,
            seq: 9,
            sent_ms: 11,
            x: 0,
            y: 0,
        };
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
}

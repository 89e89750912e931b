//! The heartbeat between directors: a fixed 72-byte message every
//! interval. Replays are caught by the receiver (`ha::Peer::accept`): per
//! peer, the (boot, sequence) pair only moves forward.

use super::{Refused, sealed, write_u64};
use crate::wire::Result;

fixed_message!(HeartbeatPacket, magic = b"UVSH", fields = 40);

/// Code: 1 if the sender holds the VIPs; flags: bit 0 ready to preempt,
/// bit 1 hears the witness; echo: the receiver's last sequence heard.
mod field {
    pub use crate::wire::ha::director::{CODE as ACTIVE, ECHO as HEARD_SEQ, FLAGS, PRIORITY};
}

getters!(HeartbeatPacket + director {});

/// What one director tells another, every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Random per start of the sending process.
    pub boot: u64,
    /// Counts the sender's heartbeats since its start.
    pub seq: u64,
    /// The sender's clock, ms since the Unix epoch.
    pub sent_ms: u64,
    pub priority: u8,
    /// The sender holds the VIPs now.
    pub active: bool,
    /// The sender may take the VIPs from a lower-priority holder: it has
    /// that holder's connection table and its preempt delay has passed.
    pub ready: bool,
    /// The sender hears its witness (docs/ha.md): a director that loses
    /// both its peer and the witness runs without the witness only if
    /// the peer had lost the witness too. Set only with a witness, so
    /// the byte is the same as without one otherwise.
    pub hears_witness: bool,
    /// The last sequence number the sender heard from the receiver: a
    /// receiver that sees this lag knows the sender does not hear it.
    pub heard_seq: u64,
}

impl Heartbeat {
    /// A heartbeat from the wire: exactly [`LEN`] bytes, uvs's magic and
    /// version, then the MAC, then the fields.
    pub fn parse(b: &[u8], key: &[u8]) -> std::result::Result<Heartbeat, Refused> {
        let p = HeartbeatPacket::new_checked(b)?;
        if b.len() != LEN || p.magic() != MAGIC || p.version() != VERSION {
            return Err(Refused::Malformed);
        }
        if p.code() > 1 || p.flags() > 3 {
            return Err(Refused::Malformed);
        }
        if !sealed(b, key) {
            return Err(Refused::BadMac);
        }
        Ok(Heartbeat {
            boot: p.boot(),
            seq: p.seq(),
            sent_ms: p.sent_ms(),
            priority: p.priority(),
            active: p.code() == 1,
            ready: p.flags() & 1 == 1,
            hears_witness: p.flags() & 2 == 2,
            heard_seq: p.echo(),
        })
    }

    /// The heartbeat on the wire, keyed.
    pub fn emit(&self, key: &[u8]) -> [u8; LEN] {
        sealed_message(key, (self.boot, self.seq, self.sent_ms), |b| {
            b[field::ACTIVE] = u8::from(self.active);
            b[field::PRIORITY] = self.priority;
            b[field::FLAGS] = u8::from(self.ready) | u8::from(self.hears_witness) << 1;
            write_u64(b, field::HEARD_SEQ, self.heard_seq);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Heartbeat = Heartbeat {
        boot: 7,
        seq: 42,
        sent_ms: 1_700_000_000_000,
        priority: 200,
        active: true,
        ready: true,
        hears_witness: true,
        heard_seq: 41,
    };

    #[test]
    fn forged_altered_and_truncated_heartbeats_are_refused() {
        let h = SAMPLE;
        let b = h.emit(b"secret");
        assert_eq!(Heartbeat::parse(&b, b"secret"), Ok(h));
        assert_eq!(Heartbeat::parse(&b, b"other key"), Err(Refused::BadMac));
        for i in 0..LEN {
            let mut x = b;
            x[i] ^= 1;
            assert!(Heartbeat::parse(&x, b"secret").is_err(), "byte {i} flipped");
        }
        for n in 0..LEN {
            assert_eq!(
                Heartbeat::parse(&b[..n], b"secret"),
                Err(Refused::Malformed)
            );
        }
        assert_eq!(
            Heartbeat::parse(&[0u8; LEN], b"secret"),
            Err(Refused::Malformed)
        );
    }

    /// A heartbeat names no address (the sender is its datagram's
    /// source), so it is the same over IPv6: the bytes of the version
    /// before IPv6 (captured from it).
    #[test]
    fn heartbeats_are_the_bytes_they_were_before_ipv6() {
        let h = SAMPLE;
        let hex: String = h
            .emit(b"a shared secret of enough length")
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(
            hex,
            "555653480101c8030000000000000007000000000000002a0000018bcfe568\
             0000000000000000292412c2bdd7c6e238d4d3c98881ac49fb5383d02a3a7b91\
             d1dbf0d3cd31f7950a"
        );
    }
}

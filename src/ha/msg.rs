//! The heartbeat between directors: a fixed 72-byte UDP message, keyed
//! with HMAC-SHA256 over everything before the MAC, so forged or altered
//! heartbeats are rejected. Replays are caught by the receiver
//! ([`super::Peer::accept`]): per peer, the (boot, sequence) pair only
//! moves forward.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 4] = b"UVSH";
const VERSION: u8 = 1;
pub const LEN: usize = 40 + 32;

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

/// Why a heartbeat was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not 72 bytes, or not uvs's magic and version.
    Malformed,
    /// The MAC does not match: forged, altered, or another key.
    BadMac,
}

fn mac(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    m.finalize().into_bytes().into()
}

impl Heartbeat {
    pub fn emit(&self, key: &[u8]) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = u8::from(self.active);
        b[6] = self.priority;
        b[7] = u8::from(self.ready) | u8::from(self.hears_witness) << 1;
        b[8..16].copy_from_slice(&self.boot.to_be_bytes());
        b[16..24].copy_from_slice(&self.seq.to_be_bytes());
        b[24..32].copy_from_slice(&self.sent_ms.to_be_bytes());
        b[32..40].copy_from_slice(&self.heard_seq.to_be_bytes());
        let m = mac(key, &b[..40]);
        b[40..].copy_from_slice(&m);
        b
    }

    pub fn parse(b: &[u8], key: &[u8]) -> Result<Heartbeat, Refused> {
        if b.len() != LEN || &b[0..4] != MAGIC || b[4] != VERSION || b[5] > 1 || b[7] > 3 {
            return Err(Refused::Malformed);
        }
        // Constant-time comparison, through the hmac crate's verifier.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(&b[..40]);
        if m.verify_slice(&b[40..]).is_err() {
            return Err(Refused::BadMac);
        }
        let u = |r: std::ops::Range<usize>| u64::from_be_bytes(b[r].try_into().expect("8 bytes"));
        Ok(Heartbeat {
            active: b[5] == 1,
            priority: b[6],
            ready: b[7] & 1 == 1,
            hears_witness: b[7] & 2 == 2,
            boot: u(8..16),
            seq: u(16..24),
            sent_ms: u(24..32),
            heard_seq: u(32..40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_altered_and_truncated_heartbeats_are_refused() {
        let h = Heartbeat {
            boot: 7,
            seq: 42,
            sent_ms: 1_700_000_000_000,
            priority: 200,
            active: true,
            ready: true,
            hears_witness: true,
            heard_seq: 41,
        };
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
}

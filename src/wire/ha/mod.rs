//! The directors' own messages on UDP (docs/ha.md): heartbeats, the
//! witness's messages and the connection sync stream. Each is a checked
//! view with its field ranges and a `Repr` (or, for the sync stream, a
//! header and a record `Repr`) that parses and emits it, keyed with
//! HMAC-SHA256 over everything before the MAC: nothing in a message is
//! believed before the MAC is checked, so a damaged message is refused
//! like a forged one.

/// A message view's getters, one per field, as `fields!` makes them (a
/// byte, a number, an address, a run of bytes at a range), read at the
/// offsets of the message's `field` module and of the heads it opens
/// with.
macro_rules! getters {
    // A message that opens with the common head: its getters too.
    ($view:ident + head { $($rest:tt)* }) => {
        getters!($view {
            magic: bytes @ $crate::wire::ha::head::MAGIC,
            version: u8 @ $crate::wire::ha::head::VERSION,
            boot: u64 @ $crate::wire::ha::head::BOOT,
            seq: u64 @ $crate::wire::ha::head::SEQ,
            sent_ms: u64 @ $crate::wire::ha::head::SENT_MS,
            $($rest)*
        });
    };
    // A director's message (heartbeat, witness): the head, then its
    // code, priority, flags and echoed sequence number.
    ($view:ident + director { $($rest:tt)* }) => {
        getters!($view + head {
            code: u8 @ $crate::wire::ha::director::CODE,
            priority: u8 @ $crate::wire::ha::director::PRIORITY,
            flags: u8 @ $crate::wire::ha::director::FLAGS,
            echo: u64 @ $crate::wire::ha::director::ECHO,
            $($rest)*
        });
    };
    ($view:ident { $($name:ident: $kind:tt @ $at:expr),* $(,)? }) => {
        $(fields!(@one $view, [], $at, $name: $kind);)*
    };
}

/// A fixed-size HA message: its view, its magic, its version (1 unless
/// given), its whole length (`fields` bytes of fields, then the MAC), and
/// how it is written.
macro_rules! fixed_message {
    ($view:ident, magic = $magic:expr, fields = $fields:expr) => {
        fixed_message!($view, magic = $magic, version = 1, fields = $fields);
    };
    ($view:ident, magic = $magic:expr, version = $version:expr, fields = $fields:expr) => {
        view! {
            $view,
            len = LEN
        }

        pub const MAGIC: &[u8; 4] = $magic;
        const VERSION: u8 = $version;
        pub const LEN: usize = $fields + $crate::wire::ha::MAC_LEN;

        /// The message on the wire: the head with the sender's (boot,
        /// sequence, clock in ms), what `body` writes after it, and the
        /// MAC under `key`.
        fn sealed_message(
            key: &[u8],
            sender: (u64, u64, u64),
            body: impl FnOnce(&mut [u8]),
        ) -> [u8; LEN] {
            let mut b = [0u8; LEN];
            $crate::wire::ha::emit_head(&mut b, MAGIC, VERSION, sender);
            body(&mut b);
            $crate::wire::ha::seal(&mut b, key);
            b
        }
    };
}

pub mod heartbeat;
pub mod sync;
pub mod witness;

pub use heartbeat::{Heartbeat, HeartbeatPacket};
pub use sync::{SyncHeader, SyncPacket, SyncRecord};
pub use witness::{WitnessBytes, WitnessKind, WitnessMsg, WitnessPacket};

use crate::wire::{read_u64, write_u64};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The MAC's length: HMAC-SHA256.
pub const MAC_LEN: usize = 32;

/// The head every HA message opens with: whose it is (magic, version),
/// three bytes of the message's own (5 to 7), then the sender's start,
/// sequence number and clock, by which replays are judged.
pub mod head {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const BOOT: usize = 8;
    pub const SEQ: usize = 16;
    pub const SENT_MS: usize = 24;
}

/// What a director's messages (heartbeat, witness) put in the head's
/// three bytes and after it: what the message is, the sender's priority
/// and flags, and the sequence number it last heard or answers.
pub mod director {
    /// Heartbeat: 1 if the sender holds the VIPs; witness: its kind.
    pub const CODE: usize = 5;
    /// The sending director's priority (0 from the witness).
    pub const PRIORITY: usize = 6;
    /// Bits whose meaning is the message's.
    pub const FLAGS: usize = 7;
    /// Heartbeat: the receiver's last sequence number heard; witness
    /// answer: the director's message it answers.
    pub const ECHO: usize = 32;
}

/// Writes the head: `magic`, `version` and the sender's (boot, sequence,
/// clock in ms).
fn emit_head(b: &mut [u8], magic: &[u8; 4], version: u8, (boot, seq, sent_ms): (u64, u64, u64)) {
    b[head::MAGIC].copy_from_slice(magic);
    b[head::VERSION] = version;
    write_u64(b, head::BOOT, boot);
    write_u64(b, head::SEQ, seq);
    write_u64(b, head::SENT_MS, sent_ms);
}

/// Why an HA message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong length, magic, version, kind or field values.
    Malformed,
    /// The MAC does not match: damaged, forged, or another key.
    BadMac,
}

impl From<super::Error> for Refused {
    fn from(_: super::Error) -> Refused {
        Refused::Malformed
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Writes the MAC of `b[..b.len() - MAC_LEN]` into the last `MAC_LEN` bytes.
fn seal(b: &mut [u8], key: &[u8]) {
    let end = b.len() - MAC_LEN;
    let mut m = keyed(key);
    m.update(&b[..end]);
    b[end..].copy_from_slice(&m.finalize().into_bytes());
}

/// The last `MAC_LEN` bytes of `b` are the MAC of the rest under `key`
/// (compared in constant time, through the hmac crate's verifier).
fn sealed(b: &[u8], key: &[u8]) -> bool {
    let Some(end) = b.len().checked_sub(MAC_LEN) else {
        return false;
    };
    let mut m = keyed(key);
    m.update(&b[..end]);
    m.verify_slice(&b[end..]).is_ok()
}

#[inline]
fn read_ip(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

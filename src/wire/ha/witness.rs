//! The messages between a director and its witness (`uvs witness`): a
//! director's request for the vote, and the witness's answer saying whom
//! the vote is with. Both are 80 bytes, keyed like the heartbeat.

use super::{Refused, sealed, write_u64};
use crate::wire::Result;
use crate::wire::write_u32;
use std::net::Ipv4Addr;

fixed_message!(WitnessPacket, magic = b"UVSW", fields = 48);

/// Code: 1 a director's message, 2 the witness's answer; priority: a
/// director's (0 in an answer); flags: a director's bit 0 holding, bit 1
/// claiming, an answer's bit 0 the vote is yours; echo: an answer's
/// director message it answers (0 in a director's).
mod field {
    pub use crate::wire::ha::director::{CODE as KIND, ECHO as ANSWERS, FLAGS, PRIORITY};
    use std::ops::Range;
    /// A director's dead interval in ms; an answer's grantee address.
    pub const WORD: usize = 40;
    /// Zero.
    pub const RESERVED: Range<usize> = 44..48;
}

getters!(WitnessPacket + director {
    word: u32 @ field::WORD,
    grantee: ipv4 @ field::WORD,
    reserved: bytes @ field::RESERVED,
});

/// Who sent a witness message, and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessKind {
    /// A director asking for (or keeping) the vote.
    Director {
        priority: u8,
        /// It holds the VIPs now.
        holding: bool,
        /// Its election, before the witness is counted, says it should
        /// hold them.
        claiming: bool,
        /// How long it waits before counting a silent peer gone.
        dead_ms: u32,
    },
    /// The witness answering the director's message `answers`.
    Witness {
        vote_for_you: bool,
        /// The director the vote is with (unspecified: none).
        grantee: Ipv4Addr,
        answers: u64,
    },
}

/// One keyed message between a director and the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessMsg {
    pub boot: u64,
    pub seq: u64,
    pub sent_ms: u64,
    pub kind: WitnessKind,
}

impl WitnessMsg {
    /// The message on the wire, keyed.
    pub fn emit(&self, key: &[u8]) -> [u8; LEN] {
        sealed_message(key, (self.boot, self.seq, self.sent_ms), |b| {
            match self.kind {
                WitnessKind::Director {
                    priority,
                    holding,
                    claiming,
                    dead_ms,
                } => {
                    b[field::KIND] = 1;
                    b[field::PRIORITY] = priority;
                    b[field::FLAGS] = u8::from(holding) | u8::from(claiming) << 1;
                    write_u32(b, field::WORD, dead_ms);
                }
                WitnessKind::Witness {
                    vote_for_you,
                    grantee,
                    answers,
                } => {
                    b[field::KIND] = 2;
                    b[field::FLAGS] = u8::from(vote_for_you);
                    write_u64(b, field::ANSWERS, answers);
                    b[field::WORD..field::WORD + 4].copy_from_slice(&grantee.octets());
                }
            }
        })
    }

    /// A message from the wire: the MAC is checked before anything in it
    /// is believed.
    pub fn parse(b: &[u8], key: &[u8]) -> std::result::Result<WitnessMsg, Refused> {
        let p = WitnessPacket::new_checked(b)?;
        if b.len() != LEN || p.magic() != MAGIC || p.version() != VERSION || p.reserved() != [0; 4]
        {
            return Err(Refused::Malformed);
        }
        if !sealed(b, key) {
            return Err(Refused::BadMac);
        }
        let kind = match (p.code(), p.flags()) {
            (1, f @ 0..=3) if p.echo() == 0 => WitnessKind::Director {
                priority: p.priority(),
                holding: f & 1 == 1,
                claiming: f & 2 == 2,
                dead_ms: p.word(),
            },
            (2, f @ 0..=1) if p.priority() == 0 => WitnessKind::Witness {
                vote_for_you: f == 1,
                grantee: p.grantee(),
                answers: p.echo(),
            },
            _ => return Err(Refused::Malformed),
        };
        Ok(WitnessMsg {
            boot: p.boot(),
            seq: p.seq(),
            sent_ms: p.sent_ms(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a shared secret of enough length";

    #[test]
    fn both_kinds_survive_the_wire_and_nothing_altered_is_taken() {
        for kind in [
            WitnessKind::Director {
                priority: 200,
                holding: true,
                claiming: false,
                dead_ms: 1000,
            },
            WitnessKind::Witness {
                vote_for_you: true,
                grantee: Ipv4Addr::new(198, 18, 0, 2),
                answers: 17,
            },
        ] {
            let m = WitnessMsg {
                boot: 9,
                seq: 4,
                sent_ms: 1_700_000_000_000,
                kind,
            };
            let b = m.emit(KEY);
            assert_eq!(WitnessMsg::parse(&b, KEY), Ok(m));
            assert_eq!(
                WitnessMsg::parse(&b, b"another key here"),
                Err(Refused::BadMac)
            );
            for i in 0..LEN {
                let mut x = b;
                x[i] ^= 0x10;
                assert!(WitnessMsg::parse(&x, KEY).is_err(), "byte {i}");
            }
            for n in 0..LEN {
                assert_eq!(WitnessMsg::parse(&b[..n], KEY), Err(Refused::Malformed));
            }
        }
    }
}

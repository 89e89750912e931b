//! The messages between a director and its witness (`uvs witness`): a
//! director's request for the vote, and the witness's answer saying whom
//! the vote is with. Both are 80 bytes (version 1), keyed like the
//! heartbeat, and name an IPv4 director in a 4-byte word; an answer that
//! names an IPv6 director is the same fields with the address's 16 bytes
//! after them, as version 2 (96 bytes, [`answer6`]). A director that
//! predates it refuses that answer as malformed (its length, and its
//! version) rather than misread it; an IPv4-only exchange is byte for
//! byte what it was.

use super::{Refused, sealed, write_u64};
use crate::wire::Result;
use crate::wire::write_u32;
use std::net::{IpAddr, Ipv4Addr};

fixed_message!(WitnessPacket, magic = b"UVSW", fields = 48);

/// The longest witness message (an answer naming an IPv6 director).
pub const MAX_LEN: usize = answer6::LEN;

/// Code: 1 a director's message, 2 the witness's answer; priority: a
/// director's (0 in an answer); flags: a director's bit 0 holding, bit 1
/// claiming, an answer's bit 0 the vote is yours; echo: an answer's
/// director message it answers (0 in a director's).
mod field {
    pub use crate::wire::ha::director::{CODE as KIND, ECHO as ANSWERS, FLAGS, PRIORITY};
    use std::ops::Range;
    /// A director's dead interval in ms; an answer's grantee address
    /// (IPv4; zero in version 2).
    pub const WORD: usize = 40;
    /// Zero.
    pub const RESERVED: Range<usize> = 44..48;
    /// Version 2: the IPv6 grantee.
    pub const GRANTEE6: usize = 48;
}

getters!(WitnessPacket + director {
    word: u32 @ field::WORD,
    grantee: ipv4 @ field::WORD,
    reserved: bytes @ field::RESERVED,
});

/// The witness's answer when its vote is with an IPv6 director: version
/// 2, 96 bytes. Only an answer, and only an IPv6 grantee (an IPv4 one,
/// or none, goes in the 80-byte message), so each answer has one form.
pub mod answer6 {
    use super::{IpAddr, Refused, WitnessKind, WitnessMsg, field, sealed, write_u64};
    use crate::wire::Result;
    use std::net::Ipv6Addr;

    fixed_message!(
        Answer6Packet,
        magic = super::MAGIC,
        version = 2,
        fields = 64
    );

    getters!(Answer6Packet + director {
        word: u32 @ field::WORD,
        reserved: bytes @ field::RESERVED,
        grantee: ipv6 @ field::GRANTEE6,
    });

    pub(super) fn emit(
        key: &[u8],
        sender: (u64, u64, u64),
        vote_for_you: bool,
        grantee: Ipv6Addr,
        answers: u64,
    ) -> [u8; LEN] {
        sealed_message(key, sender, |b| {
            b[field::KIND] = 2;
            b[field::FLAGS] = u8::from(vote_for_you);
            write_u64(b, field::ANSWERS, answers);
            crate::wire::write_ipv6(b, field::GRANTEE6, grantee);
        })
    }

    pub(super) fn parse(b: &[u8], key: &[u8]) -> std::result::Result<WitnessMsg, Refused> {
        let p = Answer6Packet::new_checked(b)?;
        if b.len() != LEN
            || p.magic() != MAGIC
            || p.version() != VERSION
            || p.word() != 0
            || p.reserved() != [0; 4]
        {
            return Err(Refused::Malformed);
        }
        if !sealed(b, key) {
            return Err(Refused::BadMac);
        }
        let g = p.grantee();
        if p.code() != 2
            || p.priority() != 0
            || p.flags() > 1
            || g.is_unspecified()
            || g.to_ipv4_mapped().is_some()
        {
            return Err(Refused::Malformed);
        }
        Ok(WitnessMsg {
            boot: p.boot(),
            seq: p.seq(),
            sent_ms: p.sent_ms(),
            kind: WitnessKind::Witness {
                vote_for_you: p.flags() == 1,
                grantee: Some(IpAddr::V6(g)),
                answers: p.echo(),
            },
        })
    }
}

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
        /// The director the vote is with (none: free).
        grantee: Option<IpAddr>,
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

/// A witness message as sent: [`LEN`] bytes, or [`MAX_LEN`] for an
/// answer that names an IPv6 director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessBytes {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl<const N: usize> From<[u8; N]> for WitnessBytes {
    fn from(b: [u8; N]) -> WitnessBytes {
        const { assert!(N <= MAX_LEN) };
        let mut buf = [0; MAX_LEN];
        buf[..N].copy_from_slice(&b);
        WitnessBytes { buf, len: N }
    }
}

impl std::ops::Deref for WitnessBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl WitnessMsg {
    /// The message on the wire, keyed: an answer naming an IPv6 director
    /// in version 2, anything else in version 1.
    pub fn emit(&self, key: &[u8]) -> WitnessBytes {
        let sender = (self.boot, self.seq, self.sent_ms);
        if let WitnessKind::Witness {
            vote_for_you,
            grantee: Some(IpAddr::V6(g)),
            answers,
        } = self.kind
            && !g.is_unspecified()
            && g.to_ipv4_mapped().is_none()
        {
            return answer6::emit(key, sender, vote_for_you, g, answers).into();
        }
        sealed_message(key, sender, |b| match self.kind {
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
                let g = match grantee.map(|g| g.to_canonical()) {
                    Some(IpAddr::V4(a)) => a,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                b[field::WORD..field::WORD + 4].copy_from_slice(&g.octets());
            }
        })
        .into()
    }

    /// A message from the wire: the MAC is checked before anything in it
    /// is believed. Its length says its version: [`LEN`] bytes, or
    /// [`MAX_LEN`] for an answer naming an IPv6 director.
    pub fn parse(b: &[u8], key: &[u8]) -> std::result::Result<WitnessMsg, Refused> {
        if b.len() == answer6::LEN {
            return answer6::parse(b, key);
        }
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
                grantee: Some(IpAddr::V4(p.grantee())).filter(|g| !g.is_unspecified()),
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
    use std::net::Ipv6Addr;

    const KEY: &[u8] = b"a shared secret of enough length";
    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3);

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn msg(seq: u64, kind: WitnessKind) -> WitnessMsg {
        WitnessMsg {
            boot: 9,
            seq,
            sent_ms: 1_700_000_000_000,
            kind,
        }
    }

    fn answer(grantee: Option<IpAddr>) -> WitnessMsg {
        msg(
            4,
            WitnessKind::Witness {
                vote_for_you: true,
                grantee,
                answers: 17,
            },
        )
    }

    #[test]
    fn every_kind_survives_the_wire_and_nothing_altered_or_cut_is_taken() {
        for (m, len) in [
            (
                msg(
                    4,
                    WitnessKind::Director {
                        priority: 200,
                        holding: true,
                        claiming: false,
                        dead_ms: 1000,
                    },
                ),
                LEN,
            ),
            (answer(Some(Ipv4Addr::new(198, 18, 0, 2).into())), LEN),
            (answer(None), LEN),
            (answer(Some(V6.into())), MAX_LEN),
        ] {
            let b = m.emit(KEY);
            assert_eq!(b.len(), len, "{m:?}");
            assert_eq!(WitnessMsg::parse(&b, KEY), Ok(m));
            assert_eq!(
                WitnessMsg::parse(&b, b"another key here"),
                Err(Refused::BadMac)
            );
            for i in 0..len {
                let mut x = b.to_vec();
                x[i] ^= 0x10;
                assert!(WitnessMsg::parse(&x, KEY).is_err(), "byte {i} of {m:?}");
            }
            for n in 0..len {
                assert_eq!(
                    WitnessMsg::parse(&b[..n], KEY),
                    Err(Refused::Malformed),
                    "{n} bytes of {m:?}"
                );
            }
            let mut longer = b.to_vec();
            longer.push(0);
            assert_eq!(WitnessMsg::parse(&longer, KEY), Err(Refused::Malformed));
        }
    }

    /// The IPv4 messages are the bytes the version before IPv6 sent
    /// (captured from it), so a director or witness of that version
    /// still understands them.
    #[test]
    fn ipv4_messages_are_the_bytes_they_were_before_ipv6() {
        let director = msg(
            9,
            WitnessKind::Director {
                priority: 200,
                holding: true,
                claiming: true,
                dead_ms: 1000,
            },
        );
        let director = WitnessMsg {
            boot: 0x0102030405060708,
            ..director
        };
        let with = WitnessMsg {
            boot: 0x1112131415161718,
            seq: 4,
            sent_ms: 1_700_000_000_123,
            kind: WitnessKind::Witness {
                vote_for_you: true,
                grantee: Some(Ipv4Addr::new(198, 18, 0, 2).into()),
                answers: 9,
            },
        };
        let free = WitnessMsg {
            boot: 0x1112131415161718,
            seq: 5,
            sent_ms: 1_700_000_000_223,
            kind: WitnessKind::Witness {
                vote_for_you: false,
                grantee: None,
                answers: 10,
            },
        };
        for (m, before) in [
            (
                director,
                "555653570101c803010203040506070800000000000000090000018bcfe56800\
                 0000000000000000000003e800000000f18368b38be0a2065558e35150409a43\
                 c7ceacb286033f810e9622a1ca63db42",
            ),
            (
                with,
                "5556535701020001111213141516171800000000000000040000018bcfe5687b\
                 0000000000000009c612000200000000c2d7ebf934e48228baabab7b80f8cd02\
                 e1afd7f60e7cbab49840b59778dd48ef",
            ),
            (
                free,
                "5556535701020000111213141516171800000000000000050000018bcfe568df\
                 000000000000000a0000000000000000875bfd885ef19fdcde33575880d2c45f\
                 dc4ce36990f7bb44c0ccc172656a0212",
            ),
        ] {
            assert_eq!(hex(&m.emit(KEY)), before, "{m:?}");
        }
        // An IPv4-mapped grantee is the IPv4 director, in the IPv4 form.
        let mapped = answer(Some(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().into()));
        let plain = answer(Some(Ipv4Addr::new(198, 18, 0, 2).into()));
        assert_eq!(mapped.emit(KEY), plain.emit(KEY));
    }

    /// An answer naming an IPv6 director is refused by the rules of the
    /// version before it (exactly 80 bytes, version 1), so a director of
    /// that version never misreads it; and only an answer naming an
    /// IPv6 director is taken in that form, even under a valid MAC.
    #[test]
    fn an_ipv6_answer_is_told_apart_and_forged_ones_are_refused() {
        let b = answer(Some(V6.into())).emit(KEY);
        assert_ne!(b.len(), LEN);
        assert_eq!(b[crate::wire::ha::head::VERSION], 2);
        assert_eq!(&b[..4], MAGIC);
        let p = answer6::Answer6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.grantee(), V6);
        // Fields a forger with the key might set: each refused.
        let forged = |f: fn(&mut [u8])| {
            let mut x = b.to_vec();
            f(&mut x);
            crate::wire::ha::seal(&mut x, KEY);
            WitnessMsg::parse(&x, KEY)
        };
        const G: std::ops::Range<usize> = field::GRANTEE6..field::GRANTEE6 + 16;
        type Edit = fn(&mut [u8]);
        let cases: [(&str, Edit); 7] = [
            ("a director's kind", |x| x[field::KIND] = 1),
            ("a priority", |x| x[field::PRIORITY] = 7),
            ("unknown flags", |x| x[field::FLAGS] = 2),
            ("a word", |x| x[field::WORD] = 1),
            ("reserved bytes", |x| x[field::RESERVED.start] = 1),
            ("no grantee", |x| x[G].fill(0)),
            ("an IPv4-mapped grantee", |x| {
                let m = Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped();
                x[G].copy_from_slice(&m.octets())
            }),
        ];
        for (what, f) in cases {
            assert_eq!(forged(f), Err(Refused::Malformed), "{what}");
        }
        // Version 1 at 96 bytes, or version 2 at 80: refused.
        assert_eq!(forged(|x| x[4] = 1), Err(Refused::Malformed));
        let mut short = b[..LEN].to_vec();
        crate::wire::ha::seal(&mut short, KEY);
        assert_eq!(WitnessMsg::parse(&short, KEY), Err(Refused::Malformed));
    }
}

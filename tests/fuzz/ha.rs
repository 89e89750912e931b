//! HA datagrams: sync messages, heartbeats and witness messages,
//! mutated, cut short, and random bytes.

use super::config;
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use uvs::lvs::service::{Forward, Protocol};
use uvs::rig::VIP;

/// A valid sync message with a few records, and a heartbeat, under KEY.
const HA_KEY: &[u8] = b"a shared secret of enough length";

fn ha_seeds() -> Vec<Vec<u8>> {
    use uvs::ha::sync::{Body, SyncMsg};
    use uvs::ha::witness::Kind;
    use uvs::lvs::conn::{ConnState, PortableConn};
    use uvs::lvs::sync::{Digest, Record};
    let conn = PortableConn {
        protocol: Protocol::Tcp,
        caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
        cport: 40000,
        vaddr: VIP.into(),
        vport: 80,
        raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
        rport: 80,
        fwd: Forward::Route,
        state: ConnState::Udp,
        expires_in_ms: 1000,
        client_link: 0,
        client_mac: [2, 0, 0, 0, 0, 1],
        seen_twice: false,
        fwmark: 0,
    };
    let udp = PortableConn {
        protocol: Protocol::Udp,
        ..conn
    };
    // An IPv6 connection: its records are 72 bytes, mixed with IPv4's.
    let v6 = |a: &str| a.parse::<std::net::IpAddr>().unwrap();
    let udp6 = PortableConn {
        caddr: v6("2001:2::10"),
        vaddr: v6("2001:2::100"),
        raddr: v6("2001:2::11"),
        ..udp
    };
    let msg = |body| {
        SyncMsg {
            boot: 1,
            seq: 7,
            sent_ms: 1000,
            body,
        }
        .emit(HA_KEY)
    };
    vec![
        msg(Body::Records(vec![
            Record::Upsert(udp),
            Record::Remove(udp.key()),
        ])),
        msg(Body::Records(vec![
            Record::Upsert(udp6),
            Record::Upsert(udp),
            Record::Remove(udp6.key()),
        ])),
        msg(Body::Digest(Digest { count: 1, sum: 2 })),
        msg(Body::Nack { from: 1, to: 3 }),
        uvs::ha::msg::Heartbeat {
            boot: 1,
            seq: 2,
            sent_ms: 3,
            priority: 100,
            active: true,
            ready: false,
            hears_witness: true,
            heard_seq: 1,
        }
        .emit(HA_KEY)
        .to_vec(),
        witness_msg(Kind::Director {
            priority: 100,
            holding: true,
            claiming: true,
            dead_ms: 1000,
        }),
        witness_msg(Kind::Witness {
            vote_for_you: true,
            grantee: Some(Ipv4Addr::new(198, 18, 0, 2).into()),
            answers: 2,
        }),
        // An answer naming an IPv6 director: 96 bytes, version 2.
        witness_msg(Kind::Witness {
            vote_for_you: false,
            grantee: Some(v6("2001:2::3")),
            answers: 3,
        }),
    ]
}

/// A witness message of `kind` under KEY, on the wire.
fn witness_msg(kind: uvs::ha::witness::Kind) -> Vec<u8> {
    uvs::ha::witness::WitnessMsg {
        boot: 1,
        seq: 2,
        sent_ms: 3,
        kind,
    }
    .emit(HA_KEY)
    .to_vec()
}

static HA_SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(ha_seeds);

proptest! {
    #![proptest_config(config())]

    /// HA datagrams of any shape (sync messages, heartbeats, witness
    /// messages, mutations of valid ones, random bytes): refused or taken,
    /// never a panic, and without the key nothing altered is ever taken;
    /// the witness and a director's view of it take them without a panic.
    #[test]
    fn ha_messages(seed in 0..8usize, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>(), random in proptest::collection::vec(any::<u8>(), 0..1500)) {
        use uvs::ha::sync::{Inbox, SyncMsg};
        let base = &HA_SEEDS[seed];
        let mut m = base.clone();
        for (at, b) in &edits {
            let i = at % m.len();
            m[i] = *b;
        }
        m.truncate(cut % (m.len() + 1) + usize::from(edits.is_empty()) * m.len());
        for input in [&m, &random] {
            let mut inbox = Inbox::default();
            if let Ok(msg) = SyncMsg::parse(input, HA_KEY) {
                prop_assert_eq!(input, base, "an altered message was taken");
                inbox.take(msg, std::time::Instant::now());
            }
            if let Ok(h) = uvs::ha::msg::Heartbeat::parse(input, HA_KEY) {
                prop_assert_eq!(&h.emit(HA_KEY)[..], &input[..]);
            }
            if let Ok(w) = uvs::ha::witness::WitnessMsg::parse(input, HA_KEY) {
                prop_assert_eq!(&w.emit(HA_KEY)[..], &input[..]);
            }
            let now = std::time::Instant::now();
            for dir in ["198.18.0.2:5405", "[2001:2::2]:5405"] {
                let dir: std::net::SocketAddr = dir.parse().unwrap();
                let mut voter = uvs::ha::witness::Voter::new(HA_KEY.to_vec(), &[dir.ip()], std::time::Duration::ZERO, now);
                let answer = voter.receive(dir, input, now, 1);
                prop_assert!(answer.reply.is_none() || input == base, "an altered message was answered");
                let mut view = uvs::ha::witness::WitnessView::new(dir);
                view.receive(input, HA_KEY, now, std::time::Duration::from_secs(1));
                prop_assert!(!view.votes_for_us(now), "a vote without a message of ours");
            }
        }
    }
}

//! Property-based fuzzing on the stable toolchain (proptest): the wire
//! views (IPv6's and its extension-header walk too), the data plane's
//! per-frame entry point, the restore parser, the control protocol,
//! config files, keepalived.conf and the HA messages (heartbeats and
//! sync) get mutated valid inputs and random bytes. Each target runs
//! 2,000 cases by default (what CI runs); a deep run is
//!
//!     PROPTEST_CASES=1000000 cargo test --release --test fuzz
//!
//! (docs/testing.md). Beyond "no panic", each target checks what must
//! hold whatever the input: what the director sends fits its link, the
//! connection table stays within its limit and keeps forwarding, errors
//! name their line, and a refused change leaves the model as it was.

mod frames;
mod frames_v6;
mod ha;
mod keepalived;
mod text;

use proptest::test_runner::Config;
use uvs::control::model::{Model, OpError};
use uvs::control::proto::Op;
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::NextHop;
use uvs::rig::{dest, service, svc};
use uvs::wire::MacAddr;

fn config() -> Config {
    // Config::default() reads PROPTEST_CASES.
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2000;
    }
    c.failure_persistence = None;
    c
}

/// The NAT real server (on link 1, behind the director).
const RIP_NAT: [u8; 4] = [198, 18, 1, 11];

/// DR on TCP 80, TUN on UDP 54, NAT on TCP 8080 and UDP 53.
fn ops() -> Vec<Op> {
    let rs = |a: [u8; 4], port, f| dest(std::net::Ipv4Addr::from(a), port, f, 1);
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "wrr",
        &[
            rs([198, 18, 0, 11], 80, Forward::Route),
            rs([198, 18, 0, 12], 80, Forward::Route),
        ],
    );
    ops.extend(service(
        svc(Protocol::Udp, 54),
        "rr",
        &[rs([198, 18, 0, 13], 54, Forward::Tunnel)],
    ));
    ops.extend(service(
        svc(Protocol::Tcp, 8080),
        "lc",
        &[rs(RIP_NAT, 8080, Forward::Masq)],
    ));
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "wlc",
        &[rs(RIP_NAT, 5353, Forward::Masq)],
    ));
    ops
}

fn hop(ip: std::net::IpAddr, f: Forward) -> NextHop {
    NextHop {
        link: u8::from(f == Forward::Masq),
        mac: MacAddr([2, 0, 0, 0, 2, uvs::rig::last_octet(ip)]),
    }
}

fn fake_hop(ip: std::net::IpAddr, f: Forward) -> Result<NextHop, OpError> {
    Ok(hop(ip, f))
}

/// An empty model with the director's TUN source, as `uvs director`
/// starts.
fn model() -> Model {
    Model::with_tun_source(Some(uvs::rig::DIR_ADDR))
}

//! The data plane in memory: real frames in and out through the
//! in-memory backend (`uvs::rig`), no sockets and no root, decoded and
//! checked with etherparse, an independent packet implementation.

mod dr6;
mod dr_tun;
mod gso_oracle;
mod hardening;
mod kernel_counts;
mod kernel_sched;
mod marktpl;
mod nat;
mod ndp;
mod offload;
mod offload6;
mod persist;
mod persist6;
mod sync;
mod sync6;
mod tun6;

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader};
use uvs::rig::{CL_MAC, DIR_MAC, VIP};

/// A UDP datagram from the client's MAC to the director's: `client`:
/// `sport` to VIP:`dport`, carrying `payload`.
pub fn udp_from(client: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4(client, VIP, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// A TCP frame being built, with the flags named in `flags`: S, A
/// (acknowledging 1), F and R.
pub fn with_flags(
    mut t: PacketBuilderStep<TcpHeader>,
    flags: &str,
) -> PacketBuilderStep<TcpHeader> {
    for f in flags.chars() {
        t = match f {
            'S' => t.syn(),
            'A' => t.ack(1),
            'F' => t.fin(),
            'R' => t.rst(),
            _ => panic!("flag {f}"),
        };
    }
    t
}

/// One step of the xorshift generator the garbage tests use (`x` must not
/// start at 0), then a copy of `base` cut to a random length (at least
/// `min_len`, when `base` has that many) with `flips` random bytes flipped.
pub fn mangle(base: &[u8], x: &mut u64, min_len: usize, flips: u32) -> Vec<u8> {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    let mut f = base.to_vec();
    f.truncate(((*x as usize) % (f.len() + 1)).max(min_len));
    for k in 0..flips {
        if !f.is_empty() {
            let at = ((*x >> (k * 8)) as usize) % f.len();
            f[at] ^= (*x >> (k * 8 + 32)) as u8;
        }
    }
    f
}

//! A connection entry as the data plane keeps it: a flow, keyed by the
//! client's 5-tuple ([`ConnKey`]), sticks to the real server first
//! scheduled for it until the entry expires. The table that holds the
//! entries is [`conn_table`](super::conn_table); TCP states move in
//! [`tcp_state`](super::tcp_state).

use super::tcp_state::Direction;
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, TcpState, hash_tuple};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::table::Table;
use crate::wire::MacAddr;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};

/// A NAT reply's 5-tuple as it leaves the real server: from RIP:RPORT to
/// the client (NAT66's with IPv6 addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyKey<A = Ipv4Addr> {
    pub protocol: Protocol,
    pub raddr: A,
    pub rport: u16,
    pub caddr: A,
    pub cport: u16,
}

/// Hashed as `ConnKey` is.
impl<A: Addr> Hash for ReplyKey<A> {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let r = self;
        hash_tuple(h, r.protocol, (r.raddr, r.rport), (r.caddr, r.cport));
    }
}

impl<A: Addr> ReplyKey<A> {
    /// The 5-tuple of a packet from `(raddr, rport)`, a real server's, to
    /// `(caddr, cport)`.
    #[inline]
    pub fn new(protocol: Protocol, (raddr, rport): (A, u16), (caddr, cport): (A, u16)) -> Self {
        ReplyKey {
            protocol,
            raddr,
            rport,
            caddr,
            cport,
        }
    }

    /// The 5-tuple of the real server's replies on `k`'s NAT connection.
    #[inline]
    pub fn of(k: &ConnKey<A>, raddr: A, rport: u16) -> ReplyKey<A> {
        ReplyKey::new(k.protocol, (raddr, rport), (k.caddr, k.cport))
    }
}

/// One tracked connection, in family `A`'s table.
#[derive(Debug, Clone, Copy)]
pub struct Conn<A = Ipv4Addr> {
    /// Index of the service and real server in the current table, checked
    /// against `dest_id` on every use and remapped on republication.
    pub svc: u32,
    pub dest: u32,
    /// The real server's id (its low 32 bits: ids are handed out one by
    /// one, so two live servers never share them).
    pub dest_id: u32,
    pub state: ConnState,
    /// Expiry, in ticks of [`TICK_MS`] of the data plane's clock, wrapping:
    /// read and set through [`Conn::expires_ms`] and
    /// [`Conn::set_expires_ms`], which are exact within 99 days of now
    /// (the longest timeout is 31 days). 32 bits keep an entry in 64 bytes.
    expires: u32,
    /// The forwarding method, fixed when the connection is scheduled (as
    /// IPVS keeps it in the connection): it decides the TCP state tables
    /// and whether replies are translated.
    pub fwd: Forward,
    /// The real server's address and port: the source of NAT replies.
    pub raddr: A,
    pub rport: u16,
    /// The director's link the client's packets arrive on, and the MAC
    /// they came from: where NAT replies go when no route is more specific.
    pub client_link: u8,
    pub client_mac: MacAddr,
    /// An established DR flow handed to the XDP program, which forwards
    /// its frames itself (`PacketIo::offload`); taken back at FIN or RST
    /// and when the entry goes.
    pub offloaded: bool,
}

/// The resolution of connection timers.
pub const TICK_MS: u64 = 4;

impl<A: Addr> Conn<A> {
    /// A connection entry; its timer runs out at `expires_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        svc: u32,
        dest: u32,
        dest_id: u64,
        state: ConnState,
        expires_ms: u64,
        fwd: Forward,
        raddr: A,
        rport: u16,
        client_link: u8,
        client_mac: MacAddr,
    ) -> Conn<A> {
        let mut c = Conn {
            svc,
            dest,
            dest_id: dest_id as u32,
            state,
            expires: 0,
            fwd,
            raddr,
            rport,
            client_link,
            client_mac,
            offloaded: false,
        };
        c.set_expires_ms(expires_ms);
        c
    }

    /// When the timer runs out, in ms of the data plane's clock, read
    /// against `now` (the stored ticks wrap).
    #[inline]
    pub fn expires_ms(&self, now: u64) -> u64 {
        let now_t = (now / TICK_MS) as u32;
        let ahead = self.expires.wrapping_sub(now_t) as i32;
        let t = (now / TICK_MS) as i64 + i64::from(ahead);
        (t.max(0) as u64).saturating_mul(TICK_MS)
    }

    /// Sets the timer to run out at `ms` (rounded up to a tick).
    #[inline]
    pub fn set_expires_ms(&mut self, ms: u64) {
        self.expires = ms.div_ceil(TICK_MS) as u32;
    }

    /// Whether a new SYN on this 5-tuple starts a new connection rather
    /// than continuing this one (IPVS conn_reuse_mode 1 with the NOOUTPUT
    /// rule: TIME_WAIT and CLOSE always, FIN_WAIT only when the director
    /// does not see replies, i.e. DR and TUN).
    pub fn reusable_by_syn(&self) -> bool {
        match self.state {
            ConnState::Tcp(TcpState::TimeWait | TcpState::Close) => true,
            ConnState::Tcp(TcpState::FinWait) => self.fwd != Forward::Masq,
            _ => false,
        }
    }

    /// The table client-to-server segments of this connection use.
    pub fn input_direction(&self) -> Direction {
        match self.fwd {
            Forward::Masq => Direction::Input,
            Forward::Route | Forward::Tunnel => Direction::InputOnly,
        }
    }

    /// The real server's address. An entry holds one of its own family;
    /// a tunnelled real server of the other family (IPVS's mixed
    /// tunnels: IPv4 in IPv6, IPv6 in IPv4) it holds as the unspecified
    /// address, and its address is read from `table` by the entry's
    /// indexes (`None` once the server left it).
    #[inline]
    pub fn dest_addr(&self, table: &Table) -> Option<IpAddr> {
        if self.raddr != A::UNSPECIFIED {
            return Some(self.raddr.into());
        }
        table
            .dest(self.svc, self.dest, self.dest_id)
            .map(|(_, d)| d.addr)
    }

    #[inline]
    pub(super) fn reply_key(&self, k: &ConnKey<A>) -> Option<ReplyKey<A>> {
        (self.fwd == Forward::Masq && !self.state.is_template())
            .then(|| ReplyKey::of(k, self.raddr, self.rport))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A UDP entry to 198.18.1.11:8080 forwarded by `fwd` (for the
    /// table's tests too).
    pub(in crate::dataplane) fn conn(fwd: Forward) -> Conn {
        conn_to(fwd, Ipv4Addr::new(198, 18, 1, 11))
    }

    /// The same entry to `raddr`:8080, of either family.
    pub(in crate::dataplane) fn conn_to<A: Addr>(fwd: Forward, raddr: A) -> Conn<A> {
        Conn::new(
            0,
            0,
            1,
            ConnState::Udp,
            0,
            fwd,
            raddr,
            8080,
            0,
            MacAddr::ZERO,
        )
    }

    #[test]
    fn timers_read_back_exactly_across_the_wrap() {
        for now in [0u64, 1 << 20, (u32::MAX as u64) * TICK_MS - 5000, 1 << 40] {
            let mut c = conn(Forward::Route);
            for ahead in [0u64, 4, 3000, 900_000, 31 * 86_400_000] {
                c.set_expires_ms(now + ahead);
                assert_eq!(c.expires_ms(now), (now + ahead).div_ceil(TICK_MS) * TICK_MS);
            }
            // In the past: seen as expired.
            c.set_expires_ms(now.saturating_sub(60_000));
            assert!(c.expires_ms(now) <= now);
        }
    }

    #[test]
    fn fin_wait_is_reused_by_a_syn_only_without_replies() {
        let mut c = conn(Forward::Masq);
        c.state = ConnState::Tcp(TcpState::FinWait);
        assert!(!c.reusable_by_syn());
        c.fwd = Forward::Route;
        assert!(c.reusable_by_syn());
        c.state = ConnState::Tcp(TcpState::TimeWait);
        c.fwd = Forward::Masq;
        assert!(c.reusable_by_syn());
    }
}

//! The connection table: a flow, keyed by the client's 5-tuple, sticks to
//! the real server first scheduled for it until the entry expires. NAT
//! connections are also indexed by their reply 5-tuple, so a real server's
//! answer finds the connection it belongs to. TCP states are in
//! [`tcp_state`](super::tcp_state).

use super::tcp_state::{Direction, TcpState};
use crate::lvs::service::{Forward, Protocol, Timeouts};
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A connection's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Tcp(TcpState),
    Udp,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
        }
    }

    pub fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp => false,
        }
    }

    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            ConnState::Tcp(s) => s.timeout(t),
            ConnState::Udp => t.udp,
        }
    }
}

/// The client's 5-tuple as seen on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
}

impl ConnKey {
    /// The virtual service's address and port (VIP:VPORT).
    pub fn vip(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.vaddr, self.vport)
    }

    /// The 5-tuple of the real server's replies on a NAT connection.
    pub fn reply(&self, raddr: Ipv4Addr, rport: u16) -> ReplyKey {
        ReplyKey {
            protocol: self.protocol,
            raddr,
            rport,
            caddr: self.caddr,
            cport: self.cport,
        }
    }
}

/// A NAT reply's 5-tuple as it leaves the real server: from RIP:RPORT to
/// the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyKey {
    pub protocol: Protocol,
    pub raddr: Ipv4Addr,
    pub rport: u16,
    pub caddr: Ipv4Addr,
    pub cport: u16,
}

/// One tracked connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Index of the service and real server in the current table, checked
    /// against `dest_id` on every use and remapped on republication.
    pub svc: u32,
    pub dest: u32,
    pub dest_id: u64,
    pub state: ConnState,
    /// Expiry, in milliseconds of the data plane's clock.
    pub expires_ms: u64,
    /// The forwarding method, fixed when the connection is scheduled (as
    /// IPVS keeps it in the connection): it decides the TCP state tables
    /// and whether replies are translated.
    pub fwd: Forward,
    /// The real server's address and port: the source of NAT replies.
    pub raddr: Ipv4Addr,
    pub rport: u16,
    /// The director's link the client's packets arrive on, and the MAC
    /// they came from: where NAT replies go when no route is more specific.
    pub client_link: u8,
    pub client_mac: MacAddr,
}

impl Conn {
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

    fn reply_key(&self, k: &ConnKey) -> Option<ReplyKey> {
        (self.fwd == Forward::Masq).then(|| k.reply(self.raddr, self.rport))
    }
}

/// Why a connection could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table is at its size limit.
    Full,
    /// Another NAT connection already has the same reply 5-tuple (one
    /// client port talking to the same real server through two VIPs):
    /// its replies could not be told apart.
    ReplyClash,
}

/// The table itself, with a hard size limit so a SYN flood cannot exhaust
/// memory. Capacity is reserved up front so steady-state inserts do not
/// allocate.
pub struct ConnTable {
    map: HashMap<ConnKey, Conn, foldhash::fast::RandomState>,
    /// NAT connections by reply 5-tuple.
    replies: HashMap<ReplyKey, ConnKey, foldhash::fast::RandomState>,
    max: usize,
}

impl ConnTable {
    pub fn new(reserve: usize, max: usize) -> ConnTable {
        ConnTable {
            map: HashMap::with_capacity_and_hasher(reserve, foldhash::fast::RandomState::default()),
            replies: HashMap::with_capacity_and_hasher(
                reserve,
                foldhash::fast::RandomState::default(),
            ),
            max,
        }
    }

    #[inline]
    pub fn get(&self, k: &ConnKey) -> Option<&Conn> {
        self.map.get(k)
    }

    #[inline]
    pub fn get_mut(&mut self, k: &ConnKey) -> Option<&mut Conn> {
        self.map.get_mut(k)
    }

    pub fn remove(&mut self, k: &ConnKey) -> Option<Conn> {
        let c = self.map.remove(k)?;
        if let Some(r) = c.reply_key(k) {
            self.replies.remove(&r);
        }
        Some(c)
    }

    /// Inserts a new connection (the key must not be in the table).
    pub fn insert(&mut self, k: ConnKey, c: Conn) -> Result<(), InsertError> {
        if self.map.len() >= self.max {
            return Err(InsertError::Full);
        }
        if let Some(r) = c.reply_key(&k) {
            match self.replies.entry(r) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    return Err(InsertError::ReplyClash);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(k);
                }
            }
        }
        self.map.insert(k, c);
        Ok(())
    }

    /// Whether any NAT connection is tracked (no reply lookups otherwise).
    #[inline]
    pub fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// The NAT connection a real server's reply belongs to.
    #[inline]
    pub fn by_reply(&self, r: &ReplyKey) -> Option<ConnKey> {
        self.replies.get(r).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Conn)> {
        self.map.iter()
    }

    /// Keeps the entries for which `f` returns true; `f` may update them.
    pub fn retain(&mut self, mut f: impl FnMut(&ConnKey, &mut Conn) -> bool) {
        let replies = &mut self.replies;
        self.map.retain(|k, c| {
            let keep = f(k, c);
            if !keep && let Some(r) = c.reply_key(k) {
                replies.remove(&r);
            }
            keep
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fwd: Forward) -> Conn {
        Conn {
            svc: 0,
            dest: 0,
            dest_id: 1,
            state: ConnState::Udp,
            expires_ms: 0,
            fwd,
            raddr: Ipv4Addr::new(198, 18, 1, 11),
            rport: 8080,
            client_link: 0,
            client_mac: MacAddr::ZERO,
        }
    }

    fn key(cport: u16, vport: u16) -> ConnKey {
        ConnKey {
            protocol: Protocol::Tcp,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport,
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

    #[test]
    fn nat_connections_are_found_by_their_reply_and_forgotten_with_them() {
        let mut t = ConnTable::new(4, 10);
        let (k1, k2) = (key(1000, 80), key(1001, 80));
        t.insert(k1, conn(Forward::Masq)).unwrap();
        t.insert(k2, conn(Forward::Route)).unwrap();
        let r1 = k1.reply(Ipv4Addr::new(198, 18, 1, 11), 8080);
        assert_eq!(t.by_reply(&r1), Some(k1));
        // DR connections have no reply entry.
        let r2 = k2.reply(Ipv4Addr::new(198, 18, 1, 11), 8080);
        assert!(t.by_reply(&r2).is_none());
        // The same client port to the same real server through another
        // VIP port would make replies ambiguous.
        assert_eq!(
            t.insert(key(1000, 81), conn(Forward::Masq)),
            Err(InsertError::ReplyClash)
        );
        t.retain(|k, _| *k != k1);
        assert!(t.by_reply(&r1).is_none());
        t.insert(k1, conn(Forward::Masq)).unwrap();
        assert!(t.remove(&k1).is_some());
        assert!(t.by_reply(&r1).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn table_limit_is_enforced() {
        let mut t = ConnTable::new(4, 2);
        let c = conn(Forward::Route);
        for p in 0..3u16 {
            let k = ConnKey {
                protocol: Protocol::Udp,
                caddr: Ipv4Addr::new(198, 18, 0, 10),
                cport: p,
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                vport: 53,
            };
            assert_eq!(t.insert(k, c).is_ok(), p < 2);
        }
        assert_eq!(t.len(), 2);
    }
}

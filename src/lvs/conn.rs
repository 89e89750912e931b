//! Connections as every part of the director names them: the client's
//! 5-tuple ([`ConnKey`]), the state ([`ConnState`], with IPVS's TCP
//! states in [`TcpState`]), a connection in a form that survives a change
//! of process ([`PortableConn`]: handoff and HA sync) and a row of
//! `uvsadm -Lnc` ([`ConnInfo`]). The data plane keeps its own entry and
//! table, and moves TCP states by IPVS's transition tables.

use crate::lvs::addr::Addr;
use crate::lvs::service::{Forward, Persistence, Protocol, ServiceKey, Timeouts};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

/// The default `--max-conns`.
pub const DEFAULT_MAX_CONNS: usize = 1 << 20;
/// The largest `--max-conns`: the connection table numbers its slots in
/// 32 bits, with one number kept free.
pub const MAX_LIMIT: usize = 1 << 31;

/// The client's 5-tuple as seen on the way in, of either family: the
/// data plane keys a table per family with `ConnKey<Ipv4Addr>` (the
/// default) and `ConnKey<Ipv6Addr>`; what crosses a process or the
/// planes' boundary with either family in it (a sync record's key) is a
/// [`PortableKey`], `ConnKey<IpAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnKey<A = Ipv4Addr> {
    pub protocol: Protocol,
    pub caddr: A,
    pub cport: u16,
    pub vaddr: A,
    pub vport: u16,
}

/// A key hashed as a few fixed-width numbers ([`hash_tuple`]).
impl<A: Addr> Hash for ConnKey<A> {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let k = self;
        hash_tuple(h, k.protocol, (k.caddr, k.cport), (k.vaddr, k.vport));
    }
}

/// Feeds a 5-tuple to `h` as a few fixed-width numbers
/// ([`Addr::hash_pair`], then the protocol and ports in one): the
/// connection table hashes one on every lookup, and numbers are what a
/// hasher takes fastest.
#[inline]
pub fn hash_tuple<A: Addr, H: Hasher>(h: &mut H, protocol: Protocol, a: (A, u16), b: (A, u16)) {
    A::hash_pair(a.0, b.0, h);
    h.write_u64((u64::from(protocol.number()) << 32) | (u64::from(a.1) << 16) | u64::from(b.1));
}

/// A connection's key of either family.
pub type PortableKey = ConnKey<IpAddr>;

impl<A: Addr> ConnKey<A> {
    /// The key of the persistence template that connection `self` of
    /// service `svc` goes through (`ip_vs_sched_persist`): the client's
    /// network, client port 0, and the service's port (0 for a port-0
    /// service, whose template covers every port). A firewall-mark
    /// service's is IPVS's `<IPPROTO_IP, caddr&mask, 0, fwmark, 0>`: one
    /// template per client network and mark, whatever the connection's
    /// protocol, VIP and port, with the mark as its virtual address.
    #[inline]
    pub fn template(&self, p: &Persistence, svc: &ServiceKey) -> ConnKey<A> {
        self.template_in(p.client_mask(), svc)
    }

    /// [`template`](Self::template) with the client network's mask given
    /// (an IPv6 service's is a prefix: [`Addr::prefix_mask`]).
    #[inline]
    pub fn template_in(&self, mask: A, svc: &ServiceKey) -> ConnKey<A> {
        let caddr = self.caddr.masked(mask);
        match svc.fwmark {
            0 => ConnKey {
                protocol: self.protocol,
                caddr,
                cport: 0,
                vaddr: self.vaddr,
                vport: svc.port,
            },
            m => ConnKey::mark_template(caddr, m),
        }
    }

    /// The template of client network `caddr` on firewall mark `mark`.
    #[inline]
    pub fn mark_template(caddr: A, mark: u32) -> ConnKey<A> {
        ConnKey {
            protocol: Protocol::Ip,
            caddr,
            cport: 0,
            vaddr: A::from_mark(mark),
            vport: 0,
        }
    }

    /// The firewall mark of a mark service's template (its virtual
    /// address), `None` for any other entry.
    #[inline]
    pub fn template_mark(&self) -> Option<u32> {
        match self.protocol {
            Protocol::Ip => self.vaddr.mark(),
            _ => None,
        }
    }

    /// The key as either family's.
    #[inline]
    pub fn portable(&self) -> PortableKey {
        self.with_addrs(self.caddr.into(), self.vaddr.into())
    }
}

impl<A: Copy> ConnKey<A> {
    /// The same protocol and ports with addresses `caddr` and `vaddr`
    /// (another family's, or either's).
    #[inline]
    pub fn with_addrs<B>(&self, caddr: B, vaddr: B) -> ConnKey<B> {
        ConnKey {
            protocol: self.protocol,
            caddr,
            cport: self.cport,
            vaddr,
            vport: self.vport,
        }
    }
}

impl ConnKey<Ipv4Addr> {
    /// The virtual service's address and port (VIP:VPORT).
    pub fn vip(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.vaddr, self.vport)
    }
}

impl PortableKey {
    /// The key in family `A`'s table; `None` if its addresses are the
    /// other family's.
    #[inline]
    pub fn typed<A: Addr>(&self) -> Option<ConnKey<A>> {
        Some(self.with_addrs(A::from_ip(self.caddr)?, A::from_ip(self.vaddr)?))
    }

    /// As [`ConnKey::template_mark`]: the mark of a mark service's
    /// template, `None` for any other entry (and for a key no table of
    /// either family would hold).
    pub fn template_mark(&self) -> Option<u32> {
        match self.vaddr {
            IpAddr::V4(_) => self.typed::<Ipv4Addr>()?.template_mark(),
            IpAddr::V6(_) => self.typed::<Ipv6Addr>()?.template_mark(),
        }
    }
}

/// A connection's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnState {
    Tcp(TcpState),
    Udp,
    /// A persistence template (IPVS's `IP_VS_CONN_F_TEMPLATE`), of either
    /// protocol: its client is a network (port 0), and it names the real
    /// server that network's new connections go to.
    Template,
    /// A template once one of its TCP connections was established
    /// (`ip_vs_control_assure_ct`). (Two unit variants rather than a
    /// flag keep the state one byte, and an entry 64.)
    Assured,
}

/// The time a template that still has connections is given again when
/// its own timer runs out (`ip_vs_conn_expire`: 60 s).
pub const TEMPLATE_REARM_SECS: u32 = 60;

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
            ConnState::Template => "NONE",
            ConnState::Assured => "ASSURED",
        }
    }

    /// Whether it counts in its real server's active connections. A UDP
    /// flow does while its entry lives, that is while it saw a datagram
    /// within the UDP timeout (IPVS counts UDP as inactive, always: uvs
    /// differs so that "no active connection" means a drained server,
    /// docs/cli.md).
    pub fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp => true,
            ConnState::Template | ConnState::Assured => false,
        }
    }

    #[inline]
    pub fn is_template(self) -> bool {
        matches!(self, ConnState::Template | ConnState::Assured)
    }

    /// One byte for the sync protocol and the digest.
    pub fn code(self) -> u8 {
        match self {
            ConnState::Tcp(s) => s as u8,
            ConnState::Udp => 0xff,
            ConnState::Template => 0xfe,
            ConnState::Assured => 0xfd,
        }
    }

    pub fn from_code(b: u8) -> Option<ConnState> {
        match b {
            0xff => Some(ConnState::Udp),
            0xfe => Some(ConnState::Template),
            0xfd => Some(ConnState::Assured),
            b => TcpState::from_code(b).map(ConnState::Tcp),
        }
    }

    /// Seconds an idle entry in this state lives. A template's own
    /// timeout is its service's (`-p`); this is the shortest it is given
    /// again while it has connections, which paces the sweep.
    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            ConnState::Tcp(s) => s.timeout(t),
            ConnState::Udp => t.udp,
            ConnState::Template | ConnState::Assured => TEMPLATE_REARM_SECS,
        }
    }

    /// How often a frame of a flow in this state that a kernel program
    /// forwards goes up to uvs, in ms: four times per timeout keeps uvs's
    /// timer running; more often only costs uvs time.
    pub fn up_every_ms(self, t: &Timeouts) -> u64 {
        (u64::from(self.timeout(t)) * 1000 / 4).clamp(100, 60_000)
    }
}

/// Declares [`TcpState`] from one list, each state in the kernel's order
/// with the name `ipvsadm -Lc` prints.
macro_rules! tcp_states {
    ($($state:ident $name:literal,)+) => {
        /// IPVS TCP connection states, in the kernel's order
        /// (ip_vs_proto_tcp.c); its code is its place there.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum TcpState {
            $($state,)+
        }

        impl TcpState {
            const ALL: &[TcpState] = &[$(TcpState::$state,)+];

            /// The name `ipvsadm -Lc` prints.
            pub fn name(self) -> &'static str {
                match self {
                    $(TcpState::$state => $name,)+
                }
            }
        }
    };
}

tcp_states! {
    None "NONE",
    Established "ESTABLISHED",
    SynSent "SYN_SENT",
    SynRecv "SYN_RECV",
    FinWait "FIN_WAIT",
    TimeWait "TIME_WAIT",
    Close "CLOSE",
    CloseWait "CLOSE_WAIT",
    LastAck "LAST_ACK",
    Listen "LISTEN",
    SynAck "SYNACK",
}

impl TcpState {
    /// The state numbered `b` (its place in the kernel's order).
    pub fn from_code(b: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(b)).copied()
    }

    /// States counted in ActiveConn (tcp_state_active_table).
    pub fn is_active(self) -> bool {
        use TcpState::*;
        matches!(self, Established | SynSent | SynRecv | SynAck)
    }

    /// Seconds before an idle connection in this state expires.
    pub fn timeout(self, t: &Timeouts) -> u32 {
        use TcpState::*;
        match self {
            None => 2,
            Established => t.tcp,
            SynSent => 120,
            SynRecv => 60,
            FinWait => t.tcpfin,
            TimeWait => 120,
            Close => 10,
            CloseWait => 60,
            LastAck => 30,
            Listen => 120,
            SynAck => 120,
        }
    }
}

/// A connection in a form that survives a change of process: the real
/// server by service, address and port instead of table indexes and ids,
/// the timer as time left. A planned restart hands the whole table to the
/// new director this way (`uvs director --takeover`), so established
/// connections continue; HA sync sends connections to the peers as these.
/// Its addresses are of either family (all three of one, as a table's
/// entry has them); in JSON an address is its text, so an IPv4 one is
/// written as it was before IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableConn {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
    pub fwd: Forward,
    pub state: ConnState,
    pub expires_in_ms: u64,
    pub client_link: u8,
    pub client_mac: [u8; 6],
    pub seen_twice: bool,
    /// Its service's firewall mark, for a mark service's connection (0:
    /// the service is found from the 5-tuple as a frame's would be).
    #[serde(default)]
    pub fwmark: u32,
}

impl PortableConn {
    pub fn is_template(&self) -> bool {
        self.state.is_template()
    }

    pub fn key(&self) -> PortableKey {
        ConnKey {
            protocol: self.protocol,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    /// Its key and real server's address in family `A`'s table; `None`
    /// if its client or virtual address is the other family's, or its
    /// real server's is and it is not tunnelled (IPVS mixes the families
    /// only for tunnels). A tunnel's real server of the other family is
    /// held as the unspecified address, as the data plane holds it
    /// (found again by the entry's indexes).
    #[inline]
    pub fn typed<A: Addr>(&self) -> Option<(ConnKey<A>, A)> {
        let raddr = match A::from_ip(self.raddr) {
            Some(a) => a,
            None if self.fwd == Forward::Tunnel => A::UNSPECIFIED,
            None => return None,
        };
        Some((self.key().typed()?, raddr))
    }
}

/// One row of `uvsadm -Lnc`: a connection as the data plane reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub state: String,
    pub expires_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_the_kernels_codes_and_names() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(TcpState::from_code(i as u8), Some(*s));
            assert_eq!(
                ConnState::from_code(ConnState::Tcp(*s).code()),
                Some(ConnState::Tcp(*s))
            );
        }
        assert_eq!(TcpState::from_code(11), None);
        assert_eq!(TcpState::SynAck.name(), "SYNACK");
        assert_eq!(ConnState::from_code(0xff), Some(ConnState::Udp));
    }

    /// A handoff line as a director of the version before IPv6 writes it
    /// (and one older still, without `fwmark`): it parses, and an IPv4
    /// connection is written back the same.
    #[test]
    fn an_ipv4_handoff_line_of_before_ipv6_parses_and_is_written_the_same() {
        let line = r#"{"protocol":"Tcp","caddr":"198.18.0.10","cport":40000,"vaddr":"198.18.0.100","vport":80,"raddr":"198.18.0.11","rport":8080,"fwd":"Masq","state":{"Tcp":"Established"},"expires_in_ms":899000,"client_link":1,"client_mac":[2,0,0,0,0,10],"seen_twice":true,"fwmark":0}"#;
        let p: PortableConn = serde_json::from_str(line).unwrap();
        assert_eq!(p.caddr, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)));
        assert_eq!(p.state, ConnState::Tcp(TcpState::Established));
        assert_eq!(serde_json::to_string(&p).unwrap(), line);
        let older = line.replace(r#","fwmark":0"#, "");
        assert_eq!(serde_json::from_str::<PortableConn>(&older).unwrap(), p);
        // An IPv6 connection is written with its addresses' text.
        let v6 = PortableConn {
            caddr: "2001:2::10".parse().unwrap(),
            vaddr: "2001:2::100".parse().unwrap(),
            raddr: "2001:2::11".parse().unwrap(),
            ..p
        };
        let text = serde_json::to_string(&v6).unwrap();
        assert!(text.contains(r#""caddr":"2001:2::10""#), "{text}");
        assert_eq!(serde_json::from_str::<PortableConn>(&text).unwrap(), v6);
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A portable connection enters a table of its own family only;
    /// one of mixed families enters none.
    #[test]
    fn a_portable_connection_converts_only_to_its_own_family() {
        let v4 = ConnKey {
            protocol: Protocol::Udp,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport: 5000,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 53,
        };
        let v6 = v4.with_addrs(ip6("2001:2::10"), ip6("2001:2::100"));
        assert_eq!(v4.portable().typed(), Some(v4));
        assert_eq!(v4.portable().typed::<Ipv6Addr>(), None);
        assert_eq!(v6.portable().typed(), Some(v6));
        assert_eq!(v6.portable().typed::<Ipv4Addr>(), None);
        let p = PortableConn {
            protocol: v6.protocol,
            caddr: v6.caddr.into(),
            cport: v6.cport,
            vaddr: v6.vaddr.into(),
            vport: v6.vport,
            raddr: "2001:2::11".parse().unwrap(),
            rport: 53,
            fwd: Forward::Masq,
            state: ConnState::Udp,
            expires_in_ms: 1000,
            client_link: 0,
            client_mac: [0; 6],
            seen_twice: false,
            fwmark: 0,
        };
        assert_eq!(p.key(), v6.portable());
        assert_eq!(p.typed(), Some((v6, "2001:2::11".parse().unwrap())));
        assert_eq!(p.typed::<Ipv4Addr>(), None);
        // An IPv4 real server under an IPv6 key (or the reverse): only a
        // tunnel's, held as the unspecified address, as the data plane
        // holds it.
        let mixed = PortableConn {
            raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
            ..p
        };
        assert_eq!(mixed.typed::<Ipv6Addr>(), None);
        assert_eq!(mixed.typed::<Ipv4Addr>(), None);
        let tun = PortableConn {
            fwd: Forward::Tunnel,
            ..mixed
        };
        assert_eq!(tun.typed(), Some((v6, Ipv6Addr::UNSPECIFIED)));
        assert_eq!(tun.typed::<Ipv4Addr>(), None);
        let half = ConnKey {
            vaddr: IpAddr::V4(v4.vaddr),
            ..v6.portable()
        };
        assert_eq!(half.typed::<Ipv6Addr>(), None);
        assert_eq!(half.typed::<Ipv4Addr>(), None);
        assert_eq!(
            ConnKey {
                protocol: Protocol::Ip,
                ..half
            }
            .template_mark(),
            None
        );
    }

    /// A persistence template of an IPv4 client is its netmask's network,
    /// an IPv6 client's its prefix's (each family reads its own field).
    #[test]
    fn templates_mask_the_client_by_the_services_netmask() {
        let svc = ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
            fwmark: 0,
        };
        let p = Persistence {
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            ..Persistence::new(300)
        };
        let k = ConnKey {
            protocol: Protocol::Tcp,
            caddr: Ipv4Addr::new(198, 19, 7, 9),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
        };
        let t = k.template(&p, &svc);
        assert_eq!(
            (t.caddr, t.cport, t.vport),
            (Ipv4Addr::new(198, 19, 7, 0), 0, 80)
        );
        // An IPv6 client's network is its service's prefix (-M 64).
        let k6 = k.with_addrs(ip6("2001:2:0:7::7:9"), ip6("2001:2::100"));
        assert_eq!(k6.template(&p, &svc).caddr, k6.caddr);
        let p64 = Persistence { prefix6: 64, ..p };
        assert_eq!(k6.template(&p64, &svc).caddr, ip6("2001:2:0:7::"));
        assert_eq!(
            k6.template(&Persistence { prefix6: 1, ..p }, &svc).caddr,
            ip6("::")
        );
    }

    #[test]
    fn timeouts_follow_settings() {
        let t = Timeouts {
            tcp: 7,
            tcpfin: 8,
            udp: 9,
        };
        assert_eq!(TcpState::Established.timeout(&t), 7);
        assert_eq!(TcpState::FinWait.timeout(&t), 8);
        assert_eq!(ConnState::Udp.timeout(&t), 9);
        assert_eq!(TcpState::SynRecv.timeout(&t), 60);
    }
}

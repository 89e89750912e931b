//! Connections as every part of the director names them: the client's
//! 5-tuple ([`ConnKey`]), the state ([`ConnState`], with IPVS's TCP
//! states in [`TcpState`]), a connection in a form that survives a change
//! of process ([`PortableConn`]: handoff and HA sync) and a row of
//! `uvsadm -Lnc` ([`ConnInfo`]). The data plane keeps its own entry and
//! table, and moves TCP states by IPVS's transition tables.

use crate::lvs::service::{Forward, Persistence, Protocol, ServiceKey, Timeouts};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};

/// The default `--max-conns`.
pub const DEFAULT_MAX_CONNS: usize = 1 << 20;
/// The largest `--max-conns`: the connection table numbers its slots in
/// 32 bits, with one number kept free.
pub const MAX_LIMIT: usize = 1 << 31;

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
    /// The key of the persistence template that connection `self` of
    /// service `svc` goes through (`ip_vs_sched_persist`): the client's
    /// network, client port 0, and the service's port (0 for a port-0
    /// service, whose template covers every port). A firewall-mark
    /// service's is IPVS's `<IPPROTO_IP, caddr&mask, 0, fwmark, 0>`: one
    /// template per client network and mark, whatever the connection's
    /// protocol, VIP and port, with the mark as its virtual address.
    #[inline]
    pub fn template(&self, p: &Persistence, svc: &ServiceKey) -> ConnKey {
        let caddr = p.client_net(self.caddr);
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
    pub fn mark_template(caddr: Ipv4Addr, mark: u32) -> ConnKey {
        ConnKey {
            protocol: Protocol::Ip,
            caddr,
            cport: 0,
            vaddr: Ipv4Addr::from(mark),
            vport: 0,
        }
    }

    /// The firewall mark of a mark service's template (its virtual
    /// address), `None` for any other entry.
    #[inline]
    pub fn template_mark(&self) -> Option<u32> {
        (self.protocol == Protocol::Ip).then_some(u32::from(self.vaddr))
    }

    /// The virtual service's address and port (VIP:VPORT).
    pub fn vip(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.vaddr, self.vport)
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

    pub fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp | ConnState::Template | ConnState::Assured => false,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableConn {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub raddr: Ipv4Addr,
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

    pub fn key(&self) -> ConnKey {
        ConnKey {
            protocol: self.protocol,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }
}

/// One row of `uvsadm -Lnc`: a connection as the data plane reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
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

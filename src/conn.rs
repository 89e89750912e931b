//! The connection table: a flow, keyed by the client's 5-tuple, sticks to
//! the real server first scheduled for it until the entry expires.
//!
//! TCP state follows IPVS's INPUT-ONLY table (ip_vs_proto_tcp.c), because in
//! DR and TUN the director sees only the client-to-server direction.

use crate::service::{Protocol, Timeouts};
use crate::wire::tcp::flags;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// IPVS TCP connection states, in the kernel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

use TcpState::*;

const STATES: [TcpState; 11] = [
    None,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
];

/// INPUT-ONLY transitions, rows syn/fin/ack/rst, columns the current state.
const INPUT_ONLY: [[TcpState; 11]; 4] = [
    // syn
    [
        SynRecv,
        Established,
        Established,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
    ],
    // fin
    [
        Close, FinWait, SynSent, TimeWait, FinWait, TimeWait, Close, CloseWait, LastAck, Listen,
        TimeWait,
    ],
    // ack
    [
        Close,
        Established,
        SynSent,
        Established,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        Close,
        Listen,
        Established,
    ],
    // rst
    [
        Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, Close,
    ],
];

impl TcpState {
    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK",
        ][self as usize]
    }

    /// The next state for a client-to-server segment with `tcp_flags`.
    /// As in the kernel, rst beats syn beats fin beats ack, and a segment
    /// with none of them moves the connection to CLOSE.
    pub fn next(self, tcp_flags: u8) -> TcpState {
        let row = if tcp_flags & flags::RST != 0 {
            3
        } else if tcp_flags & flags::SYN != 0 {
            0
        } else if tcp_flags & flags::FIN != 0 {
            1
        } else if tcp_flags & flags::ACK != 0 {
            2
        } else {
            return Close;
        };
        INPUT_ONLY[row][self as usize]
    }

    /// States counted in ActiveConn (tcp_state_active_table).
    pub fn is_active(self) -> bool {
        matches!(self, Established | SynSent | SynRecv | SynAck)
    }

    /// Seconds before an idle connection in this state expires.
    pub fn timeout(self, t: &Timeouts) -> u32 {
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

    pub fn all() -> &'static [TcpState] {
        &STATES
    }
}

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
}

impl Conn {
    /// Whether a new SYN on this 5-tuple starts a new connection rather
    /// than continuing this one (IPVS conn_reuse_mode with the NOOUTPUT bit:
    /// TIME_WAIT, CLOSE and, for DR/TUN, FIN_WAIT).
    pub fn reusable_by_syn(&self) -> bool {
        matches!(
            self.state,
            ConnState::Tcp(TcpState::TimeWait | TcpState::Close | TcpState::FinWait)
        )
    }
}

/// The table itself, with a hard size limit so a SYN flood cannot exhaust
/// memory. Capacity is reserved up front so steady-state inserts do not
/// allocate.
pub struct ConnTable {
    map: HashMap<ConnKey, Conn, foldhash::fast::RandomState>,
    max: usize,
}

impl ConnTable {
    pub fn new(reserve: usize, max: usize) -> ConnTable {
        ConnTable {
            map: HashMap::with_capacity_and_hasher(reserve, foldhash::fast::RandomState::default()),
            max,
        }
    }

    pub fn get_mut(&mut self, k: &ConnKey) -> Option<&mut Conn> {
        self.map.get_mut(k)
    }

    pub fn remove(&mut self, k: &ConnKey) -> Option<Conn> {
        self.map.remove(k)
    }

    /// Inserts unless the table is full; returns false when it is.
    pub fn insert(&mut self, k: ConnKey, c: Conn) -> bool {
        if self.map.len() >= self.max {
            return false;
        }
        self.map.insert(k, c);
        true
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
    pub fn retain(&mut self, f: impl FnMut(&ConnKey, &mut Conn) -> bool) {
        self.map.retain(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(seq: &[u8]) -> Vec<&'static str> {
        let mut s = TcpState::None;
        seq.iter()
            .map(|f| {
                s = s.next(*f);
                s.name()
            })
            .collect()
    }

    #[test]
    fn client_side_of_a_normal_connection() {
        // SYN, ACK (handshake), data ACKs, FIN, last ACK: what a DR director
        // sees from the client.
        let seq = [
            flags::SYN,
            flags::ACK,
            flags::ACK | flags::PSH,
            flags::FIN | flags::ACK,
            flags::ACK,
        ];
        assert_eq!(
            walk(&seq),
            [
                "SYN_RECV",
                "ESTABLISHED",
                "ESTABLISHED",
                "FIN_WAIT",
                "FIN_WAIT"
            ]
        );
    }

    #[test]
    fn reset_closes_and_no_flags_close() {
        assert_eq!(walk(&[flags::SYN, flags::RST]), ["SYN_RECV", "SYN_RECV"]);
        assert_eq!(
            walk(&[flags::SYN, flags::ACK, flags::RST]),
            ["SYN_RECV", "ESTABLISHED", "CLOSE"]
        );
        assert_eq!(TcpState::Established.next(0), TcpState::Close);
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

    #[test]
    fn table_limit_is_enforced() {
        let mut t = ConnTable::new(4, 2);
        let c = Conn {
            svc: 0,
            dest: 0,
            dest_id: 1,
            state: ConnState::Udp,
            expires_ms: 0,
        };
        for p in 0..3u16 {
            let k = ConnKey {
                protocol: Protocol::Udp,
                caddr: Ipv4Addr::new(198, 18, 0, 10),
                cport: p,
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                vport: 53,
            };
            assert_eq!(t.insert(k, c), p < 2);
        }
        assert_eq!(t.len(), 2);
    }
}

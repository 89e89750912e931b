//! IPVS's TCP state machine (ip_vs_proto_tcp.c): in DR and TUN the
//! director sees only the client-to-server direction (INPUT-ONLY); in NAT
//! it sees both, and replies move the state too (INPUT and OUTPUT). The
//! states themselves, their names and timeouts are the shared vocabulary
//! ([`TcpState`] in `lvs::conn`); their transitions are the data plane's.

use crate::lvs::conn::TcpState;
use crate::wire::tcp::flags;

/// Which of IPVS's three TCP state tables a segment is looked up in (the
/// index into `TRANSITIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server, on a connection whose replies pass the director.
    Input = 0,
    /// Server to client (NAT replies).
    Output = 1,
    /// Client to server, when replies bypass the director (DR, TUN).
    InputOnly = 2,
}

// Short names for the transition table below.
use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// IPVS's three transition tables, indexed by `Direction`. Each has one
/// row per flag, in the order syn, fin, ack, rst, and one column per
/// current state, in state order: None ES SS SR FW TW CL CW LA LI SynAck.
#[rustfmt::skip]
const TRANSITIONS: [[[TcpState; 11]; 4]; 3] = [
    // INPUT: client to server, replies seen (NAT).
    [[SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW], [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR]],
    // OUTPUT: server to client (NAT replies).
    [[SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR], [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW], [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES], [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL]],
    // INPUT-ONLY: client to server, replies not seen (DR, TUN).
    [[SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW], [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL]],
];

/// The transitions, on the shared states.
impl TcpState {
    /// The next state for a client-to-server segment with `tcp_flags` when
    /// the director sees only that direction (DR, TUN).
    pub fn next(self, tcp_flags: u8) -> TcpState {
        self.transition(Direction::InputOnly, tcp_flags)
    }

    /// The next state for a segment with `tcp_flags` travelling in `dir`.
    /// As in the kernel, rst beats syn beats fin beats ack, and a segment
    /// with none of them moves the connection to CLOSE.
    pub fn transition(self, dir: Direction, tcp_flags: u8) -> TcpState {
        let row = if tcp_flags & flags::RST != 0 {
            3
        } else if tcp_flags & flags::SYN != 0 {
            0
        } else if tcp_flags & flags::FIN != 0 {
            1
        } else if tcp_flags & flags::ACK != 0 {
            2
        } else {
            return TcpState::Close;
        };
        TRANSITIONS[dir as usize][row][self as usize]
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
    fn nat_handshake_and_close_use_both_directions() {
        use Direction::{Input, Output};
        let seq = [
            (Input, flags::SYN),
            (Output, flags::SYN | flags::ACK),
            (Input, flags::ACK),
            (Output, flags::FIN | flags::ACK),
            (Input, flags::FIN | flags::ACK),
            (Output, flags::ACK),
        ];
        let mut s = TcpState::None;
        let names: Vec<&str> = seq
            .iter()
            .map(|(d, f)| {
                s = s.transition(*d, *f);
                s.name()
            })
            .collect();
        // The server closing first: FIN from the server (OUTPUT) is
        // FIN_WAIT, the client's FIN then TIME_WAIT.
        assert_eq!(
            names,
            [
                "SYN_RECV",
                "SYN_RECV",
                "ESTABLISHED",
                "FIN_WAIT",
                "TIME_WAIT",
                "TIME_WAIT"
            ]
        );
        // The client closing first: INPUT fin from ESTABLISHED is
        // CLOSE_WAIT (INPUT-ONLY would say FIN_WAIT).
        assert_eq!(
            TcpState::Established.transition(Input, flags::FIN),
            TcpState::CloseWait
        );
        assert_eq!(TcpState::Established.next(flags::FIN), TcpState::FinWait);
        assert_eq!(
            TcpState::CloseWait.transition(Output, flags::FIN),
            TcpState::TimeWait
        );
        // A reset from the server closes; from the client in SYN_RECV not.
        assert_eq!(
            TcpState::SynRecv.transition(Output, flags::RST),
            TcpState::Close
        );
        assert_eq!(
            TcpState::SynRecv.transition(Input, flags::RST),
            TcpState::SynRecv
        );
    }
}

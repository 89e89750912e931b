//! Several workers on one interface (`uvs director --workers N`): each
//! worker has its own packet socket per link, all of a link's sockets in
//! one PACKET_FANOUT group, and a classic BPF program in the kernel picks
//! the worker of every frame before it is queued.
//!
//! The kernel's own flow hash (PACKET_FANOUT_HASH) would do for DR and TUN,
//! where the director sees one direction only, but not for NAT: a real
//! server's reply (RIP:RPORT → client) hashes apart from its request
//! (client → VIP:VPORT), and must reach the worker that holds the
//! connection. What both directions share is the client's address and
//! port, so the program hashes those: the source of a frame to a VIP, the
//! destination of any other (a NAT reply); for an ICMP error, the same
//! rule applied to the packet it quotes (a quoted packet from a VIP was
//! sent to the client). The program names the VIPs, so it is rebuilt when
//! they change ([`Fanout::update`]); [`worker_of`] is the same hash in
//! Rust, for what reaches the workers from the control plane (a backup's
//! synced connections, a restart's handed-over ones).
//!
//! IPv6 follows the same rule, with the client's address folded to 32
//! bits (XOR of its four words, as the schedulers fold it) before the
//! hash. The program reads only the fixed header: TCP and UDP right after
//! it, and an ICMPv6 error (type below 128) quoting a fixed header. A frame
//! with extension headers (a Hop-by-Hop option, a fragment header) goes
//! to worker 0, as does every other ICMPv6 message (neighbour discovery).
//! The data plane drops IPv6 fragments to a VIP anyway; a connection
//! whose frames carry other extension headers is held by worker 0 only
//! if all of them do.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use crate::host::sys;

/// The most workers `--workers` takes.
pub const MAX_WORKERS: usize = 64;
/// The most IPv4 VIPs the program can name (four instructions each,
/// beside the rest of the program's 123, within the kernel's
/// 4096-instruction limit for classic BPF).
pub const MAX_VIPS: usize = 990;
/// An IPv6 VIP takes nine instructions: as many as this of them take the
/// room of [`MAX_VIPS`] IPv4 ones.
const V6_COST: usize = 9;
const V4_COST: usize = 4;
const GOLDEN: u32 = 0x9E37_79B1;

/// The worker (of `n`) that handles the connections of client
/// `addr`:`port`: the program's hash.
pub fn worker_of(addr: Ipv4Addr, port: u16, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let h = (u32::from(addr) ^ u32::from(port)).wrapping_mul(GOLDEN) >> 16;
    (h % n as u32) as usize
}

/// [`worker_of`] for a client of either family: an IPv6 address is folded
/// to 32 bits first, as the program folds it.
pub fn worker_of_ip(addr: IpAddr, port: u16, n: usize) -> usize {
    let folded = crate::lvs::sched::scheduler::fold(addr);
    worker_of(Ipv4Addr::from(folded), port, n)
}

// Classic BPF encoding (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const ADD: u16 = 0x00;
const MUL: u16 = 0x20;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
const K: u16 = 0x00;
const X: u16 = 0x08;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const RET_A: u16 = 0x10;
const TAX: u16 = 0x00;
/// Loads relative to the network header (SKF_NET_OFF): the fanout hook
/// sees received frames with the Ethernet header already pulled.
const NET: u32 = 0xFFF0_0000;
/// The frame's ethertype, host order (SKF_AD_OFF + SKF_AD_PROTOCOL).
const AD_PROTOCOL: u32 = 0xFFFF_F000;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86DD;

/// A place in the program being assembled.
#[derive(Clone, Copy, PartialEq)]
enum Label {
    V4,
    L4,
    Icmp,
    SrcIsClient,
    InnerDstIsClient,
    Hash,
    V6,
    L4v6,
    IcmpError6,
    Vip6,
    Match6,
    SrcLike6,
    DstLike6,
    Fold6,
}

enum Insn {
    Op(u16, u32),
    /// `jeq #k` over the next instruction (a `Jump`), else falls to it.
    SkipUnless(u32),
    /// `jeq #k`: on to the next instruction if equal, else skip `n`.
    JeqElse(u32, u8),
    Jump(Label),
    Here(Label),
}

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// What failed keeping the workers' fanout program up to date.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program has room for `MAX_VIPS` IPv4 VIPs, fewer IPv6 ones.
    #[error(
        "{0} IPv4 and {1} IPv6 VIPs: workers share traffic among at most {MAX_VIPS} \
         (an IPv6 VIP takes the room of {V6_COST} in {V4_COST} IPv4 ones)"
    )]
    TooManyVips(usize, usize),
    /// An assembly bug: a jump to a label never placed, or backwards.
    #[error("fanout program: a label is missing or behind its jump")]
    NoLabel,
    /// Over the kernel's limit of 4096 instructions.
    #[error("fanout program of {0} instructions")]
    TooLong(usize),
    #[error("installing the fanout program: {0}")]
    Install(#[source] std::io::Error),
    /// A worker's socket kept its drop-all filter.
    #[error("opening a worker's socket: {0}")]
    Open(#[source] std::io::Error),
}

/// The fanout program for `n` workers and these VIPs.
pub fn program(
    vips: &[Ipv4Addr],
    vips6: &[Ipv6Addr],
    n: usize,
) -> Result<Vec<libc::sock_filter>, Error> {
    if vips.len() * V4_COST + vips6.len() * V6_COST > MAX_VIPS * V4_COST {
        return Err(Error::TooManyVips(vips.len(), vips6.len()));
    }
    use Insn::*;
    use Label::*;
    let n = n.clamp(1, MAX_WORKERS) as u32;
    let mut p = Vec::new();
    // X = 4 * IHL of the header at `at` (plus X when `plus_x`).
    let ihl = |p: &mut Vec<Insn>, mode: u16, at: u32| {
        p.push(Op(LD | B | mode, NET + at));
        p.push(Op(ALU | AND | K, 0xf));
        p.push(Op(ALU | LSH | K, 2));
    };
    let any_vip = |p: &mut Vec<Insn>, to: Label| {
        for v in vips {
            p.push(SkipUnless(u32::from(*v)));
            p.push(Jump(to));
        }
    };
    // By the frame's ethertype (the version nibble would read an ARP
    // frame's hardware type, and its byte 9, a MAC's, as the protocol):
    // neither IPv4 nor IPv6 (ARP, LLDP) goes to worker 0.
    p.push(Op(LD | H | ABS, AD_PROTOCOL));
    p.push(SkipUnless(ETH_P_IPV6));
    p.push(Jump(V6));
    p.push(JeqElse(ETH_P_IP, 1));
    p.push(Jump(V4));
    p.push(Op(RET | K, 0));
    p.push(Here(V4));
    p.push(Op(LD | B | ABS, NET + 9));
    for (proto, to) in [(6, L4), (17, L4), (1, Icmp)] {
        p.push(SkipUnless(proto));
        p.push(Jump(to));
    }
    p.push(Op(RET | K, 0));
    // TCP, UDP: M[0] = client address, M[1] = client port.
    p.push(Here(L4));
    ihl(&mut p, ABS, 0);
    p.push(Op(MISC | TAX, 0));
    p.push(Op(LD | W | ABS, NET + 16));
    any_vip(&mut p, SrcIsClient);
    p.push(Op(ST, 0));
    p.push(Op(LD | H | IND, NET + 2));
    p.push(Op(ST, 1));
    p.push(Jump(Hash));
    p.push(Here(SrcIsClient));
    p.push(Op(LD | W | ABS, NET + 12));
    p.push(Op(ST, 0));
    p.push(Op(LD | H | IND, NET));
    p.push(Op(ST, 1));
    p.push(Jump(Hash));
    // ICMP: the quoted header starts 8 bytes after the outer one; M[2] =
    // both header lengths, where the quoted ports start (less 8).
    p.push(Here(Icmp));
    ihl(&mut p, ABS, 0);
    p.push(Op(MISC | TAX, 0));
    ihl(&mut p, IND, 8);
    p.push(Op(ALU | ADD | X, 0));
    p.push(Op(ST, 2));
    p.push(Op(LD | W | IND, NET + 8 + 12));
    any_vip(&mut p, InnerDstIsClient);
    p.push(Op(ST, 0));
    p.push(Op(LD | MEM, 2));
    p.push(Op(MISC | TAX, 0));
    p.push(Op(LD | H | IND, NET + 8));
    p.push(Op(ST, 1));
    p.push(Jump(Hash));
    p.push(Here(InnerDstIsClient));
    p.push(Op(LD | W | IND, NET + 8 + 16));
    p.push(Op(ST, 0));
    p.push(Op(LD | MEM, 2));
    p.push(Op(MISC | TAX, 0));
    p.push(Op(LD | H | IND, NET + 8 + 2));
    p.push(Op(ST, 1));
    p.push(Jump(Hash));
    // Classic BPF jumps forward only: IPv6 before the hash it ends in.
    ipv6(&mut p, vips6);
    // worker_of(M[0], M[1], n).
    p.push(Here(Hash));
    p.push(Op(LD | MEM, 1));
    p.push(Op(MISC | TAX, 0));
    p.push(Op(LD | MEM, 0));
    p.push(Op(ALU | XOR | X, 0));
    p.push(Op(ALU | MUL | K, GOLDEN));
    p.push(Op(ALU | RSH | K, 16));
    p.push(Op(ALU | MOD | K, n));
    p.push(Op(RET | RET_A, 0));

    // Assemble: labels take no room; a jump's offset counts from the next
    // instruction.
    let mut at = Vec::new();
    let mut pc = 0u32;
    for i in &p {
        match i {
            Here(l) => at.push((*l, pc)),
            _ => pc += 1,
        }
    }
    let place = |l: Label| at.iter().find(|(x, _)| *x == l).map(|(_, pc)| *pc);
    let mut out = Vec::with_capacity(pc as usize);
    for i in &p {
        let here = out.len() as u32;
        match *i {
            Op(code, k) => out.push(ins(code, 0, 0, k)),
            SkipUnless(k) => out.push(ins(JMP | JEQ | K, 0, 1, k)),
            JeqElse(k, n) => out.push(ins(JMP | JEQ | K, 0, n, k)),
            Jump(l) => {
                let to = place(l).ok_or(Error::NoLabel)?;
                let off = to.checked_sub(here + 1).ok_or(Error::NoLabel)?;
                out.push(ins(JMP | JA, 0, 0, off));
            }
            Here(_) => {}
        }
    }
    if out.len() > 4096 {
        return Err(Error::TooLong(out.len()));
    }
    Ok(out)
}

/// The IPv6 part of the program: the client's address folded into M[0]
/// and its port into M[1], falling into the hash. Offsets are from the IPv6
/// header (40 bytes): next header at 6, source at 8, destination at 24,
/// ports at 40; an ICMPv6 error quotes a header at 48.
fn ipv6(p: &mut Vec<Insn>, vips6: &[Ipv6Addr]) {
    use Insn::*;
    use Label::*;
    p.push(Here(V6));
    p.push(Op(LD | B | ABS, NET + 6));
    for (next, to) in [(6, L4v6), (17, L4v6), (58, IcmpError6)] {
        p.push(SkipUnless(next));
        p.push(Jump(to));
    }
    p.push(Op(RET | K, 0));
    // X: where the address to compare with the VIPs is, M[3]: 0 for TCP
    // and UDP (the destination), 1 for an ICMPv6 error (the quoted source).
    p.push(Here(L4v6));
    p.push(Op(LDX | W | IMM, 24));
    p.push(Op(LD | W | IMM, 0));
    p.push(Op(ST, 3));
    p.push(Jump(Vip6));
    p.push(Here(IcmpError6));
    p.push(Op(LD | B | ABS, NET + 40));
    p.push(Op(ALU | AND | K, 0x80));
    // Informational (neighbour discovery, echo): worker 0.
    p.push(SkipUnless(0x80));
    p.push(Op(RET | K, 0));
    p.push(Op(LDX | W | IMM, 48 + 8));
    p.push(Op(LD | W | IMM, 1));
    p.push(Op(ST, 3));
    p.push(Here(Vip6));
    for v in vips6 {
        let w = v.to_bits();
        for i in 0..4u8 {
            p.push(Op(LD | W | IND, NET + 4 * u32::from(i)));
            p.push(JeqElse((w >> (96 - 32 * u32::from(i))) as u32, 7 - 2 * i));
        }
        p.push(Jump(Match6));
    }
    // No VIP: TCP, UDP to the client (a NAT66 reply); an error about a
    // packet from the client (X is the header's base for the tails).
    p.push(Op(LD | MEM, 3));
    p.push(Op(LDX | W | IMM, 0));
    p.push(SkipUnless(0));
    p.push(Jump(DstLike6));
    p.push(Op(LDX | W | IMM, 48));
    p.push(Jump(SrcLike6));
    // A VIP: TCP, UDP from the client; an error about a packet the VIP
    // sent to the client.
    p.push(Here(Match6));
    p.push(Op(LD | MEM, 3));
    p.push(Op(LDX | W | IMM, 0));
    p.push(SkipUnless(0));
    p.push(Jump(SrcLike6));
    p.push(Op(LDX | W | IMM, 48));
    p.push(Jump(DstLike6));
    // M[4..8] = the client's address, M[1] = its port, from the header at X.
    for (at, port, label) in [(8, 40, SrcLike6), (24, 42, DstLike6)] {
        p.push(Here(label));
        for i in 0..4 {
            p.push(Op(LD | W | IND, NET + at + 4 * i));
            p.push(Op(ST, 4 + i));
        }
        p.push(Op(LD | H | IND, NET + port));
        p.push(Op(ST, 1));
        p.push(Jump(Fold6));
    }
    p.push(Here(Fold6));
    p.push(Op(LD | MEM, 4));
    for i in 5..8 {
        p.push(Op(MISC | TAX, 0));
        p.push(Op(LD | MEM, i));
        p.push(Op(ALU | XOR | X, 0));
    }
    p.push(Op(ST, 0));
}

const PACKET_FANOUT: i32 = 18;
const PACKET_FANOUT_DATA: i32 = 22;
const PACKET_FANOUT_CBPF: u16 = 6;
const PACKET_FANOUT_FLAG_UNIQUEID: u16 = 0x2000;
/// Linux 6.5 on: the group's hook skips what the host sends, as
/// PACKET_IGNORE_OUTGOING does for a socket outside a group.
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u16 = 0x4000;

/// One link's fanout group, being built: its sockets join in worker order
/// (the kernel numbers members in join order, the program's index).
pub struct Group {
    id: Option<u16>,
    flags: u16,
}

impl Group {
    pub fn new() -> Group {
        Group {
            id: None,
            flags: PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING,
        }
    }

    /// Adds the next worker's socket (bound to the link already). The
    /// first creates the group, with an id the kernel picks.
    pub fn join(&mut self, fd: &OwnedFd) -> io::Result<()> {
        let set = |id: u16, flags: u16| {
            let v = u32::from(id) | (u32::from(flags) << 16);
            sys::setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &(v as i32))
        };
        match self.id {
            Some(id) => set(id, self.flags),
            None => {
                let first = set(0, self.flags | PACKET_FANOUT_FLAG_UNIQUEID);
                if first.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL) {
                    // An older kernel: its own frames reach the group too
                    // (the data plane ignores them, at some cost).
                    self.flags &= !PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
                    set(0, self.flags | PACKET_FANOUT_FLAG_UNIQUEID)?;
                } else {
                    first?;
                }
                let id: i32 = sys::getsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT)?;
                self.id = Some(id as u16);
                Ok(())
            }
        }
    }

    /// Whether the kernel leaves the host's own frames out of the group.
    pub fn ignores_outgoing(&self) -> bool {
        self.flags & PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0
    }
}

impl Default for Group {
    fn default() -> Group {
        Group::new()
    }
}

/// The fanout groups of a director's links, kept in step with its VIPs by
/// the control plane.
pub struct Fanout {
    /// One member of each link's group (a duplicate descriptor: the
    /// socket itself belongs to worker 0).
    members: Vec<OwnedFd>,
    /// Every socket of the groups (duplicates), closed by a drop-all
    /// filter until the first program is installed.
    closed: Vec<OwnedFd>,
    workers: usize,
    vips: Option<(Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
}

impl Fanout {
    pub fn new(members: Vec<OwnedFd>, closed: Vec<OwnedFd>, workers: usize) -> Fanout {
        Fanout {
            members,
            closed,
            workers,
            vips: None,
        }
    }

    /// Installs the program for these VIPs in every group, unless it is
    /// there already. The first call opens the sockets: until then they
    /// drop what they are given (the group would hand everything to worker
    /// 0).
    pub fn update(&mut self, vips: &[Ipv4Addr], vips6: &[Ipv6Addr]) -> Result<(), Error> {
        if self
            .vips
            .as_ref()
            .is_some_and(|(v4, v6)| v4 == vips && v6 == vips6)
        {
            return Ok(());
        }
        let prog = program(vips, vips6, self.workers)?;
        for m in &self.members {
            sys::attach_cbpf(m, libc::SOL_PACKET, PACKET_FANOUT_DATA, &prog)
                .map_err(Error::Install)?;
        }
        self.vips = Some((vips.to_vec(), vips6.to_vec()));
        // Every socket is tried; one that fails stays for the next call.
        let mut failed = None;
        self.closed.retain(|fd| {
            let r = sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32);
            let kept = r.is_err();
            if let Err(e) = r {
                failed = Some(Error::Open(e));
            }
            kept
        });
        match failed {
            Some(e) => {
                self.vips = None;
                Err(e)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;

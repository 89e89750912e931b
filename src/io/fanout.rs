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

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;

use crate::host::sys;

/// The most workers `--workers` takes.
pub const MAX_WORKERS: usize = 64;
/// The most VIPs the program can name (four instructions each, within the
/// kernel's 4096-instruction limit for classic BPF).
pub const MAX_VIPS: usize = 1000;
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

/// [`worker_of`] for a client of either family. The program does not
/// hash IPv6 yet (docs/ipv6.md, step 7): an IPv6 client's connections go
/// to worker 0 until it does.
pub fn worker_of_ip(addr: IpAddr, port: u16, n: usize) -> usize {
    match addr {
        IpAddr::V4(a) => worker_of(a, port, n),
        IpAddr::V6(_) => 0,
    }
}

// Classic BPF encoding (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
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

/// A place in the program being assembled.
#[derive(Clone, Copy, PartialEq)]
enum Label {
    L4,
    Icmp,
    SrcIsClient,
    InnerDstIsClient,
    Hash,
}

enum Insn {
    Op(u16, u32),
    /// `jeq #k` over the next instruction (a `Jump`), else falls to it.
    SkipUnless(u32),
    Jump(Label),
    Here(Label),
}

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// What failed keeping the workers' fanout program up to date.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program has room for `MAX_VIPS`.
    #[error("{0} VIPs: workers share traffic among at most {MAX_VIPS}")]
    TooManyVips(usize),
    /// An assembly bug: a jump to a label never placed.
    #[error("fanout program: a label is missing")]
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
pub fn program(vips: &[Ipv4Addr], n: usize) -> Result<Vec<libc::sock_filter>, Error> {
    if vips.len() > MAX_VIPS {
        return Err(Error::TooManyVips(vips.len()));
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
            Jump(l) => {
                let to = place(l).ok_or(Error::NoLabel)?;
                out.push(ins(JMP | JA, 0, 0, to - here - 1));
            }
            Here(_) => {}
        }
    }
    if out.len() > 4096 {
        return Err(Error::TooLong(out.len()));
    }
    Ok(out)
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
    vips: Option<Vec<Ipv4Addr>>,
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
    pub fn update(&mut self, vips: &[Ipv4Addr]) -> Result<(), Error> {
        if self.vips.as_deref() == Some(vips) {
            return Ok(());
        }
        let prog = program(vips, self.workers)?;
        for m in &self.members {
            sys::attach_cbpf(m, libc::SOL_PACKET, PACKET_FANOUT_DATA, &prog)
                .map_err(Error::Install)?;
        }
        self.vips = Some(vips.to_vec());
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
mod tests {
    use super::*;

    /// Runs a classic BPF program the way the kernel does for the fanout
    /// hook (loads relative to the IP header; a load past the end returns
    /// 0), for the instructions [`program`] uses.
    fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut m) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        let load = |off: u32, size: usize| -> Option<u32> {
            let off = off.checked_sub(NET)? as usize;
            let b = pkt.get(off..off + size)?;
            Some(b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            let size = match i.code & 0x18 {
                W => 4,
                H => 2,
                _ => 1,
            };
            match i.code & 0x07 {
                LD if i.code & 0xe0 == MEM => a = m[i.k as usize],
                LD => {
                    let off = match i.code & 0xe0 {
                        IND => i.k.wrapping_add(x),
                        _ => i.k,
                    };
                    match load(off, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                ST => m[i.k as usize] = a,
                ALU => {
                    let v = if i.code & X != 0 { x } else { i.k };
                    a = match i.code & 0xf0 {
                        ADD => a.wrapping_add(v),
                        MUL => a.wrapping_mul(v),
                        AND => a & v,
                        LSH => a << v,
                        RSH => a >> v,
                        MOD => a % v,
                        XOR => a ^ v,
                        op => panic!("ALU op {op:#x} not expected"),
                    }
                }
                JMP if i.code & 0xf0 == JA => pc += i.k as usize,
                JMP => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET if i.code & RET_A != 0 => return a,
                RET => return i.k,
                MISC => x = a,
                c => panic!("class {c:#x} not expected"),
            }
        }
    }

    fn ip(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ihl: u8) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(ihl) * 4];
        p[0] = 0x40 | ihl;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0u8; 16]);
        p
    }

    /// An ICMP error quoting `inner`.
    fn icmp(src: [u8; 4], dst: [u8; 4], inner: &[u8]) -> Vec<u8> {
        let mut p = ip(1, src, dst, 0x0304, 0, 5);
        p.truncate(20 + 8);
        p.extend_from_slice(inner);
        p
    }

    const VIP: [u8; 4] = [198, 18, 0, 100];
    const OTHER_VIP: [u8; 4] = [198, 18, 0, 101];
    const RIP: [u8; 4] = [198, 19, 0, 10];
    const ROUTER: [u8; 4] = [198, 18, 0, 1];

    #[test]
    fn both_directions_of_a_connection_reach_the_client_s_worker() {
        let vips = [Ipv4Addr::from(OTHER_VIP), Ipv4Addr::from(VIP)];
        let mut seen = [false; 3];
        for n in [1usize, 2, 3] {
            let prog = program(&vips, n).unwrap();
            for c in 0..200u16 {
                let client = [198, 19, 1 + (c % 3) as u8, (c % 250) as u8 + 2];
                let cport = 30000 + c * 7;
                let want = worker_of(Ipv4Addr::from(client), cport, n) as u32;
                let req = ip(6, client, VIP, cport, 80, 5);
                let with_options = ip(17, client, VIP, cport, 53, 7);
                let reply = ip(6, RIP, client, 8080, cport, 5);
                // A router's "fragmentation needed" to the VIP about a
                // reply from it; a real server's about a forwarded request.
                let about_reply = icmp(ROUTER, VIP, &ip(6, VIP, client, 80, cport, 5));
                let about_req = icmp(RIP, client, &ip(6, client, RIP, cport, 8080, 6));
                for (what, p) in [
                    ("request", &req),
                    ("request with options", &with_options),
                    ("NAT reply", &reply),
                    ("ICMP about a reply", &about_reply),
                    ("ICMP about a request", &about_req),
                ] {
                    assert_eq!(run(&prog, p), want, "{what} of client {c}, {n} workers");
                }
                if n == 3 {
                    seen[want as usize] = true;
                }
            }
        }
        assert_eq!(seen, [true; 3], "every worker gets clients");
    }

    #[test]
    fn other_frames_and_short_ones_go_somewhere_without_fault() {
        let prog = program(&[Ipv4Addr::from(VIP)], 2).unwrap();
        assert_eq!(run(&prog, &ip(47, RIP, VIP, 1, 2, 5)), 0, "GRE: worker 0");
        assert_eq!(run(&prog, &[0x45, 0, 0]), 0, "truncated: worker 0");
        let mut cut = ip(6, RIP, VIP, 1, 2, 5);
        cut.truncate(21);
        assert_eq!(run(&prog, &cut), 0);
        assert!(run(&prog, &ip(17, [1, 2, 3, 4], VIP, 9, 9, 5)) < 2);
    }

    #[test]
    fn too_many_vips_are_refused_with_the_limit() {
        let vips: Vec<Ipv4Addr> = (0..MAX_VIPS as u32 + 1).map(Ipv4Addr::from).collect();
        let e = program(&vips, 2).unwrap_err().to_string();
        assert!(e.contains("1000"), "{e}");
        let ok = program(&vips[..MAX_VIPS], 2).unwrap();
        assert!(ok.len() <= 4096);
    }
}

//! The connection table: a flow, keyed by the client's 5-tuple, sticks to
//! the real server first scheduled for it until the entry expires. NAT
//! connections are also indexed by their reply 5-tuple, so a real server's
//! answer finds the connection it belongs to. TCP states are in
//! [`tcp_state`](super::tcp_state).

use super::tcp_state::{Direction, TcpState};
use crate::lvs::service::{Forward, Protocol, Timeouts};
use crate::wire::MacAddr;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A connection's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// One byte for the sync protocol and the digest.
    pub fn code(self) -> u8 {
        match self {
            ConnState::Tcp(s) => s as u8,
            ConnState::Udp => 0xff,
        }
    }

    pub fn from_code(b: u8) -> Option<ConnState> {
        match b {
            0xff => Some(ConnState::Udp),
            b => TcpState::from_code(b).map(ConnState::Tcp),
        }
    }

    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            ConnState::Tcp(s) => s.timeout(t),
            ConnState::Udp => t.udp,
        }
    }

    /// A dense number per state: TCP's by its code, then UDP.
    fn index(self) -> usize {
        match self {
            ConnState::Tcp(s) => s as usize,
            ConnState::Udp => STATES - 1,
        }
    }

    /// The state numbered `i` by [`ConnState::index`].
    fn of_index(i: usize) -> ConnState {
        u8::try_from(i)
            .ok()
            .and_then(TcpState::from_code)
            .map_or(ConnState::Udp, ConnState::Tcp)
    }
}

/// The number of connection states (TCP's eleven and UDP).
const STATES: usize = 12;

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
    pub raddr: Ipv4Addr,
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

impl Conn {
    /// A connection entry; its timer runs out at `expires_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        svc: u32,
        dest: u32,
        dest_id: u64,
        state: ConnState,
        expires_ms: u64,
        fwd: Forward,
        raddr: Ipv4Addr,
        rport: u16,
        client_link: u8,
        client_mac: MacAddr,
    ) -> Conn {
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

    fn reply_key(&self, k: &ConnKey) -> Option<ReplyKey> {
        (self.fwd == Forward::Masq).then(|| k.reply(self.raddr, self.rport))
    }
}

/// Why a connection could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table is at its size limit and holds nothing cheap to evict.
    Full,
    /// Another NAT connection already has the same reply 5-tuple (one
    /// client port talking to the same real server through two VIPs):
    /// its replies could not be told apart.
    ReplyClash,
}

/// No slot (end of a chain or of the eviction list).
const NIL: u32 = u32::MAX;
/// The largest limit: slot numbers are `u32`, with `NIL` kept free.
pub const MAX_LIMIT: usize = 1 << 31;

/// One stored connection. Slots live in one vector, reused through a free
/// list, and are chained into the hash buckets and the eviction list by
/// slot number, so nothing is allocated per connection and a sweep or a
/// listing can resume at a slot number.
#[derive(Clone, Copy)]
struct Slot {
    key: ConnKey,
    conn: Conn,
    /// [`LIVE`], [`SECOND`], [`LISTED`], [`MARK`]: one byte keeps the
    /// entry in 64.
    flags: u8,
    prev: u32,
    next: u32,
    /// Next slot in the same bucket of the 5-tuple index.
    hnext: u32,
    /// Next slot in the same bucket of the NAT reply index.
    rnext: u32,
}

/// The slot holds a connection.
const LIVE: u8 = 1;
/// A second packet (either way) was seen: no longer one-packet.
const SECOND: u8 = 2;
/// On the eviction list (oldest first).
const LISTED: u8 = 4;
/// Matches the table's `mark` when entered or confirmed since the last
/// full resync began (a backup drops the others at its end).
const MARK: u8 = 8;

impl Slot {
    #[inline]
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    #[inline]
    fn set(&mut self, f: u8, on: bool) {
        match on {
            true => self.flags |= f,
            false => self.flags &= !f,
        }
    }
}

/// What one bounded sweep step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStep {
    pub visited: usize,
    pub removed: usize,
    /// The step reached the end of the slots and starts over next time.
    pub wrapped: bool,
}

/// The table itself, bounded by a limit set at start (`--max-conns`) so a
/// flood cannot exhaust memory. Like IPVS's connection table it is a hash
/// table of chains with a fixed number of buckets (here one per entry the
/// limit allows, so chains stay short): it never resizes, never rehashes
/// and has no tombstones to clean up, so no insert or removal ever costs
/// more than a chain walk. (hashbrown, std's map, rehashes everything
/// when it grows and, under churn, in place: a pause of tens of
/// milliseconds at a million entries.) The slots are reserved for the
/// limit up front as address space; pages are touched as slots are used.
/// When the table is full, the oldest entry that is cheap to lose (one
/// packet only, or a TCP handshake never completed) makes room, so a
/// flood of new flows cannot lock out established ones or other services.
pub struct ConnTable {
    /// First slot of each bucket of the client 5-tuple index.
    buckets: Box<[u32]>,
    /// First slot of each bucket of the NAT reply index.
    rbuckets: Box<[u32]>,
    mask: usize,
    /// Keyed (random per process) so chains cannot be aimed at.
    hasher: foldhash::fast::RandomState,
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
    replies: usize,
    /// Eviction candidates in creation order: new entries are appended;
    /// entries that stopped being cheap are dropped from the head lazily.
    head: u32,
    tail: u32,
    max: usize,
    /// Where the next sweep step starts.
    cursor: usize,
    evicted: u64,
    /// The sum of every entry's [`digest_term`]: kept as entries come,
    /// change state and go, so a digest of the table costs nothing.
    digest: u64,
    mark: bool,
    /// Entries in each state ([`ConnState::index`]), so the sweep knows
    /// the shortest timer any entry can have without a pass.
    per_state: [u32; STATES],
}

/// What two directors compare to tell whether their synced tables agree:
/// the number of entries and an order-independent sum over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    pub count: u64,
    pub sum: u64,
}

impl Digest {
    /// The digest of a table split in parts (the workers').
    pub fn sum_of(parts: &[Digest]) -> Digest {
        parts.iter().fold(Digest::default(), |a, d| Digest {
            count: a.count + d.count,
            sum: a.sum.wrapping_add(d.sum),
        })
    }
}

/// One entry's share of the digest: its 5-tuple, real server and state,
/// mixed with a fixed function (the same in every process, unlike the
/// table's keyed hash).
pub fn digest_term(k: &ConnKey, raddr: Ipv4Addr, rport: u16, state: ConnState) -> u64 {
    fn mix(mut z: u64) -> u64 {
        // splitmix64's finaliser.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let a = (u64::from(k.protocol.number()) << 56)
        | (u64::from(u32::from(k.caddr)) << 16)
        | u64::from(k.cport);
    let b = (u64::from(u32::from(k.vaddr)) << 32) | (u64::from(k.vport) << 16) | u64::from(rport);
    let c = (u64::from(u32::from(raddr)) << 8) | u64::from(state.code());
    mix(a ^ mix(b ^ mix(c)))
}

/// Whether losing this connection costs little: it never saw a second
/// packet, or it is a TCP handshake that never completed.
fn cheap(s: &Slot) -> bool {
    !s.has(SECOND)
        || matches!(
            s.conn.state,
            ConnState::Tcp(TcpState::SynRecv | TcpState::None)
        )
}

/// Buckets for a limit: a power of two, at least one per entry.
fn bucket_count(max: usize) -> usize {
    max.next_power_of_two().max(1024)
}

impl ConnTable {
    /// A table of at most `max` connections (capped at [`MAX_LIMIT`]).
    pub fn new(max: usize) -> ConnTable {
        let max = max.clamp(1, MAX_LIMIT);
        let n = bucket_count(max);
        ConnTable {
            buckets: vec![NIL; n].into_boxed_slice(),
            rbuckets: vec![NIL; n].into_boxed_slice(),
            mask: n - 1,
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            len: 0,
            replies: 0,
            head: NIL,
            tail: NIL,
            max,
            cursor: 0,
            evicted: 0,
            digest: 0,
            mark: false,
            per_state: [0; STATES],
        }
    }

    /// Roughly the memory the table takes when full.
    pub fn bytes_at_limit(max: usize) -> usize {
        let max = max.clamp(1, MAX_LIMIT);
        2 * 4 * bucket_count(max) + max * (std::mem::size_of::<Slot>() + 4)
    }

    pub fn limit(&self) -> usize {
        self.max
    }

    /// Whether the entry saw a second packet (kept across a handoff, so
    /// an established flow is not the first evicted by its new owner).
    pub fn seen_twice(&self, k: &ConnKey) -> bool {
        self.find(k)
            .is_some_and(|i| self.slots[i as usize].has(SECOND))
    }

    /// Marks an entry as having seen a second packet.
    pub fn mark_seen_twice(&mut self, k: &ConnKey) {
        if let Some(i) = self.find(k) {
            self.slots[i as usize].set(SECOND, true);
        }
    }

    /// Entries evicted to make room since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    #[inline]
    fn bucket<K: std::hash::Hash>(&self, k: &K) -> usize {
        use std::hash::BuildHasher;
        self.hasher.hash_one(k) as usize & self.mask
    }

    #[inline]
    fn find(&self, k: &ConnKey) -> Option<u32> {
        let mut i = self.buckets[self.bucket(k)];
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.key == *k {
                return Some(i);
            }
            i = s.hnext;
        }
        None
    }

    #[inline]
    fn find_reply(&self, r: &ReplyKey) -> Option<u32> {
        let mut i = self.rbuckets[self.bucket(r)];
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.conn.reply_key(&s.key).as_ref() == Some(r) {
                return Some(i);
            }
            i = s.rnext;
        }
        None
    }

    #[inline]
    pub fn get(&self, k: &ConnKey) -> Option<&Conn> {
        let i = self.find(k)?;
        Some(&self.slots[i as usize].conn)
    }

    /// The connection, for a packet that continues it (which makes it
    /// more than a one-packet entry).
    #[inline]
    pub fn get_mut(&mut self, k: &ConnKey) -> Option<&mut Conn> {
        let i = self.find(k)?;
        let s = &mut self.slots[i as usize];
        s.set(SECOND, true);
        Some(&mut s.conn)
    }

    pub fn remove(&mut self, k: &ConnKey) -> Option<Conn> {
        let i = self.find(k)?;
        Some(self.release_slot(i))
    }

    /// Takes slot `i` out of its chain (`next` picks the chain's link).
    fn unchain(&mut self, head: usize, i: u32, reply: bool) {
        let link = |s: &Slot| if reply { s.rnext } else { s.hnext };
        let after = link(&self.slots[i as usize]);
        let first = if reply {
            self.rbuckets[head]
        } else {
            self.buckets[head]
        };
        if first == i {
            match reply {
                true => self.rbuckets[head] = after,
                false => self.buckets[head] = after,
            }
            return;
        }
        let mut p = first;
        while p != NIL {
            let n = link(&self.slots[p as usize]);
            if n == i {
                let ps = &mut self.slots[p as usize];
                match reply {
                    true => ps.rnext = after,
                    false => ps.hnext = after,
                }
                return;
            }
            p = n;
        }
    }

    /// Frees slot `i`: out of both indexes and the eviction list.
    fn release_slot(&mut self, i: u32) -> Conn {
        self.unlist(i);
        let (k, c) = {
            let s = &self.slots[i as usize];
            (s.key, s.conn)
        };
        let b = self.bucket(&k);
        self.unchain(b, i, false);
        if let Some(r) = c.reply_key(&k) {
            let rb = self.bucket(&r);
            self.unchain(rb, i, true);
            self.replies -= 1;
        }
        self.slots[i as usize].set(LIVE, false);
        self.free.push(i);
        self.len -= 1;
        self.per_state[c.state.index()] = self.per_state[c.state.index()].saturating_sub(1);
        self.digest = self
            .digest
            .wrapping_sub(digest_term(&k, c.raddr, c.rport, c.state));
        c
    }

    /// The digest of the whole table, in constant time.
    pub fn digest(&self) -> Digest {
        Digest {
            count: self.len as u64,
            sum: self.digest,
        }
    }

    /// A connection found by `get_mut` changed state from `old`: its
    /// share of the digest follows.
    pub fn restated(&mut self, k: &ConnKey, c: &Conn, old: ConnState) {
        self.per_state[old.index()] = self.per_state[old.index()].saturating_sub(1);
        self.per_state[c.state.index()] += 1;
        self.digest = self
            .digest
            .wrapping_sub(digest_term(k, c.raddr, c.rport, old))
            .wrapping_add(digest_term(k, c.raddr, c.rport, c.state));
    }

    /// A full resync begins: every entry now counts as not confirmed.
    pub fn begin_marking(&mut self) {
        self.mark = !self.mark;
    }

    /// Confirms an entry during a resync.
    pub fn confirm(&mut self, k: &ConnKey) {
        if let Some(i) = self.find(k) {
            let m = self.mark;
            self.slots[i as usize].set(MARK, m);
        }
    }

    /// A full resync ended: drops the entries it did not confirm, and
    /// returns them.
    pub fn drop_unconfirmed(&mut self) -> Vec<Conn> {
        let mark = self.mark;
        let mut gone = Vec::new();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.has(LIVE) && s.has(MARK) != mark {
                gone.push(self.release_slot(i as u32));
            }
        }
        gone
    }

    fn unlist(&mut self, i: u32) {
        let (prev, next, listed) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next, s.has(LISTED))
        };
        if !listed {
            return;
        }
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        let s = &mut self.slots[i as usize];
        s.set(LISTED, false);
        (s.prev, s.next) = (NIL, NIL);
    }

    /// Evicts the oldest cheap entry; `None` if there is none. Entries at
    /// the head that are no longer cheap leave the list for good (a
    /// connection never becomes cheap again).
    fn evict_one(&mut self) -> Option<(ConnKey, Conn)> {
        while self.head != NIL {
            let i = self.head;
            if cheap(&self.slots[i as usize]) {
                let k = self.slots[i as usize].key;
                self.evicted += 1;
                return Some((k, self.release_slot(i)));
            }
            self.unlist(i);
        }
        None
    }

    /// Inserts a new connection (the key must not be in the table). When
    /// the table is full the oldest cheap entry is evicted and returned,
    /// so the caller can give back its real server's count.
    pub fn insert(&mut self, k: ConnKey, c: Conn) -> Result<Option<(ConnKey, Conn)>, InsertError> {
        let r = c.reply_key(&k);
        if r.is_some_and(|r| self.find_reply(&r).is_some()) {
            return Err(InsertError::ReplyClash);
        }
        let evicted = match self.len >= self.max {
            true => Some(self.evict_one().ok_or(InsertError::Full)?),
            false => None,
        };
        let b = self.bucket(&k);
        let rb = r.map(|r| self.bucket(&r));
        let slot = Slot {
            key: k,
            conn: c,
            flags: LIVE | LISTED | if self.mark { MARK } else { 0 },
            prev: self.tail,
            next: NIL,
            hnext: self.buckets[b],
            rnext: rb.map_or(NIL, |rb| self.rbuckets[rb]),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.buckets[b] = i;
        if let Some(rb) = rb {
            self.rbuckets[rb] = i;
            self.replies += 1;
        }
        match self.tail {
            NIL => self.head = i,
            t => self.slots[t as usize].next = i,
        }
        self.tail = i;
        self.len += 1;
        self.per_state[c.state.index()] += 1;
        self.digest = self
            .digest
            .wrapping_add(digest_term(&k, c.raddr, c.rport, c.state));
        Ok(evicted)
    }

    /// The shortest timeout, in seconds, of any state an entry is in
    /// (`None` when empty): no entry's timer can run out sooner after it
    /// was last set.
    pub fn shortest_timeout(&self, t: &Timeouts) -> Option<u32> {
        self.per_state
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, _)| ConnState::of_index(i).timeout(t))
            .min()
    }

    /// Whether any NAT connection is tracked (no reply lookups otherwise).
    #[inline]
    pub fn has_replies(&self) -> bool {
        self.replies > 0
    }

    /// The NAT connection a real server's reply belongs to.
    #[inline]
    pub fn by_reply(&self, r: &ReplyKey) -> Option<ConnKey> {
        let i = self.find_reply(r)?;
        Some(self.slots[i as usize].key)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots in use or free (what a sweep pass walks).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Conn)> {
        self.slots
            .iter()
            .filter(|s| s.has(LIVE))
            .map(|s| (&s.key, &s.conn))
    }

    /// Up to `n` connections from slot `from` on, and where the next
    /// chunk starts (`None` at the end): listings of a large table go in
    /// bounded pieces between frames. Entries added or removed meanwhile
    /// may or may not appear, as in a listing of /proc/net/ip_vs_conn.
    pub fn chunk(&self, from: usize, n: usize) -> (Vec<(ConnKey, Conn)>, Option<usize>) {
        let mut out = Vec::with_capacity(n.min(self.len()));
        let mut i = from;
        while i < self.slots.len() && out.len() < n {
            let s = &self.slots[i];
            if s.has(LIVE) {
                out.push((s.key, s.conn));
            }
            i += 1;
        }
        (out, (i < self.slots.len()).then_some(i))
    }

    /// One bounded step of the table's sweep: visits at most `visit`
    /// slots from where the last step stopped and removes at most
    /// `remove` entries, those for which `f` returns false (`f` may update
    /// the others).
    pub fn sweep_step(
        &mut self,
        visit: usize,
        remove: usize,
        mut f: impl FnMut(&ConnKey, &mut Conn) -> bool,
    ) -> SweepStep {
        let mut step = SweepStep::default();
        while step.visited < visit && step.removed < remove {
            if self.cursor >= self.slots.len() {
                self.cursor = 0;
                step.wrapped = true;
                break;
            }
            let i = self.cursor;
            self.cursor += 1;
            step.visited += 1;
            let s = &mut self.slots[i];
            if !s.has(LIVE) || f(&s.key, &mut s.conn) {
                continue;
            }
            self.release_slot(i as u32);
            step.removed += 1;
        }
        step
    }

    /// Keeps the entries for which `f` returns true, in one full pass
    /// (tests, and shutdown-time work; the data plane sweeps in steps).
    pub fn retain(&mut self, mut f: impl FnMut(&ConnKey, &mut Conn) -> bool) {
        self.cursor = 0;
        loop {
            let step = self.sweep_step(usize::MAX, usize::MAX, &mut f);
            if step.wrapped || self.slots.is_empty() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fwd: Forward) -> Conn {
        Conn::new(
            0,
            0,
            1,
            ConnState::Udp,
            0,
            fwd,
            Ipv4Addr::new(198, 18, 1, 11),
            8080,
            0,
            MacAddr::ZERO,
        )
    }

    /// Issue 14's target: an entry (with its chain links) in 64 bytes.
    #[test]
    fn an_entry_takes_at_most_64_bytes() {
        assert!(
            std::mem::size_of::<Slot>() <= 64,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    /// Every state has its own dense number, UDP's after TCP's.
    #[test]
    fn each_state_has_its_own_index() {
        for i in 0..STATES {
            assert_eq!(ConnState::of_index(i).index(), i);
        }
        assert_eq!(ConnState::of_index(STATES - 1), ConnState::Udp);
        assert_eq!(TcpState::from_code((STATES - 1) as u8), None);
    }

    /// The shortest timer follows the states entries enter and leave.
    #[test]
    fn the_shortest_timeout_follows_the_states_present() {
        let t = Timeouts::default();
        let mut table = ConnTable::new(10);
        assert_eq!(table.shortest_timeout(&t), None);
        table.insert(key(1, 80), conn(Forward::Route)).unwrap();
        assert_eq!(table.shortest_timeout(&t), Some(t.udp));
        let mut est = conn(Forward::Route);
        est.state = ConnState::Tcp(TcpState::Established);
        table.insert(key(2, 80), est).unwrap();
        assert_eq!(table.shortest_timeout(&t), Some(t.udp));
        let c = table.get_mut(&key(2, 80)).unwrap();
        c.state = ConnState::Tcp(TcpState::Close);
        let c = *c;
        table.restated(&key(2, 80), &c, ConnState::Tcp(TcpState::Established));
        assert_eq!(table.shortest_timeout(&t), Some(10));
        table.remove(&key(2, 80));
        assert_eq!(table.shortest_timeout(&t), Some(t.udp));
        table.remove(&key(1, 80));
        assert_eq!(table.shortest_timeout(&t), None);
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
        let mut t = ConnTable::new(10);
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
            t.insert(key(1000, 81), conn(Forward::Masq)).err(),
            Some(InsertError::ReplyClash)
        );
        t.retain(|k, _| *k != k1);
        assert!(t.by_reply(&r1).is_none());
        t.insert(k1, conn(Forward::Masq)).unwrap();
        assert!(t.remove(&k1).is_some());
        assert!(t.by_reply(&r1).is_none());
        assert_eq!(t.len(), 1);
    }

    fn udp_key(p: u16) -> ConnKey {
        ConnKey {
            protocol: Protocol::Udp,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport: p,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 53,
        }
    }

    #[test]
    fn a_full_table_evicts_the_oldest_one_packet_entry() {
        let mut t = ConnTable::new(3);
        let c = conn(Forward::Route);
        for p in 0..3u16 {
            assert_eq!(t.insert(udp_key(p), c).unwrap().map(|e| e.0), None);
        }
        // Entry 0 saw a second packet; 1 is the oldest one-packet entry.
        t.get_mut(&udp_key(0)).unwrap();
        let out = t.insert(udp_key(3), c).unwrap();
        assert_eq!(out.map(|e| e.0), Some(udp_key(1)));
        assert!(t.get(&udp_key(1)).is_none());
        assert!(t.get(&udp_key(0)).is_some());
        assert_eq!((t.len(), t.evicted()), (3, 1));
        // Then 2, then the newest, 3; never 0.
        assert_eq!(
            t.insert(udp_key(4), c).unwrap().map(|e| e.0),
            Some(udp_key(2))
        );
        assert_eq!(
            t.insert(udp_key(5), c).unwrap().map(|e| e.0),
            Some(udp_key(3))
        );
        assert!(t.get(&udp_key(0)).is_some());
    }

    #[test]
    fn a_table_of_established_connections_refuses_rather_than_evicts() {
        let mut t = ConnTable::new(2);
        let mut c = conn(Forward::Route);
        c.state = ConnState::Tcp(TcpState::Established);
        for p in 0..2u16 {
            t.insert(key(p, 80), c).unwrap();
            t.get_mut(&key(p, 80)).unwrap();
        }
        assert_eq!(t.insert(key(9, 80), c).err(), Some(InsertError::Full));
        // A half-open handshake is cheap even after a retransmitted SYN.
        t.remove(&key(0, 80));
        c.state = ConnState::Tcp(TcpState::SynRecv);
        t.insert(key(5, 80), c).unwrap();
        t.get_mut(&key(5, 80)).unwrap();
        let out = t.insert(key(6, 80), c).unwrap();
        assert_eq!(out.map(|e| e.0), Some(key(5, 80)));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn slots_are_reused_and_never_grow_past_the_limit() {
        let mut t = ConnTable::new(100);
        let c = conn(Forward::Route);
        for p in 0..10_000u16 {
            t.insert(udp_key(p), c).unwrap();
        }
        assert_eq!((t.len(), t.slots(), t.evicted()), (100, 100, 9_900));
        assert!(t.get(&udp_key(9_999)).is_some());
        assert!(t.get(&udp_key(9_899)).is_none());
    }

    #[test]
    fn a_large_table_finds_every_entry_by_key_and_by_reply() {
        let mut t = ConnTable::new(1 << 20);
        let mut c = conn(Forward::Masq);
        let key = |i: u32| ConnKey {
            protocol: Protocol::Udp,
            caddr: Ipv4Addr::from(0xc613_0000 + (i >> 16)),
            cport: i as u16,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 53,
        };
        for i in 0..300_000u32 {
            c.rport = (i % 7) as u16;
            t.insert(key(i), c).unwrap();
        }
        assert_eq!(t.len(), 300_000);
        for i in (0..300_000u32).step_by(7) {
            let k = key(i);
            assert!(t.get(&k).is_some());
            assert_eq!(t.by_reply(&k.reply(c.raddr, (i % 7) as u16)), Some(k));
        }
        // Removing every other entry leaves the rest reachable (chains
        // unlinked in the middle, at the head and at the tail).
        for i in (0..300_000u32).step_by(2) {
            assert!(t.remove(&key(i)).is_some());
        }
        for i in 0..300_000u32 {
            assert_eq!(t.get(&key(i)).is_some(), i % 2 == 1, "{i}");
            let r = key(i).reply(c.raddr, (i % 7) as u16);
            assert_eq!(t.by_reply(&r).is_some(), i % 2 == 1, "{i}");
        }
        assert_eq!(t.len(), 150_000);
    }

    #[test]
    fn sweep_steps_are_bounded_and_cover_the_table() {
        let mut t = ConnTable::new(1000);
        let c = conn(Forward::Route);
        for p in 0..1000u16 {
            t.insert(udp_key(p), c).unwrap();
        }
        // Drop the even ports, at most 100 visits and 30 removals a step.
        let mut steps = 0;
        loop {
            let s = t.sweep_step(100, 30, |k, _| k.cport % 2 == 1);
            assert!(s.visited <= 100 && s.removed <= 30);
            steps += 1;
            if s.wrapped {
                break;
            }
        }
        assert_eq!(t.len(), 500);
        assert!(steps >= 17, "{steps}");
        // The listing walks the same slots in chunks.
        let (mut n, mut from) = (0, Some(0));
        while let Some(f) = from {
            let (part, next) = t.chunk(f, 64);
            assert!(part.len() <= 64);
            n += part.len();
            from = next;
        }
        assert_eq!(n, 500);
    }
}

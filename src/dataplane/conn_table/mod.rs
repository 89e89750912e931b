//! The connection table: the data plane's [`Conn`] entries by the
//! client's 5-tuple, and NAT connections also by their reply 5-tuple, so
//! a real server's answer finds the connection it belongs to. Its running
//! counts are in `tally.rs`, its bounded walks (sweep steps, listing chunks)
//! in [`walk`].

mod tally;
mod templates;
pub mod walk;

use super::conn::{Conn, ReplyKey};
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, MAX_LIMIT, TcpState};
use crate::lvs::service::Timeouts;
use crate::lvs::sync::Digest;
use std::net::Ipv4Addr;
use tally::Tally;

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

/// An entry with its key, as the table hands one out (an evicted one, a
/// listing's).
pub type Entry<A = Ipv4Addr> = (ConnKey<A>, Conn<A>);

/// No slot (end of a chain or of the eviction list).
const NIL: u32 = u32::MAX;

/// One stored connection. Slots live in one vector, reused through a free
/// list, and are chained into the hash buckets and the eviction list by
/// slot number, so nothing is allocated per connection and a sweep or a
/// listing can resume at a slot number.
#[derive(Clone, Copy)]
struct Slot<A = Ipv4Addr> {
    key: ConnKey<A>,
    conn: Conn<A>,
    /// [`LIVE`], [`SECOND`], [`LISTED`], [`MARK`]: one byte keeps an
    /// IPv4 entry in 64.
    flags: u8,
    prev: u32,
    next: u32,
    /// Next slot in the same bucket of the 5-tuple index.
    hnext: u32,
    /// Next slot in the same bucket of the NAT reply index.
    rnext: u32,
}

// An IPv4 entry, with its chain links, in 64 bytes (issue 14); an
// IPv6 entry's three addresses take 36 bytes more (docs/ipv6.md).
const _: () = assert!(std::mem::size_of::<Slot<Ipv4Addr>>() == 64);
const _: () = assert!(std::mem::size_of::<Slot<std::net::Ipv6Addr>>() == 100);

/// The slot holds a connection.
const LIVE: u8 = 1;
/// A second packet (either way) was seen: no longer one-packet.
const SECOND: u8 = 2;
/// On the eviction list (oldest first).
const LISTED: u8 = 4;
/// Matches the table's `mark` when entered or confirmed since the last
/// full resync began (a backup drops the others at its end).
const MARK: u8 = 8;

impl<A> Slot<A> {
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
///
/// One table holds one family's connections: `ConnTable` (IPv4's, 64
/// bytes an entry) or `ConnTable<Ipv6Addr>` (IPv6's, [`Self::SLOT_BYTES`]),
/// each compiled for its own address type.
pub struct ConnTable<A = Ipv4Addr> {
    /// First slot of each bucket of the client 5-tuple index.
    buckets: Box<[u32]>,
    /// First slot of each bucket of the NAT reply index.
    rbuckets: Box<[u32]>,
    mask: usize,
    /// Keyed (random per process) so chains cannot be aimed at.
    hasher: foldhash::fast::RandomState,
    slots: Vec<Slot<A>>,
    /// Beside each slot, its persistence link (`templates.rs`): for a
    /// connection, the slot of the template that controls it ([`NIL`]
    /// when none); for a template, how many connections it controls.
    /// Apart from the slots, so an IPv4 entry stays 64 bytes.
    ctl: Vec<u32>,
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
    mark: bool,
    /// Entries per state and the digest's sum, kept as entries come,
    /// change state and go.
    tally: Tally,
}

/// Whether losing this connection costs little: it never saw a second
/// packet, or it is a TCP handshake that never completed. A template is
/// cheap when it controls nothing and was never assured (IPVS's
/// `ip_vs_random_dropentry` drops those, and keeps assured ones).
fn cheap<A>(s: &Slot<A>, ctl: u32) -> bool {
    match s.conn.state {
        ConnState::Template => ctl == 0,
        ConnState::Assured => false,
        _ => {
            !s.has(SECOND)
                || matches!(
                    s.conn.state,
                    ConnState::Tcp(TcpState::SynRecv | TcpState::None)
                )
        }
    }
}

/// Asks the CPU to load `v`'s cache line (a hint: no effect on what is
/// read, nothing on targets without the instruction).
#[inline(always)]
fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault;
    // the pointer comes from a reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((v as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Buckets for a limit: a power of two, at least one per entry.
fn bucket_count(max: usize) -> usize {
    max.next_power_of_two().max(1024)
}

impl<A: Addr> ConnTable<A> {
    /// The size of one entry with its chain links.
    pub const SLOT_BYTES: usize = std::mem::size_of::<Slot<A>>();

    /// A table of at most `max` connections (capped at [`MAX_LIMIT`]).
    pub fn new(max: usize) -> ConnTable<A> {
        let max = max.clamp(1, MAX_LIMIT);
        let n = bucket_count(max);
        ConnTable {
            buckets: vec![NIL; n].into_boxed_slice(),
            rbuckets: vec![NIL; n].into_boxed_slice(),
            mask: n - 1,
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::with_capacity(max),
            ctl: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            len: 0,
            replies: 0,
            head: NIL,
            tail: NIL,
            max,
            cursor: 0,
            evicted: 0,
            mark: false,
            tally: Tally::default(),
        }
    }

    /// Roughly the memory a table of this family takes when full: the
    /// two indexes' buckets, and per entry its slot, its persistence link
    /// and its place on the free list.
    pub fn bytes_at_limit(max: usize) -> usize {
        let max = max.clamp(1, MAX_LIMIT);
        2 * 4 * bucket_count(max) + max * (Self::SLOT_BYTES + 8)
    }

    /// The table of this family at limit `max`, as the start logs it:
    /// `IPv4 up to N entries, about M MiB when full (64 bytes an entry)`.
    pub fn limit_line(max: usize) -> String {
        format!(
            "{} up to {max} entries, about {} MiB when full ({} bytes an entry)",
            A::FAMILY,
            Self::bytes_at_limit(max).div_ceil(1 << 20),
            Self::SLOT_BYTES,
        )
    }

    pub fn limit(&self) -> usize {
        self.max
    }

    /// Whether the entry saw a second packet (kept across a handoff, so
    /// an established flow is not the first evicted by its new owner).
    pub fn seen_twice(&self, k: &ConnKey<A>) -> bool {
        self.find(k)
            .is_some_and(|i| self.slots[i as usize].has(SECOND))
    }

    /// Marks an entry as having seen a second packet.
    pub fn mark_seen_twice(&mut self, k: &ConnKey<A>) {
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

    /// Starts loading what a lookup of `k` reads first: its bucket
    /// (`slot: false`), or the first slot of its chain (`slot: true`,
    /// once the bucket was asked for a while before). A batch of lookups
    /// that asks ahead has its cache misses overlap instead of queueing:
    /// the table is far larger than the caches when full.
    #[inline]
    pub fn prefetch(&self, k: &ConnKey<A>, slot: bool) {
        let b = self.bucket(k);
        match slot {
            false => prefetch(&self.buckets[b]),
            true => {
                if let Some(s) = self.slots.get(self.buckets[b] as usize) {
                    prefetch(s);
                }
            }
        }
    }

    /// Starts loading the bucket of the entry a full table evicts after
    /// `n` more (the eviction list's `n`-th entry, whose key names it),
    /// so that evicting it does not wait on memory. A no-op when the
    /// table has room. The list's links are followed to find it: under a
    /// flood they run through the slots in order, which the CPU loads
    /// ahead by itself.
    #[inline]
    pub fn prefetch_victim(&self, n: usize) {
        if self.len < self.max {
            return;
        }
        let mut i = self.head;
        for _ in 0..n {
            match self.slots.get(i as usize) {
                Some(s) => i = s.next,
                None => return,
            }
        }
        if let Some(s) = self.slots.get(i as usize) {
            prefetch(&self.buckets[self.bucket(&s.key)]);
        }
    }

    /// A connection's slot (never a template's: a template's key, with
    /// client port 0, is not a flow).
    #[inline]
    fn find(&self, k: &ConnKey<A>) -> Option<u32> {
        self.find_kind(k, false)
    }

    /// The newest entry with key `k` that is (or is not) a template.
    #[inline]
    fn find_kind(&self, k: &ConnKey<A>, template: bool) -> Option<u32> {
        let mut i = self.buckets[self.bucket(k)];
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.key == *k && s.conn.state.is_template() == template {
                return Some(i);
            }
            i = s.hnext;
        }
        None
    }

    #[inline]
    fn find_reply(&self, r: &ReplyKey<A>) -> Option<u32> {
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
    pub fn get(&self, k: &ConnKey<A>) -> Option<&Conn<A>> {
        let i = self.find(k)?;
        Some(&self.slots[i as usize].conn)
    }

    /// The connection, for a packet that continues it (which makes it
    /// more than a one-packet entry).
    #[inline]
    pub fn get_mut(&mut self, k: &ConnKey<A>) -> Option<&mut Conn<A>> {
        let i = self.find(k)?;
        let s = &mut self.slots[i as usize];
        s.set(SECOND, true);
        Some(&mut s.conn)
    }

    pub fn remove(&mut self, k: &ConnKey<A>) -> Option<Conn<A>> {
        let i = self.find(k)?;
        Some(self.release_slot(i))
    }

    /// Takes slot `i` out of its chain (`next` picks the chain's link).
    fn unchain(&mut self, head: usize, i: u32, reply: bool) {
        let link = |s: &Slot<A>| if reply { s.rnext } else { s.hnext };
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

    /// Frees slot `i`: out of both indexes, the eviction list and its
    /// template's count.
    fn release_slot(&mut self, i: u32) -> Conn<A> {
        self.unlist(i);
        self.detach(i);
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
        self.tally.remove(&k, &c);
        c
    }

    /// The digest of the whole table, in constant time.
    pub fn digest(&self) -> Digest {
        self.tally.digest(self.len)
    }

    /// A connection found by `get_mut` changed state from `old`: its
    /// share of the digest follows.
    pub fn restated(&mut self, k: &ConnKey<A>, c: &Conn<A>, old: ConnState) {
        self.tally.restate(k, c, old);
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
    fn evict_one(&mut self) -> Option<Entry<A>> {
        while self.head != NIL {
            let i = self.head;
            if cheap(&self.slots[i as usize], self.ctl[i as usize]) {
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
    pub fn insert(&mut self, k: ConnKey<A>, c: Conn<A>) -> Result<Option<Entry<A>>, InsertError> {
        self.insert_slot(k, c).map(|(_, evicted)| evicted)
    }

    /// [`insert`](Self::insert), also saying which slot the entry took.
    fn insert_slot(
        &mut self,
        k: ConnKey<A>,
        c: Conn<A>,
    ) -> Result<(u32, Option<Entry<A>>), InsertError> {
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
            flags: LIVE | if self.mark { MARK } else { 0 },
            prev: NIL,
            next: NIL,
            hnext: self.buckets[b],
            rnext: rb.map_or(NIL, |rb| self.rbuckets[rb]),
        };
        let ctl = if c.state.is_template() { 0 } else { NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                self.ctl[i as usize] = ctl;
                i
            }
            None => {
                self.slots.push(slot);
                self.ctl.push(ctl);
                (self.slots.len() - 1) as u32
            }
        };
        self.buckets[b] = i;
        if let Some(rb) = rb {
            self.rbuckets[rb] = i;
            self.replies += 1;
        }
        self.list(i);
        self.len += 1;
        self.tally.add(&k, &c);
        Ok((i, evicted))
    }

    /// Appends slot `i` to the eviction list.
    fn list(&mut self, i: u32) {
        let tail = self.tail;
        let s = &mut self.slots[i as usize];
        s.set(LISTED, true);
        (s.prev, s.next) = (tail, NIL);
        match tail {
            NIL => self.head = i,
            t => self.slots[t as usize].next = i,
        }
        self.tail = i;
    }

    /// The shortest timeout, in seconds, of any state an entry is in
    /// (`None` when empty): no entry's timer can run out sooner after it
    /// was last set.
    pub fn shortest_timeout(&self, t: &Timeouts) -> Option<u32> {
        self.tally.shortest_timeout(t)
    }

    /// Whether any NAT connection is tracked (no reply lookups otherwise).
    #[inline]
    pub fn has_replies(&self) -> bool {
        self.replies > 0
    }

    /// The NAT connection a real server's reply belongs to.
    #[inline]
    pub fn by_reply(&self, r: &ReplyKey<A>) -> Option<ConnKey<A>> {
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
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

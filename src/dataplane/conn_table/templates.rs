//! Persistence templates in the connection table, as IPVS keeps them
//! (`ip_vs_sched_persist`, `ip_vs_control_add`/`_del`): a template is an
//! entry like a connection (state [`ConnState::Template`], client port 0,
//! its client a network), found only by the template lookups. A
//! connection scheduled through one is linked to it, and the template
//! counts the connections it controls (IPVS's `n_control`): the sweep
//! never lets a template that controls connections go.
//!
//! The links live beside the slots (`ConnTable::ctl`, 4 bytes an entry),
//! not in them, so an entry stays 64 bytes.

use super::{ConnTable, Entry, InsertError, LISTED, LIVE, NIL};
use crate::dataplane::conn::Conn;
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState};

impl<A: Addr> ConnTable<A> {
    /// The entry `k` that is (or is not) a template.
    pub fn entry(&self, k: &ConnKey<A>, template: bool) -> Option<&Conn<A>> {
        let i = self.find_kind(k, template)?;
        Some(&self.slots[i as usize].conn)
    }

    /// As [`entry`](Self::entry), to change (not a packet: it stays
    /// what it was for eviction).
    pub fn entry_mut(&mut self, k: &ConnKey<A>, template: bool) -> Option<&mut Conn<A>> {
        let i = self.find_kind(k, template)?;
        Some(&mut self.slots[i as usize].conn)
    }

    /// Removes the entry `k` that is (or is not) a template. Connections
    /// a removed template still controls keep running.
    pub fn remove_entry(&mut self, k: &ConnKey<A>, template: bool) -> Option<Conn<A>> {
        let i = self.find_kind(k, template)?;
        Some(self.release_slot(i))
    }

    /// Confirms an entry during a resync.
    pub fn confirm_entry(&mut self, k: &ConnKey<A>, template: bool) {
        if let Some(i) = self.find_kind(k, template) {
            let m = self.mark;
            self.slots[i as usize].set(super::MARK, m);
        }
    }

    /// The newest template with key `k`.
    pub fn template_mut(&mut self, k: &ConnKey<A>) -> Option<&mut Conn<A>> {
        self.entry_mut(k, true)
    }

    /// The template `k` and how many connections it controls, from one
    /// lookup (a new connection of a persistent service asks both).
    pub fn template_controls(&mut self, k: &ConnKey<A>) -> Option<(&mut Conn<A>, u32)> {
        let i = self.find_kind(k, true)? as usize;
        Some((&mut self.slots[i].conn, self.ctl[i]))
    }

    /// How many connections the template `k` controls.
    pub fn controls(&self, k: &ConnKey<A>) -> u32 {
        self.find_kind(k, true).map_or(0, |i| self.ctl[i as usize])
    }

    /// Inserts a connection controlled by the template `tk` (when it is
    /// in the table after any eviction the insert made), as
    /// [`insert`](Self::insert) does otherwise.
    pub fn insert_controlled(
        &mut self,
        k: ConnKey<A>,
        c: Conn<A>,
        tk: &ConnKey<A>,
    ) -> Result<Option<Entry<A>>, InsertError> {
        let (i, evicted) = self.insert_slot(k, c)?;
        if let Some(t) = self.find_kind(tk, true) {
            self.attach(i, t);
        }
        Ok(evicted)
    }

    /// Links connection `i` to template `t`.
    fn attach(&mut self, i: u32, t: u32) {
        self.ctl[i as usize] = t;
        self.ctl[t as usize] += 1;
    }

    /// Slot `i` goes: a connection leaves its template's count, and a
    /// template that controls nothing any more and was never assured
    /// becomes cheap to evict (IPVS drops such templates first, with the
    /// one-packet entries).
    pub(super) fn detach(&mut self, i: u32) {
        let ui = i as usize;
        if self.slots[ui].conn.state.is_template() {
            return;
        }
        let t = std::mem::replace(&mut self.ctl[ui], NIL);
        if t == NIL || !self.controls_slot(t, &self.slots[ui].key) {
            return;
        }
        let ut = t as usize;
        self.ctl[ut] -= 1;
        let idle = self.ctl[ut] == 0;
        let s = &self.slots[ut];
        if idle && s.conn.state == ConnState::Template && !s.has(LISTED) {
            self.list(t);
        }
    }

    /// Whether slot `t` still holds a template that can control the
    /// connection `k` (a template removed under its connections, by a
    /// peer's record, leaves links that must not count against the
    /// slot's next entry). A mark service's template (protocol IP, the
    /// mark for VIP) can control any protocol, VIP and port of its
    /// client's network.
    fn controls_slot(&self, t: u32, k: &ConnKey<A>) -> bool {
        let s = &self.slots[t as usize];
        let tk = &s.key;
        let of_mark = tk.template_mark().is_some();
        s.has(LIVE)
            && s.conn.state.is_template()
            && self.ctl[t as usize] > 0
            && (of_mark
                || (tk.protocol == k.protocol
                    && tk.vaddr == k.vaddr
                    && (tk.vport == 0 || tk.vport == k.vport)))
            && k.caddr.masked(tk.caddr) == tk.caddr
    }

    /// Connection `k` was established: its template, if it was not yet,
    /// becomes assured (`ip_vs_control_assure_ct`). Returns the template
    /// when it changed, for the peers.
    pub fn assure(&mut self, k: &ConnKey<A>) -> Option<Entry<A>> {
        let i = self.find(k)?;
        let t = self.ctl[i as usize];
        if t == NIL || !self.controls_slot(t, k) {
            return None;
        }
        let s = &mut self.slots[t as usize];
        let old = s.conn.state;
        if old != ConnState::Template {
            return None;
        }
        s.conn.state = ConnState::Assured;
        let (tk, tc) = (s.key, s.conn);
        self.tally.restate(&tk, &tc, old);
        Some((tk, tc))
    }

    /// Links connection `k`, imported from a peer or a predecessor, to
    /// its template `tk` if that is here and it has none yet.
    pub fn adopt(&mut self, k: &ConnKey<A>, tk: &ConnKey<A>) {
        let (Some(i), Some(t)) = (self.find(k), self.find_kind(tk, true)) else {
            return;
        };
        if self.ctl[i as usize] == NIL {
            self.attach(i, t);
        }
    }

    /// Links every connection that has no template yet to the one
    /// `template_of` names for it, when that is here: a full resync
    /// sends the table in slot order, so a connection can come before
    /// its template. Returns how many were linked.
    pub fn adopt_orphans(
        &mut self,
        mut template_of: impl FnMut(&ConnKey<A>) -> Option<ConnKey<A>>,
    ) -> usize {
        let mut linked = 0;
        for i in 0..self.slots.len() as u32 {
            let s = &self.slots[i as usize];
            let own = self.ctl[i as usize];
            if !s.has(LIVE)
                || s.conn.state.is_template()
                || (own != NIL && self.controls_slot(own, &s.key))
            {
                continue;
            }
            let Some(t) = template_of(&s.key).and_then(|tk| self.find_kind(&tk, true)) else {
                continue;
            };
            self.attach(i, t);
            linked += 1;
        }
        linked
    }

    /// How many connections slot `i` controls (0 for a connection).
    #[inline]
    pub(super) fn controlled(&self, i: usize) -> u32 {
        match self.slots[i].conn.state.is_template() {
            true => self.ctl[i],
            false => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::conn::tests::conn;
    use crate::lvs::service::{Forward, Protocol};
    use std::net::Ipv4Addr;

    fn key(c: [u8; 4], cport: u16) -> ConnKey {
        ConnKey {
            protocol: Protocol::Tcp,
            caddr: Ipv4Addr::from(c),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
        }
    }

    fn template() -> Conn {
        let mut t = conn(Forward::Route);
        t.state = ConnState::Template;
        t
    }

    /// A table of `max` with a template and one connection it controls;
    /// their keys.
    fn controlled(max: usize) -> (ConnTable, ConnKey, ConnKey) {
        let mut t = ConnTable::new(max);
        let tk = key([198, 19, 0, 0], 0);
        t.insert(tk, template()).unwrap();
        let a = key([198, 19, 0, 1], 1000);
        t.insert_controlled(a, conn(Forward::Route), &tk).unwrap();
        (t, tk, a)
    }

    #[test]
    fn a_template_counts_its_connections_and_is_cheap_only_when_idle() {
        let mut t = ConnTable::new(3);
        let tk = key([198, 19, 0, 0], 0);
        t.insert(tk, template()).unwrap();
        // A connection with the same 5-tuple shape is not the template.
        assert!(t.get(&tk).is_none());
        assert!(t.entry(&tk, true).is_some());
        let (a, b) = (key([198, 19, 0, 1], 1000), key([198, 19, 0, 2], 1000));
        let mut c = conn(Forward::Route);
        c.state = ConnState::Tcp(crate::lvs::conn::TcpState::Established);
        t.insert_controlled(a, c, &tk).unwrap();
        t.insert_controlled(b, c, &tk).unwrap();
        t.mark_seen_twice(&a);
        t.mark_seen_twice(&b);
        assert_eq!(t.controls(&tk), 2);
        // Full, and nothing is cheap: the template controls connections.
        assert!(matches!(
            t.insert(key([198, 19, 1, 1], 1), conn(Forward::Route)),
            Err(InsertError::Full)
        ));
        t.remove(&a);
        assert_eq!(t.controls(&tk), 1);
        t.remove(&b);
        assert_eq!(t.controls(&tk), 0);
        // Idle and never assured: cheap again, listed when it became so,
        // and the first to make room.
        for p in 1..3 {
            t.insert(key([198, 19, 1, 1], p), conn(Forward::Route))
                .unwrap();
        }
        let (gone, _) = t
            .insert(key([198, 19, 1, 1], 3), conn(Forward::Route))
            .unwrap()
            .unwrap();
        assert_eq!(gone, tk);
    }

    #[test]
    fn an_assured_template_is_never_evicted() {
        let (mut t, tk, a) = controlled(2);
        let (k, c) = t.assure(&a).unwrap();
        assert_eq!(k, tk);
        assert_eq!(c.state, ConnState::Assured);
        assert!(t.assure(&a).is_none(), "once");
        t.remove(&a);
        t.insert(key([198, 19, 1, 1], 1), conn(Forward::Route))
            .unwrap();
        assert!(
            t.insert(key([198, 19, 1, 2], 1), conn(Forward::Route))
                .is_ok()
        );
        assert!(t.entry(&tk, true).is_some());
    }

    #[test]
    fn a_template_removed_under_its_connections_leaves_no_stale_count() {
        let (mut t, tk, a) = controlled(8);
        t.remove_entry(&tk, true).unwrap();
        // Its slot is reused by another template, of another VIP.
        let other = ConnKey {
            vaddr: Ipv4Addr::new(198, 18, 0, 101),
            ..tk
        };
        t.insert(other, template()).unwrap();
        let b = ConnKey {
            vaddr: other.vaddr,
            ..a
        };
        t.insert_controlled(b, conn(Forward::Route), &other)
            .unwrap();
        t.remove(&a);
        assert_eq!(t.controls(&other), 1);
    }

    #[test]
    fn a_connection_entered_before_its_template_is_linked_later() {
        let mut t = ConnTable::new(8);
        let tk = key([198, 19, 0, 0], 0);
        let a = key([198, 19, 0, 1], 1000);
        t.insert(a, conn(Forward::Route)).unwrap();
        t.adopt(&a, &tk);
        t.insert(tk, template()).unwrap();
        assert_eq!(t.controls(&tk), 0);
        let of = |k: &ConnKey| {
            Some(ConnKey {
                caddr: Ipv4Addr::new(198, 19, 0, 0),
                cport: 0,
                ..*k
            })
        };
        assert_eq!(t.adopt_orphans(of), 1);
        assert_eq!(t.controls(&tk), 1);
        assert_eq!(t.adopt_orphans(of), 0, "once");
        t.remove(&a);
        assert_eq!(t.controls(&tk), 0);
    }
}

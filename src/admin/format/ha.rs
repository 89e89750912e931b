//! `uvs ha`'s text and `uvsadm -L --daemon`: the HA status as listings.

use crate::ha::HaStatus;
use serde::Serialize;
use std::fmt::Write;
use std::net::IpAddr;

/// `uvs ha` without `--json`.
pub fn ha_status(h: &HaStatus) -> String {
    let mut o = String::new();
    let prio = match h.effective_priority == h.priority {
        true => h.priority.to_string(),
        false => format!("{}, configured {}", h.effective_priority, h.priority),
    };
    let _ = writeln!(o, "role {} (priority {prio}): {}", h.role, h.reason);
    if let Some(f) = &h.fault {
        let _ = writeln!(o, "fault: {f}");
    }
    let _ = writeln!(
        o,
        "preempt {}{}, ready to take over: {}",
        if h.preempt { "on" } else { "off" },
        match h.preempt_delay_ms {
            0 => String::new(),
            ms => format!(" after {ms} ms"),
        },
        if h.ready { "yes" } else { "no" }
    );
    for p in &h.peers {
        let _ = writeln!(
            o,
            "peer {:<15} {:<4} priority {:<3} {} heard {} ago (#{}), it heard our #{} of #{}{}",
            p.addr,
            if p.live { "live" } else { "gone" },
            p.priority,
            if p.active { "active" } else { "backup" },
            p.heard_ms_ago.map_or("never".into(), |m| format!("{m} ms")),
            p.heard_seq,
            p.heard_our_seq,
            h.seq,
            if p.hears_us { "" } else { ", does not hear us" }
        );
        let _ = writeln!(
            o,
            "     sync in: applied seq {} of {} (lag {}), {}",
            p.sync_applied,
            p.sync_highest,
            p.sync_lag,
            if p.synced {
                "whole table"
            } else {
                "not synced"
            }
        );
    }
    if let Some(w) = &h.witness {
        let _ = writeln!(
            o,
            "witness {} {} heard {} ago, vote {}; votes here {} of {}",
            w.addr,
            if w.live { "live" } else { "gone" },
            w.heard_ms_ago.map_or("never".into(), |m| format!("{m} ms")),
            match (w.votes_for_us, w.grantee) {
                (true, _) => "ours".to_string(),
                (false, Some(g)) => format!("with {g}"),
                (false, None) => "free".to_string(),
            },
            w.votes,
            w.voters
        );
    }
    for t in &h.tracks {
        let _ = writeln!(
            o,
            "track {:?}{}: {}",
            t.track.watch,
            t.track
                .weight
                .map_or(" (fault)".into(), |w| format!(" (weight {w})")),
            if t.failing { "failing" } else { "ok" }
        );
    }
    let s = &h.sync;
    let c = &s.counters;
    let _ = writeln!(
        o,
        "sync out: seq {}, {:.0} records/s; in: {:.0} records/s; digest {}{}",
        s.sent_seq,
        s.sent_per_s,
        s.received_per_s,
        s.digest,
        s.resync
            .as_ref()
            .map_or(String::new(), |r| format!("; resync: {r}"))
    );
    let _ = writeln!(
        o,
        "sync messages sent {} received {}, records sent {} received {}, gaps {} \
         (skipped {}), resends asked {} sent {}, resyncs asked {} sent {} received {}, \
         digests ok {} mismatched {}, refused: bad MAC {} malformed {} replayed {}, \
         queue overflows {}",
        c.msgs_sent,
        c.msgs_received,
        c.records_sent,
        c.records_received,
        c.gaps,
        c.gaps_skipped,
        c.resends_asked,
        c.resends_sent,
        c.resyncs_asked,
        c.resyncs_sent,
        c.resyncs_received,
        c.digests_ok,
        c.digest_mismatches,
        c.bad_mac,
        c.malformed,
        c.replayed,
        c.overflows
    );
    let c = &h.counters;
    let _ = writeln!(
        o,
        "heartbeats sent {} received {} refused: bad MAC {} malformed {} replayed {} unknown sender {}; \
         VIPs announced again {}",
        c.sent, c.received, c.bad_mac, c.malformed, c.replayed, c.unknown_sender, c.reannounced
    );
    o
}

/// One line of `-L --daemon`: one peer's sync as ipvsadm's sync daemon
/// line says it. An active director is the master (it sends), a backup
/// the backup (it receives); unicast to the peer replaces the multicast
/// group. The master's sequence is the one it sent; a backup's the one
/// it applied, with its lag and the digest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonRow {
    /// `master` or `backup`.
    pub role: &'static str,
    pub peer: IpAddr,
    pub syncid: u32,
    pub maxlen: usize,
    pub port: u16,
    pub seq: u64,
    /// A backup's only.
    pub lag: Option<u64>,
    pub digest: Option<String>,
}

/// The rows of `-L --daemon`, one per peer.
pub fn daemon_rows(h: &HaStatus) -> Vec<DaemonRow> {
    let master = h.role == "active";
    let role = if master { "master" } else { "backup" };
    h.peers
        .iter()
        .map(|p| DaemonRow {
            role,
            peer: p.addr,
            syncid: 0,
            maxlen: crate::ha::sync::MAX_LEN,
            port: 5405,
            seq: if master {
                h.sync.sent_seq
            } else {
                p.sync_applied
            },
            lag: (!master).then_some(p.sync_lag),
            digest: (!master).then(|| h.sync.digest.split(' ').next().unwrap_or("none").into()),
        })
        .collect()
}

/// `-L --daemon`: ipvsadm's sync daemon line, one per peer, then the
/// stream's sequence, lag and digest state.
pub fn list_daemon(h: &HaStatus) -> String {
    let mut o = String::new();
    for r in daemon_rows(h) {
        let mut tail = format!("seq={}", r.seq);
        if let (Some(lag), Some(d)) = (r.lag, &r.digest) {
            let _ = write!(tail, ", lag={lag}, digest={d}");
        }
        let _ = writeln!(
            o,
            "{} sync daemon (peer={}, syncid={}, maxlen={}, port={}, {tail})",
            r.role, r.peer, r.syncid, r.maxlen, r.port
        );
    }
    o
}

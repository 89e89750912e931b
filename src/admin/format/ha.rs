//! `uvs ha`'s text and `uvsadm -L --daemon`: the HA status as listings.

use crate::ha::HaStatus;
use std::fmt::Write;

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

/// `-L --daemon`: ipvsadm's sync daemon line, one per peer. An active
/// director is the master (it sends), a backup the backup (it receives);
/// unicast to the peer replaces the multicast group, and the stream's
/// sequence, lag and digest state follow.
pub fn list_daemon(h: &HaStatus) -> String {
    let role = match h.role.as_str() {
        "active" => "master",
        _ => "backup",
    };
    let mut o = String::new();
    for p in &h.peers {
        let tail = match role {
            "master" => format!("seq={}", h.sync.sent_seq),
            _ => format!(
                "seq={}, lag={}, digest={}",
                p.sync_applied,
                p.sync_lag,
                h.sync.digest.split(' ').next().unwrap_or("none")
            ),
        };
        o.push_str(&format!(
            "{role} sync daemon (peer={}, syncid=0, maxlen={}, port=5405, {tail})\n",
            p.addr,
            crate::ha::sync::MAX_LEN
        ));
    }
    o
}

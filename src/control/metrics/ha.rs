//! HA, as `uvs ha` shows it: the role, the priority, each peer as heard,
//! the tracks, the witness and the sync stream with its counters.

use super::{Labels, Sheet};
use crate::ha::HaStatus;
use crate::ha::track::Watch;

/// The roles a director can be in.
pub const ROLES: &[&str] = &["active", "backup", "fault"];
/// The last digest comparison's results.
pub const DIGESTS: &[&str] = &["ok", "mismatch", "none"];

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Sequence numbers and counts as gauges (they fit an i64 in practice).
fn whole(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn add(sheet: &mut Sheet, h: &HaStatus) {
    sheet.states(
        "uvs_ha_role",
        "This director's role: active (holds the VIPs), backup or fault; 1 for the current one",
        Vec::new(),
        ("role", ROLES),
        &h.state(),
    );
    let gauges: [(&str, &'static str, i64); 4] = [
        (
            "uvs_ha_priority",
            "The configured priority",
            h.priority.into(),
        ),
        (
            "uvs_ha_effective_priority",
            "The priority in effect after the track conditions",
            h.effective_priority.into(),
        ),
        (
            "uvs_ha_ready",
            "1: this director could take the VIPs from a lower-priority holder",
            flag(h.ready),
        ),
        (
            "uvs_ha_heartbeat_sequence",
            "The sequence number of this director's last heartbeat",
            whole(h.seq),
        ),
    ];
    for (name, help, v) in gauges {
        sheet.gauge(name, help, Vec::new(), v);
    }
    let c = &h.counters;
    sheet.counter(
        "uvs_ha_heartbeats_sent",
        "Heartbeats sent",
        Vec::new(),
        c.sent,
    );
    sheet.counter(
        "uvs_ha_heartbeats_received",
        "Heartbeats received",
        Vec::new(),
        c.received,
    );
    let refused = [
        ("bad_mac", c.bad_mac),
        ("malformed", c.malformed),
        ("replayed", c.replayed),
        ("unknown_sender", c.unknown_sender),
    ];
    let help = "Heartbeats refused, by reason";
    sheet.by_reason("uvs_ha_heartbeats_refused", help, &refused);
    let help = "Times this director announced its VIPs again after another held them";
    sheet.counter("uvs_ha_reannounced", help, Vec::new(), c.reannounced);
    peers(sheet, h);
    for t in &h.tracks {
        let (kind, name) = match &t.track.watch {
            Watch::Interface(i) => ("interface", i.clone()),
            Watch::Script(s) => ("script", s.clone()),
            Watch::Quorum => ("quorum", String::new()),
        };
        let labels = vec![("kind", kind.to_string()), ("name", name)];
        sheet.gauge(
            "uvs_ha_track_failing",
            "1: the track condition fails",
            labels,
            flag(t.failing),
        );
    }
    if let Some(w) = &h.witness {
        let l = || vec![("witness", w.addr.to_string())];
        sheet.gauge(
            "uvs_ha_witness_up",
            "1: the witness is heard",
            l(),
            flag(w.live),
        );
        let help = "1: the witness's vote is this director's";
        sheet.gauge(
            "uvs_ha_witness_votes_for_us",
            help,
            l(),
            flag(w.votes_for_us),
        );
        let help = "Votes that count now (directors and witness), and all voters";
        sheet.gauge(
            "uvs_ha_votes",
            help,
            vec![("of", "counted".into())],
            w.votes.into(),
        );
        sheet.gauge(
            "uvs_ha_votes",
            help,
            vec![("of", "all".into())],
            w.voters.into(),
        );
    }
    sync(sheet, h);
}

/// Each peer, labelled `peer="ADDR"`.
fn peers(sheet: &mut Sheet, h: &HaStatus) {
    for p in &h.peers {
        let l: Labels = vec![("peer", p.addr.to_string())];
        let gauges: [(&str, &'static str, i64); 8] = [
            (
                "uvs_ha_peer_up",
                "1: the peer is heard (live)",
                flag(p.live),
            ),
            (
                "uvs_ha_peer_active",
                "1: the peer says it holds the VIPs",
                flag(p.active),
            ),
            (
                "uvs_ha_peer_priority",
                "The peer's priority as heard",
                p.priority.into(),
            ),
            (
                "uvs_ha_peer_hears_us",
                "1: the peer hears this director's heartbeats",
                flag(p.hears_us),
            ),
            (
                "uvs_ha_peer_synced",
                "1: this director has the peer's full table",
                flag(p.synced),
            ),
            (
                "uvs_ha_peer_sync_applied_sequence",
                "The last sequence number of the peer's sync stream applied here",
                whole(p.sync_applied),
            ),
            (
                "uvs_ha_peer_sync_highest_sequence",
                "The highest sequence number of the peer's sync stream seen",
                whole(p.sync_highest),
            ),
            (
                "uvs_ha_peer_sync_lag_messages",
                "How far the applied sync stream is behind the highest seen",
                whole(p.sync_lag),
            ),
        ];
        for (name, help, v) in gauges {
            sheet.gauge(name, help, l.clone(), v);
        }
        if let Some(ms) = p.heard_ms_ago {
            let help = "Seconds since the peer's last heartbeat";
            sheet.real(
                "uvs_ha_peer_last_heard_seconds",
                help,
                l.clone(),
                ms as f64 / 1000.0,
            );
        }
    }
}

/// The sync stream: its sequence, digest state, resync and counters.
fn sync(sheet: &mut Sheet, h: &HaStatus) {
    let s = &h.sync;
    let help = "The last sequence number this director sent in its sync stream";
    sheet.gauge(
        "uvs_ha_sync_sent_sequence",
        help,
        Vec::new(),
        whole(s.sent_seq),
    );
    // `ok at seq N`, `mismatch …` or `none yet`.
    let digest = s.digest.split_whitespace().next().unwrap_or("none");
    sheet.states(
        "uvs_ha_sync_digest",
        "The last digest comparison of the tables: ok, mismatch or none yet; 1 for the current one",
        Vec::new(),
        ("result", DIGESTS),
        digest,
    );
    let help = "1: a full resync is being sent";
    sheet.gauge(
        "uvs_ha_sync_resync_sending",
        help,
        Vec::new(),
        flag(s.resync.is_some()),
    );
    let c = &s.counters;
    let dir = |d: &str| vec![("direction", d.to_string())];
    let two = [
        (
            "uvs_ha_sync_messages",
            "Sync messages, by direction",
            c.msgs_sent,
            c.msgs_received,
        ),
        (
            "uvs_ha_sync_records",
            "Sync records, by direction",
            c.records_sent,
            c.records_received,
        ),
    ];
    for (name, help, sent, received) in two {
        sheet.counter(name, help, dir("sent"), sent);
        sheet.counter(name, help, dir("received"), received);
    }
    let resyncs = [
        ("asked", c.resyncs_asked),
        ("sent", c.resyncs_sent),
        ("received", c.resyncs_received),
    ];
    for (kind, v) in resyncs {
        let help = "Full resyncs asked for, sent and received";
        sheet.counter("uvs_ha_sync_resyncs", help, vec![("kind", kind.into())], v);
    }
    let help = "Digest comparisons, by result";
    sheet.counter(
        "uvs_ha_sync_digests",
        help,
        vec![("result", "ok".into())],
        c.digests_ok,
    );
    sheet.counter(
        "uvs_ha_sync_digests",
        help,
        vec![("result", "mismatch".into())],
        c.digest_mismatches,
    );
    let singles: [(&str, &'static str, u64); 4] = [
        (
            "uvs_ha_sync_gaps",
            "Sync messages found missing (a gap)",
            c.gaps,
        ),
        (
            "uvs_ha_sync_gaps_skipped",
            "Gaps that did not fill in time and were skipped",
            c.gaps_skipped,
        ),
        (
            "uvs_ha_sync_resends_asked",
            "Missing sync messages asked for again",
            c.resends_asked,
        ),
        (
            "uvs_ha_sync_resends_sent",
            "Sync messages sent again",
            c.resends_sent,
        ),
    ];
    for (name, help, v) in singles {
        sheet.counter(name, help, Vec::new(), v);
    }
    let refused = [
        ("bad_mac", c.bad_mac),
        ("malformed", c.malformed),
        ("replayed", c.replayed),
    ];
    sheet.by_reason(
        "uvs_ha_sync_refused",
        "Sync messages refused, by reason",
        &refused,
    );
}

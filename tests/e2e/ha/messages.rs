//! Forged, damaged, truncated and replayed HA messages (heartbeats and
//! sync) are refused and counted, and change nothing.

use super::{ha, pair, role};
use crate::support::{Lab, lab_tool, wait_until};
use std::process::Output;
use std::time::Duration;

/// `uvs-lab udp-send`: the datagram `hex` from `node`, bound to `bind`,
/// to B's HA port.
fn send_to_b(l: &Lab, node: &str, bind: &str, hex: &str) -> Output {
    let to = "198.18.0.3:5405";
    let args = ["udp-send", "--bind", bind, "--target", to, "--hex", hex];
    l.exec(node, &lab_tool(), &args)
}

#[test]
fn forged_and_truncated_heartbeats_are_refused_and_counted() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    // From A's own address (a peer), with the right magic but no key.
    let mut forged = b"UVSH\x01\x01\xff\x00".to_vec();
    forged.resize(72, 0x41);
    let hex: String = forged.iter().map(|b| format!("{b:02x}")).collect();
    for h in [hex.as_str(), "55565348"] {
        let o = send_to_b(l, "dir", "198.18.0.2:0", h);
        assert!(o.status.success());
    }
    // And from the client, which is no peer at all.
    send_to_b(l, "cl", "198.18.0.10:0", &hex);
    wait_until(
        Duration::from_secs(3),
        || {
            let c = &ha(l, "dir2", &p.socks[1])["counters"];
            c["bad_mac"].as_u64() >= Some(1)
                && c["malformed"].as_u64() >= Some(1)
                && c["unknown_sender"].as_u64() >= Some(1)
        },
        || ha(l, "dir2", &p.socks[1]).to_string(),
    );
    assert_eq!(role(l, "dir", &p.socks[0]), "active");
    assert_eq!(role(l, "dir2", &p.socks[1]), "backup");
}

/// Issue 13, test 6 (sync): forged, damaged and truncated sync messages
/// from a peer's address, and any from elsewhere, are refused and
/// counted; the backup's table does not change.
#[test]
fn forged_and_truncated_sync_messages_are_refused_and_counted() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    p.all_answered(10);
    wait_until(
        Duration::from_secs(5),
        || p.counter(1, "conns") == 10,
        || p.logs(),
    );
    // A records message of one entry under no key, and truncated ones.
    let mut forged = b"UVSS\x01\x01\x00\x01".to_vec();
    forged.resize(48 + 36 + 32, 0x42);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for h in [hex(&forged), hex(&forged[..60]), "5556535301".into()] {
        let o = send_to_b(l, "dir", "198.18.0.2:0", &h);
        assert!(o.status.success());
    }
    wait_until(
        Duration::from_secs(3),
        || p.sync(1, "bad_mac") >= 1 && p.sync(1, "malformed") >= 2,
        || p.ha(1).to_string(),
    );
    assert_eq!(p.counter(1, "conns"), 10);
    // And the table still agrees with A's at the next digests.
    p.digests_agree_twice_more();
    assert_eq!(p.counter(1, "conns"), 10);
    // Replays: a real heartbeat and a real sync message from A, captured
    // on B's side and sent again from A's address, are refused as old.
    let capture = |magic: &str, min_len: &str| {
        let o = l.exec(
            "dir2",
            &lab_tool(),
            &[
                "udp-capture",
                "--port",
                "5405",
                "--min-len",
                min_len,
                "--count",
                "8",
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["payloads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .find(|x| x.starts_with(magic))
            .unwrap_or_else(|| panic!("no {magic} message in {v}"))
            .to_string()
    };
    // "UVSH" heartbeats, "UVSS" sync messages (a digest every second).
    let (beat, sync) = (capture("55565348", "72"), capture("55565353", "80"));
    let (beats_replayed, syncs_replayed) = (
        p.ha(1)["counters"]["replayed"].as_u64().unwrap(),
        p.sync(1, "replayed"),
    );
    for h in [&beat, &sync] {
        let o = send_to_b(l, "dir", "198.18.0.2:0", h);
        assert!(o.status.success());
    }
    wait_until(
        Duration::from_secs(3),
        || {
            let h = p.ha(1);
            h["counters"]["replayed"].as_u64().unwrap()
                + h["sync"]["counters"]["replayed"].as_u64().unwrap()
                >= beats_replayed + syncs_replayed + 2
        },
        || p.ha(1).to_string(),
    );
    assert_eq!(p.counter(1, "conns"), 10);
    // uvsadm -L --daemon: the sync in ipvsadm's form, one line per peer.
    let daemon = |i: usize| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .args(["--socket", p.socks[i].to_str().unwrap(), "-L", "--daemon"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (a, b) = (daemon(0), daemon(1));
    assert!(
        a.starts_with(
            "master sync daemon (peer=198.18.0.3, syncid=0, maxlen=1376, port=5405, seq="
        ),
        "{a}"
    );
    assert!(
        b.starts_with(
            "backup sync daemon (peer=198.18.0.2, syncid=0, maxlen=1376, port=5405, seq="
        ) && b.contains(", lag=0, digest=ok)"),
        "{b}"
    );
}

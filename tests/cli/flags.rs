//! `uvs` command-line errors that need no lab: clear words, right status.

use crate::text::holds;
use std::process::Command;

fn uvs(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn tun_mss_clamp_is_refused_with_the_fix_that_works() {
    let (code, err) = uvs(&["director", "--interface", "eth0", "--tun-mss-clamp", "1440"]);
    assert_eq!(code, Some(1));
    holds(&err, "real server's SYN-ACK");
    holds(&err, "advmss");
}

/// `--offload-egress` says where offloaded frames go, so it means
/// nothing without `--offload`.
#[test]
fn offload_egress_takes_offload() {
    let (code, err) = uvs(&["director", "--interface", "eth0", "--offload-egress"]);
    assert_eq!(code, Some(2), "{err}");
    holds(&err, "--offload");
}

#[test]
fn probe_arguments_are_checked() {
    let (code, err) = uvs(&["probe", "--to", "198.18.0.11"]);
    assert_eq!(code, Some(2), "{err}");
    holds(&err, "--vip");
    let (code, err) = uvs(&["probe", "--to", "198.18.0.999", "--vip", "198.18.0.100"]);
    assert_eq!(code, Some(2), "{err}");
    holds(&err, "198.18.0.999");
    let (code, err) = uvs(&["probe", "--responder", "--json"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = uvs(&["probe", "--responder", "--port", "65535"]);
    assert_eq!(code, Some(3), "{err}");
    holds(&err, "no room for the probe port");
}

/// HA flags are checked before anything starts, each refusal naming the
/// flag and what it takes.
#[test]
fn ha_flags_are_checked() {
    use std::os::unix::fs::PermissionsExt;
    let key = std::env::temp_dir().join(format!("uvs-cli-key-{}", std::process::id()));
    std::fs::write(&key, b"a shared secret of enough length").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let k = key.to_str().unwrap();
    let base = [
        "director",
        "-i",
        "eth0",
        "--peer",
        "198.18.0.3",
        "--ha-key-file",
        k,
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--heartbeat-ms", "5"],
            "--heartbeat-ms 5: give 10 to 10000",
        ),
        (&["--dead-after", "1"], "--dead-after 1: give 3 to 1000"),
        (&["--priority", "0"], "--priority 0: give 1 to 254"),
        (
            &["--preempt-delay", "7200"],
            "--preempt-delay 7200: give seconds from 0 to 3600",
        ),
        (
            &["--track-interface", "eth0:x"],
            "weight 'x' is not a number",
        ),
        (&["--track-quorum", "lots"], "--track-quorum: weight 'lots'"),
        (
            &["--track-script-weight", "-5"],
            "--track-script-weight without --track-script",
        ),
        (
            &["--witness", "198.18.0.3"],
            "--witness 198.18.0.3:5405: that is a --peer",
        ),
        (
            &["--witness", "witness.example"],
            "--witness witness.example: give an IPv4 or IPv6 address, or ADDR:PORT \
             ([ADDR]:PORT for IPv6)",
        ),
        (
            &["--witness", "198.18.0.4:0"],
            "--witness 198.18.0.4:0: port 0",
        ),
        // The peers and the witness of one family, and addresses a
        // heartbeat can reach.
        (
            &["--witness", "[2001:2::4]:5405"],
            "--peer 198.18.0.3 and 2001:2::4: the peers and the witness are of one family",
        ),
        (
            &["--peer", "2001:2::5"],
            "--peer 198.18.0.3 and 2001:2::5: the peers and the witness are of one family",
        ),
        (&["--peer", "fe80::1"], "--peer fe80::1: link-local"),
        (&["--peer", "224.0.0.18"], "--peer 224.0.0.18: multicast"),
        (&["--witness", "::"], "--witness ::: unspecified"),
        (
            &["--garp-refresh", "0.5"],
            "--garp-refresh 0.5: give seconds from 1 to 86400, or 0 for none",
        ),
        (
            &["--announce", "routed"],
            "--announce routed with --peer: the routers send the VIPs to every director",
        ),
        (
            &["--metrics", "9100"],
            "--metrics 9100: give ADDR:PORT ([ADDR]:PORT for IPv6)",
        ),
    ];
    for (extra, want) in cases {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        let (code, err) = uvs(&a);
        assert_eq!(code, Some(1), "{a:?}: {err}");
        assert!(err.contains(want), "{a:?}: {err}");
    }
    let (code, err) = uvs(&["director", "-i", "eth0", "--announce", "bgp"]);
    assert_eq!(code, Some(2), "{err}");
    holds(&err, "[possible values: arp, routed]");
    let (code, err) = uvs(&["director", "-i", "eth0", "--notify", "true"]);
    assert_eq!(code, Some(1), "{err}");
    holds(&err, "--notify without --peer");
    let (code, err) = uvs(&["director", "-i", "eth0", "--witness", "198.18.0.4"]);
    assert_eq!(code, Some(1), "{err}");
    holds(&err, "--witness without --peer");
    // The witness itself: its address and its key are checked first.
    let (code, err) = uvs(&[
        "witness",
        "--listen",
        "nowhere",
        "--director",
        "198.18.0.2",
        "--ha-key-file",
        k,
    ]);
    assert_eq!(code, Some(1), "{err}");
    holds(&err, "--listen nowhere: give an IPv4 or IPv6 address");
    let (code, err) = uvs(&["witness", "--listen", "127.0.0.1:0", "--ha-key-file", k]);
    assert_eq!(code, Some(2), "{err}");
    holds(&err, "--director");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = uvs(&base);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    let _ = std::fs::remove_file(&key);
}

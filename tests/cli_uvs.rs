//! `uvs` command-line errors that need no lab: clear words, right status.

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
    assert!(err.contains("real server's SYN-ACK"), "{err}");
    assert!(err.contains("advmss"), "{err}");
}

#[test]
fn probe_arguments_are_checked() {
    let (code, err) = uvs(&["probe", "--to", "198.18.0.11"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--vip"), "{err}");
    let (code, err) = uvs(&["probe", "--to", "198.18.0.999", "--vip", "198.18.0.100"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("198.18.0.999"), "{err}");
    let (code, err) = uvs(&["probe", "--responder", "--json"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = uvs(&["probe", "--responder", "--port", "65535"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no room for the probe port"), "{err}");
}

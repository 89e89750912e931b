//! `uvs audit` on saved dumps: the real-world state from the field, and
//! damaged dumps that must give a clear error or be accepted, never panic.

use crate::text::holds;
use std::path::{Path, PathBuf};
use std::process::Command;
use uvs::audit::{self, Finding, HostState, Mode, Options, Status, source};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit/realworld")
}

fn opts(mode: Mode) -> Options {
    Options {
        mode,
        vips: vec!["192.168.10.100".parse().unwrap()],
        director: false,
        interface: None,
        director_addr: None,
    }
}

/// The field dump audited for `mode`: the state and the findings.
fn audit_field(mode: Mode) -> (HostState, Vec<Finding>) {
    let h = source::from_dump(&fixture()).unwrap();
    let f = audit::audit(&h, &opts(mode));
    (h, f)
}

/// The field dump with one sysctl changed.
fn fixture_with(key: &str, value: &str) -> HostState {
    let mut h = source::from_dump(&fixture()).unwrap();
    h.sysctl.insert(key.into(), value.into());
    h
}

/// `uvs audit` with these arguments.
fn uvs_audit(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uvs"));
    c.arg("audit").args(args);
    c
}

fn find<'a>(f: &'a [Finding], check: &str) -> &'a Finding {
    f.iter()
        .find(|x| x.check == check)
        .unwrap_or_else(|| panic!("no check {check}: {f:#?}"))
}

/// The finding `check`, which must have this status and value.
#[track_caller]
fn found<'a>(f: &'a [Finding], check: &str, status: Status, value: &str) -> &'a Finding {
    let x = find(f, check);
    assert_eq!((x.status, x.value.as_str()), (status, value), "{check}");
    x
}

#[test]
fn real_world_state_dr_passes_arp_checks() {
    let (h, f) = audit_field(Mode::Dr);
    // all.arp_ignore=1 with ens33 at 0 is fine: the kernel takes the max.
    found(
        &f,
        "arp_ignore ens33",
        Status::Ok,
        "1 = max(all=1, ens33=0)",
    );
    assert_eq!(find(&f, "arp_announce ens33").status, Status::Ok);
    assert_eq!(find(&f, "VIP 192.168.10.100 configured").status, Status::Ok);
    assert_eq!(audit::exit_code(&f), 0, "{}", audit::render(&h, &f));
}

#[test]
fn real_world_state_tun_fails_on_rp_filter() {
    let (h, f) = audit_field(Mode::Tun);
    let rp = find(&f, "rp_filter default");
    assert_eq!(rp.status, Status::Fail);
    let cmds: Vec<String> = rp.fixes.iter().map(|x| x.command()).collect();
    assert_eq!(
        cmds,
        vec!["sysctl -w net.ipv4.conf.all.rp_filter=0".to_string()]
    );
    assert_eq!(find(&f, "decapsulator").status, Status::Fail);
    assert_eq!(audit::exit_code(&f), 2);
    let text = audit::render(&h, &f);
    holds(&text, "fix: sysctl -w net.ipv4.conf.all.rp_filter=0");
}

#[test]
fn nat_checks_default_route_and_tw_recycle() {
    let mut h = fixture_with("net.ipv4.tcp_tw_recycle", "1");
    let mut o = opts(Mode::Nat);
    o.director_addr = Some("192.168.10.2".parse().unwrap());
    let f = audit::audit(&h, &o);
    let r = find(&f, "default route");
    assert_eq!(
        (r.status, r.value.as_str()),
        (Status::Fail, "via 192.168.10.1")
    );
    assert_eq!(find(&f, "tcp_tw_recycle").status, Status::Fail);
    assert_eq!(find(&f, "tcp_timestamps").status, Status::Info);
    o.director_addr = Some("192.168.10.1".parse().unwrap());
    assert_eq!(
        find(&audit::audit(&h, &o), "default route").status,
        Status::Ok
    );
    // A client network routed through another gateway bypasses the
    // director even with the right default route.
    h.routes.push(uvs::host::Route {
        dst: "198.18.0.0/24".parse().unwrap(),
        gateway: Some("192.168.10.254".parse().unwrap()),
        dev: "ens33".into(),
        advmss: None,
        mtu: None,
        kernel: false,
        prefsrc: None,
    });
    let f = audit::audit(&h, &o);
    let r = find(&f, "route 198.18.0.0/24");
    assert_eq!(
        (r.status, r.value.as_str()),
        (Status::Warn, "via 192.168.10.254 dev ens33")
    );
    assert_eq!(
        r.fixes[0].command(),
        "ip route del 198.18.0.0/24 via 192.168.10.254"
    );
}

#[test]
fn director_role_flags_forwarding_and_local_vip() {
    let h = fixture_with("net.ipv4.conf.ens33.forwarding", "1");
    let o = Options {
        director: true,
        interface: Some("ens33".into()),
        ..opts(Mode::Dr)
    };
    let f = audit::audit(&h, &o);
    assert_eq!(find(&f, "forwarding ens33").status, Status::Fail);
    assert_eq!(
        find(&f, "VIP 192.168.10.100 not local").status,
        Status::Fail
    );
}

fn base() -> PathBuf {
    std::env::temp_dir().join(format!("uvs-audit-{}", std::process::id()))
}

fn dump_dir(name: &str, sysctl: &[u8], addr: &[u8]) -> PathBuf {
    write_dump(base().join(name), sysctl, addr)
}

/// A dump directory `d` with these sysctl.txt and addr.json.
fn write_dump(d: PathBuf, sysctl: &[u8], addr: &[u8]) -> PathBuf {
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("sysctl.txt"), sysctl).unwrap();
    std::fs::write(d.join("addr.json"), addr).unwrap();
    d
}

#[test]
fn damaged_dumps_error_clearly_or_are_accepted() {
    let s = std::fs::read(fixture().join("sysctl.txt")).unwrap();
    let a = std::fs::read(fixture().join("addr.json")).unwrap();
    // BOM + CRLF + unknown keys: accepted, same verdict.
    let mut s2 = b"\xef\xbb\xbfvm.unknown.key = 7\r\n".to_vec();
    s2.extend(String::from_utf8_lossy(&s).replace('\n', "\r\n").as_bytes());
    let mut a2 = b"\xef\xbb\xbf".to_vec();
    a2.extend(
        String::from_utf8_lossy(&a)
            .replace("},{", "},\r\n{")
            .as_bytes(),
    );
    let d = dump_dir("crlf", &s2, &a2);
    let h = source::from_dump(&d).unwrap();
    assert_eq!(audit::exit_code(&audit::audit(&h, &opts(Mode::Dr))), 0);
    // Truncated files: a clear error naming the file.
    let d = dump_dir("trunc", &s[..s.len() / 2 + 7], &a);
    let e = source::from_dump(&d).unwrap_err().to_string();
    assert!(e.starts_with("sysctl.txt line "), "{e}");
    let d = dump_dir("trunc2", &s, &a[..a.len() / 2]);
    let e = source::from_dump(&d).unwrap_err().to_string();
    assert!(e.starts_with("addr.json: not valid"), "{e}");
    let d = dump_dir("binary", b"\xff\xfe\x00garbage", &a);
    let e = source::from_dump(&d).unwrap_err().to_string();
    holds(&e, "not UTF-8");
    // Every prefix of both files: never a panic.
    for cut in (0..s.len()).step_by(37) {
        let d = dump_dir("cut", &s[..cut], &a[..cut.min(a.len())]);
        if let Ok(h) = source::from_dump(&d) {
            let _ = audit::audit(&h, &opts(Mode::Tun));
        }
    }
    // The binary reports the error and exits 3 (could not audit).
    let d = dump_dir("bin", &s[..40], &a);
    let o = uvs_audit(&["--mode", "dr", "--vip", "192.168.10.100", "--from-dump"])
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sysctl.txt"));
    let _ = std::fs::remove_dir_all(base());
}

#[test]
fn json_output_and_exit_status_from_the_binary() {
    let args = [
        "--mode",
        "tun",
        "--vip",
        "192.168.10.100",
        "--json",
        "--from-dump",
    ];
    let o = uvs_audit(&args).arg(fixture()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit"], 2);
    let rp = crate::audit::finding(&v, "rp_filter default");
    assert_eq!(rp["status"], "fail");
    assert_eq!(rp["fixes"][0]["key"], "net.ipv4.conf.all.rp_filter");
}

/// --ssh runs the read-only commands through the system ssh client; a
/// stand-in `ssh` first on PATH runs them locally and records its arguments.
#[test]
fn ssh_source_runs_read_only_commands() {
    let dir = std::env::temp_dir().join(format!("uvs-fake-ssh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("calls.log");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> {}\n[ \"$1 $2 $3 $4\" = \"-o BatchMode=yes -- admin@rs9\" ] || exit 9\nexec sh -c \"$5\"\n",
        log.display()
    );
    std::fs::write(dir.join("ssh"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = [
        "--mode",
        "dr",
        "--vip",
        "198.18.0.100",
        "--json",
        "--ssh",
        "admin@rs9",
    ];
    let o = uvs_audit(&args).env("PATH", path).output().unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        calls.contains("sysctl -a") && calls.contains("ip -j addr"),
        "{calls}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(v["source"], "ssh admin@rs9");
    assert!(matches!(o.status.code(), Some(0..=2)));
    // A target that looks like an option never reaches ssh.
    let args = [
        "--mode",
        "dr",
        "--vip",
        "198.18.0.100",
        "--ssh=-oProxyCommand=x",
    ];
    let o = uvs_audit(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn tun_mss_check_reads_route_metrics() {
    // The field dump: both routes on ens33 advertise 1460, 20 too many.
    let (h, f) = audit_field(Mode::Tun);
    let m = found(
        &f,
        "tcp mss ens33 default",
        Status::Warn,
        "default: advmss 1460 (from mtu 1500)",
    );
    assert_eq!(
        m.fixes[0].command(),
        "ip route change default via 192.168.10.1 dev ens33 advmss 1440"
    );
    let k = find(&f, "tcp mss ens33 192.168.10.0/24");
    assert_eq!(
        k.fixes[0].command(),
        "ip route change 192.168.10.0/24 dev ens33 proto kernel scope link src 192.168.10.21 advmss 1440"
    );
    // DR has no tunnel overhead: no MSS findings.
    let f = audit::audit(&h, &opts(Mode::Dr));
    assert!(f.iter().all(|x| !x.check.starts_with("tcp mss")));

    // With advmss set (and a route MTU kept), the check passes; local and
    // other-table routes are ignored; a non-array route.json is an error.
    let s = std::fs::read(fixture().join("sysctl.txt")).unwrap();
    let a = std::fs::read(fixture().join("addr.json")).unwrap();
    // Its own directory: another test removes base() when it ends.
    let d = std::env::temp_dir().join(format!("uvs-audit-mss-{}", std::process::id()));
    let d = write_dump(d, &s, &a);
    std::fs::write(
        d.join("route.json"),
        "\u{feff}[{\"dst\":\"default\",\"gateway\":\"192.168.10.1\",\"dev\":\"ens33\",\"metrics\":[{\"mtu\":1500},{\"advmss\":1440}]},\r\n\
         {\"type\":\"local\",\"dst\":\"192.168.10.21\",\"dev\":\"ens33\",\"table\":\"local\"},\
         {\"dst\":\"10.9.0.0/16\",\"dev\":\"ens33\",\"table\":\"100\"}, 7, {\"dst\":\"x\"}]",
    )
    .unwrap();
    let h = source::from_dump(&d).unwrap();
    assert_eq!(h.routes.len(), 1, "{:?}", h.routes);
    let f = audit::audit(&h, &opts(Mode::Tun));
    assert_eq!(find(&f, "tcp mss ens33 default").status, Status::Ok);
    std::fs::write(d.join("route.json"), "{\"dst\":\"default\"}").unwrap();
    let e = source::from_dump(&d).unwrap_err().to_string();
    assert!(e.starts_with("route.json: expected a JSON array"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

//! `uvs import-keepalived` and keepalived's own syntax check, for the
//! import's tests and the end-to-end tests of an imported config.

use std::path::Path;
use std::process::Command;

pub fn import(path: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("import-keepalived")
        .arg(path)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// keepalived's own syntax check; under CI keepalived must be installed.
pub fn keepalived_accepts(path: &Path) -> Option<bool> {
    match Command::new("keepalived")
        .arg("-t")
        .arg("-f")
        .arg(path)
        .output()
    {
        Ok(o) => Some(o.status.success()),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("keepalived is not installed (scripts/deps.sh)")
        }
        Err(_) => {
            eprintln!("SKIPPED: keepalived -t (not installed)");
            None
        }
    }
}

/// The import of a file keepalived itself takes (where it is installed),
/// which must succeed: its output and its warnings.
#[track_caller]
pub fn import_valid(path: &Path) -> (String, String) {
    assert_ne!(
        keepalived_accepts(path),
        Some(false),
        "not valid keepalived input"
    );
    let (code, out, err) = import(path);
    assert_eq!(code, 0, "{err}");
    (out, err)
}

/// keepalived's syntax check of a file with VRRP instances, which wants
/// their interfaces to exist: as root, in a network namespace of its own
/// (`unshare -n`, nothing else in it) with eth0 and eth1 (a veth pair);
/// otherwise on the host, as [`keepalived_accepts`].
pub fn keepalived_accepts_vrrp(path: &Path) -> Option<bool> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root || Command::new("keepalived").arg("-v").output().is_err() {
        return keepalived_accepts(path);
    }
    let o = Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg("ip link add eth0 type veth peer name eth1 && keepalived -t -f \"$0\"")
        .arg(path)
        .output()
        .expect("unshare");
    Some(o.status.success())
}

/// As [`import_valid`], for a file with VRRP instances.
#[track_caller]
pub fn import_valid_vrrp(path: &Path) -> (String, String) {
    assert_ne!(
        keepalived_accepts_vrrp(path),
        Some(false),
        "not valid keepalived input"
    );
    let (code, out, err) = import(path);
    assert_eq!(code, 0, "{err}");
    (out, err)
}

/// The fixture `tests/fixtures/keepalived/vrrp/NAME`.
pub fn vrrp_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keepalived/vrrp")
        .join(name)
}

//! dist/uvs.service as systemd reads it: `systemd-analyze verify` on a
//! copy whose commands are the built binaries (/usr/sbin/uvs is not
//! installed where the tests run), failing on anything it prints. PID 1
//! here is not systemd, so the unit is checked, not started
//! (docs/systemd.md).

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/uvs.service");
    std::fs::read_to_string(p).expect("dist/uvs.service")
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing under CI (scripts/deps.sh installs systemd)"
        );
        eprintln!("SKIPPED: no systemd-analyze (scripts/deps.sh installs it)");
        return;
    }
    let text = unit();
    assert!(text.contains("ExecStart=/usr/sbin/uvs director --config /etc/uvs/uvs.toml"));
    assert!(text.contains("ExecReload=/usr/sbin/uvs reload"));
    let dir = std::env::temp_dir().join(format!("uvs-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("uvs.service");
    std::fs::write(
        &copy,
        text.replace("/usr/sbin/uvs", env!("CARGO_BIN_EXE_uvs")),
    )
    .unwrap();
    // The man pages are installed with the package, not here.
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && said.trim().is_empty(), "{said}");
}

/// The hardening docs/systemd.md describes is in the unit, the
/// capabilities are only those it names, and the doc explains every line
/// of `[Service]`.
#[test]
fn the_unit_keeps_its_hardening() {
    let text = unit();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("dist/uvs.service lacks {key}="))
            .to_string()
    };
    let caps = "CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_IPC_LOCK";
    assert_eq!(value("CapabilityBoundingSet"), caps);
    assert_eq!(value("AmbientCapabilities"), caps);
    for (k, v) in [
        ("Type", "notify"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelModules", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("RuntimeDirectory", "uvs"),
        ("LimitMEMLOCK", "infinity"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET AF_XDP",
        ),
    ] {
        assert_eq!(value(k), v, "{k}=");
    }
    assert!(value("WatchdogSec").ends_with('s'));
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd.md"))
            .expect("docs/systemd.md");
    let service = text
        .split("[Service]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("a [Service] section");
    for l in service
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let key = l.split('=').next().unwrap();
        assert!(
            docs.contains(&format!("`{key}=")),
            "docs/systemd.md does not explain {key}="
        );
    }
}

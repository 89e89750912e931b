//! `uvs import-keepalived` on the VRRP half: the four shapes of
//! `tests/fixtures/keepalived/vrrp/` (multicast, unicast peers, a sync
//! group, a MISC_CHECK without misc_dynamic), each valid keepalived input
//! (`keepalived -t`), each imported into a config the director's own
//! checks take, with its HA settings as keepalived meant them and a
//! warning (file:line) only for what uvs lacks. Running them is in the
//! end-to-end tests (tests/e2e/keepalived.rs, tests/e2e/ha/imported.rs).

use crate::keepalived::{import_valid_vrrp, vrrp_fixture};
use std::path::Path;
use std::time::Duration;
use uvs::config::{Config, Settings};

/// The import of a fixture, parsed as the director parses it.
fn imported(name: &str) -> (Config, String, String) {
    let (out, err) = import_valid_vrrp(&vrrp_fixture(name));
    let c = uvs::config::parse(Path::new("imported.toml"), out.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    (c, out, err)
}

/// A warning at `at` (`FILE:LINE:`) saying `what`.
#[track_caller]
fn warned(err: &str, at: &str, what: &str) {
    assert!(
        err.lines().any(|l| l.contains(at) && l.contains(what)),
        "no warning {at} {what}:\n{err}"
    );
}

fn director(c: &Config) -> &Settings {
    &c.director
}

#[test]
fn unicast_peers_become_the_ha_settings() {
    let (c, out, err) = imported("unicast.conf");
    let d = director(&c);
    assert_eq!(d.interfaces, ["eth0"]);
    assert_eq!(d.peers, ["198.18.0.3".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(d.tun_source, Some("198.18.0.2".parse().unwrap()));
    assert_eq!((d.priority, d.nopreempt), (Some(100), true));
    // keepalived's timing: an advert a second, a peer gone after 3.
    assert_eq!((d.heartbeat_ms, d.dead_after), (Some(1000), Some(3)));
    assert_eq!(d.track_interfaces, ["eth0"]);
    assert_eq!(d.track_scripts, ["/bin/true"]);
    assert_eq!(d.track_script_weight.as_deref(), Some("-30"));
    assert_eq!(d.ha_key_file.as_deref(), Some(Path::new("/etc/uvs/ha.key")));
    let notify = d.notify.as_deref().unwrap();
    assert!(
        notify.contains("/etc/keepalived/state.sh INSTANCE VI_WEB"),
        "{notify}"
    );
    assert!(out.contains("# authentication:"), "{out}");
    // Nothing of the VRRP half is lost here: global_defs is the only warning.
    assert_eq!(err.lines().count(), 1, "{err}");
    warned(&err, "unicast.conf:5:", "global_defs");
}

#[test]
fn multicast_gets_a_warning_naming_the_peers_to_list() {
    let (c, out, err) = imported("multicast.conf");
    let d = director(&c);
    // The HA settings are written commented out until peers are listed,
    // so the output runs a lone director as it is.
    assert!(d.peers.is_empty() && d.priority.is_none(), "{out}");
    assert_eq!(d.interfaces, ["eth0"]);
    assert!(out.contains("# priority = 101\n"), "{out}");
    assert!(out.contains("# track_script_weight = \"-20\"\n"), "{out}");
    assert!(out.contains("# peers = []"), "{out}");
    warned(&err, "multicast.conf:17:", "multicast");
    warned(
        &err,
        "multicast.conf:17:",
        "on eth0 (this one's is 198.18.0.2) in `peers`",
    );
    // uvs runs track scripts each second: the script's interval, fall and
    // rise are what it lacks.
    warned(&err, "multicast.conf:9:", "interval `2`");
    warned(&err, "multicast.conf:9:", "fall `2`");
    // Uncommented with a peer, the settings are the director's.
    let on = out.replace("# peers = []", "peers = [\"198.18.0.3\"]");
    let on: String = on
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(k) if k.contains(" = ") && !k.starts_with("interfaces") => k,
            _ => l,
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    let c = uvs::config::parse(Path::new("on.toml"), on.as_bytes()).unwrap();
    let d = director(&c);
    assert_eq!((d.priority, d.track_scripts.len()), (Some(101), 1));
    let notify = d.notify.as_deref().unwrap();
    for (state, arg) in [
        ("ACTIVE", "master"),
        ("BACKUP", "backup"),
        ("FAULT", "fault"),
    ] {
        assert!(
            notify.contains(&format!("{state}) /etc/keepalived/notify.sh {arg};;")),
            "{notify}"
        );
    }
}

#[test]
fn a_sync_group_is_one_role_with_both_interfaces() {
    let (c, _, err) = imported("sync-group.conf");
    let d = director(&c);
    assert_eq!(d.interfaces, ["eth0", "eth1"]);
    assert_eq!(d.priority, Some(150));
    assert_eq!(d.preempt_delay, Some(Duration::from_secs(10)));
    assert_eq!(d.track_interfaces, ["eth0", "eth1"]);
    let notify = d.notify.as_deref().unwrap();
    assert!(
        notify.contains("ACTIVE) /etc/keepalived/master.sh;;"),
        "{notify}"
    );
    // The gateway VIP is no service's: uvs does not move it.
    warned(
        &err,
        "sync-group.conf:43:",
        "198.18.2.254 is no virtual server's",
    );
    assert!(!err.contains("differs"), "{err}");
}

#[test]
fn a_misc_check_without_misc_dynamic_is_down_on_any_non_zero_exit() {
    let (c, out, err) = imported("misc-check.conf");
    let rs = &c.services[0].real_servers;
    let spec = rs[0].check.as_ref().unwrap();
    assert_eq!(
        spec.kind,
        uvs::control::check::CheckKind::Exec {
            command: "/bin/grep -q OK /nonexistent/uvs-fixture/198.18.0.11.status".into(),
            dynamic: false
        }
    );
    assert!(!out.contains("dynamic"), "{out}");
    assert!(!err.contains("misc_dynamic"), "{err}");
    // keepalived's detection: MISC_CHECK retries none by default; the
    // second server's 2 retries a second apart are carried over.
    assert_eq!((spec.fall, spec.rise, spec.retry), (1, 1, 0));
    let two = rs[1].check.as_ref().unwrap();
    assert_eq!((two.retry, two.retry_delay), (2, Duration::from_secs(1)));
}

/// Instances that differ get one warning naming both and the one used;
/// positive weights keep their priorities; VIPs are checked both ways.
#[test]
fn instances_that_differ_and_keepalived_s_own_rules() {
    let d = std::env::temp_dir().join(format!("uvs-ka-vrrp-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("keepalived.conf");
    std::fs::write(
        &f,
        "global_defs {\n  enable_script_security\n  script_user root\n}\nvrrp_script chk {\n  script \"/bin/true\"\n  weight 10\n}\n\
         vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 1\n  \
         priority 120\n  unicast_peer {\n    198.18.0.3\n  }\n  virtual_ipaddress {\n    198.18.0.100\n  }\n  \
         track_script {\n    chk\n  }\n  track_interface {\n    eth1 weight 5\n  }\n}\n\
         vrrp_instance VI_2 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 2\n  priority 90\n  \
         unicast_peer {\n    198.18.0.3\n  }\n  virtual_ipaddress {\n    198.18.0.101\n  }\n}\n\
         virtual_server 198.18.0.100 80 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  real_server 198.18.0.11 80 {\n  }\n}\n\
         virtual_server 198.18.0.102 80 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  real_server 198.18.0.11 80 {\n  }\n}\n",
    )
    .unwrap();
    let (out, err) = import_valid_vrrp(&f);
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::remove_dir_all(&d).unwrap();
    let c = uvs::config::parse(Path::new("t.toml"), out.as_bytes()).unwrap();
    let s = director(&c);
    let line = |w: &str| text.lines().position(|l| l.contains(w)).unwrap() + 1;
    assert_eq!((line("VI_2"), line("198.18.0.101")), (27, 36));
    // 120 + 10 (the script's) + 5 (eth0's): the same priority while all
    // hold, each failure taking its weight off.
    assert_eq!(s.priority, Some(135));
    assert_eq!(s.track_script_weight.as_deref(), Some("-10"));
    assert!(s.track_interfaces.contains(&"eth1:-5".to_string()), "{out}");
    warned(&err, "keepalived.conf:27:", "`VI_2` differs from `VI_1`");
    warned(&err, "keepalived.conf:27:", "priority 90 (not 120)");
    warned(
        &err,
        "keepalived.conf:36:",
        "198.18.0.101 is no virtual server's",
    );
    warned(
        &err,
        "keepalived.conf:",
        "198.18.0.102 is in no vrrp_instance",
    );
}

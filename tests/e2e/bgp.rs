//! Two directors behind a router running BIRD 2 (issue 31): each
//! director's own BIRD, driven by uvs (`--bgp-socket`), peers with the
//! router over eBGP; the router's BIRD puts one multipath route to the
//! VIP in its kernel (`merge paths`), which spreads flows by their ports
//! (`fib_multipath_hash_policy` 1). The client is `rr1`, behind the
//! router; the real servers answer it directly (DR). Short BGP timers
//! (hold 3 s, keepalive 1 s) keep the test quick.

use crate::support::{Lab, RS1, VIP, count, lab_tool, wait_until};
use std::path::PathBuf;
use std::time::Duration;

const NODES: [&str; 2] = ["dir", "dir2"];
const ADDRS: [&str; 2] = ["198.18.0.2", "198.18.0.3"];
const ROUTER: &str = "198.18.0.1";

/// The router's BIRD: both directors as eBGP neighbours, their routes
/// merged into one multipath kernel route.
fn router_conf() -> String {
    format!(
        "log stderr all;\nrouter id {ROUTER};\nprotocol device {{ }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
         template bgp dirs {{\n  local {ROUTER} as 65000;\n  \
         hold time 3; keepalive time 1; connect retry time 1; connect delay time 1;\n  \
         ipv4 {{ import all; export none; }};\n}}\n\
         protocol bgp d1 from dirs {{ neighbor {} as 65001; }}\n\
         protocol bgp d2 from dirs {{ neighbor {} as 65001; }}\n",
        ADDRS[0], ADDRS[1]
    )
}

/// A director's BIRD: bird.conf as docs/scale-out.md asks (the include
/// and the export filter), one session to the router.
fn director_conf(me: &str, vips: &std::path::Path) -> String {
    let snippet = uvs::control::bgp::conf::operator_snippet(vips);
    format!(
        "log stderr all;\nrouter id {me};\nprotocol device {{ }}\n{snippet}\
         protocol bgp upstream {{\n  local {me} as 65001;\n  neighbor {ROUTER} as 65000;\n  \
         hold time 3; keepalive time 1; connect retry time 1; connect delay time 1;\n  \
         ipv4 {{ import none; export filter uvs_export; }};\n}}\n"
    )
}

/// The config both directors load: mh over both real servers, a quorum
/// of both, each checked over TCP every 0.2 s.
const TABLE: &str = r#"[[service]]
protocol = "tcp"
address = "198.18.0.100:80"
scheduler = "mh"
sched_flags = ["mh-port"]
quorum = 2

  [service.check]
  type = "tcp"
  interval = 0.2
  timeout = 0.2
  rise = 1
  fall = 1

  [[service.real_server]]
  address = "198.18.0.11"

  [[service.real_server]]
  address = "198.18.0.12"
"#;

struct Bgp {
    l: Lab,
    pids: [u32; 2],
    socks: [PathBuf; 2],
}

impl Bgp {
    /// The lab, the router's and directors' BIRDs, both directors up.
    fn up() -> Option<Bgp> {
        let mut l = Lab::up_with(2, &["--routed", "--two-directors"])?;
        l.start_servers(2);
        // rr1 is the client: the VIP on its lo would answer it locally.
        l.sh("rr1", &format!("ip addr del {VIP}/32 dev lo"));
        for n in ["rs1", "rs2", "dir2"] {
            l.sh(n, &format!("ip route add 198.18.1.0/24 via {ROUTER}"));
        }
        l.sh("rt", "sysctl -qw net.ipv4.fib_multipath_hash_policy=1");
        let conf = l.dir.join("rt-bird.conf");
        std::fs::write(&conf, router_conf()).unwrap();
        start_bird(&mut l, "rt", "rt");
        let cfg = l.dir.join("uvs.toml");
        std::fs::write(
            &cfg,
            format!("[director]\ninterfaces = [\"eth0\"]\n{TABLE}"),
        )
        .unwrap();
        let io = Lab::own_path_io();
        let mut pids = [0; 2];
        let mut socks: [PathBuf; 2] = Default::default();
        for (i, node) in NODES.iter().enumerate() {
            let vips = l.dir.join(format!("{node}-vips.conf"));
            let conf = l.dir.join(format!("{node}-bird.conf"));
            std::fs::write(&conf, director_conf(ADDRS[i], &vips)).unwrap();
            // BIRD reads the include at start: uvs writes it later.
            std::fs::write(&vips, "").unwrap();
            let ctl = start_bird(&mut l, node, node);
            socks[i] = l.dir.join(format!("{node}.sock"));
            let args = [
                "director",
                "--config",
                cfg.to_str().unwrap(),
                "--socket",
                socks[i].to_str().unwrap(),
                "--io",
                &io,
                "--announce",
                "routed",
                "--bgp-socket",
                ctl.to_str().unwrap(),
                "--bgp-vips-file",
                vips.to_str().unwrap(),
                "--bgp-drain-delay",
                "2",
            ];
            pids[i] = l.spawn(
                node,
                env!("CARGO_BIN_EXE_uvs"),
                &args,
                &format!("{node}.log"),
            );
        }
        let b = Bgp { l, pids, socks };
        b.wait_paths(&ADDRS, "both directors announce the VIP");
        Some(b)
    }

    /// The router's next hops for the VIP, as its kernel has them.
    fn paths(&self) -> Vec<String> {
        let o = self
            .l
            .exec("rt", "ip", &["route", "show", &format!("{VIP}/32")]);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let words: Vec<&str> = out.split_whitespace().collect();
        let mut hops: Vec<String> = words
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        hops
    }

    #[track_caller]
    fn wait_paths(&self, want: &[&str], what: &str) {
        wait_until(
            Duration::from_secs(12),
            || self.paths() == want,
            || format!("{what}: router has {:?}\n{}", self.paths(), self.logs()),
        );
    }

    fn status(&self, i: usize, name: &str) -> u64 {
        self.l.status_counter(NODES[i], &self.socks[i], name)
    }

    #[track_caller]
    fn wait_status(&self, i: usize, name: &str, want: u64) {
        wait_until(
            Duration::from_secs(3),
            || self.status(i, name) == want,
            || format!("{name} of {} is not {want}\n{}", NODES[i], self.logs()),
        );
    }

    fn uvs(&self, i: usize, args: &[&str]) -> std::process::Output {
        let mut a = args.to_vec();
        a.extend(["--socket", self.socks[i].to_str().unwrap()]);
        self.l.exec(NODES[i], env!("CARGO_BIN_EXE_uvs"), &a)
    }

    /// `count` new connections from the client; every one answered.
    #[track_caller]
    fn all_answered(&self, count_: u32) -> serde_json::Value {
        let target = format!("{VIP}:80");
        let n = count_.to_string();
        let args = ["tcp-names", "--target", &target, "--count", &n];
        let o = self.l.exec("rr1", &lab_tool(), &args);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("client JSON");
        assert_eq!(
            count(&v, "rs1") + count(&v, "rs2"),
            u64::from(count_),
            "{v}\n{}",
            self.logs()
        );
        v
    }

    fn logs(&self) -> String {
        [
            "dir.log",
            "dir2.log",
            "rt-bird.log",
            "dir-bird.log",
            "dir2-bird.log",
        ]
        .iter()
        .map(|f| format!("--- {f}\n{}", self.l.log(f)))
        .collect()
    }
}

/// BIRD in `node` with `NAME-bird.conf`, its socket and pid file in the
/// lab's directory, in the foreground (the lab kills it); its socket.
fn start_bird(l: &mut Lab, node: &str, name: &str) -> PathBuf {
    let conf = l.dir.join(format!("{name}-bird.conf"));
    let ctl = l.dir.join(format!("{name}-bird.ctl"));
    let pid = l.dir.join(format!("{name}-bird.pid"));
    let args = [
        "-f",
        "-c",
        conf.to_str().unwrap(),
        "-s",
        ctl.to_str().unwrap(),
        "-P",
        pid.to_str().unwrap(),
    ];
    l.spawn(node, "bird", &args, &format!("{name}-bird.log"));
    wait_until(
        Duration::from_secs(5),
        || ctl.exists(),
        || l.log(&format!("{name}-bird.log")),
    );
    ctl
}

#[test]
fn directors_announce_through_bird_drain_and_withdraw_before_stopping() {
    let Some(mut b) = Bgp::up() else { return };
    // 1. New connections spread over both directors.
    let before = [b.status(0, "forwarded"), b.status(1, "forwarded")];
    b.all_answered(40);
    for (i, before) in before.into_iter().enumerate() {
        assert!(
            b.status(i, "forwarded") > before,
            "director {i} carried none\n{}",
            b.logs()
        );
        // The speaker is looked at once a second.
        for name in ["bgp_speaker_up", "bgp_established", "bgp_vips_announced"] {
            b.wait_status(i, name, 1);
        }
    }

    // 6. A quorum lost on one director (its checks of rs1 fail there)
    // withdraws its route; regained, announced again.
    let block = format!(
        "nft add table ip bgpt && nft add chain ip bgpt out '{{ type filter hook output priority 0; }}' \
         && nft add rule ip bgpt out ip daddr {RS1} tcp dport 80 drop"
    );
    assert!(b.l.sh("dir", &block).status.success());
    b.wait_paths(&[ADDRS[1]], "a lost quorum withdraws");
    b.wait_status(0, "bgp_vips_withheld", 1);
    b.all_answered(10);
    b.l.sh("dir", "nft delete table ip bgpt");
    b.wait_paths(&ADDRS, "a regained quorum announces");

    // 5. Drain one: its route goes, it reports empty; cancelled, back.
    let o = b.uvs(0, &["drain", "--quiet", "1", "--timeout", "15"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("drained: no packet for a VIP"), "{out}");
    assert_eq!(b.paths(), [ADDRS[1]]);
    assert_eq!(b.status(0, "draining"), 1);
    b.all_answered(10);
    assert!(b.uvs(0, &["drain", "--cancel"]).status.success());
    b.wait_paths(&ADDRS, "a cancelled drain announces again");

    // 2. SIGTERM one: its route is withdrawn while it still forwards
    // (the 2 s drain delay); its long-lived connections go on through
    // the other with the same real server; new ones keep working.
    let before = b.status(0, "forwarded");
    for i in 0..8 {
        let (target, log) = (format!("{VIP}:80"), format!("stick{i}.json"));
        let args = [
            "tcp-stick",
            "--target",
            &target,
            "--messages",
            "40",
            "--interval-ms",
            "100",
            "--timeout-ms",
            "3000",
        ];
        b.l.spawn("rr1", &lab_tool(), &args, &log);
    }
    // Some of them go through dir (the hash of 8 port pairs).
    wait_until(
        Duration::from_secs(3),
        || b.status(0, "forwarded") > before + 8,
        || format!("no long-lived connection through dir\n{}", b.logs()),
    );
    let pid = b.pids[0].to_string();
    assert!(b.l.exec("dir", "kill", &["-TERM", &pid]).status.success());
    b.wait_paths(&[ADDRS[1]], "SIGTERM withdraws first");
    let alive = b.l.exec("dir", "kill", &["-0", &pid]).status.success();
    assert!(
        alive && !b.l.log("dir.log").contains("uvs: stopped"),
        "{}",
        b.logs()
    );
    b.all_answered(10);
    b.l.sticks_on_one_server(8, 40);
    assert!(
        b.l.log("dir.log").contains("routes withdrawn"),
        "{}",
        b.logs()
    );
}

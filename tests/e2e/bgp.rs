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
         hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;\n  \
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
         hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;\n  \
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
    /// Each director's BIRD control socket.
    ctls: [PathBuf; 2],
    /// Starts so far, naming each run's log.
    runs: usize,
    /// Each director's uvs's log, of its latest start.
    uvs_logs: [String; 2],
}

impl Bgp {
    /// The lab, the router's and directors' BIRDs, both directors up.
    fn up() -> Option<Bgp> {
        let mut l = Lab::up_with(2, &["--routed", "--two-directors"])?;
        l.start_servers(2);
        // rr1 is the client: the VIP on its lo would answer it locally.
        // The router hashes a flow by the hash its socket gave the packet
        // (a veth keeps it), which TCP draws again at each retransmission
        // timeout: flows stalled by a crashed director would pick the
        // surviving one's half and all stay there when it comes back. A
        // router on another host hashes the headers, which do not change.
        let client = format!("ip addr del {VIP}/32 dev lo && sysctl -qw net.core.txrehash=0");
        assert!(l.sh("rr1", &client).status.success());
        for n in ["rs1", "rs2", "dir2"] {
            l.sh(n, &format!("ip route add 198.18.1.0/24 via {ROUTER}"));
        }
        l.sh("rt", "sysctl -qw net.ipv4.fib_multipath_hash_policy=1");
        let conf = l.dir.join("rt-bird.conf");
        std::fs::write(&conf, router_conf()).unwrap();
        start_bird(&mut l, "rt", "rt", "rt-bird.log");
        let table = format!("[director]\ninterfaces = [\"eth0\"]\n{TABLE}");
        std::fs::write(l.dir.join("uvs.toml"), table).unwrap();
        let socks = NODES.map(|n| l.dir.join(format!("{n}.sock")));
        let mut b = Bgp {
            l,
            pids: [0; 2],
            socks,
            ctls: Default::default(),
            runs: 0,
            uvs_logs: Default::default(),
        };
        for (i, node) in NODES.iter().enumerate() {
            let vips = b.l.dir.join(format!("{node}-vips.conf"));
            let conf = b.l.dir.join(format!("{node}-bird.conf"));
            std::fs::write(&conf, director_conf(ADDRS[i], &vips)).unwrap();
            // BIRD reads the include at start: uvs writes it later.
            std::fs::write(&vips, "").unwrap();
            b.start_bird(i);
            b.start_uvs(i);
        }
        b.wait_paths(&ADDRS, "both directors announce the VIP");
        Some(b)
    }

    /// Director `i`'s BIRD, in its namespace.
    fn start_bird(&mut self, i: usize) {
        self.runs += 1;
        let log = format!("{}-bird{}.log", NODES[i], self.runs);
        self.ctls[i] = start_bird(&mut self.l, NODES[i], NODES[i], &log);
    }

    /// Director `i`'s uvs, driving its BIRD.
    fn start_uvs(&mut self, i: usize) {
        self.runs += 1;
        let node = NODES[i];
        let cfg = self.l.dir.join("uvs.toml");
        let vips = self.l.dir.join(format!("{node}-vips.conf"));
        let io = Lab::own_path_io();
        let args = [
            "director",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            self.socks[i].to_str().unwrap(),
            "--io",
            &io,
            "--announce",
            "routed",
            "--bgp-socket",
            self.ctls[i].to_str().unwrap(),
            "--bgp-vips-file",
            vips.to_str().unwrap(),
            "--bgp-drain-delay",
            "2",
        ];
        let log = format!("{node}-uvs{}.log", self.runs);
        self.pids[i] = self.l.spawn(node, env!("CARGO_BIN_EXE_uvs"), &args, &log);
        self.uvs_logs[i] = log;
    }

    /// Signals director `i`'s uvs (`-TERM`, `-KILL`).
    fn signal(&self, i: usize, sig: &str) {
        let pid = self.pids[i].to_string();
        assert!(self.l.exec(NODES[i], "kill", &[sig, &pid]).status.success());
    }

    /// `n` long-lived connections from the client, `stick0..n`: `messages`
    /// requests 100 ms apart, each answer awaited up to `timeout_ms`.
    fn sticks(&mut self, n: usize, messages: u32, timeout_ms: u32) {
        let (target, messages, wait) = (
            format!("{VIP}:80"),
            messages.to_string(),
            timeout_ms.to_string(),
        );
        for i in 0..n {
            let args = [
                "tcp-stick",
                "--target",
                &target,
                "--messages",
                &messages,
                "--interval-ms",
                "100",
                "--timeout-ms",
                &wait,
            ];
            self.l
                .spawn("rr1", &lab_tool(), &args, &format!("stick{i}.json"));
        }
    }

    /// Waits until every long-lived connection of the client makes
    /// progress again: none backs off waiting for a retransmission's
    /// answer (`ss -i` shows `backoff`), so each sends on its next tick.
    #[track_caller]
    fn wait_recovered(&self) {
        let stalled = || {
            let o = self.l.exec("rr1", "ss", &["-tin", "dst", VIP]);
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.contains("backoff:").then_some(out)
        };
        wait_until(
            Duration::from_secs(10),
            || stalled().is_none(),
            || format!("connections stalled:\n{}", stalled().unwrap_or_default()),
        );
    }

    /// Director `i`'s connection entries for the VIP's port 80.
    fn conns(&self, i: usize) -> usize {
        let sock = self.socks[i].to_str().unwrap();
        let args = ["--socket", sock, "-Lnc"];
        let o = self.l.exec(NODES[i], env!("CARGO_BIN_EXE_uvsadm"), &args);
        let vip = format!(" {VIP}:80 ");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|r| r.contains(&vip))
            .count()
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

    /// Every log of the lab's processes, in the order they started.
    fn logs(&self) -> String {
        let mut names: Vec<String> = std::fs::read_dir(&self.l.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort_by_key(|n| {
            std::fs::metadata(self.l.dir.join(n))
                .and_then(|m| m.created())
                .ok()
        });
        names
            .iter()
            .map(|f| format!("--- {f}\n{}", self.l.log(f)))
            .collect()
    }
}

/// BIRD in `node` with `NAME-bird.conf`, its socket and pid file in the
/// lab's directory, in the foreground (the lab kills it), logging to
/// `log`; its socket.
fn start_bird(l: &mut Lab, node: &str, name: &str, log: &str) -> PathBuf {
    let conf = l.dir.join(format!("{name}-bird.conf"));
    let ctl = l.dir.join(format!("{name}-bird.ctl"));
    let pid = l.dir.join(format!("{name}-bird.pid"));
    // A killed BIRD leaves its socket behind.
    let _ = std::fs::remove_file(&ctl);
    let args = [
        "-f",
        "-c",
        conf.to_str().unwrap(),
        "-s",
        ctl.to_str().unwrap(),
        "-P",
        pid.to_str().unwrap(),
    ];
    l.spawn(node, "bird", &args, log);
    wait_until(Duration::from_secs(5), || ctl.exists(), || l.log(log));
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
    b.sticks(16, 40, 3000);
    // Some of them go through dir: the hash of 16 port pairs leaves all
    // on one director once in 2^15 runs (8 did once in a CI run).
    wait_until(
        Duration::from_secs(3),
        || b.status(0, "forwarded") > before + 8,
        || format!("no long-lived connection through dir\n{}", b.logs()),
    );
    let pid = b.pids[0].to_string();
    b.signal(0, "-TERM");
    b.wait_paths(&[ADDRS[1]], "SIGTERM withdraws first");
    let alive = b.l.exec("dir", "kill", &["-0", &pid]).status.success();
    assert!(
        alive && !b.l.log(&b.uvs_logs[0]).contains("uvs: stopped"),
        "{}",
        b.logs()
    );
    b.all_answered(10);
    b.l.sticks_on_one_server(16, 40);
    assert!(
        b.l.log(&b.uvs_logs[0]).contains("routes withdrawn"),
        "{}",
        b.logs()
    );
}

/// A director that came back took over about half of the `n` long-lived
/// connections (with two directors; at least one and not nearly all).
/// Its table was empty and only they send meanwhile: each of its entries
/// is a flow ECMP moved to it (in CLOSE, as IPVS enters a flow met
/// mid-way). Then new connections reach it too.
#[track_caller]
fn back_takes_its_share(b: &Bgp, i: usize, n: usize) {
    // Each long-lived connection sends every 100 ms.
    std::thread::sleep(Duration::from_millis(400));
    let moved = b.conns(i);
    println!("{} took {moved} of {n} long-lived connections", NODES[i]);
    let (node, logs) = (NODES[i], b.logs());
    assert!(
        moved >= 1 && moved <= n - 3,
        "{node} took {moved} of {n}\n{logs}"
    );
    b.all_answered(20);
    assert!(b.conns(i) > moved, "no new connection on {node}\n{logs}");
}

#[test]
fn a_killed_director_is_withdrawn_and_one_back_takes_only_its_share() {
    let Some(mut b) = Bgp::up() else { return };
    // Long-lived connections, some through each director; each answer
    // awaited through a crashed host's hold time (3 s).
    let (n, messages) = (16, 110);
    b.sticks(n, messages, 10_000);
    wait_until(
        Duration::from_secs(3),
        || b.conns(0) > 0 && b.conns(1) > 0,
        || format!("long-lived connections not on both\n{}", b.logs()),
    );

    // 3. dir's uvs killed (-9), its BIRD left running with the VIP still
    // in the file: the route goes with uvs's tether device, at once (the
    // BGP session stays up). Its flows go on through dir2.
    b.signal(0, "-KILL");
    b.wait_paths(&[ADDRS[1]], "a killed uvs's routes go with it");
    b.all_answered(10);
    b.wait_recovered();

    // 4. Back: its route returns; it takes about half of the long-lived
    // connections (with the same real servers: checked at the end), and
    // new connections reach it.
    b.start_uvs(0);
    b.wait_paths(&ADDRS, "a restarted uvs announces again");
    back_takes_its_share(&b, 0, n);

    // 3. A crashed host: dir2 falls silent (a firewall drops all its
    // packets, so no FIN or RST tells the router), its uvs and BIRD
    // killed (-9); the router withdraws its route at the hold time (3 s),
    // and dir carries everything.
    let silent = "nft add table inet crash && \
                  nft add chain inet crash in '{ type filter hook input priority -300; policy drop; }' && \
                  nft add chain inet crash out '{ type filter hook output priority -300; policy drop; }'";
    assert!(b.l.sh("dir2", silent).status.success());
    let pidfile = b.l.dir.join("dir2-bird.pid");
    let kill = format!("kill -KILL $(cat {})", pidfile.display());
    assert!(b.l.sh("dir2", &kill).status.success());
    b.signal(1, "-KILL");
    let t = std::time::Instant::now();
    b.wait_paths(&[ADDRS[0]], "a crashed host's route goes at the hold time");
    println!(
        "the router withdrew the crashed host's route in {:?}",
        t.elapsed()
    );
    b.all_answered(10);
    b.wait_recovered();

    // 4. That host back, BIRD then uvs.
    assert!(
        b.l.sh("dir2", "nft delete table inet crash")
            .status
            .success()
    );
    b.start_bird(1);
    b.start_uvs(1);
    b.wait_paths(&ADDRS, "a restarted host announces again");
    back_takes_its_share(&b, 1, n);
    // Every long-lived connection completed on one real server.
    b.l.sticks_on_one_server(n, u64::from(messages));
}

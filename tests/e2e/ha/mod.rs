//! End-to-end: two directors on one switch, one active by priority over
//! authenticated unicast heartbeats. Failover on a crash, no two holders
//! under one-way heartbeat loss, forged heartbeats refused and counted.
//! Here the pair of directors the tests share; the tests by topic below.

mod failover;
mod failover6;
mod imported;
mod messages;
mod persist;
mod returning;
mod split;
mod transport6;
mod witness;

use crate::support::{Lab, RS1, RS2, VIP, count, wait_until};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) struct Pair {
    pub(crate) l: Lab,
    pids: [u32; 2],
    socks: [PathBuf; 2],
    args: [Vec<String>; 2],
    starts: u32,
}

fn ha(l: &Lab, node: &str, sock: &std::path::Path) -> serde_json::Value {
    let o = l.exec(
        node,
        env!("CARGO_BIN_EXE_uvs"),
        &["ha", "--json", "--socket", sock.to_str().unwrap()],
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn role(l: &Lab, node: &str, sock: &std::path::Path) -> String {
    ha(l, node, sock)["role"]
        .as_str()
        .unwrap_or("gone")
        .to_string()
}

const NODES: [&str; 2] = ["dir", "dir2"];

impl Pair {
    fn ha(&self, i: usize) -> serde_json::Value {
        ha(&self.l, NODES[i], &self.socks[i])
    }

    fn role(&self, i: usize) -> String {
        role(&self.l, NODES[i], &self.socks[i])
    }

    fn sync(&self, i: usize, name: &str) -> u64 {
        self.ha(i)["sync"]["counters"][name].as_u64().unwrap_or(0)
    }

    /// uvsadm against director `i`, which must succeed; its output.
    #[track_caller]
    pub(crate) fn adm(&self, i: usize, line: &str) -> String {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .arg("--socket")
            .arg(&self.socks[i])
            .args(line.split_whitespace())
            .output()
            .expect("uvsadm");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "uvsadm {line}: {err}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A counter of `uvs status` on director `i`.
    pub(crate) fn counter(&self, i: usize, name: &str) -> u64 {
        self.l.status_counter(NODES[i], &self.socks[i], name)
    }

    /// B has at least `n` connections and its digest agreed with A's.
    fn b_synced(&self, n: u64) -> bool {
        self.counter(1, "conns") >= n
            && self.ha(1)["sync"]["digest"]
                .as_str()
                .unwrap_or("")
                .starts_with("ok")
    }

    /// Waits (10 s at most) until B has `n` connections from the stream
    /// and the same digest as A.
    pub(crate) fn wait_b_synced(&self, n: u64) {
        wait_until(
            Duration::from_secs(10),
            || self.b_synced(n),
            || format!("{}\n{}", self.ha(1), self.logs()),
        );
    }

    /// B's digest agrees with A's at two more digests, and never differed.
    fn digests_agree_twice_more(&self) {
        let ok = self.sync(1, "digests_ok");
        wait_until(
            Duration::from_secs(5),
            || self.sync(1, "digests_ok") >= ok + 2,
            || format!("{}\n{}", self.ha(1), self.logs()),
        );
        assert_eq!(
            self.sync(1, "digest_mismatches"),
            0,
            "{}\n{}",
            self.ha(1),
            self.logs()
        );
    }

    /// Kills A (-9) and waits until B holds the VIPs; how long that took.
    fn fail_over(&self) -> Duration {
        self.kill(0);
        let t0 = Instant::now();
        wait_until(
            Duration::from_secs(5),
            || self.role(1) == "active",
            || self.logs(),
        );
        t0.elapsed()
    }

    /// Kills A (-9) and waits until B holds the VIPs, which must take
    /// less than 2.5 s; prints how long it took after `what`.
    #[track_caller]
    pub(crate) fn fail_over_quickly(&self, what: &str) {
        let gap = self.fail_over();
        println!(
            "{what}: the backup holds the VIPs {} ms after the kill",
            gap.as_millis()
        );
        assert!(gap < Duration::from_millis(2500));
    }

    /// `n` new connections through the VIP, every one answered by a real
    /// server.
    #[track_caller]
    pub(crate) fn all_answered(&self, n: u32) {
        let t = self.l.tcp_names(n);
        assert_eq!(count(&t, "rs1") + count(&t, "rs2"), u64::from(n), "{t}");
    }

    /// Starts director `i` (again); its log is `a<N>.log` or `b<N>.log`.
    fn start(&mut self, i: usize) -> String {
        self.starts += 1;
        let log = format!("{}{}.log", ["a", "b"][i], self.starts);
        let args: Vec<&str> = self.args[i].iter().map(String::as_str).collect();
        self.pids[i] = self
            .l
            .spawn(NODES[i], env!("CARGO_BIN_EXE_uvs"), &args, &log);
        log
    }

    fn kill(&self, i: usize) {
        std::process::Command::new("kill")
            .args(["-KILL", &self.pids[i].to_string()])
            .status()
            .unwrap();
    }

    /// Drops what `rules` match on the switch (a bridge table of that
    /// name with one forward chain): heartbeats or sync messages lost.
    fn switch_drops(&self, table: &str, rules: &[&str]) {
        self.l.switch_table(table, rules);
    }

    /// Every log so far, for a failure's message.
    pub(crate) fn logs(&self) -> String {
        (1..=self.starts)
            .flat_map(|n| ["a", "b"].map(|d| format!("{d}{n}.log")))
            .chain(["upload.log".to_string()])
            .map(|f| format!("--- {f}\n{}", self.l.log(&f)))
            .collect()
    }
}

/// Directors A (198.18.0.2, priority 200) and B (198.18.0.3, 100) with
/// the same DR service, A active; `extra` adds flags to each.
pub(crate) fn pair_with(extra: [&[&str]; 2]) -> Option<Pair> {
    pair_after(extra, &|_| {})
}

/// As `pair_with`, with `before` run on the lab before the directors start.
fn pair_after(extra: [&[&str]; 2], before: &dyn Fn(&Lab)) -> Option<Pair> {
    pair_in(&[], extra, &mut |l| before(l))
}

/// As `pair_after`, in a lab with these lab.sh options besides
/// `--two-directors`.
fn pair_in(lab: &[&str], extra: [&[&str]; 2], before: &mut dyn FnMut(&mut Lab)) -> Option<Pair> {
    pair_config(lab, extra, before, &tcp_head(""))
}

/// The config file's head for the pair's TCP service on VIP:80, rr,
/// with `service` (lines of its table, `persistence_timeout = 60`) added.
fn tcp_head(service: &str) -> String {
    format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n{service}"
    )
}

/// As `pair_in`, the config file `head` (marks, and the service table up
/// to its real servers) followed by the two real servers.
fn pair_config(
    lab: &[&str],
    extra: [&[&str]; 2],
    before: &mut dyn FnMut(&mut Lab),
    head: &str,
) -> Option<Pair> {
    pair_serving(lab, extra, before, head, [RS1, RS2])
}

/// As `pair_config`, with real servers `rs` (the IPv6 ones).
fn pair_serving(
    lab: &[&str],
    extra: [&[&str]; 2],
    before: &mut dyn FnMut(&mut Lab),
    head: &str,
    [rs1, rs2]: [&str; 2],
) -> Option<Pair> {
    let table = format!(
        "{head}[[service.real_server]]\naddress = \"{rs1}\"\n[[service.real_server]]\naddress = \"{rs2}\"\n"
    );
    pair_of(lab, extra, before, &table, ["198.18.0.3", "198.18.0.2"])
}

/// The pair with the config file `table`, A's peer `peers[0]` (B's
/// address) and B's `peers[1]` (A's), of the family the HA transport
/// runs over.
fn pair_of(
    lab: &[&str],
    extra: [&[&str]; 2],
    before: &mut dyn FnMut(&mut Lab),
    table: &str,
    peers: [&str; 2],
) -> Option<Pair> {
    let mut opts = vec!["--two-directors"];
    opts.extend_from_slice(lab);
    let mut l = Lab::up_with(2, &opts)?;
    l.start_servers(2);
    let key = l.ha_key();
    before(&mut l);
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, table).unwrap();
    let socks = [l.dir.join("a.sock"), l.dir.join("b.sock")];
    let mut args: [Vec<String>; 2] = Default::default();
    for (i, (peer, prio)) in peers.into_iter().zip(["200", "100"]).enumerate() {
        let mut a: Vec<String> = [
            "director",
            "-i",
            "eth0",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            socks[i].to_str().unwrap(),
            "--peer",
            peer,
            "--priority",
            prio,
            "--ha-key-file",
            key.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra[i].iter().map(|s| s.to_string()));
        args[i] = a;
    }
    let mut p = Pair {
        l,
        pids: [0, 0],
        socks,
        args,
        starts: 0,
    };
    p.start(0);
    p.starts -= 1;
    p.start(1);
    wait_until(
        Duration::from_secs(10),
        || p.role(0) == "active" && p.role(1) == "backup",
        || p.logs(),
    );
    Some(p)
}

fn pair() -> Option<Pair> {
    pair_with([&[], &[]])
}

/// Long-lived connections through the VIP: `n` of them, `messages`
/// requests each 100 ms apart, in the background (`stick<i>.log`).
pub(crate) fn sticks(p: &mut Pair, n: usize, messages: u32) {
    sticks_to(p, &format!("{VIP}:80"), n, messages);
}

/// As `sticks`, to `target`.
fn sticks_to(p: &mut Pair, target: &str, n: usize, messages: u32) {
    for i in 0..n {
        p.l.stick_bg_to(target, messages, 100, 3000, &format!("stick{i}.log"));
    }
}

/// Every stick connection answered all its messages, without an error
/// (a reset, a timeout).
pub(crate) fn sticks_done(p: &mut Pair, n: usize, messages: u64) {
    for i in 0..n {
        let log = format!("stick{i}.log");
        let s = p.l.wait_child_logs(&log, Duration::from_secs(40));
        assert!(s["error"].is_null(), "{log}: {s}\n{}", p.logs());
        let answered: u64 = s["counts"]
            .as_object()
            .map_or(0, |c| c.values().filter_map(|v| v.as_u64()).sum());
        assert_eq!(answered, messages, "{log}: {s}");
    }
}

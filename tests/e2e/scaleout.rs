//! End-to-end: two directors behind a router's ECMP route for the VIP,
//! both active with `--announce routed` (issue 31's test 7: the static
//! multipath route stands for what BGP would install). The router
//! (198.18.0.1) has `VIP/32 nexthop via 198.18.0.2 nexthop via
//! 198.18.0.3` with the L4 hash policy; the client sends the VIP's
//! traffic through it (its route to the VIP is via the router, redirects
//! off on both), the real servers answer it directly (DR). Neither
//! director answers ARP for the VIP. New flows spread over both; a
//! director's next hop removed and the director stopped, its long-lived
//! flows continue on the other with the same real server (mh and sh
//! derive it from the flow: no sync); back, the flows that return to it
//! keep their server too.

use crate::support::{Lab, VIP, count, wait_until};
use std::path::PathBuf;
use std::time::Duration;

const NODES: [&str; 2] = ["dir", "dir2"];
const ADDRS: [&str; 2] = ["198.18.0.2", "198.18.0.3"];

/// TCP VIP:80 by mh and UDP VIP:53 by sh, each hashing the client's port
/// too, so a client's flows spread over both real servers.
fn config() -> String {
    let mut c = String::new();
    for (proto, port, sched) in [("tcp", 80, "mh"), ("udp", 53, "sh")] {
        c += &format!(
            "[[service]]\nprotocol = \"{proto}\"\naddress = \"{VIP}:{port}\"\n\
             scheduler = \"{sched}\"\nsched_flags = [\"{sched}-port\"]\n"
        );
        for rs in ["198.18.0.11", "198.18.0.12"] {
            c += &format!("[[service.real_server]]\naddress = \"{rs}\"\n");
        }
    }
    c
}

struct Fleet {
    l: Lab,
    pids: [u32; 2],
    socks: [PathBuf; 2],
    starts: usize,
}

impl Fleet {
    /// Starts director `i` with the shared config file and waits until
    /// its table is loaded.
    fn start(&mut self, i: usize) {
        self.starts += 1;
        let log = format!("{}{}.log", NODES[i], self.starts);
        let (cfg, sock) = (self.l.dir.join("uvs.toml"), self.socks[i].clone());
        let args = [
            "director",
            "-i",
            "eth0",
            "--announce",
            "routed",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ];
        self.pids[i] = self
            .l
            .spawn(NODES[i], env!("CARGO_BIN_EXE_uvs"), &args, &log);
        wait_until(
            Duration::from_secs(10),
            || self.l.log(&log).contains("uvs: connection table") && self.conns(i, "UDP").is_some(),
            || self.l.log(&log),
        );
    }

    /// Stops director `i` as a service manager would (SIGTERM).
    fn stop(&self, i: usize) {
        let pid = self.pids[i].to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        wait_until(
            Duration::from_secs(5),
            // Its /proc entry stays (a zombie) until the lab reaps it.
            || !std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| d.count() > 0),
            || format!("director {} did not stop", NODES[i]),
        );
    }

    /// The Conns of director `i`'s `proto` service (`-Ln --stats`).
    fn conns(&self, i: usize, proto: &str) -> Option<u64> {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_uvsadm"))
            .arg("--socket")
            .arg(&self.socks[i])
            .args(["-Ln", "--stats", "--exact"])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&o.stdout);
        let row = s.lines().find(|x| x.starts_with(proto))?;
        row.split_whitespace().nth(2)?.parse().ok()
    }

    /// The router's route to the VIP: through these directors.
    fn route_via(&self, dirs: &[usize]) {
        let hops: String = dirs
            .iter()
            .map(|i| format!(" nexthop via {}", ADDRS[*i]))
            .collect();
        let o = self.l.sh("rt", &format!("ip route replace {VIP}/32{hops}"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .flat_map(|n| NODES.map(|d| format!("{d}{n}.log")))
            .map(|f| format!("--- {f}\n{}", self.l.log(&f)))
            .collect()
    }
}

fn fleet() -> Option<Fleet> {
    let mut l = Lab::up_with(2, &["--two-directors", "--routed"])?;
    l.start_servers(2);
    std::fs::write(l.dir.join("uvs.toml"), config()).unwrap();
    let socks = [l.dir.join("dir.sock"), l.dir.join("dir2.sock")];
    let mut f = Fleet {
        l,
        pids: [0; 2],
        socks,
        starts: 0,
    };
    f.start(0);
    // The second is not refused: the first answers no ARP for the VIP,
    // so address conflict detection finds nobody holding it.
    f.start(1);
    // Asked on the link, nobody answers for the VIP.
    let o = f.l.sh(
        "cl",
        &format!("ip route add {VIP}/32 dev eth0 && ping -c 1 -W 1 {VIP}; ip neigh show {VIP}"),
    );
    let neigh = String::from_utf8_lossy(&o.stdout);
    assert!(!neigh.contains("lladdr"), "someone answered ARP: {neigh}");
    for (node, sock) in NODES.iter().zip(&f.socks) {
        let replies = f.l.status_counter(node, sock, "arp_replies");
        assert_eq!(replies, 0, "{node} answered ARP");
    }
    let routes = "sysctl -qw net.ipv4.fib_multipath_hash_policy=1 \
                  net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0";
    assert!(f.l.sh("rt", routes).status.success());
    f.route_via(&[0, 1]);
    let client = format!(
        "sysctl -qw net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.eth0.accept_redirects=0 \
         && ip route replace {VIP}/32 via 198.18.0.1"
    );
    assert!(f.l.sh("cl", &client).status.success());
    println!("director pids {:?}", f.pids);
    Some(f)
}

/// `n` new TCP connections and `n` UDP flows, every one answered; the
/// UDP answers by server name.
fn all_answered(f: &Fleet, n: u32, sport_base: u16) -> serde_json::Value {
    let t = f.l.tcp_names(n);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), u64::from(n), "{t}");
    let u = f.l.udp_names(n, sport_base);
    assert_eq!(count(&u, "rs1") + count(&u, "rs2"), u64::from(n), "{u}");
    u
}

#[test]
fn directors_behind_ecmp_share_flows_and_keep_them_when_one_leaves_and_returns() {
    let Some(mut f) = fleet() else { return };
    // (a) New connections spread over both directors.
    let udp = all_answered(&f, 40, 30000);
    for (i, node) in NODES.iter().enumerate() {
        for proto in ["TCP", "UDP"] {
            let n = f.conns(i, proto).unwrap_or(0);
            assert!(n > 0, "{node} carried no {proto} flow\n{}", f.logs());
        }
    }
    assert!(
        f.l.sh("rt", &format!("ip neigh show {VIP}"))
            .stdout
            .is_empty()
    );

    // (b) Long-lived connections, some through each director.
    let (sticks, messages) = (12, 50);
    let before = f.conns(1, "TCP").unwrap_or(0);
    for i in 0..sticks {
        f.l.stick_bg_waiting(messages, 100, 3000, &format!("stick{i}.json"));
    }
    wait_until(
        Duration::from_secs(5),
        || f.conns(1, "TCP").unwrap_or(0) > before,
        || format!("no long-lived connection through dir2\n{}", f.logs()),
    );
    std::thread::sleep(Duration::from_millis(500));
    // Its route withdrawn, then the director stopped.
    f.route_via(&[0]);
    f.stop(1);
    // New flows keep working, and the same UDP client ports meet the
    // same servers through dir alone.
    let alone = all_answered(&f, 40, 30000);
    assert_eq!(udp["counts"], alone["counts"], "{}", f.logs());
    std::thread::sleep(Duration::from_millis(1000));

    // (c) Back: the flows that return to dir2 keep their server.
    f.start(1);
    f.route_via(&[0, 1]);
    all_answered(&f, 40, 31000);
    wait_until(
        Duration::from_secs(5),
        || f.conns(1, "TCP").unwrap_or(0) > 0,
        || format!("no new connection through the returned dir2\n{}", f.logs()),
    );
    f.l.sticks_on_one_server(sticks, u64::from(messages));
}

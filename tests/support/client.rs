//! The lab's clients (`uvs-lab` client modes in the client namespace)
//! and their JSON results.

use super::{Lab, lab_tool};
use std::time::{Duration, Instant};

impl Lab {
    /// A `uvs-lab` client mode in the client namespace; its JSON result.
    pub fn client(&self, args: &[&str]) -> serde_json::Value {
        let o = self.exec("cl", &lab_tool(), args);
        assert!(
            o.status.success(),
            "client {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("client JSON")
    }

    /// [`Lab::client`] with its arguments in one line, split at spaces.
    pub fn client_line(&self, line: &str) -> serde_json::Value {
        self.client(&line.split_whitespace().collect::<Vec<_>>())
    }

    pub fn client_bg(&mut self, args: &[&str], log: &str) {
        self.spawn("cl", &lab_tool(), args, log);
    }

    /// `count` TCP connections to the VIP's port 80, each asking the server's name.
    pub fn tcp_names(&self, count: u32) -> serde_json::Value {
        let target = self.fam.vip_at(80);
        self.client(&[
            "tcp-names",
            "--target",
            &target,
            "--count",
            &count.to_string(),
        ])
    }

    /// `count` UDP datagrams to the VIP's port 53 from consecutive source ports
    /// starting at `sport_base` (each its own connection).
    pub fn udp_names(&self, count: u32, sport_base: u16) -> serde_json::Value {
        let target = self.fam.vip_at(53);
        self.client(&[
            "udp-names",
            "--target",
            &target,
            "--count",
            &count.to_string(),
            "--sport-base",
            &sport_base.to_string(),
        ])
    }

    /// A TCP upload of `bytes` to the VIP's port 80; the result says whether it
    /// arrived intact and at which server.
    pub fn upload(&self, bytes: u32) -> serde_json::Value {
        let target = self.fam.vip_at(80);
        self.client(&["upload", "--target", &target, "--bytes", &bytes.to_string()])
    }

    /// One UDP flow of 2000 datagrams to the VIP's port 53, for an offload: handed
    /// over after its second datagram. A pause after the second gives uvs
    /// time to write the program's map before the rest; without it a
    /// burst can sit whole in the socket's ring before uvs has seen the
    /// second (a loaded CI machine did).
    /// Returns how many datagrams the client sent.
    pub fn udp_flow_for_offload(&self) -> u64 {
        let v = self.client_line(&format!(
            "udp-blast --target {} --count 2000 --pause-after 2 --pause-ms 300",
            self.fam.vip_at(53)
        ));
        v["sent"].as_u64().unwrap()
    }

    /// One long-lived TCP connection to the VIP's port 80 in the background:
    /// `messages` requests, `interval_ms` apart; its JSON goes to `log`.
    pub fn stick_bg(&mut self, messages: u32, interval_ms: u32, log: &str) {
        self.stick_bg_waiting(messages, interval_ms, 3000, log);
    }

    /// As `stick_bg`, waiting up to `timeout_ms` for each answer (through
    /// a failover's stall).
    pub fn stick_bg_waiting(
        &mut self,
        messages: u32,
        interval_ms: u32,
        timeout_ms: u32,
        log: &str,
    ) {
        let target = self.fam.vip_at(80);
        self.stick_bg_to(&target, messages, interval_ms, timeout_ms, log);
    }

    /// As `stick_bg_waiting`, to `target` (`[VIP6]:80`).
    pub fn stick_bg_to(
        &mut self,
        target: &str,
        messages: u32,
        interval_ms: u32,
        timeout_ms: u32,
        log: &str,
    ) {
        let (n, ms, wait) = (
            messages.to_string(),
            interval_ms.to_string(),
            timeout_ms.to_string(),
        );
        let args = [
            "tcp-stick",
            "--target",
            target,
            "--messages",
            &n,
            "--interval-ms",
            &ms,
            "--timeout-ms",
            &wait,
        ];
        self.client_bg(&args, log);
    }

    /// The MAC the client's kernel has for neighbour `addr` (an IPv6
    /// VIP: whoever last advertised it), if it has an entry with one.
    pub fn client_neighbour(&self, addr: &str) -> Option<String> {
        let o = self.exec("cl", "ip", &["-6", "neigh", "show", addr, "dev", "eth0"]);
        let out = String::from_utf8_lossy(&o.stdout);
        let mut words = out.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }

    /// A `stick_bg` connection's result once it is done: it must have
    /// ended without an error; how many of its messages were answered.
    pub fn stick_answered(&mut self, log: &str) -> u64 {
        let s = self.wait_child_logs(log, Duration::from_secs(30));
        assert!(s["error"].is_null(), "{log}: {s}");
        s["counts"]
            .as_object()
            .map_or(0, |c| c.values().filter_map(|v| v.as_u64()).sum())
    }

    /// Every `stick<i>.json` connection, `0..n`, ended without an error
    /// and had all its `messages` answered by one real server.
    pub fn sticks_on_one_server(&mut self, n: usize, messages: u64) {
        for i in 0..n {
            let s = self.wait_child_logs(&format!("stick{i}.json"), Duration::from_secs(30));
            assert!(s["error"].is_null(), "connection {i}: {s}");
            let counts = s["counts"].as_object().unwrap();
            assert_eq!(counts.len(), 1, "connection {i} changed server: {s}");
            assert_eq!(
                counts.values().next().unwrap().as_u64(),
                Some(messages),
                "connection {i}: {s}"
            );
        }
    }

    pub fn wait_child_logs(&mut self, log: &str, timeout: Duration) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let s = self.log(log);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(s.trim()) {
                return v;
            }
            if t.elapsed() > timeout {
                panic!("no result in {log}: {s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Counter values from `nstat` in a node (absolute, history untouched).
    pub fn nstat(&self, node: &str) -> std::collections::HashMap<String, u64> {
        let o = self.exec(node, "nstat", &["-asz"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect()
    }
}

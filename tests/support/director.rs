//! The director in the lab: started (or refused), driven with uvsadm,
//! and its counters read back.

use super::Lab;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

impl Lab {
    /// A lab of `n` real servers, each serving, and the director started.
    pub fn up_serving(n: usize) -> Option<Lab> {
        let mut l = Lab::up(n)?;
        l.start_servers(n);
        l.start_director();
        Some(l)
    }

    /// A lab with two real servers serving, the director started with
    /// `args` (as `start_director_with`) and the standard DR services,
    /// round robin (`dr_services`).
    pub fn up_dr(args: &[&str]) -> Option<Lab> {
        let mut l = Lab::up(2)?;
        l.start_servers(2);
        l.start_director_with(args);
        l.dr_services("rr", 1, 1);
        Some(l)
    }

    /// The backend on which uvs sees every frame itself: the suite's
    /// (UVS_IO), or `packet` where the suite runs the default (whose tc
    /// program forwards and schedules flows without uvs).
    pub fn own_path_io() -> String {
        match std::env::var("UVS_IO") {
            Ok(v) if !v.is_empty() && v != "auto" => v,
            _ => "packet".to_string(),
        }
    }

    /// Starts `uvs director` in the director namespace and waits for its
    /// control socket.
    pub fn start_director(&mut self) {
        self.start_director_on(&["eth0"]);
    }

    /// As `start_director`, capturing on these interfaces.
    pub fn start_director_on(&mut self, ifaces: &[&str]) {
        let mut args = Vec::new();
        for i in ifaces {
            args.extend(["--interface", *i]);
        }
        self.start_director_with(&args);
    }

    /// As `start_director`, with these arguments besides `--socket`; the
    /// director's pid.
    pub fn start_director_with(&mut self, extra: &[&str]) -> u32 {
        self.start_director_as(&[], extra)
    }

    /// As `start_director_with`, through `wrapper` (a program and its
    /// arguments that exec the director: `setpriv …`, `env …`).
    pub fn start_director_as(&mut self, wrapper: &[&str], extra: &[&str]) -> u32 {
        let sock = self.socket();
        let mut args = wrapper.to_vec();
        args.extend([env!("CARGO_BIN_EXE_uvs"), "director", "--socket"]);
        args.push(sock.to_str().unwrap());
        args.extend_from_slice(extra);
        let pid = self.spawn("dir", args[0], &args[1..], "director.log");
        let t = Instant::now();
        // The socket is bound first; the start ends with the log lines
        // on the socket and the connection table (after the packet I/O
        // is set up).
        while !sock.exists() || !self.log("director.log").contains("uvs: connection table") {
            if t.elapsed() > Duration::from_secs(10) {
                panic!("director did not start: {}", self.log("director.log"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // A suite run for one backend (UVS_IO) must be on that backend.
        let log = self.log("director.log");
        let want = match std::env::var("UVS_IO").as_deref() {
            Ok("packet") => Some("packet I/O: AF_PACKET, batched"),
            Ok("packet-ring") => Some("TPACKET_V3 receive ring"),
            _ => None,
        };
        if let Some(w) = want.filter(|_| !extra.contains(&"--io")) {
            assert!(log.contains(w), "UVS_IO asks for {w}: {log}");
        }
        // Also wait until the servers listen.
        std::thread::sleep(Duration::from_millis(200));
        pid
    }

    /// `uvs director` started in the director's namespace with these
    /// arguments (`--socket` at `socket`), for a start that must be
    /// refused: it returns once the process has ended.
    pub fn director_once(&self, args: &[&str], socket: &Path) -> Output {
        let mut a = vec!["director"];
        a.extend_from_slice(args);
        a.extend(["--socket", socket.to_str().unwrap()]);
        self.exec("dir", env!("CARGO_BIN_EXE_uvs"), &a)
    }

    /// Runs uvsadm against this lab's daemon (from the host namespace, as an
    /// operator would: only the socket path matters).
    pub fn uvsadm(&self, args: &[&str]) -> Output {
        self.uvsadm_stdin(args, None)
    }

    pub fn uvsadm_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut c = Command::new(env!("CARGO_BIN_EXE_uvsadm"));
        c.arg("--socket").arg(self.socket()).args(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("uvsadm");
        if let Some(data) = stdin {
            child.stdin.as_mut().unwrap().write_all(data).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("uvsadm output")
    }

    /// `uvsadm -R` of `rules` (an `-S` dump), which must be taken.
    pub fn restore(&self, rules: &str) {
        let o = self.uvsadm_stdin(&["-R"], Some(rules.as_bytes()));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `uvsadm -S -n`, then `-C` and `-R` of what it saved: the table as
    /// `list` shows it (`-Ln`, `-S -n`) must come back the same. Returns
    /// the saved rules.
    pub fn save_round_trip(&self, list: &str) -> String {
        let before = self.adm(list);
        let saved = self.adm("-S -n");
        self.clear_and_restore(&saved);
        assert_eq!(self.adm(list), before, "after -C and -R of:\n{saved}");
        saved
    }

    /// `uvsadm -C`, then [`Lab::restore`].
    pub fn clear_and_restore(&self, rules: &str) {
        self.adm("-C");
        self.restore(rules);
    }

    /// uvsadm that must succeed; returns stdout.
    pub fn adm(&self, line: &str) -> String {
        let args: Vec<&str> = line.split_whitespace().collect();
        let o = self.uvsadm(&args);
        assert!(
            o.status.success(),
            "uvsadm {line}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `uvs health --json`: every real server's row.
    pub fn health_json(&self) -> serde_json::Value {
        let o = self.uvs_health(&["--json"]);
        serde_json::from_slice(&o).expect("health JSON")
    }

    /// `uvs health --json`'s row of `server` (`ADDR:PORT`), or null.
    pub fn health_row(&self, server: &str) -> serde_json::Value {
        self.health_json()
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["server"] == server)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `uvs health` shows `server` in `state`: its row and
    /// how long that took.
    #[track_caller]
    pub fn wait_health_state(
        &self,
        server: &str,
        state: &str,
        timeout: std::time::Duration,
    ) -> (serde_json::Value, std::time::Duration) {
        let t = std::time::Instant::now();
        loop {
            let r = self.health_row(server);
            if r["state"] == state {
                return (r, t.elapsed());
            }
            assert!(
                t.elapsed() < timeout,
                "{server} never {state}: {r}\n{}",
                self.log("director.log")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `uvs health`'s table.
    pub fn health_text(&self) -> String {
        String::from_utf8(self.uvs_health(&[])).unwrap()
    }

    fn uvs_health(&self, flags: &[&str]) -> Vec<u8> {
        let socket = self.socket();
        let mut args = vec!["health", "--socket", socket.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = self.exec("dir", env!("CARGO_BIN_EXE_uvs"), &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    }

    /// The standard DR setup: TCP 80 and UDP 53, two real servers.
    pub fn dr_services(&self, sched: &str, w1: u32, w2: u32) {
        for (o, port) in [("-t", 80), ("-u", 53)] {
            let (vip, f) = (self.fam.vip_at(port), self.fam);
            self.adm(&format!("-A {o} {vip} -s {sched}"));
            self.adm(&format!("-a {o} {vip} -r {} -g -w {w1}", f.rs(1)));
            self.adm(&format!("-a {o} {vip} -r {} -g -w {w2}", f.rs(2)));
        }
    }

    /// The input packets of the (first) TCP service, from `--stats
    /// --exact`.
    pub fn tcp_inpkts(&self) -> u64 {
        self.service_stats("TCP")[1]
    }

    /// The counters of the (first) `proto` service (`TCP`, `UDP`) in
    /// `-Ln --stats --exact`: Conns, InPkts, OutPkts, InBytes, OutBytes.
    pub fn service_stats(&self, proto: &str) -> Vec<u64> {
        let stats = self.adm("-Ln --stats --exact");
        let row = stats
            .lines()
            .find(|x| x.split_whitespace().next() == Some(proto))
            .unwrap_or_else(|| panic!("no {proto} service: {stats}"));
        row.split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect()
    }

    /// One of the data plane's counters, as `uvs status` prints them.
    pub fn dp_counter(&self, name: &str) -> u64 {
        self.status_counter("dir", &self.socket(), name)
    }

    /// Waits (5 s at most) until data-plane counter `name` reads `want`.
    pub fn wait_counter(&self, name: &str, want: u64) {
        super::wait_until(
            Duration::from_secs(5),
            || self.dp_counter(name) == want,
            || format!("{name} {} of {want}", self.dp_counter(name)),
        );
    }

    /// A counter the data plane publishes once a second (`xdp_rx`,
    /// `rx_socket_drops`), read after that second has passed.
    pub fn dp_counter_settled(&self, name: &str) -> u64 {
        std::thread::sleep(Duration::from_millis(1200));
        self.dp_counter(name)
    }

    /// A counter of `uvs status` for the director in `node` on `socket`.
    pub fn status_counter(&self, node: &str, socket: &Path, name: &str) -> u64 {
        let o = self.exec(
            node,
            env!("CARGO_BIN_EXE_uvs"),
            &["status", "--socket", socket.to_str().unwrap()],
        );
        let s = String::from_utf8_lossy(&o.stdout);
        s.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(char::is_whitespace)?;
                (k == name).then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no counter {name} in `uvs status`: {s}"))
    }
}

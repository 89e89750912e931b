//! The end-to-end harness: builds a testbed lab (testbed/lab.sh), starts
//! real servers, the director and clients inside its namespaces, and tears
//! everything down on drop, also when a test fails.
#![allow(dead_code)]

pub mod rig;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const VIP: &str = "198.18.0.100";

/// The finding named `check` in `uvs audit --json` output.
pub fn finding<'a>(v: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    v["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["check"] == check))
        .unwrap_or_else(|| panic!("no {check} in {v}"))
}

/// The testbed's traffic tool (`testbed/uvs-lab`, a workspace member),
/// built next to uvs: `scripts/test.sh` builds it before the tests.
pub fn lab_tool() -> String {
    let uvs = Path::new(env!("CARGO_BIN_EXE_uvs"));
    let p = uvs.with_file_name("uvs-lab");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p uvs-lab` (scripts/test.sh does)",
        p.display()
    );
    p.display().to_string()
}
pub const RS1: &str = "198.18.0.11";
pub const RS2: &str = "198.18.0.12";

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

/// Why a lab could not be built here: without root or namespaces the
/// end-to-end tests skip locally, but fail under CI.
fn unavailable(why: &str) -> Option<Lab> {
    if std::env::var_os("CI").is_some() {
        panic!("end-to-end lab unavailable under CI: {why}");
    }
    eprintln!("SKIPPED: end-to-end lab unavailable ({why}); run as root (sudo scripts/test.sh)");
    None
}

impl Lab {
    /// A lab with `n` real servers, or `None` (skip) off CI without root.
    pub fn up(n: usize) -> Option<Lab> {
        Lab::up_with(n, &[])
    }

    /// As `up`, with lab.sh options (`--routed`).
    pub fn up_with(n: usize, extra: &[&str]) -> Option<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc_geteuid() } != 0 {
            return unavailable("not root");
        }
        let prefix = format!(
            "uvt{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = Command::new(root().join("testbed/lab.sh"))
            .args(["up", &prefix, &n.to_string()])
            .args(extra)
            .output()
            .expect("run testbed/lab.sh");
        if !out.status.success() {
            return unavailable(&String::from_utf8_lossy(&out.stderr));
        }
        Some(Lab {
            prefix,
            dir,
            children: Vec::new(),
        })
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    pub fn cmd(&self, node: &str, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node), prog]).args(args);
        c
    }

    /// Runs a command in a node and returns its output (any exit status).
    pub fn exec(&self, node: &str, prog: &str, args: &[&str]) -> Output {
        self.cmd(node, prog, args).output().expect("ip netns exec")
    }

    pub fn sh(&self, node: &str, script: &str) -> Output {
        self.exec(node, "sh", &["-c", script])
    }

    /// Starts a process in a node (killed when the lab goes); its pid.
    pub fn spawn(&mut self, node: &str, prog: &str, args: &[&str], log: &str) -> u32 {
        let f = std::fs::File::create(self.dir.join(log)).expect("log file");
        let child = self
            .cmd(node, prog, args)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("uvs.sock")
    }

    /// The lab's traffic server on every real server: TCP 80, UDP VIP:53.
    pub fn start_servers(&mut self, n: usize) {
        for i in 1..=n {
            self.start_server(&format!("rs{i}"));
        }
    }

    /// The traffic server on one node, answering with the node's name:
    /// TCP 80 and UDP VIP:53; its pid (to stop it: never by name, as
    /// other tests' labs run servers of the same name).
    pub fn start_server(&mut self, node: &str) -> u32 {
        self.start_server_on(node, &["--tcp", "80", "--udp", &format!("{VIP}:53")])
    }

    /// The traffic server on one node with these `uvs-lab server` ports.
    pub fn start_server_on(&mut self, node: &str, ports: &[&str]) -> u32 {
        let mut args = vec!["server", "--name", node];
        args.extend_from_slice(ports);
        self.spawn(node, &lab_tool(), &args, &format!("{node}.log"))
    }

    /// `uvs decap` on a real server (no ipip module in this kernel).
    pub fn start_decap(&mut self, node: &str) {
        let log = format!("decap-{node}.log");
        self.spawn_uvs_until(node, &["decap"], &log, "delivered through");
    }

    /// `uvs ARGS` in a node, once its log says `ready` (10 s at most).
    fn spawn_uvs_until(&mut self, node: &str, args: &[&str], log: &str, ready: &str) {
        self.spawn(node, env!("CARGO_BIN_EXE_uvs"), args, log);
        let t = Instant::now();
        while !self.log(log).contains(ready) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "uvs {args:?} did not start on {node}: {}",
                self.log(log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A decapsulator on a real server as the lab chooses it: the kernel's
    /// tunl0 when this kernel has ipip, `uvs decap` otherwise.
    pub fn start_tunnel(&mut self, node: &str) {
        let o = Command::new(root().join("testbed/lab.sh"))
            .args(["tunnel", &self.prefix, node])
            .output()
            .expect("lab.sh tunnel");
        match (o.status.code(), String::from_utf8_lossy(&o.stdout).trim()) {
            (Some(0), "kernel") => {}
            (Some(3), "none") => self.start_decap(node),
            _ => panic!("lab.sh tunnel: {}", String::from_utf8_lossy(&o.stderr)),
        }
    }

    /// Packets the VPC switch (lab.sh --vpc) dropped for a foreign source.
    pub fn switch_drops(&self) -> u64 {
        let o = Command::new(root().join("testbed/lab.sh"))
            .args(["drops", &self.prefix])
            .output()
            .expect("lab.sh drops");
        let s = String::from_utf8_lossy(&o.stdout);
        s.trim().parse().unwrap_or_else(|_| {
            panic!("lab.sh drops: {s:?} {}", String::from_utf8_lossy(&o.stderr))
        })
    }

    /// `uvs probe --responder` on a node, once it is ready.
    pub fn start_responder(&mut self, node: &str) {
        let log = format!("responder-{node}.log");
        self.spawn_uvs_until(node, &["probe", "--responder"], &log, "responder ready");
    }

    /// `uvs probe --json` from the director: exit code and parsed output.
    pub fn probe(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut a = vec!["probe", "--json"];
        a.extend_from_slice(args);
        let o = self.exec("dir", env!("CARGO_BIN_EXE_uvs"), &a);
        let code = o.status.code().unwrap_or(-1);
        let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        assert!(
            code == 3 || !v.is_null(),
            "probe {args:?} gave no JSON: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (code, v)
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
        let sock = self.socket();
        let mut args = vec!["director", "--socket", sock.to_str().unwrap()];
        args.extend_from_slice(extra);
        let pid = self.spawn("dir", env!("CARGO_BIN_EXE_uvs"), &args, "director.log");
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

    /// The MAC address of a node's eth0.
    pub fn mac(&self, node: &str) -> String {
        let o = self.exec(node, "cat", &["/sys/class/net/eth0/address"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
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

    /// `count` TCP connections to VIP:80, each asking the server's name.
    pub fn tcp_names(&self, count: u32) -> serde_json::Value {
        let target = format!("{VIP}:80");
        self.client(&[
            "tcp-names",
            "--target",
            &target,
            "--count",
            &count.to_string(),
        ])
    }

    /// `count` UDP datagrams to VIP:53 from consecutive source ports
    /// starting at `sport_base` (each its own connection).
    pub fn udp_names(&self, count: u32, sport_base: u16) -> serde_json::Value {
        let target = format!("{VIP}:53");
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

    /// The input packets of the (first) TCP service, from `--stats
    /// --exact`.
    pub fn tcp_inpkts(&self) -> u64 {
        let stats = self.adm("-Ln --stats --exact");
        let tcp = stats.lines().find(|x| x.starts_with("TCP")).unwrap();
        tcp.split_whitespace().nth(3).unwrap().parse().unwrap()
    }

    /// One UDP flow of 2000 datagrams to VIP:53, for an offload: handed
    /// over after its second datagram. A pause after the second gives uvs
    /// time to write the program's map before the rest; without it a
    /// burst can sit whole in the socket's ring before uvs has seen the
    /// second (a loaded CI machine did).
    /// Returns how many datagrams the client sent.
    pub fn udp_flow_for_offload(&self) -> u64 {
        let target = format!("{VIP}:53");
        let v = self.client(&[
            "udp-blast",
            "--target",
            &target,
            "--count",
            "2000",
            "--pause-after",
            "2",
            "--pause-ms",
            "300",
        ]);
        v["sent"].as_u64().unwrap()
    }

    /// A TCP upload of `bytes` to VIP:80; the result says whether it
    /// arrived intact and at which server.
    pub fn upload(&self, bytes: u32) -> serde_json::Value {
        let target = format!("{VIP}:80");
        self.client(&["upload", "--target", &target, "--bytes", &bytes.to_string()])
    }

    /// One of the data plane's counters, as `uvs status` prints them.
    pub fn dp_counter(&self, name: &str) -> u64 {
        self.status_counter("dir", &self.socket(), name)
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

    pub fn client_bg(&mut self, args: &[&str], log: &str) {
        self.spawn("cl", &lab_tool(), args, log);
    }

    /// One long-lived TCP connection to VIP:80 in the background:
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
        let (target, n, ms, wait) = (
            format!("{VIP}:80"),
            messages.to_string(),
            interval_ms.to_string(),
            timeout_ms.to_string(),
        );
        let args = [
            "tcp-stick",
            "--target",
            &target,
            "--messages",
            &n,
            "--interval-ms",
            &ms,
            "--timeout-ms",
            &wait,
        ];
        self.client_bg(&args, log);
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

    /// The standard DR setup: TCP 80 and UDP 53, two real servers.
    pub fn dr_services(&self, sched: &str, w1: u32, w2: u32) {
        for (o, port) in [("-t", 80), ("-u", 53)] {
            self.adm(&format!("-A {o} {VIP}:{port} -s {sched}"));
            self.adm(&format!("-a {o} {VIP}:{port} -r {RS1} -g -w {w1}"));
            self.adm(&format!("-a {o} {VIP}:{port} -r {RS2} -g -w {w2}"));
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
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(root().join("testbed/lab.sh"))
            .args(["down", &self.prefix])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Polls `done` every 20 ms until it holds; after `timeout` the test
/// fails with what `why` says.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < timeout, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Now, in milliseconds since the Unix epoch (as the lab tool's
/// timelines stamp their events).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn count(v: &serde_json::Value, name: &str) -> u64 {
    v["counts"][name].as_u64().unwrap_or(0)
}

/// A client result's answers from `a` and from `b`, and its error count.
pub fn tally2(v: &serde_json::Value, a: &str, b: &str) -> (u64, u64, Option<u64>) {
    (count(v, a), count(v, b), v["errors"].as_u64())
}

/// A client result's answers from `name` and its error count.
pub fn tally(v: &serde_json::Value, name: &str) -> (u64, Option<u64>) {
    (count(v, name), v["errors"].as_u64())
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// One step of the xorshift generator the garbage tests use (`x` must not
/// start at 0), then a copy of `base` cut to a random length (at least
/// `min_len`, when `base` has that many) with `flips` random bytes flipped.
pub fn mangle(base: &[u8], x: &mut u64, min_len: usize, flips: u32) -> Vec<u8> {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    let mut f = base.to_vec();
    f.truncate(((*x as usize) % (f.len() + 1)).max(min_len));
    for k in 0..flips {
        if !f.is_empty() {
            let at = ((*x >> (k * 8)) as usize) % f.len();
            f[at] ^= (*x >> (k * 8 + 32)) as u8;
        }
    }
    f
}

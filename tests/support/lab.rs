//! The lab itself: its namespaces, the processes started in them (torn
//! down on drop, also when a test fails), the servers and decapsulators
//! on the real servers.

use super::{VIP, VIP6, lab_tool};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    /// The family of the standard services and clients (`dr_services`,
    /// `tcp_names`, …): IPv4 unless a test sets it.
    pub fam: super::Fam,
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
            fam: super::Fam::V4,
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

    /// The HA key file every director of the lab shares (`ha.key`, mode
    /// 0600 as the director requires), written once.
    pub fn ha_key(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let key = self.dir.join("ha.key");
        std::fs::write(&key, b"a shared secret of enough length\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        key
    }

    /// The lab's traffic server on every real server: TCP 80, UDP VIP:53.
    pub fn start_servers(&mut self, n: usize) {
        for i in 1..=n {
            self.start_server(&format!("rs{i}"));
        }
    }

    /// The traffic server on one node, answering with the node's name:
    /// TCP 80 and UDP VIP:53 and [VIP6]:53; its pid (to stop it: never by
    /// name, as other tests' labs run servers of the same name).
    pub fn start_server(&mut self, node: &str) -> u32 {
        let (udp, udp6) = (format!("{VIP}:53"), format!("[{VIP6}]:53"));
        self.start_server_on(node, &["--tcp", "80", "--udp", &udp, "--udp", &udp6])
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

    /// A bridge table `table` on the lab's switch with one forward chain
    /// `f` holding `rules` (nft syntax): frames dropped or counted there.
    pub fn switch_table(&self, table: &str, rules: &[impl AsRef<str>]) {
        let mut script = format!(
            "nft add table bridge {table} && \
             nft add chain bridge {table} f '{{ type filter hook forward priority 0; }}'"
        );
        for r in rules {
            script += &format!(" && nft add rule bridge {table} f {}", r.as_ref());
        }
        let o = self.sh("sw", &script);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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

    /// The MAC address of a node's eth0.
    pub fn mac(&self, node: &str) -> String {
        let o = self.exec(node, "cat", &["/sys/class/net/eth0/address"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Asserts that the log `name` says `what`; the log is the message.
    #[track_caller]
    pub fn assert_log(&self, name: &str, what: &str) {
        assert!(self.log(name).contains(what), "{}", self.log(name));
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

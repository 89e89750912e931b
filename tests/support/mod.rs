//! The helpers the end-to-end tests share: the testbed lab (testbed/lab.sh)
//! with the director, real servers and clients run inside its namespaces
//! (`lab`, `director`, `client`), `uvs import-keepalived` (`keepalived`),
//! and reading the JSON the tools print.

mod audit;
mod client;
mod director;
pub mod keepalived;
mod lab;
mod text;

pub use audit::finding;
pub use lab::Lab;
use std::path::Path;
use std::time::{Duration, Instant};
pub use text::holds;

pub const VIP: &str = "198.18.0.100";
pub const RS1: &str = "198.18.0.11";
pub const RS2: &str = "198.18.0.12";

/// The lab's IPv6 plan (testbed/README.md): 198.18.N.H has the twin
/// 2001:2:0:N::H, and real servers hold VIP6 on lo beside VIP.
pub const VIP6: &str = "2001:2::100";
pub const RS1_6: &str = "2001:2::11";
pub const RS2_6: &str = "2001:2::12";
pub const CL6: &str = "2001:2::10";
pub const DIR6: &str = "2001:2::2";

/// The address family a lab's standard services, clients and real
/// servers use (`Lab::fam`): the DR, TUN and NAT cases run on both
/// (issue 28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fam {
    #[default]
    V4,
    V6,
}

impl Fam {
    pub fn vip(self) -> &'static str {
        match self {
            Fam::V4 => VIP,
            Fam::V6 => VIP6,
        }
    }

    /// Real server `i` (1 or 2) of the lab's segment.
    pub fn rs(self, i: usize) -> &'static str {
        match (self, i) {
            (Fam::V4, 1) => RS1,
            (Fam::V4, _) => RS2,
            (Fam::V6, 1) => RS1_6,
            (Fam::V6, _) => RS2_6,
        }
    }

    /// `addr:port` as uvsadm, ipvsadm's listings and the clients write
    /// it: `[addr]:port` for IPv6.
    pub fn at(self, addr: &str, port: u16) -> String {
        match self {
            Fam::V4 => format!("{addr}:{port}"),
            Fam::V6 => format!("[{addr}]:{port}"),
        }
    }

    /// `addr` as it stands before a port (`addr:` or `[addr]:`): what an
    /// `ADDR:PORT` of this address starts with, whatever the port.
    pub fn before_port(self, addr: &str) -> String {
        match self {
            Fam::V4 => format!("{addr}:"),
            Fam::V6 => format!("[{addr}]:"),
        }
    }

    /// The VIP with `port`.
    pub fn vip_at(self, port: u16) -> String {
        self.at(self.vip(), port)
    }
}

/// Runs a test body once per family, each as its own test:
/// `both_families!(name, |fam| { … })` makes `name::v4` and `name::v6`.
#[macro_export]
macro_rules! both_families {
    ($(#[$m:meta])* $name:ident, $body:expr) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn v4() {
                ($body)($crate::support::Fam::V4)
            }
            #[test]
            fn v6() {
                ($body)($crate::support::Fam::V6)
            }
        }
    };
}

/// Whether a test whose backend is its own (it names `--io` itself, so
/// UVS_IO changes nothing in it) runs in this run of the suite: in the
/// default run only, not again in the UVS_IO=packet and packet-ring runs
/// (scripts/test.sh), which would repeat it to the byte.
pub fn fixed_backend_run() -> bool {
    let default = std::env::var("UVS_IO").map_or(true, |v| v.is_empty() || v == "auto");
    if !default {
        println!("its backend is its own: run once, in the suite's default run");
    }
    default
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

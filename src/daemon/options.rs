//! What `uvs director` starts with: the command line's settings over the
//! config file's (`config::settings`), over the table's defaults, with
//! the checks that take more than one setting (workers and I/O, HA's
//! settings without a peer, the key file).

use super::Error;
use crate::config::settings::{Announce, LogFormat};
use crate::config::{self, Config, Settings};
use crate::control::bgp::BgpConfig;
use crate::ha::HaConfig;
use crate::ha::track::Track;
use crate::io::{IoKind, Offload};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `uvs director` is started with (flags and config file merged).
pub struct Options {
    pub interfaces: Vec<String>,
    pub socket: PathBuf,
    /// Outer source of tunnelled packets; default: the first interface's
    /// first IPv4 address.
    pub tun_source: Option<Ipv4Addr>,
    /// The same for IPv6 real servers; default: the first interface's
    /// first IPv6 address that is not link-local.
    pub tun_source6: Option<Ipv6Addr>,
    /// The connection table's limit.
    pub max_conns: usize,
    /// The config file and what it held when loaded: the start state, and
    /// what a reload compares with.
    pub config: Option<(PathBuf, Config)>,
    /// Take the table and connections over from the director running on
    /// the same socket (a planned restart or upgrade).
    pub takeover: bool,
    /// Take over although the config file has no services and the
    /// running director has some.
    pub force: bool,
    /// HA with peers (the director's own address is filled in at start:
    /// the unspecified address of the peers' family until then).
    pub ha: Option<HaConfig>,
    pub io: IoKind,
    /// Data-plane workers (one: no fanout).
    pub workers: usize,
    /// How the worker count was chosen when `--workers` was not given,
    /// logged once the links are open.
    pub workers_rule: Option<String>,
    /// Established DR flows to a kernel program (`--offload`).
    pub offload: Offload,
    /// The veth peers run XDP programs of their own (`--xdp-peer-program`).
    pub xdp_peer_program: bool,
    /// The holder announces its VIPs again this often (`--garp-refresh`).
    pub garp_refresh: Option<Duration>,
    /// Serve Prometheus metrics here (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
    /// The log's format, if given (otherwise `logging` chooses).
    pub log_format: Option<LogFormat>,
    /// Announce the VIPs through BIRD (`--bgp-socket`).
    pub bgp: Option<BgpConfig>,
    /// How the VIPs reach the director (`--announce`).
    pub announce: Announce,
}

impl Options {
    /// The command line's settings over the config file's (`--config`),
    /// over the defaults.
    pub fn build(cli: Settings) -> Result<Options, Error> {
        let config = match &cli.config {
            Some(p) => Some((p.clone(), config::load(p)?)),
            None => None,
        };
        let file = config
            .as_ref()
            .map_or_else(Settings::default, |(_, c)| c.director.clone());
        let s = file.overlaid(&cli).with_defaults();
        if s.interfaces.is_empty() {
            return Err(Error::NoInterface);
        }
        let max_conns = s.max_conns.expect("a default");
        let io = s.io.expect("a default");
        let (workers, workers_rule) = match s.workers {
            Some(n) => (n, None),
            None => {
                let (n, rule) = default_workers(&s.interfaces, io, max_conns);
                (n, Some(rule))
            }
        };
        if workers > 1 && io == IoKind::Xdp {
            return Err(Error::XdpWorkers(workers));
        }
        let announce = s.announce.expect("a default");
        if announce == Announce::Routed && !s.peers.is_empty() {
            return Err(Error::RoutedWithPeers);
        }
        if max_conns < workers {
            return Err(Error::MaxConns { max_conns, workers });
        }
        Ok(Options {
            workers,
            workers_rule,
            // `auto` is AF_PACKET with the tc program: established flows
            // and new ones it can schedule stay in the kernel (several
            // workers: fanout groups, and a report ring each).
            offload: match (s.offload || io == IoKind::Auto, s.offload_egress) {
                (false, _) => Offload::Off,
                (true, false) => Offload::On,
                (true, true) => Offload::Egress,
            },
            xdp_peer_program: s.xdp_peer_program,
            socket: s.socket.clone().expect("a default"),
            tun_source: s.tun_source,
            tun_source6: s.tun_source6,
            max_conns,
            takeover: s.takeover,
            force: s.force,
            garp_refresh: s.garp_refresh.filter(|d| !d.is_zero()),
            metrics: s.metrics,
            ha: ha_config(&s)?,
            log_format: s.log_format.filter(|_| s.given.contains("log-format")),
            bgp: bgp_unused(&s)?,
            announce,
            io,
            interfaces: s.interfaces,
            config,
        })
    }
}

impl Options {
    /// One line for `uvs director --check`: what a start would run.
    pub fn summary(&self) -> String {
        let (file, services, servers) = match &self.config {
            Some((p, c)) => (
                p.display().to_string(),
                c.services.len(),
                c.services.iter().map(|s| s.real_servers.len()).sum(),
            ),
            None => ("no config file".into(), 0, 0),
        };
        let ha = self.ha.as_ref().map_or_else(
            || "no peers".into(),
            |h| format!("{} peer(s)", h.peers.len()),
        );
        format!(
            "uvs director: {file}: ok: {services} service(s), {servers} real server(s); interfaces {}; \
             io {}, {} worker(s); {ha}; socket {}",
            self.interfaces.join(","),
            clap::ValueEnum::to_possible_value(&self.io)
                .map_or_else(String::new, |v| v.get_name().into()),
            self.workers,
            self.socket.display()
        )
    }
}

/// BGP's settings given without BIRD's socket would be ignored: refused.
fn bgp_unused(s: &Settings) -> Result<Option<BgpConfig>, Error> {
    match (
        &s.bgp_socket,
        ["bgp-vips-file", "bgp-drain-delay"]
            .into_iter()
            .find(|f| s.given.contains(f)),
    ) {
        (None, Some(name)) => Err(Error::WithoutBgpSocket(name)),
        _ => Ok(s.bgp_socket.clone().map(|socket| BgpConfig {
            socket,
            vips_file: s.bgp_vips_file.clone().expect("a default"),
            drain_delay: s.bgp_drain_delay.expect("a default"),
        })),
    }
}

/// HA from the settings: peers need a key file that only its owner can
/// read (mode 0600), as every heartbeat is authenticated with it.
fn ha_config(s: &Settings) -> Result<Option<HaConfig>, Error> {
    if s.peers.is_empty() {
        let stray = [
            "ha-key-file",
            "preempt-delay",
            "heartbeat-ms",
            "dead-after",
            "track-interface",
            "track-script",
            "track-quorum",
            "notify",
            "witness",
        ];
        return match stray.into_iter().find(|f| s.given.contains(f)) {
            Some(name) => Err(Error::WithoutPeer(name)),
            None => Ok(None),
        };
    }
    let mut tracks = Vec::new();
    for i in &s.track_interfaces {
        tracks.push(Track::interface(i)?);
    }
    for c in &s.track_scripts {
        tracks.push(Track::script(c, s.track_script_weight.as_deref())?);
    }
    if s.track_script_weight.is_some() && s.track_scripts.is_empty() {
        return Err(Error::WeightWithoutScript);
    }
    if let Some(q) = &s.track_quorum {
        tracks.push(Track::quorum(q)?);
    }
    if let Some(w) = s.witness
        && s.peers.contains(&w.ip())
    {
        return Err(Error::WitnessIsPeer(w));
    }
    // One socket, one source address: the peers and the witness of one
    // family, which picks this director's own address.
    let first = s.peers[0];
    let other = s.peers.iter().copied().chain(s.witness.map(|w| w.ip()));
    if let Some(odd) = other.into_iter().find(|a| a.is_ipv6() != first.is_ipv6()) {
        return Err(Error::HaFamilies(first, odd));
    }
    let Some(f) = s.ha_key_file.as_deref() else {
        return Err(Error::NoKeyFile);
    };
    let key = read_key_file(f)?;
    Ok(Some(HaConfig {
        me: match first {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        },
        peers: s.peers.clone(),
        port: 5405,
        priority: s.priority.expect("a default"),
        key,
        interval: Duration::from_millis(s.heartbeat_ms.expect("a default")),
        dead_after: s.dead_after.expect("a default"),
        preempt: !s.nopreempt,
        preempt_delay: s.preempt_delay.expect("a default"),
        tracks,
        notify: s.notify.clone(),
        witness: s.witness,
    }))
}

/// The HA key from `--ha-key-file`: readable by its owner only (every
/// heartbeat, sync message and witness answer is keyed with it), at
/// least 16 bytes once trimmed.
pub fn read_key_file(f: &Path) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = || f.to_path_buf();
    let unread = |source| Error::KeyFile {
        path: path(),
        source,
    };
    let meta = std::fs::metadata(f).map_err(unread)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyMode { path: path(), mode });
    }
    let key = std::fs::read(f).map_err(unread)?;
    let key: Vec<u8> = key.trim_ascii().to_vec();
    if key.len() < 16 {
        return Err(Error::KeyShort { path: path() });
    }
    Ok(key)
}

/// The worker count when `--workers` is not given: one per receive queue
/// of the link with the most, at most one per CPU uvs may run on (its
/// affinity and cgroup allow), at most `MAX_WORKERS` and one per
/// connection of `--max-conns`; one for AF_XDP. A link's queues are where
/// the kernel spreads its frames over CPUs: more workers than queues
/// would share the CPUs that receive, more than CPUs would share cores.
/// With the rule as the start logs it.
fn default_workers(ifnames: &[String], io: IoKind, max_conns: usize) -> (usize, String) {
    if io == IoKind::Xdp {
        return (1, "workers: 1 (--io xdp)".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let queues: Vec<(String, usize)> = ifnames
        .iter()
        .map(|n| (n.clone(), crate::host::sys::rx_queues(n).unwrap_or(1)))
        .collect();
    let most = queues.iter().map(|q| q.1).max().unwrap_or(1);
    let n = most
        .min(cpus)
        .min(crate::io::fanout::MAX_WORKERS)
        .min(max_conns)
        .max(1);
    let said: Vec<String> = queues.iter().map(|(i, q)| format!("{i} {q}")).collect();
    let rule = format!(
        "workers: {n} (receive queues: {}; {cpus} CPUs uvs may run on; --workers sets it)",
        said.join(", ")
    );
    (n, rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::SETTINGS;

    fn cli(args: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (flag, v) in args {
            let st = SETTINGS.iter().find(|x| x.flag == *flag).unwrap();
            s.set(st, &format!("--{flag}"), v).unwrap();
        }
        s
    }

    /// docs/config.md's example, which scripts/install.sh installs as
    /// /etc/uvs/uvs.toml, is a config the director starts with.
    #[test]
    fn the_documented_example_starts_a_director() {
        let doc = include_str!("../../docs/config.md");
        let file = std::env::temp_dir().join(format!("uvs-example-{}.toml", std::process::id()));
        std::fs::write(&file, crate::layering::fenced(doc, "toml")).unwrap();
        let o = Options::build(cli(&[("config", file.to_str().unwrap())]));
        std::fs::remove_file(&file).unwrap();
        let o = o.unwrap_or_else(|e| panic!("docs/config.md's example: {e}"));
        assert!(
            o.summary().contains(": ok: 3 service(s), 4 real server(s)"),
            "{}",
            o.summary()
        );
    }

    /// Routed VIPs: all directors active, so HA's backup is refused.
    #[test]
    fn routed_is_taken_alone_and_refused_with_peers() {
        let o = Options::build(cli(&[("interface", "eth0"), ("announce", "routed")])).unwrap();
        assert_eq!(o.announce, Announce::Routed);
        let o = Options::build(cli(&[("interface", "eth0")])).unwrap();
        assert_eq!(o.announce, Announce::Arp);
        let peers = cli(&[
            ("interface", "eth0"),
            ("announce", "routed"),
            ("peer", "198.18.0.3"),
        ]);
        assert!(matches!(Options::build(peers), Err(Error::RoutedWithPeers)));
    }

    /// HA and packet I/O from the file, a flag over it, defaults under it.
    #[test]
    fn every_setting_may_come_from_the_file_and_a_flag_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("uvs-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("ha.key");
        std::fs::write(&key, b"a shared secret of enough length").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = dir.join("uvs.toml");
        std::fs::write(
            &file,
            format!(
                "[director]\ninterfaces = [\"eth0\"]\nio = \"packet\"\nworkers = 2\n\
                 peers = [\"198.18.0.3\"]\nha_key_file = \"{}\"\npriority = 150\n\
                 preempt_delay = 2.5\nwitness = \"198.18.0.4\"\n",
                key.display()
            ),
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let o = Options::build(cli(&[("config", path), ("priority", "200")])).unwrap();
        assert_eq!(
            (o.interfaces.clone(), o.io, o.workers),
            (vec!["eth0".to_string()], IoKind::Packet, 2)
        );
        assert_eq!(o.max_conns, crate::lvs::conn::DEFAULT_MAX_CONNS);
        let ha = o.ha.unwrap();
        assert_eq!((ha.priority, ha.dead_after), (200, 10));
        assert_eq!(ha.preempt_delay, Duration::from_millis(2500));
        assert_eq!(ha.witness.map(|w| w.port()), Some(5405));
        // Why a file with `director` as its [director] table is refused.
        let refusal = |director: &str| {
            std::fs::write(
                &file,
                format!("[director]\ninterfaces = [\"eth0\"]\n{director}"),
            )
            .unwrap();
            let o = Options::build(cli(&[("config", path)]));
            o.err().unwrap().to_string()
        };
        // A value the file gets wrong names its line.
        let e = refusal("\npriority = 0\n");
        assert!(e.contains(":4:12: priority 0: give 1 to 254"), "{e}");
        // An HA setting without a peer, from the file.
        let e = refusal("notify = \"true\"\n");
        assert_eq!(e, "--notify without --peer");
        // A BGP setting without BIRD's socket would be ignored.
        let e = refusal("bgp_drain_delay = 3\n");
        assert!(
            e.starts_with("--bgp-drain-delay without --bgp-socket"),
            "{e}"
        );
        // IPv6 peers and witness, from the file: this director's own
        // address will be its IPv6 one.
        let k = key.display();
        let v6 = format!(
            "peers = [\"2001:2::3\"]\nwitness = \"[2001:2::4]:6000\"\nha_key_file = \"{k}\"\n"
        );
        std::fs::write(&file, format!("[director]\ninterfaces = [\"eth0\"]\n{v6}")).unwrap();
        let ha = Options::build(cli(&[("config", path)]))
            .unwrap()
            .ha
            .unwrap();
        assert_eq!(ha.peers, vec!["2001:2::3".parse::<IpAddr>().unwrap()]);
        assert_eq!(ha.me, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(ha.witness.unwrap().to_string(), "[2001:2::4]:6000");
        // Families mixed, or an address no heartbeat can reach: refused.
        let e = refusal(&format!(
            "peers = [\"2001:2::3\", \"198.18.0.5\"]\nha_key_file = \"{k}\"\n"
        ));
        assert!(
            e.contains(
                "--peer 2001:2::3 and 198.18.0.5: the peers and the witness are of one family"
            ),
            "{e}"
        );
        let e = refusal(&format!(
            "peers = [\"198.18.0.3\"]\nwitness = \"2001:2::4\"\nha_key_file = \"{k}\"\n"
        ));
        assert!(e.contains("198.18.0.3 and 2001:2::4"), "{e}");
        let e = refusal("peers = [\"fe80::1\"]\n");
        assert!(e.contains("peers fe80::1: link-local"), "{e}");
        let e = refusal("peers = [\"ff02::1\"]\n");
        assert!(e.contains("multicast"), "{e}");
        let e = refusal("peers = [\"198.18.0.3\"]\nwitness = \"[::]:5405\"\n");
        assert!(e.contains("unspecified"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

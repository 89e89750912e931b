//! `uvs director` assembled: the checks before start, the control socket,
//! the data-plane thread over AF_PACKET, and the control plane's tasks on
//! a single-threaded runtime, until SIGINT or SIGTERM.

use crate::admin::client;
use crate::config::{self, Config};
use crate::control::proto::{HandoffState, Request, Response};
use crate::control::publish::Publisher;
use crate::control::server::{Control, Queues};
use crate::control::workers::Workers;
use crate::dataplane::conn_table::ConnTable;
use crate::dataplane::{Dataplane, LinkParams};
use crate::host::netlink::Netlink;
use crate::host::sys;
use crate::io::afpacket::AfPacketLinks;
use crate::io::bpf::Steering;
use crate::io::fanout::Fanout;
use crate::io::xdp::XdpLinks;
use crate::io::{Backend, IoKind, Offload, PacketIo};
use crate::lvs::conn::{DEFAULT_MAX_CONNS, MAX_LIMIT, PortableConn};
use crate::lvs::stats::DataplaneCounters;
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `uvs director` is started with (flags and config file merged).
pub struct Options {
    pub interfaces: Vec<String>,
    pub socket: PathBuf,
    /// Outer source of tunnelled packets; default: the first interface's
    /// first IPv4 address.
    pub tun_source: Option<Ipv4Addr>,
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
    /// HA with peers (the director's own address is filled in at start).
    pub ha: Option<crate::ha::HaConfig>,
    pub io: IoKind,
    /// Data-plane workers (one: no fanout).
    pub workers: usize,
    /// Established DR flows to a kernel program (`--offload`).
    pub offload: Offload,
    /// The holder announces its VIPs again this often (`--garp-refresh`).
    pub garp_refresh: Option<Duration>,
}

/// The command line as given (unset flags are `None`).
pub struct Flags {
    pub interfaces: Vec<String>,
    pub socket: Option<PathBuf>,
    pub tun_source: Option<Ipv4Addr>,
    pub max_conns: Option<usize>,
    pub config: Option<PathBuf>,
    pub takeover: bool,
    pub force: bool,
    pub ha: HaFlags,
    pub io: IoKind,
    pub workers: usize,
    pub offload: Offload,
}

/// The HA flags as given.
#[derive(Default)]
pub struct HaFlags {
    pub peers: Vec<Ipv4Addr>,
    pub priority: u8,
    pub key_file: Option<PathBuf>,
    pub preempt: bool,
    pub preempt_delay: Option<f64>,
    pub heartbeat_ms: Option<u64>,
    pub dead_after: Option<u32>,
    pub track_interfaces: Vec<String>,
    pub track_scripts: Vec<String>,
    pub track_script_weight: Option<String>,
    pub track_quorum: Option<String>,
    pub notify: Option<String>,
    /// `ADDR[:PORT]` of a witness (`uvs witness`).
    pub witness: Option<String>,
    /// Seconds between the holder's repeated announcements (0: off).
    pub garp_refresh: Option<f64>,
}

impl Options {
    /// The flags over the config file (a flag wins), over the defaults.
    pub fn merge(f: Flags) -> Result<Options, String> {
        let config = match &f.config {
            Some(p) => Some((p.clone(), config::load(p).map_err(|e| e.to_string())?)),
            None => None,
        };
        let c = config.as_ref().map(|(_, c)| c);
        let interfaces = match f.interfaces.is_empty() {
            false => f.interfaces,
            true => c.map(|c| c.interfaces.clone()).unwrap_or_default(),
        };
        if interfaces.is_empty() {
            return Err(
                "no interface: give --interface IF (or interfaces in the config file)".into(),
            );
        }
        let max_conns = f
            .max_conns
            .or_else(|| c.and_then(|c| c.max_conns))
            .unwrap_or(DEFAULT_MAX_CONNS);
        if max_conns == 0 || max_conns > MAX_LIMIT {
            return Err(format!("--max-conns must be between 1 and {MAX_LIMIT}"));
        }
        let workers = f.workers;
        if !(1..=crate::io::fanout::MAX_WORKERS).contains(&workers) {
            return Err(format!(
                "--workers must be between 1 and {}",
                crate::io::fanout::MAX_WORKERS
            ));
        }
        if workers > 1 && f.io == IoKind::Xdp {
            return Err(format!(
                "--workers {workers} with --io xdp: AF_XDP takes one worker here (its sockets are \
                 per receive queue, and a queue's frames cannot be spread by client); use --io \
                 packet or auto for several workers"
            ));
        }
        if max_conns < workers {
            return Err(format!(
                "--max-conns {max_conns} is less than one connection per worker (--workers {workers})"
            ));
        }
        Ok(Options {
            workers,
            offload: f.offload,
            interfaces,
            socket: f
                .socket
                .or_else(|| c.and_then(|c| c.socket.clone()))
                .unwrap_or_else(|| PathBuf::from(crate::admin::client::DEFAULT_SOCKET)),
            tun_source: f.tun_source.or_else(|| c.and_then(|c| c.tun_source)),
            max_conns,
            config,
            takeover: f.takeover,
            garp_refresh: match f.ha.garp_refresh {
                None | Some(0.0) => None,
                Some(s) if s.is_finite() && (1.0..=86_400.0).contains(&s) => {
                    Some(Duration::from_secs_f64(s))
                }
                Some(s) => {
                    return Err(format!(
                        "--garp-refresh {s}: give seconds from 1 to 86400, or 0 for none"
                    ));
                }
            },
            force: f.force,
            ha: ha_config(&f.ha)?,
            io: f.io,
        })
    }
}

/// The kernel must stay quiet about VIP traffic: with forwarding on it
/// would route (or redirect) the very frames uvs forwards, and in NAT it
/// would also pass real servers' replies on untranslated.
fn preflight(ifname: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding");
    let v = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if v.trim() != "0" {
        return Err(format!(
            "IP forwarding is on for {ifname} ({path} = {}): the kernel would forward VIP traffic \
             alongside uvs. Turn it off with `sysctl -w net.ipv4.conf.{ifname}.forwarding=0` \
             (or net.ipv4.ip_forward=0) and start again",
            v.trim()
        ));
    }
    Ok(())
}

/// The control socket, created mode 0600 (the umask is narrowed around
/// bind(2), so there is no moment at which anyone else may connect) in a
/// directory created 0700 if it is missing. An existing path is removed
/// only if it is a socket that no daemon answers on: a live daemon makes
/// this start fail, and any other kind of file is left alone.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "--socket {} exists and is not a socket; uvs will not remove it. \
                 Choose another path or move the file away",
                path.display()
            ));
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "another uvs daemon is already listening on {}",
                    path.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
            }
            Err(e) => return Err(format!("cannot check {}: {e}", path.display())),
        }
    }
    let old = sys::umask(0o177);
    let bound = UnixListener::bind(path);
    sys::umask(old);
    let l = bound.map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

/// Tries `f` until it succeeds, `again` says its error is not worth
/// another try, or `limit` has passed: what the new side of a handoff
/// does while the old director lets go of its locks and socket.
fn retry<T>(
    limit: Duration,
    mut f: impl FnMut() -> Result<T, String>,
    again: impl Fn(&str) -> bool,
) -> Result<T, String> {
    let t = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if again(&e) && t.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// Removes the control socket at exit if it is still the one this daemon
/// made (another may have replaced it since).
fn remove_socket(path: &Path, ours: Option<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    if now.is_some() && now == ours {
        let _ = std::fs::remove_file(path);
    }
}

/// One director per interface per network namespace: an abstract Unix
/// socket named after the interface index is the lock. Abstract names are
/// private to the network namespace and vanish with the process, so a
/// crash leaves nothing stale. Two directors on one interface would each
/// forward every frame (duplicates, resets with different tables).
fn lock_interface(name: &str, index: u32) -> Result<UnixListener, String> {
    use std::os::linux::net::SocketAddrExt;
    let lock_name = format!("uvs-director/ifindex/{index}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(lock_name.as_bytes())
        .map_err(|e| e.to_string())?;
    match UnixListener::bind_addr(&addr) {
        Ok(l) => {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = UnixStream::connect_addr(&addr)
                .ok()
                .and_then(|s| sys::peer_pid(&s).ok())
                .map(|pid| {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                        .unwrap_or_default();
                    format!("pid {pid}: {}", cmd.trim())
                })
                .unwrap_or_else(|| "pid unknown".into());
            Err(format!(
                "interface {name} is already driven by another uvs director ({holder}); \
                 two directors on one interface would both forward every frame. \
                 Stop that one first"
            ))
        }
        Err(e) => Err(format!("cannot take the lock for {name}: {e}")),
    }
}

/// HA from the flags: peers need a key file that only its owner can read
/// (mode 0600), as every heartbeat is authenticated with it.
fn ha_config(h: &HaFlags) -> Result<Option<crate::ha::HaConfig>, String> {
    use crate::ha::track::Track;
    if h.peers.is_empty() {
        let stray = [
            (h.key_file.is_some(), "--ha-key-file"),
            (h.preempt_delay.is_some(), "--preempt-delay"),
            (h.heartbeat_ms.is_some(), "--heartbeat-ms"),
            (h.dead_after.is_some(), "--dead-after"),
            (!h.track_interfaces.is_empty(), "--track-interface"),
            (!h.track_scripts.is_empty(), "--track-script"),
            (h.track_quorum.is_some(), "--track-quorum"),
            (h.notify.is_some(), "--notify"),
            (h.witness.is_some(), "--witness"),
        ];
        return match stray.iter().find(|(set, _)| *set) {
            Some((_, name)) => Err(format!("{name} without --peer")),
            None => Ok(None),
        };
    }
    let preempt_delay = match h.preempt_delay {
        None => Duration::ZERO,
        Some(d) if d.is_finite() && (0.0..=3600.0).contains(&d) => Duration::from_secs_f64(d),
        Some(d) => return Err(format!("--preempt-delay {d}: give seconds from 0 to 3600")),
    };
    let interval = match h.heartbeat_ms.unwrap_or(100) {
        ms @ 10..=10_000 => Duration::from_millis(ms),
        ms => return Err(format!("--heartbeat-ms {ms}: give 10 to 10000")),
    };
    let dead_after = match h.dead_after.unwrap_or(10) {
        n @ 3..=1000 => n,
        n => {
            return Err(format!(
                "--dead-after {n}: give 3 to 1000 missed heartbeats"
            ));
        }
    };
    if !(1..=254).contains(&h.priority) {
        return Err(format!("--priority {}: give 1 to 254", h.priority));
    }
    let mut tracks = Vec::new();
    for i in &h.track_interfaces {
        tracks.push(Track::interface(i)?);
    }
    for c in &h.track_scripts {
        tracks.push(Track::script(c, h.track_script_weight.as_deref())?);
    }
    if h.track_script_weight.is_some() && h.track_scripts.is_empty() {
        return Err("--track-script-weight without --track-script".into());
    }
    if let Some(q) = &h.track_quorum {
        tracks.push(Track::quorum(q)?);
    }
    let witness = match &h.witness {
        None => None,
        Some(w) => Some(witness_addr(w).map_err(|e| format!("--witness {w}: {e}"))?),
    };
    if let Some(w) = witness
        && h.peers.contains(w.ip())
    {
        return Err(format!(
            "--witness {w}: that is a --peer; the witness runs on a third host"
        ));
    }
    let Some(f) = h.key_file.as_deref() else {
        return Err("--peer needs --ha-key-file FILE (a shared secret, mode 0600)".into());
    };
    let key = read_key_file(f)?;
    Ok(Some(crate::ha::HaConfig {
        me: Ipv4Addr::UNSPECIFIED,
        peers: h.peers.clone(),
        port: 5405,
        priority: h.priority,
        key,
        interval,
        dead_after,
        preempt: h.preempt,
        preempt_delay,
        tracks,
        notify: h.notify.clone(),
        witness,
    }))
}

/// The HA key from `--ha-key-file`: readable by its owner only (every
/// heartbeat, sync message and witness answer is keyed with it), at
/// least 16 bytes once trimmed.
pub fn read_key_file(f: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(f).map_err(|e| format!("--ha-key-file {}: {e}", f.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "--ha-key-file {} is mode {mode:o}: others could read the key; chmod 600 it",
            f.display()
        ));
    }
    let key = std::fs::read(f).map_err(|e| format!("--ha-key-file {}: {e}", f.display()))?;
    let key: Vec<u8> = key.trim_ascii().to_vec();
    if key.len() < 16 {
        return Err(format!(
            "--ha-key-file {}: the key needs at least 16 bytes",
            f.display()
        ));
    }
    Ok(key)
}

/// `ADDR` or `ADDR:PORT` (the witness's port by default).
pub fn witness_addr(s: &str) -> Result<std::net::SocketAddrV4, String> {
    if let Ok(a) = s.parse::<std::net::SocketAddrV4>() {
        return match a.port() {
            0 => Err("port 0".into()),
            _ => Ok(a),
        };
    }
    s.parse::<Ipv4Addr>()
        .map(|ip| std::net::SocketAddrV4::new(ip, crate::ha::witness::DEFAULT_PORT))
        .map_err(|_| "give an IPv4 address, or ADDR:PORT".into())
}

/// A takeover with a config file of no services while the running
/// director has some is refused before anything is handed over (the
/// running director goes on): the file would be what reloads compare
/// with from then on, and an empty one is most likely a truncated write.
/// A director that does not answer is left to `request_handoff` to
/// report.
fn refuse_empty_takeover(o: &Options) -> Result<(), String> {
    let Some((path, _)) = o.config.as_ref().filter(|(_, c)| c.services.is_empty()) else {
        return Ok(());
    };
    let Ok(Response::Snapshot(snap)) = client::call(&o.socket, &Request::Snapshot) else {
        return Ok(());
    };
    if snap.services.is_empty() {
        return Ok(());
    }
    let reals: usize = snap.services.iter().map(|s| s.dests.len()).sum();
    Err(format!(
        "--takeover: {} has no services, and the running director has {} ({}): an empty or \
         truncated file? Nothing was handed over; the running director goes on. Fix the file, \
         or add --force to take the table over anyway (it is kept as it is, and `uvs reload` \
         then compares the file with this empty one)",
        path.display(),
        config::counted(snap.services.len(), "service"),
        config::counted(reals, "real server"),
    ))
}

/// Asks the director on `socket` for its table and connections; it
/// stops forwarding as it answers.
fn request_handoff(socket: &Path) -> Result<HandoffState, String> {
    match client::call(socket, &Request::Handoff) {
        Ok(Response::Handoff(h)) => Ok(*h),
        Ok(Response::Error { message, .. }) => Err(format!("--takeover: {message}")),
        Ok(_) => Err("--takeover: unexpected answer from the running director".into()),
        Err(e) => Err(format!("--takeover: {e}")),
    }
}

/// Takes the interface locks; after a handoff, waits (up to 10 s) for
/// the old director to let go of them.
fn lock_interfaces(
    names: &[String],
    indexes: &[u32],
    wait: bool,
) -> Result<Vec<UnixListener>, String> {
    let take = || {
        names
            .iter()
            .zip(indexes)
            .map(|(n, i)| lock_interface(n, *i))
            .collect()
    };
    retry(Duration::from_secs(10), take, |_| wait)
}

/// Refuses what can never carry VIP traffic and waits (saying so) for a
/// link that is down to come up.
fn check_link(name: &str) -> Result<(), String> {
    let flags = sys::link_flags(name).map_err(|e| e.to_string())?;
    if flags & libc::IFF_LOOPBACK as u32 != 0 {
        return Err(format!(
            "{name} is a loopback interface: no client or real server can be reached \
             through it. Give the interface that carries the VIP's traffic"
        ));
    }
    if !link_is_up(flags) {
        eprintln!("uvs: warning: {name} is down; waiting for it to come up");
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let flags = sys::link_flags(name)
                .map_err(|e| format!("{name} went away while waiting for it: {e}"))?;
            if link_is_up(flags) {
                eprintln!("uvs: {name} is up");
                return Ok(());
            }
        }
    }
    Ok(())
}

fn link_is_up(flags: u32) -> bool {
    let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
    flags & want == want
}

/// Logs each interface's down and up, and returns (with the reason) when
/// one disappears or is replaced by another of the same name: the packet
/// sockets would then capture nothing, silently.
async fn watch_links(links: Vec<(u32, String)>) -> String {
    let mut up: Vec<bool> = vec![true; links.len()];
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ((index, name), was_up) in links.iter().zip(up.iter_mut()) {
            match sys::ifindex(name) {
                Ok(i) if i as u32 == *index => {}
                Ok(_) => return format!("interface {name} was replaced by another of that name"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return format!("interface {name} disappeared");
                }
                // Cannot tell now (out of descriptors): look again later.
                Err(_) => continue,
            }
            let Ok(flags) = sys::link_flags(name) else {
                continue;
            };
            let now_up = link_is_up(flags);
            if now_up != *was_up {
                match now_up {
                    true => eprintln!("uvs: {name} is up again"),
                    false => eprintln!("uvs: warning: {name} went down: no traffic until it is up"),
                }
                *was_up = now_up;
            }
        }
    }
}

/// Runs the director until SIGINT or SIGTERM (or until one of its
/// interfaces disappears, which is an error).
pub fn run(o: &Options) -> Result<(), String> {
    let ifnames = &o.interfaces;
    let mut indexes = Vec::new();
    for (i, name) in ifnames.iter().enumerate() {
        let idx = sys::ifindex(name).map_err(|e| e.to_string())? as u32;
        if ifnames[..i].contains(name) {
            return Err(format!("--interface {name} is given twice"));
        }
        preflight(name)?;
        indexes.push(idx);
    }
    // A planned restart: the running director hands its table over and
    // stops; its interface locks come free a moment later.
    let handoff = match o.takeover {
        false => None,
        true => {
            if !o.force {
                refuse_empty_takeover(o)?;
            }
            Some(request_handoff(&o.socket)?)
        }
    };
    let locks = lock_interfaces(ifnames, &indexes, handoff.is_some())?;
    for name in ifnames {
        check_link(name)?;
    }
    // Before anything is captured: a daemon already on this socket means
    // this start is a mistake.
    // After a handoff the old director may still be closing its listener.
    let listener = retry(
        Duration::from_secs(5),
        || bind_socket(&o.socket),
        |e| handoff.is_some() && e.contains("already listening"),
    )?;
    let ours = {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&o.socket)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let r = serve(o, &indexes, locks, listener, handoff);
    // After a handoff the path is the successor's: its socket may even
    // have our old socket's inode number, so it is not even looked at.
    if !matches!(r, Ok(Stopped::HandedOver)) {
        remove_socket(&o.socket, ours);
    }
    r.map(|_| ())
}

/// The packet I/O `kind` asks for, with the XDP programs that steer
/// frames to it (AF_XDP); `auto` falls back to AF_PACKET with the reason.
fn open_io(
    kind: IoKind,
    ifnames: &[String],
    macs: &[[u8; 6]],
    offload: Offload,
) -> Result<(Backend, Option<Steering>), String> {
    if matches!(kind, IoKind::Packet | IoKind::PacketRing) {
        let (ring, why) = match kind {
            IoKind::PacketRing => (true, "--io packet-ring"),
            _ => (false, "--io packet"),
        };
        return open_packet(ifnames, ring, offload, why);
    }
    let xdp = Steering::attach(ifnames).and_then(|mut s| {
        let links = XdpLinks::open(ifnames, macs, &mut s)?;
        Ok((links, s))
    });
    match (xdp, kind) {
        (Ok((links, s)), _) => {
            eprintln!(
                "uvs: packet I/O: AF_XDP ({} XDP; sockets: {}), other traffic to the kernel and \
                 uvs's packet sockets",
                s.modes().join(", "),
                links.modes().join(", ")
            );
            if offload.is_on() {
                eprintln!(
                    "uvs: --offload: established DR flows are forwarded by the XDP program (XDP_TX)"
                );
                for name in ifnames.iter().filter(|n| sys::is_virtual_pair(n)) {
                    eprintln!(
                        "uvs: warning: {name} has a peer (a veth?): XDP_TX frames reach the peer only \
                         if it runs an XDP program of its own, else offloaded flows stall (docs/io.md)"
                    );
                }
            }
            Ok((Backend::Xdp(links), Some(s)))
        }
        (Err(e), IoKind::Xdp) => Err(format!("--io xdp: {e}")),
        (Err(e), _) => open_packet(ifnames, false, offload, &format!("AF_XDP unavailable: {e}")),
    }
}

/// AF_PACKET (a TPACKET_V3 receive ring if `ring`), with the tc program
/// for `offload` when it can be attached (else, saying why, without);
/// `why`: what chose it, for the log line.
fn open_packet(
    ifnames: &[String],
    ring: bool,
    offload: Offload,
    why: &str,
) -> Result<(Backend, Option<Steering>), String> {
    let what = match ring {
        true => "AF_PACKET, TPACKET_V3 receive ring, batched send",
        false => "AF_PACKET, batched",
    };
    let capture = |e: std::io::Error| format!("cannot capture on {e}");
    if offload.is_on() {
        match Steering::attach_tc(ifnames, offload == Offload::Egress)
            .and_then(|mut s| Ok((s.take_flow_maps()?, s)))
        {
            Ok((flows, s)) => {
                let links = AfPacketLinks::open_offload(ifnames, ring, flows).map_err(capture)?;
                let how: Vec<String> = ifnames
                    .iter()
                    .zip(s.modes())
                    .map(|(n, m)| format!("{n}: {m}"))
                    .collect();
                eprintln!(
                    "uvs: packet I/O: {what} ({why}); --offload: established DR flows are \
                     forwarded by the tc program ({}), super-frames whole",
                    how.join(", ")
                );
                return Ok((Backend::Packet(links), Some(s)));
            }
            Err(e) => eprintln!("uvs: --offload unavailable, uvs forwards every frame: {e}"),
        }
    }
    let links = AfPacketLinks::open_with(ifnames, ring).map_err(capture)?;
    eprintln!("uvs: packet I/O: {what} ({why})");
    Ok((Backend::Packet(links), None))
}

/// Each worker's packet I/O, and what keeps the kernel's side in step
/// with the table (XDP maps, or the fanout program).
type WorkersIo = (Vec<Backend>, Option<Steering>, Option<Fanout>);

/// The I/O of each of `workers` workers: with one, what `kind` asks for
/// (`open_io`); with several, AF_PACKET sockets in fanout groups, whose
/// program the control plane keeps up to date.
fn open_workers_io(
    kind: IoKind,
    workers: usize,
    ifnames: &[String],
    macs: &[[u8; 6]],
    offload: Offload,
) -> Result<WorkersIo, String> {
    if workers == 1 {
        let (io, s) = open_io(kind, ifnames, macs, offload)?;
        return Ok((vec![io], s, None));
    }
    if offload.is_on() {
        eprintln!("uvs: --offload ignored: it takes one worker");
    }
    let (sets, fanout, ignores) =
        AfPacketLinks::open_workers(ifnames, workers, kind == IoKind::PacketRing)
            .map_err(|e| format!("cannot capture on {e}"))?;
    let why = match kind {
        IoKind::Auto => " (AF_XDP takes one worker)",
        _ => "",
    };
    eprintln!(
        "uvs: packet I/O: AF_PACKET, {}, {workers} workers{why}: each link's frames spread \
         by client address and port (PACKET_FANOUT, classic BPF)",
        match kind {
            IoKind::PacketRing => "TPACKET_V3 receive rings",
            _ => "batched",
        }
    );
    if !ignores {
        eprintln!(
            "uvs: warning: this kernel cannot keep the host's own frames out of a fanout group \
             (Linux 6.5 can): the workers see what the director sends too, at some cost"
        );
    }
    let ios = sets.into_iter().map(Backend::Packet).collect();
    Ok((ios, None, Some(fanout)))
}

/// How the director stopped.
enum Stopped {
    /// A signal.
    Asked,
    /// Its table went to a successor (`--takeover`), which owns the
    /// control socket's path now.
    HandedOver,
}

/// The director once its socket is bound: the data plane's thread and the
/// control plane's tasks, until a signal or a vanished interface.
fn serve(
    o: &Options,
    indexes: &[u32],
    locks: Vec<UnixListener>,
    listener: UnixListener,
    handoff: Option<HandoffState>,
) -> Result<Stopped, String> {
    let ifnames = &o.interfaces;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The netlink connection's task lives on this runtime for the daemon's
    // whole life.
    let netlink = rt.block_on(async { Netlink::new() })?;
    let mut links = Vec::new();
    for (name, idx) in ifnames.iter().zip(indexes) {
        let (mac, mtu) = sys::link_info(name).map_err(|e| e.to_string())?;
        let addr = rt.block_on(netlink.first_address(*idx));
        links.push(LinkParams {
            mac: MacAddr(mac),
            mtu,
            addr: addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        });
    }
    let tun_source = o
        .tun_source
        .or_else(|| Some(links[0].addr).filter(|a| !a.is_unspecified()));
    let macs: Vec<[u8; 6]> = links.iter().map(|l| l.mac.0).collect();
    let workers = o.workers;
    let (ios, steering, fanout) = open_workers_io(o.io, workers, ifnames, &macs, o.offload)?;

    let steering_present = steering.is_some();
    let mut publisher = Publisher::new();
    if let Some(s) = steering {
        publisher.set_steering(s);
    }
    if let Some(f) = fanout {
        publisher.set_fanout(f);
    }
    let shared = publisher.shared();
    let stop = Arc::new(AtomicBool::new(false));
    let described: Vec<String> = ifnames
        .iter()
        .zip(&links)
        .map(|(n, l)| format!("{n} ({}, mtu {})", l.mac, l.mtu))
        .collect();
    let max_conns = o.max_conns;
    let takes_over = handoff.is_some();
    // Only the XDP or tc program can take flows: without one (said above)
    // the data plane does not try.
    let offload = o.offload.is_on() && steering_present;
    // One thread per worker, each with its share of the connection table
    // (the first takes what does not divide), its request channel, its
    // counters, its HA sync queue and its part of a handed-over table.
    let mut txs = Vec::new();
    let mut counters = Vec::new();
    let mut sync_rxs = Vec::new();
    let mut import_txs = Vec::new();
    let mut wakes = Vec::new();
    let mut threads = Vec::new();
    for (w, mut io) in ios.into_iter().enumerate() {
        let share = max_conns / workers + if w == 0 { max_conns % workers } else { 0 };
        let (dp_tx, dp_rx) = std::sync::mpsc::channel();
        txs.push(dp_tx);
        let wake = Arc::new(sys::Wake::new().map_err(|e| format!("eventfd: {e}"))?);
        io.wake_on(wake.fd());
        wakes.push(wake.clone());
        let c = Arc::new(DataplaneCounters::default());
        counters.push(c.clone());
        let sync_tx = match o.ha.is_some() {
            true => {
                let (tx, rx) = std::sync::mpsc::sync_channel(crate::lvs::sync::QUEUE);
                sync_rxs.push(rx);
                Some(tx)
            }
            false => None,
        };
        // Handed-over connections reach the data plane once their table
        // is published.
        let (import_tx, import_rx) = std::sync::mpsc::channel::<Vec<PortableConn>>();
        import_txs.push(import_tx);
        let (shared, links, stop) = (shared.clone(), links.clone(), stop.clone());
        let name = match workers {
            1 => "uvs-dataplane".to_string(),
            _ => format!("uvs-worker{w}"),
        };
        let t = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut dp = Dataplane::with_links(shared, links, c, Some(dp_rx), share);
                dp.set_worker(w);
                dp.set_offload(offload);
                dp.set_wake(wake);
                if let Some(tx) = sync_tx {
                    dp.set_sync(tx);
                }
                if takes_over && let Ok(conns) = import_rx.recv() {
                    let n = dp.take_over(&mut io, &conns);
                    eprintln!("uvs: took over {n} of {} connections", conns.len());
                }
                dp.run(&mut io, &stop);
            })
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    publisher.set_wakes(wakes.clone());
    let dp = Workers::new(txs, wakes.clone(), counters);

    let named_links: Vec<(u32, String)> = indexes
        .iter()
        .copied()
        .zip(ifnames.iter().cloned())
        .collect();
    let result = rt.block_on(async {
        let control = Arc::new(Control::new(
            publisher,
            dp,
            netlink,
            named_links.clone(),
            tun_source,
        ));
        let ha = o.ha.clone().map(|mut ha| {
            ha.me = tun_source.unwrap_or(Ipv4Addr::UNSPECIFIED);
            ha
        });
        if let Some(ha) = &ha {
            if ha.me.is_unspecified() {
                return Err("--peer: the interface has no IPv4 address to send heartbeats from".into());
            }
            control.start_standby(ha).await;
        }
        match handoff {
            Some(h) => {
                control.take_over(&h.ops, o.config.clone()).await?;
                // Each connection to the worker that will see its frames.
                let mut parts: Vec<Vec<PortableConn>> = vec![Vec::new(); workers];
                for c in h.conns {
                    parts[crate::io::fanout::worker_of(c.caddr, c.cport, workers)].push(c);
                }
                for (tx, part) in import_txs.iter().zip(parts) {
                    let _ = tx.send(part);
                }
                let now = crate::host::unix_ms();
                eprintln!(
                    "uvs: took over from pid {}: forwarding resumes {} ms after it stopped",
                    h.pid,
                    now.saturating_sub(h.stopped_unix_ms)
                );
            }
            // The file's table first, with every host check; a file that
            // cannot be applied stops the start.
            None => {
                if let Some((path, cfg)) = &o.config {
                    control.load_config(path, cfg.clone()).await?;
                }
            }
        }
        // Heartbeats and sync once the table has its services: a backup
        // that asked for the holder's table before its file was applied
        // dropped the connections of services it did not have yet, and
        // found out only at the digest after, one full resync later.
        if let Some(ha) = ha {
            tokio::spawn(control.clone().run_ha(ha, Queues::new(sync_rxs)));
        }
        let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        eprintln!(
            "uvs: director on {}, control socket {}",
            described.join(", "),
            o.socket.display()
        );
        eprintln!(
            "uvs: connection table: up to {max_conns} entries, about {} MiB when full \
             (--max-conns); when full, the oldest one-packet or half-open entries make room",
            ConnTable::bytes_at_limit(max_conns).div_ceil(1 << 20)
        );
        tokio::spawn(control.clone().serve(listener));
        for lock in locks {
            // A director that finds the lock taken connects to learn who
            // holds it: accept and drop, so the backlog never fills.
            let lock = tokio::net::UnixListener::from_std(lock).map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                loop {
                    if lock.accept().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        }
        if let Some(every) = o.garp_refresh {
            tokio::spawn(control.clone().refresh_announcements(every));
        }
        tokio::spawn(control.clone().estimate_rates());
        tokio::spawn(control.clone().watch_nat_replies(Duration::from_secs(3)));
        tokio::spawn(control.clone().resolve_pending(Duration::from_secs(1)));
        tokio::spawn(control.clone().refresh_neighbours(Duration::from_secs(5)));
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let gone = watch_links(named_links);
        tokio::pin!(gone);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(Stopped::Asked),
                _ = term.recv() => return Ok(Stopped::Asked),
                _ = hup.recv() => match control.has_config().await {
                    false => eprintln!(
                        "uvs: SIGHUP ignored: there is no config file to reload (the table stays as it is)"
                    ),
                    // A SIGHUP cannot carry --force: a file with no
                    // services is refused, and the log says how to apply it.
                    true => match control.reload(Default::default()).await {
                        Ok(m) => eprintln!("uvs: SIGHUP: {}", m.lines().next().unwrap_or_default()),
                        Err(e) => crate::control::server::log_lines(
                            "SIGHUP: reload refused, the table stays as it is: ",
                            &e,
                        ),
                    },
                },
                why = &mut gone => return Err(format!("{why}; stopping")),
                _ = control.handed_off.notified() => {
                    eprintln!("uvs: handed over to the new director; stopped");
                    return Ok(Stopped::HandedOver);
                }
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    for w in &wakes {
        w.wake();
    }
    for t in threads {
        let _ = t.join();
    }
    eprintln!("uvs: stopped");
    result
}

//! Why `uvs director` would not start, or stopped: each start check's
//! refusal, and what failed while assembling the director.

use crate::admin::client;
use crate::config::{ConfigError, counted};
use crate::control::server::LoadError;
use crate::ha::track::TrackError;
use crate::io::OpenError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The options, merged and checked.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no interface: give --interface IF (or interfaces in the config file)")]
    NoInterface,
    #[error("--interface {0} is given twice")]
    InterfaceTwice(String),
    #[error(
        "--workers {0} with --io xdp: AF_XDP takes one worker here (its sockets are per receive \
         queue, and a queue's frames cannot be spread by client); use --io packet or auto for \
         several workers"
    )]
    XdpWorkers(usize),
    /// HA's active/backup pair and routed VIPs do not mix
    /// (docs/scale-out.md).
    #[error(
        "--announce routed with --peer: the routers send the VIPs to every director, and HA's \
         backup forwards nothing, so its share of the flows would be dropped; routed directors \
         are all active (docs/scale-out.md): drop --peer, or use --announce arp"
    )]
    RoutedWithPeers,
    #[error("--max-conns {max_conns} is less than one connection per worker (--workers {workers})")]
    MaxConns { max_conns: usize, workers: usize },
    /// A BGP setting (its flag) given without `--bgp-socket`: it would
    /// be ignored.
    #[error("--{0} without --bgp-socket: uvs announces nothing without BIRD's socket")]
    WithoutBgpSocket(&'static str),
    /// An HA setting (its flag) given without a peer.
    #[error("--{0} without --peer")]
    WithoutPeer(&'static str),
    #[error(transparent)]
    Track(#[from] TrackError),
    #[error("--track-script-weight without --track-script")]
    WeightWithoutScript,
    #[error("--witness {0}: that is a --peer; the witness runs on a third host")]
    WitnessIsPeer(SocketAddr),
    #[error(
        "--peer {0} and {1}: the peers and the witness are of one family (this director sends \
         its heartbeats from one address, of that family)"
    )]
    HaFamilies(IpAddr, IpAddr),
    #[error("--peer needs --ha-key-file FILE (a shared secret, mode 0600)")]
    NoKeyFile,
    #[error("--ha-key-file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "--ha-key-file {} is mode {mode:o}: others could read the key; chmod 600 it",
        path.display()
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("--ha-key-file {}: the key needs at least 16 bytes", path.display())]
    KeyShort { path: PathBuf },

    #[error("--metrics {addr}: cannot listen there: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    // The host, before the start.
    #[error("cannot read {path}: {source}")]
    ReadForwarding {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "IP forwarding is on for {link} ({path} = {value}): the kernel would forward VIP traffic \
         alongside uvs. Turn it off with `sysctl -w net.ipv4.conf.{link}.forwarding=0` (or \
         net.ipv4.ip_forward=0) and start again"
    )]
    Forwarding {
        link: String,
        path: String,
        value: String,
    },
    #[error(
        "IPv6 forwarding is on ({path} = 1): the kernel would forward IPv6 VIP traffic alongside \
         uvs. Turn it off with `sysctl -w {key}=0` and start again"
    )]
    Forwarding6 { path: String, key: String },
    #[error(
        "{0} is a loopback interface: no client or real server can be reached through it. Give \
         the interface that carries the VIP's traffic"
    )]
    Loopback(String),
    #[error("{link} went away while waiting for it: {source}")]
    LinkGone {
        link: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "interface {link} is already driven by another uvs director ({holder}); two directors \
         on one interface would both forward every frame. Stop that one first"
    )]
    InterfaceTaken { link: String, holder: String },
    #[error("cannot take the lock for {link}: {source}")]
    Lock {
        link: String,
        #[source]
        source: io::Error,
    },

    // The control socket.
    #[error("cannot create {}: {source}", dir.display())]
    SocketDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "--socket {} exists and is not a socket; uvs will not remove it. Choose another path or \
         move the file away",
        .0.display()
    )]
    NotASocket(PathBuf),
    #[error("another uvs daemon is already listening on {}", .0.display())]
    AlreadyListening(PathBuf),
    #[error("cannot remove stale {}: {source}", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot check {}: {source}", path.display())]
    CheckSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {}: {source}", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    // A planned restart (--takeover).
    #[error(
        "--takeover: {} has no services, and the running director has {} ({}): an empty or \
         truncated file? Nothing was handed over; the running director goes on. Fix the file, \
         or add --force to take the table over anyway (it is kept as it is, and `uvs reload` \
         then compares the file with this empty one)",
        path.display(),
        counted(*services, "service"),
        counted(*reals, "real server")
    )]
    EmptyTakeover {
        path: PathBuf,
        services: usize,
        reals: usize,
    },
    /// The running director could not be asked.
    #[error("--takeover: {0}")]
    Takeover(#[source] client::Error),
    /// The running director refused (its message).
    #[error("--takeover: {0}")]
    TakeoverRefused(String),
    #[error("--takeover: unexpected answer from the running director")]
    TakeoverAnswer,

    // Assembling and running the director.
    #[error("--io xdp: {0}")]
    Xdp(#[source] OpenError),
    #[error(
        "--io xdp --offload: {0} is a veth (or the like): XDP_TX frames reach its peer only if \
         the peer runs an XDP program of its own, which uvs cannot see, and are lost otherwise. \
         Attach one to the peer and add --xdp-peer-program, or use the default (--io auto: \
         the tc program, which needs nothing of the peer)"
    )]
    XdpPeer(String),
    #[error(transparent)]
    Open(#[from] OpenError),
    /// rtnetlink.
    #[error(transparent)]
    Host(#[from] crate::host::Error),
    #[error("eventfd: {0}")]
    Eventfd(#[source] io::Error),
    /// The TUN device BIRD's routes to the VIPs go through
    /// (`control::bgp::conf::TETHER`).
    #[error(
        "--bgp-socket: the interface {tether} that the VIPs' routes go through: {0} (uvs \
         needs /dev/net/tun, CAP_NET_ADMIN and to write --bgp-vips-file; docs/scale-out.md)",
        tether = crate::control::bgp::conf::TETHER
    )]
    Tether(#[source] io::Error),
    /// The family, and the flag that gives such an address.
    #[error("--peer: the interface has no {0} address to send heartbeats from; give {1}")]
    NoHeartbeatSource(&'static str, &'static str),
    /// The config file's table (or the handed-over one) was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("interface {0} was replaced by another of that name; stopping")]
    Replaced(String),
    #[error("interface {0} disappeared; stopping")]
    Disappeared(String),
    /// A system call (the interface's index, flags or MAC, a socket
    /// option, the runtime, a thread, signals).
    #[error(transparent)]
    Io(#[from] io::Error),
}

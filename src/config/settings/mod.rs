//! The director's settings, each defined once: its flag, its key in the
//! config file's `[director]` table, its default, its help and its check.
//! The command line (`uvs director --help` is built from this table, see
//! `config::cli`) and the file both go through the same check into the
//! same [`Settings`]; a flag wins over the file, and a default applies
//! where neither gives a value. ripgrep's one definition per flag is the
//! model.

pub use super::ha_addr::{BadWitness, listen_addr, witness_addr};
use crate::io::IoKind;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
pub use values::SettingError;
use values::{ha_ip, ipv4, ipv6, seconds, switch, text, upto, whole};

mod values;

/// What one setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A switch: present on the command line, `true`/`false` in the file.
    Switch,
    /// Text (a name, an address, a path, a command).
    Text,
    /// A whole number.
    Int,
    /// A number, whole or not.
    Num,
}

/// How a flag relates to the others on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    None,
    /// Needed unless this other flag is given.
    RequiredUnless(&'static str),
    /// Takes this other flag.
    Requires(&'static str),
}

/// One setting of `uvs director`.
pub struct Setting {
    /// The long flag, without `--`; also its name in errors.
    pub flag: &'static str,
    pub short: Option<char>,
    /// Its key in the config file's `[director]` table (none: the
    /// command line only, as for the file itself and `--takeover`).
    pub key: Option<&'static str>,
    pub ty: Ty,
    /// Given more than once (a list in the file).
    pub multi: bool,
    pub value_name: &'static str,
    /// The value used when neither the command line nor the file gives
    /// one, checked as any other.
    pub default: Option<&'static str>,
    /// The values the command line accepts (shown in the help).
    pub choices: &'static [&'static str],
    pub env: Option<&'static str>,
    pub rel: Rel,
    pub hide: bool,
    pub help: &'static str,
    /// Checks one value (`name` is how the user gave it: `--flag` or the
    /// file's key) and sets it (a list: adds it).
    pub set: fn(&mut Settings, name: &str, value: &str) -> Result<(), SettingError>,
    /// Copies the value from another set of settings.
    pub copy: fn(from: &Settings, to: &mut Settings),
}

/// Every setting's value, as checked (`None` or empty: not given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub tun_source: Option<Ipv4Addr>,
    pub tun_source6: Option<Ipv6Addr>,
    pub max_conns: Option<usize>,
    pub io: Option<IoKind>,
    pub workers: Option<usize>,
    pub offload: bool,
    pub offload_egress: bool,
    pub xdp_peer_program: bool,
    pub takeover: bool,
    pub force: bool,
    pub tun_mss_clamp: Option<String>,
    pub peers: Vec<IpAddr>,
    pub priority: Option<u8>,
    pub ha_key_file: Option<PathBuf>,
    pub nopreempt: bool,
    pub heartbeat_ms: Option<u64>,
    pub dead_after: Option<u32>,
    pub preempt_delay: Option<Duration>,
    pub track_interfaces: Vec<String>,
    pub track_scripts: Vec<String>,
    pub track_script_weight: Option<String>,
    pub track_quorum: Option<String>,
    pub notify: Option<String>,
    pub witness: Option<SocketAddr>,
    pub garp_refresh: Option<Duration>,
    pub metrics: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub bgp_socket: Option<PathBuf>,
    pub bgp_vips_file: Option<PathBuf>,
    pub bgp_drain_delay: Option<Duration>,
    pub announce: Option<Announce>,
    /// The flags of the settings given (by the file or the command line),
    /// not filled by a default.
    pub given: BTreeSet<&'static str>,
}

/// How and where the daemon logs (`--log-format`, docs/systemd.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// uvs's own lines on stderr (`uvs: warning: ...`).
    Text,
    /// One JSON object per line on stderr, for log shippers.
    Json,
    /// The systemd journal, each event with its level as the priority.
    Journal,
}

/// How the VIPs reach the director (`--announce`, docs/scale-out.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Announce {
    /// On the link: the director answers ARP and neighbour solicitations
    /// for them and announces them (one active director per VIP).
    #[default]
    Arp,
    /// By routes to the director (static, ECMP, BGP): it answers no ARP
    /// or solicitation for them, announces nothing and takes no part in
    /// conflict detection against other directors, so several are active.
    Routed,
}

/// The defaults of the settings that have one, as the table gives them.
pub const DEFAULT_SOCKET: &str = "/run/uvs/uvs.sock";

/// Defines a setting of a field: `one` (a value), `list` (values) or
/// `switch`; the check turns `(name, value)` into the field's value.
macro_rules! setting {
    (one $field:ident, $check:expr, { $($rest:tt)* }) => {
        Setting {
            set: |s, name, v| {
                let check: fn(&str, &str) -> Result<_, SettingError> = $check;
                s.$field = Some(check(name, v)?);
                Ok(())
            },
            copy: |from, to| to.$field = from.$field.clone(),
            multi: false,
            $($rest)*
            ..PLAIN
        }
    };
    (list $field:ident, $check:expr, { $($rest:tt)* }) => {
        Setting {
            set: |s, name, v| {
                let check: fn(&str, &str) -> Result<_, SettingError> = $check;
                s.$field.push(check(name, v)?);
                Ok(())
            },
            copy: |from, to| to.$field = from.$field.clone(),
            multi: true,
            $($rest)*
            ..PLAIN
        }
    };
    (switch $field:ident, { $($rest:tt)* }) => {
        Setting {
            set: |s, name, v| {
                s.$field = switch(name, v)?;
                Ok(())
            },
            copy: |from, to| to.$field = from.$field,
            multi: false,
            ty: Ty::Switch,
            $($rest)*
            ..PLAIN
        }
    };
}

/// What a setting is unless its entry says otherwise: text, no short
/// flag, file key, default, choices or environment variable, shown.
const PLAIN: Setting = Setting {
    flag: "",
    short: None,
    key: None,
    ty: Ty::Text,
    multi: false,
    value_name: "",
    default: None,
    choices: &[],
    env: None,
    rel: Rel::None,
    hide: false,
    help: "",
    set: |_, _, _| Ok(()),
    copy: |_, _| {},
};

/// Every setting of `uvs director`, in the order `--help` lists them.
pub static SETTINGS: &[Setting] = &[
    setting!(list interfaces, text, {
        flag: "interface", short: Some('i'), key: Some("interfaces"), value_name: "IF",
        rel: Rel::RequiredUnless("config"),
        help: "Interface that receives VIP traffic or reaches real servers; repeat it for a \
               two-armed director (clients on one, NAT real servers on another)",
    }),
    setting!(one config, |_, v| Ok(PathBuf::from(v)), {
        flag: "config", value_name: "FILE",
        help: "The start state in TOML (docs/config.md); `uvs reload` and SIGHUP apply what \
               changed in it. Flags win over the file",
    }),
    setting!(switch takeover, {
        flag: "takeover",
        help: "A planned restart or upgrade: take the table and every connection over from the \
               director running on --socket, which stops; established connections continue",
    }),
    setting!(switch force, {
        flag: "force",
        help: "With --takeover: go ahead although --config has no services while the running \
               director has some (the running table is kept)",
    }),
    setting!(one socket, |_, v| Ok(PathBuf::from(v)), {
        flag: "socket", key: Some("socket"), value_name: "PATH",
        default: Some(DEFAULT_SOCKET), env: Some("UVS_SOCKET"),
        help: "Control socket for uvsadm",
    }),
    setting!(one tun_source, ipv4, {
        flag: "tun-source", key: Some("tun_source"), value_name: "ADDR",
        help: "Outer source address for tunnelled (-i) IPv4 real servers; default: the first \
               interface's first IPv4 address",
    }),
    setting!(one tun_source6, ipv6, {
        flag: "tun-source6", key: Some("tun_source6"), value_name: "ADDR",
        help: "Outer source address for tunnelled (-i) IPv6 real servers (IPv6-in-IPv6, \
               IPv4-in-IPv6); default: the first interface's first IPv6 address that is not \
               link-local",
    }),
    setting!(one max_conns, |name, v| upto(name, v, crate::lvs::conn::MAX_LIMIT), {
        flag: "max-conns", key: Some("max_conns"), ty: Ty::Int, value_name: "N",
        default: Some("1048576"),
        help: "Most connections tracked at once. The memory for them is logged at start; when \
               the table is full, the oldest entries that saw one packet only (or a handshake \
               never finished) make room, so a flood cannot lock out established connections",
    }),
    setting!(one io, |name, v| {
        <IoKind as clap::ValueEnum>::from_str(v, false)
            .map_err(|_| SettingError::invalid(name, v, "auto, xdp, packet or packet-ring"))
    }, {
        flag: "io", key: Some("io"), value_name: "IO",
        default: Some("auto"), choices: &["auto", "xdp", "packet", "packet-ring"],
        env: Some("UVS_IO"),
        help: "Packet I/O: `auto` is `packet` with --offload (the tc program forwards \
               established DR flows and schedules the new ones it can; without it, saying \
               why, if it cannot be attached; several workers use `packet`); `xdp` steers VIP \
               traffic (and NAT replies) into AF_XDP sockets with a small XDP program and \
               passes the rest to the kernel; `packet` uses batched AF_PACKET sockets, uvs \
               seeing every frame; `packet-ring` receives through TPACKET_V3 rings (a few ms \
               of latency at low rates)",
    }),
    setting!(one workers, |name, v| upto(name, v, crate::io::fanout::MAX_WORKERS), {
        flag: "workers", key: Some("workers"), ty: Ty::Int, value_name: "N",
        default: None, env: Some("UVS_WORKERS"),
        help: "Data-plane threads, each with its own share of the connection table \
               (--max-conns is split among them): a link's frames are spread by the client's \
               address and port (PACKET_FANOUT with a BPF program), so a connection always \
               meets the same worker, both ways. Unset: as many as the CPUs uvs may run on and \
               the most receive queues of any link allow (a veth has one), one with --io xdp",
    }),
    setting!(switch offload, {
        flag: "offload", key: Some("offload"),
        help: "Kernel programs forward established DR (and IPv4 TUN) flows and schedule new \
               flows of the services they can (sh, mh, rr, wrr, fo, dh; docs/io.md): the XDP \
               program on xdp (XDP_TX), the tc program on packet and packet-ring (super-frames \
               whole, one worker). On by default (--io auto)",
    }),
    setting!(switch xdp_peer_program, {
        flag: "xdp-peer-program", key: Some("xdp_peer_program"),
        rel: Rel::Requires("offload"),
        help: "With --io xdp --offload on a veth: its peer runs an XDP program, so XDP_TX \
               frames reach it (uvs cannot see the peer); without it such a start is refused",
    }),
    setting!(switch offload_egress, {
        flag: "offload-egress", key: Some("offload_egress"),
        rel: Rel::Requires("offload"),
        help: "With --offload on packet and packet-ring: the tc program sends every frame out \
               of the link's own transmit (bpf_redirect), also on a veth, so the link's egress \
               qdisc, tc egress and captures see the offloaded frames",
    }),
    setting!(one tun_mss_clamp, text, {
        flag: "tun-mss-clamp", value_name: "MSS",
        hide: true,
        help: "Refused with an explanation: the MSS that limits tunnelled uploads is the real \
               server's, set there (see `uvs audit`)",
    }),
    // HA (docs/ha.md).
    setting!(list peers, ha_ip, {
        flag: "peer", key: Some("peers"), value_name: "ADDR",
        help: "Another director of the same VIPs (repeat it): one of them is active at a time, \
               by --priority, over authenticated unicast heartbeats, and the active one syncs \
               its connections to the others. IPv4 or IPv6, every peer of one family: this \
               director's own address of that family (--tun-source or --tun-source6) is \
               the heartbeats' source",
    }),
    setting!(one priority, |name, v| whole::<u8>(name, v, (1, 254), "give 1 to 254"), {
        flag: "priority", key: Some("priority"), ty: Ty::Int, value_name: "N",
        default: Some("100"),
        help: "The higher one holds the VIPs",
    }),
    setting!(one ha_key_file, |_, v| Ok(PathBuf::from(v)), {
        flag: "ha-key-file", key: Some("ha_key_file"), value_name: "FILE",
        help: "The shared secret of the heartbeats and the sync (mode 0600)",
    }),
    setting!(switch nopreempt, {
        flag: "nopreempt", key: Some("nopreempt"),
        help: "Do not take the VIPs from a lower-priority director that holds them; wait until \
               it fails",
    }),
    setting!(one heartbeat_ms, |name, v| whole(name, v, (10, 10_000), "give 10 to 10000"), {
        flag: "heartbeat-ms", key: Some("heartbeat_ms"), ty: Ty::Int,
        value_name: "MS", default: Some("100"),
        help: "Milliseconds between heartbeats",
    }),
    setting!(one dead_after, |name, v| {
        whole::<u32>(name, v, (3, 1000), "give 3 to 1000 missed heartbeats")
    }, {
        flag: "dead-after", key: Some("dead_after"), ty: Ty::Int,
        value_name: "N", default: Some("10"),
        help: "Heartbeats missed before a peer counts as gone and the VIPs move (10: about 1 s)",
    }),
    setting!(one preempt_delay, |name, v| {
        seconds(v, 0.0, 3600.0)
            .ok_or_else(|| SettingError::invalid(name, v, "give seconds from 0 to 3600"))
    }, {
        flag: "preempt-delay", key: Some("preempt_delay"), ty: Ty::Num,
        value_name: "SECS", default: Some("0"),
        help: "Seconds a higher-priority director waits, once it has the holder's connection \
               table, before it takes the VIPs back",
    }),
    setting!(list track_interfaces, text, {
        flag: "track-interface", key: Some("track_interfaces"), value_name: "IF[:WEIGHT]",
        help: "Watch an interface (repeatable): down lowers the priority by WEIGHT (IF:-50), or \
               without a weight puts the director in fault",
    }),
    setting!(list track_scripts, text, {
        flag: "track-script", key: Some("track_scripts"), value_name: "CMD",
        help: "Run a command every second (repeatable): a non-zero exit lowers the priority by \
               --track-script-weight, or puts the director in fault",
    }),
    setting!(one track_script_weight, text, {
        flag: "track-script-weight", key: Some("track_script_weight"),
        value_name: "WEIGHT",
        help: "The weight of --track-script (-254 to 254)",
    }),
    setting!(one track_quorum, text, {
        flag: "track-quorum", key: Some("track_quorum"), value_name: "WEIGHT|fault",
        help: "A service that lost its quorum lowers the priority by WEIGHT, or (`fault`) puts \
               the director in fault",
    }),
    setting!(one notify, text, {
        flag: "notify", key: Some("notify"), value_name: "CMD",
        help: "Run on every change of state (`sh -c CMD`, with the state ACTIVE, BACKUP or \
               FAULT and the priority as $1 and $2, the reason in $UVS_HA_REASON)",
    }),
    setting!(one witness, |name, v| witness_addr(v).map_err(|source| SettingError::Witness {
        name: name.to_string(),
        value: v.to_string(),
        source,
    }), {
        flag: "witness", key: Some("witness"), value_name: "ADDR[:PORT]",
        help: "A third voter on another host (`uvs witness`, same key): the VIPs are held only \
               with a majority of the directors and the witness, so heartbeats lost both ways \
               leave one holder",
    }),
    setting!(one garp_refresh, |name, v| match seconds(v, 0.0, 0.0) {
        Some(d) => Ok(d),
        None => seconds(v, 1.0, 86_400.0)
            .ok_or_else(|| {
                SettingError::invalid(name, v, "give seconds from 1 to 86400, or 0 for none")
            }),
    }, {
        flag: "garp-refresh", key: Some("garp_refresh"), ty: Ty::Num,
        value_name: "SECS", default: Some("0"),
        help: "The holder announces its VIPs (gratuitous ARP) again every SECS, as \
               keepalived's garp_master_refresh (0: off); also without --peer",
    }),
    setting!(one announce, |name, v| {
        <Announce as clap::ValueEnum>::from_str(v, false)
            .map_err(|_| SettingError::invalid(name, v, "arp or routed"))
    }, {
        flag: "announce", key: Some("announce"), value_name: "HOW",
        default: Some("arp"), choices: &["arp", "routed"],
        help: "How the VIPs reach this director: `arp` answers ARP and neighbour \
               solicitations for them and announces them (gratuitous ARP); `routed`: routers \
               send them here (static or ECMP routes, BGP), so it answers and announces \
               nothing for them and several directors with the same table are active at once \
               (docs/scale-out.md); refused with --peer",
    }),
    setting!(one metrics, |name, v| v.trim().parse::<SocketAddr>().map_err(|_| {
        SettingError::invalid(name, v, "give ADDR:PORT ([ADDR]:PORT for IPv6)")
    }), {
        flag: "metrics", key: Some("metrics"), value_name: "ADDR:PORT",
        help: "Serve Prometheus metrics at http://ADDR:PORT/metrics (docs/metrics.md); off \
               unless given",
    }),
    setting!(one log_format, |name, v| {
        <LogFormat as clap::ValueEnum>::from_str(v, false)
            .map_err(|_| SettingError::invalid(name, v, "text, json or journal"))
    }, {
        flag: "log-format", key: Some("log_format"), value_name: "FORMAT",
        default: Some("text"), choices: &["text", "json", "journal"],
        help: "The log: `text` lines on stderr; `json` one object per line on stderr \
               (timestamp, level, target, message, fields); `journal` the systemd journal, \
               with levels. Not given, under systemd (stderr is the journal's stream): \
               `journal`",
    }),
    // BGP through the operator's BIRD (docs/scale-out.md).
    setting!(one bgp_socket, |_, v| Ok(PathBuf::from(v)), {
        flag: "bgp-socket", key: Some("bgp_socket"), value_name: "PATH",
        help: "BIRD 2's control socket (`bird -s`): uvs announces each VIP through BIRD while \
               it forwards and the VIP's services meet their quorums, and withdraws it when \
               draining (`uvs drain`), stopping, a quorum is lost or a link is down; off \
               unless given",
    }),
    setting!(one bgp_vips_file, |_, v| Ok(PathBuf::from(v)), {
        flag: "bgp-vips-file", key: Some("bgp_vips_file"), value_name: "FILE",
        default: Some(crate::control::bgp::conf::DEFAULT_VIPS_FILE),
        help: "With --bgp-socket: the file uvs writes the announced VIPs to (BIRD's static \
               protocols uvs_vips and uvs_vips6), included by bird.conf; BIRD re-reads it on \
               each change (`configure`)",
    }),
    setting!(one bgp_drain_delay, |name, v| {
        seconds(v, 0.0, 600.0)
            .ok_or_else(|| SettingError::invalid(name, v, "give seconds from 0 to 600"))
    }, {
        flag: "bgp-drain-delay", key: Some("bgp_drain_delay"), ty: Ty::Num,
        value_name: "SECS", default: Some("5"),
        help: "With --bgp-socket, on SIGTERM: seconds between withdrawing the routes and \
               stopping the data plane, for the routers to move the flows elsewhere",
    }),
];

/// The setting of a config file key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == Some(key))
}

impl Settings {
    /// `self`, with every setting `over` was given replacing this one's
    /// (a flag over the file: a list given on the command line replaces
    /// the file's list).
    pub fn overlaid(mut self, over: &Settings) -> Settings {
        for s in SETTINGS.iter().filter(|s| over.given.contains(s.flag)) {
            (s.copy)(over, &mut self);
            self.given.insert(s.flag);
        }
        self
    }

    /// Each setting neither given nor set takes its default.
    pub fn with_defaults(mut self) -> Settings {
        for s in SETTINGS {
            if let Some(d) = s.default.filter(|_| !self.given.contains(s.flag)) {
                (s.set)(&mut self, s.flag, d).expect("a setting's default passes its check");
            }
        }
        self
    }

    /// Sets `setting` from one value given as `name`, noting it given.
    pub fn set(
        &mut self,
        setting: &'static Setting,
        name: &str,
        v: &str,
    ) -> Result<(), SettingError> {
        (setting.set)(self, name, v)?;
        self.given.insert(setting.flag);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// Kept here: the layering test allows a test at the end of a file to use
/// a higher layer (`layering::fenced`), not a separate tests file.
#[cfg(test)]
mod documented {
    use super::*;

    /// docs/config.md's example names every key of the table (set, or
    /// commented out where it needs a site's value), and its text every
    /// flag, so `--help`, the table and the documentation agree.
    #[test]
    fn every_setting_is_documented() {
        let doc = include_str!("../../../docs/config.md");
        let block = crate::layering::fenced(doc, "toml");
        for st in SETTINGS.iter().filter(|s| !s.hide) {
            if let Some(k) = st.key {
                let line = |l: &str| {
                    l.trim_start_matches(['#', ' '])
                        .starts_with(&format!("{k} ="))
                };
                assert!(
                    block.lines().any(line),
                    "docs/config.md's example lacks `{k}`"
                );
            } else {
                assert!(
                    doc.contains(&format!("--{}", st.flag)),
                    "docs/config.md lacks --{}",
                    st.flag
                );
            }
        }
    }
}

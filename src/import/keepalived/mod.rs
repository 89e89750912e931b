//! `uvs import-keepalived FILE`: keepalived.conf's virtual servers as a
//! uvs config file (docs/config.md). Everything uvs carries over is
//! printed; everything it does not gets a warning naming the file and
//! line, and what replaces it where there is something. What the director
//! would refuse (a duplicate virtual or real server, a port out of range,
//! an address that can never be one), and what keepalived itself does
//! not read, is an error with its place, and then no config is printed.
//!
//! [`read`] turns the files into statements by keepalived's rules
//! ([`syntax`]), this module converts them, [`verify`] finds what the
//! director would refuse, [`report`] keeps the findings.

mod read;
mod report;
mod syntax;
mod verify;

use read::Node;
use report::{Place, Report, shown};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The import: the config text and the warnings (each `FILE:LINE: …`).
#[derive(Debug, Default)]
pub struct Imported {
    pub config: String,
    pub warnings: Vec<String>,
}

/// A refused import: every error found (each `FILE:LINE: …`), and the
/// warnings found along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors.join("\n"))
    }
}

/// Converts keepalived.conf (with its includes) to uvs's config text.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let mut report = Report::default();
    let converted = read::read(path, &mut report).map(|nodes| convert(path, &nodes, &mut report));
    if let Some(c) = &converted {
        verify::identities(c, &mut report);
        if !report.has_errors() {
            verify::director_accepts(c, &mut report);
        }
    }
    let ok = converted.is_some() && !report.has_errors();
    let (warnings, mut errors) = report.finish();
    match converted {
        Some(c) if ok => Ok(Imported {
            config: c.text,
            warnings,
        }),
        _ => {
            if errors.is_empty() {
                errors.push(format!("{}: not imported", path.display()));
            }
            Err(ImportError { errors, warnings })
        }
    }
}

/// A virtual service of the output.
#[derive(Debug)]
struct Service {
    /// The statement that gives its address (the virtual_server, or the
    /// group member).
    at: Place,
    key: crate::lvs::service::ServiceKey,
    /// Its body (shared by the members of a group).
    body: usize,
}

/// What a virtual_server block becomes: the lines under `[[service]]`.
#[derive(Debug, Default)]
struct Body {
    text: String,
    nat: bool,
    real_servers: Vec<RealServer>,
    sorry: Option<RealServer>,
}

/// A real (or sorry) server as the output has it.
#[derive(Debug, Clone)]
struct RealServer {
    at: Place,
    addr: Ipv4Addr,
    /// The port given, if any: NAT uses it (else the service's), DR and
    /// TUN the service's.
    port: Option<u16>,
}

impl RealServer {
    fn port_for(&self, nat: bool, service_port: u16) -> u16 {
        match nat {
            true => self.port.unwrap_or(service_port),
            false => service_port,
        }
    }
}

/// The converted file: its text, and where each part came from.
#[derive(Debug, Default)]
struct Converted {
    /// The main file, for what has no better place.
    file: Place,
    text: String,
    services: Vec<Service>,
    bodies: Vec<Body>,
    /// `virtual_server fwmark N`s (not carried over, but checked for
    /// duplicates).
    fwmarks: Vec<(Place, String)>,
    /// The first line in `text` of each service and real server, and its
    /// place in the input.
    origins: Vec<(usize, Place)>,
}

/// A member of a virtual_server_group: its address and port words.
struct Member<'a> {
    at: &'a Place,
    words: &'a [String],
}

fn convert(path: &Path, nodes: &[Node], r: &mut Report) -> Converted {
    let mut groups: HashMap<&str, Vec<Member>> = HashMap::new();
    for n in nodes.iter().filter(|n| n.key() == "virtual_server_group") {
        if !block(n, r) {
            continue;
        }
        let Some(name) = n.arg(1) else {
            r.error(&n.at, "virtual_server_group needs a name");
            continue;
        };
        extra(n, 2, r);
        let members = n
            .children
            .iter()
            .map(|m| {
                no_block(m, r);
                Member {
                    at: &m.at,
                    words: &m.words,
                }
            })
            .collect();
        if groups.insert(name, members).is_some() {
            r.error(
                &n.at,
                format!("virtual_server_group {} is defined twice", shown(name)),
            );
        }
    }
    let mut out = Converted {
        file: Place {
            file: std::rc::Rc::from(path),
            line: 0,
        },
        ..Converted::default()
    };
    for n in nodes {
        match n.key() {
            "virtual_server_group" => {}
            "virtual_server" => virtual_server(n, &groups, &mut out, r),
            "include" => r.warn(&n.at, "include without a file"),
            k if k.starts_with("vrrp_")
                || k == "static_ipaddress"
                || k == "static_routes"
                || k == "static_rules" =>
            {
                r.warn(
                    &n.at,
                    format!(
                        "{k} is not carried over: uvs does not do VRRP. uvs answers ARP for its VIPs itself; \
                     for failover keep keepalived's VRRP (without virtual servers) until uvs has its \
                     backup director"
                    ),
                )
            }
            "global_defs" => r.warn(
                &n.at,
                "global_defs is not carried over (nothing in it applies to uvs)",
            ),
            _ => r.warn(&n.at, format!("{} is not carried over", option(n))),
        }
    }
    render(path, &mut out);
    out
}

/// The output's text: the header, then each service with its body; the
/// line of each service and real server goes into `origins`.
fn render(path: &Path, c: &mut Converted) {
    let mut t = format!(
        "# uvs config imported from {} by `uvs import-keepalived`.\n\
         # Review the warnings it printed: each names an option not carried over.\n\n\
         [director]\n# interfaces = [\"eth0\"]   # keepalived does not say; give --interface\n",
        path.display()
    );
    let mut lines = t.matches('\n').count();
    for s in &c.services {
        c.origins.push((lines + 2, s.at.clone()));
        let head = format!(
            "\n[[service]]\nprotocol = \"{}\"\naddress = {}\n",
            s.key.protocol.name().to_lowercase(),
            toml_str(&format!("{}:{}", s.key.addr, s.key.port))
        );
        lines += head.matches('\n').count();
        t.push_str(&head);
        let body = &c.bodies[s.body];
        // The sorry server is written first, then the real servers.
        let mut servers = body.sorry.iter().chain(&body.real_servers);
        for l in body.text.lines() {
            lines += 1;
            let l = l.trim_start();
            if (l.starts_with("[service.sorry_server]") || l.starts_with("[[service.real_server]]"))
                && let Some(x) = servers.next()
            {
                c.origins.push((lines, x.at.clone()));
            }
        }
        t.push_str(&body.text);
    }
    c.text = t;
}

/// Whether `n` opens a block; an error if not (keepalived reports a
/// missing `{` and reads what follows as the block).
fn block(n: &Node, r: &mut Report) -> bool {
    if !n.opens {
        r.error(
            &n.at,
            format!(
                "{} needs a block `{{ … }}` after it; keepalived reports it missing",
                option(n)
            ),
        );
    }
    n.opens
}

/// keepalived's checkers: each opens a block inside a real server.
pub(super) const CHECKERS: &[&str] = &[
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "UDP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "SMTP_CHECK",
    "BFD_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

/// The words that open a block in keepalived: these and the checkers.
const BLOCKS: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "real_server",
    "url",
];

/// An error when a statement that takes no block has one: keepalived
/// ends a statement only at a brace or a line end, so `weight 2 TCP_CHECK
/// {` is one statement, `weight` with two values, and the block is no
/// check. Returns whether the statement is sound.
fn no_block(n: &Node, r: &mut Report) -> bool {
    if !n.opens {
        return true;
    }
    let hint = match n
        .words
        .iter()
        .skip(1)
        .rfind(|w| BLOCKS.contains(&w.as_str()) || CHECKERS.contains(&w.as_str()))
    {
        Some(b) => format!(
            ", and its block is no {b}: write {b} on a line of its own (or after a `{{` or `}}`)"
        ),
        None => String::new(),
    };
    r.error(
        &n.at,
        format!(
            "{} takes no block, but a `{{` follows: keepalived ends a statement only at a brace or \
             a line end, so it reads this whole line up to the `{{` as one {} statement{hint}",
            option(n),
            n.key()
        ),
    );
    false
}

/// A warning for words after the `keep` first ones (keepalived ignores
/// them): `path / status_code 200` is path `/`, and its status is lost.
fn extra(n: &Node, keep: usize, r: &mut Report) {
    if n.words.len() > keep {
        r.warn(
            &n.at,
            format!(
                "{} takes {}; keepalived ignores the rest of the statement ({}), and so does the \
                 import: write each option on a line of its own",
                option(n),
                match keep {
                    1 => "no value".to_string(),
                    2 => "one value".to_string(),
                    k => format!("{} values", k - 1),
                },
                shown(&n.words[keep..].join(" "))
            ),
        );
    }
}

/// An option's one value: an error if there is none (keepalived stops on
/// a missing parameter), a warning for more.
fn value<'a>(n: &'a Node, r: &mut Report) -> Option<&'a str> {
    if no_block(n, r) {
        extra(n, 2, r);
    }
    let v = n.arg(1);
    if v.is_none() {
        r.error(&n.at, format!("{} needs a value", option(n)));
    }
    v
}

/// A statement's keyword as messages name it: in backquotes if it is a
/// word, else not at all (a line of a file that is not config).
fn option(n: &Node) -> String {
    let k = n.key();
    if k.starts_with(['$', '@', '~']) {
        "a keepalived parameter, conditional line or sequence ($NAME, @ID, ~SEQ; the import does \
         not expand them: expand them first)"
            .into()
    } else if !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        format!("`{k}`")
    } else {
        "a statement that does not start with a keepalived keyword (not shown)".into()
    }
}

fn scheduler(n: &Node, r: &mut Report) -> &'static str {
    let Some(c) = n.child("lb_algo").or_else(|| n.child("lvs_sched")) else {
        return "wlc";
    };
    match value(c, r) {
        None => "wlc",
        Some("rr") => "rr",
        Some("wrr") => "wrr",
        Some("lc") => "lc",
        Some("wlc") => "wlc",
        Some("sh") => "sh",
        Some(other) => {
            r.warn(
                &c.at,
                format!(
                    "lb_algo {} is not in uvs yet (rr, wrr, lc, wlc, sh): wlc is used",
                    shown(other)
                ),
            );
            "wlc"
        }
    }
}

fn forward(kind: Option<&str>) -> Option<&'static str> {
    match kind.map(str::to_ascii_uppercase).as_deref() {
        Some("DR") => Some("dr"),
        // keepalived's default.
        None | Some("NAT") => Some("nat"),
        Some("TUN") => Some("tun"),
        _ => None,
    }
}

/// The reason an address can never be a real server's, if it is one.
fn never_a_host(a: Ipv4Addr) -> Option<&'static str> {
    if a.is_unspecified() || a.octets()[0] == 0 {
        Some("an unspecified (\"this network\") address")
    } else if a.is_broadcast() {
        Some("the limited broadcast address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_loopback() {
        Some("a loopback address")
    } else if u32::from(a) >= 0xf000_0000 {
        Some("a reserved (class E) address")
    } else {
        None
    }
}

/// A port word: 1 to 65535, else an error naming it.
fn port(w: &str, at: &Place, r: &mut Report) -> Option<u16> {
    match w.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            r.error(at, format!("port {} is not a port (1 to 65535)", shown(w)));
            None
        }
    }
}

/// An IPv4 address word; IPv6 gets a warning (not in uvs), anything else
/// an error.
fn ipv4(w: &str, what: &str, at: &Place, r: &mut Report) -> Option<Ipv4Addr> {
    match w.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            r.warn(
                at,
                format!("IPv6 {what}s are not in uvs; {} not carried over", shown(w)),
            );
            None
        }
        Err(_) => {
            r.error(at, format!("{} is not an IPv4 address", shown(w)));
            None
        }
    }
}

/// A virtual server's address and port, checked as the director checks
/// them. `persistent`: a port-0 service is then persistent (not in uvs
/// yet, so left out with a warning); without, the director refuses it.
fn vip(a: &str, p: &str, at: &Place, persistent: bool, r: &mut Report) -> Option<(Ipv4Addr, u16)> {
    let addr = ipv4(a, "virtual server", at, r);
    let port = match p.parse::<u16>() {
        Ok(0) if persistent => {
            r.warn(
                at,
                "port 0 (every port) makes a persistent service, and persistence is not in uvs \
                 yet; not carried over",
            );
            None
        }
        Ok(0) => {
            r.error(
                at,
                "port 0 (every port) is only for a persistent service: the director (and IPVS) \
                 refuses it without persistence",
            );
            None
        }
        _ => port(p, at, r),
    };
    let addr = addr?;
    if let Err(e) = crate::control::model::check_vip(addr) {
        r.error(at, e);
        return None;
    }
    Some((addr, port?))
}

fn virtual_server(
    n: &Node,
    groups: &HashMap<&str, Vec<Member>>,
    out: &mut Converted,
    r: &mut Report,
) {
    if !block(n, r) {
        return;
    }
    let persistent = n.child("persistence_timeout").is_some();
    let mut vips: Vec<(Place, Ipv4Addr, u16)> = Vec::new();
    match (n.arg(1), n.arg(2)) {
        (Some("fwmark"), Some(mark)) => {
            extra(n, 3, r);
            out.fwmarks.push((n.at.clone(), mark.to_string()));
            r.warn(
                &n.at,
                "firewall-mark virtual servers are not in uvs yet (a later issue adds -f); not carried over",
            );
            return;
        }
        (Some("group"), Some(g)) => {
            extra(n, 3, r);
            let Some(members) = groups.get(g) else {
                r.error(
                    &n.at,
                    format!("virtual_server_group {} is not defined", shown(g)),
                );
                return;
            };
            for m in members {
                match (m.words.first().map(String::as_str), m.words.get(1)) {
                    (Some("fwmark"), _) => r.warn(
                        m.at,
                        "firewall-mark group members are not in uvs yet (a later issue adds -f); not carried over",
                    ),
                    (Some(a), Some(p)) if !a.contains('-') => {
                        if m.words.len() > 2 {
                            r.warn(m.at, "a group member is an address and a port; the rest is ignored, as keepalived ignores it");
                        }
                        if let Some((addr, port)) = vip(a, p, m.at, persistent, r) {
                            vips.push((m.at.clone(), addr, port));
                        }
                    }
                    (Some(a), Some(_)) => r.warn(
                        m.at,
                        format!(
                            "group member {} not carried over (address ranges are not supported)",
                            shown(a)
                        ),
                    ),
                    _ => r.error(m.at, "a group member needs an address and a port"),
                }
            }
        }
        (Some(a), Some(p)) => {
            extra(n, 3, r);
            if let Some((addr, port)) = vip(a, p, &n.at, persistent, r) {
                vips.push((n.at.clone(), addr, port));
            }
        }
        _ => {
            r.error(
                &n.at,
                "virtual_server needs an address and a port (or `group NAME`, `fwmark N`)",
            );
            return;
        }
    }
    if vips.is_empty() {
        return;
    }
    let protocol = match n.child("protocol") {
        // keepalived sets UDP, as the kernel would, and reports it.
        None => {
            r.warn(
                &n.at,
                "virtual_server without protocol: keepalived defaults to UDP (and says so), and so \
                 does the import; write `protocol TCP` or `protocol UDP`",
            );
            "udp"
        }
        Some(c) => match value(c, r).map(str::to_ascii_uppercase).as_deref() {
            Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some(p) => {
                r.warn(
                    &c.at,
                    format!(
                        "protocol {} is not in uvs (TCP, UDP); not carried over",
                        shown(p)
                    ),
                );
                return;
            }
            None => return,
        },
    };
    let kind_node = n.child("lb_kind").or_else(|| n.child("lvs_method"));
    if kind_node.is_none() {
        r.warn(
            &n.at,
            "virtual_server without lb_kind: keepalived uses NAT (and says so), and so does the \
             import; write `lb_kind NAT`, `DR` or `TUN`",
        );
    }
    let Some(fwd) = forward(kind_node.and_then(|c| value(c, r))) else {
        r.warn(
            &kind_node.unwrap_or(n).at,
            "lb_kind must be DR, NAT or TUN; not carried over",
        );
        return;
    };
    let sched = scheduler(n, r);
    let interval = match n.child("delay_loop") {
        Some(c) => seconds(c, r).unwrap_or_else(|| "60".into()),
        None => "60".into(),
    };
    // keepalived removes a failed server unless inhibit_on_failure says
    // to keep it at weight 0 (uvs's quiesce).
    let inhibit = n.child("inhibit_on_failure").is_some();
    let mut body = Body {
        nat: fwd == "nat",
        ..Body::default()
    };
    let t = &mut body.text;
    let _ = writeln!(t, "scheduler = \"{sched}\"");
    let _ = writeln!(
        t,
        "on_failure = \"{}\"",
        if inhibit { "quiesce" } else { "remove" }
    );
    if let Some(q) = n
        .child("quorum")
        .and_then(|c| whole(c, 1, u32::MAX.into(), r))
    {
        let _ = writeln!(t, "quorum = {q}");
    }
    for k in ["quorum_up", "quorum_down"] {
        if let Some(c) = n.child(k)
            && no_block(c, r)
        {
            if c.words.len() < 2 {
                r.error(&c.at, format!("`{k}` needs a command"));
                continue;
            }
            let cmd = c.words[1..].join(" ");
            let _ = writeln!(t, "{k} = {}", toml_str(&cmd));
        }
    }
    for c in &n.children {
        match c.key() {
            "real_server" | "sorry_server" => {}
            "delay_loop" | "lb_algo" | "lvs_sched" | "lb_kind" | "lvs_method" | "protocol"
            | "quorum" | "quorum_up" | "quorum_down" => {}
            "inhibit_on_failure" => {
                no_block(c, r);
            }
            "persistence_timeout" | "persistence_granularity" | "persistence_engine" => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!(
                        "{} is not carried over: persistence is not in uvs yet (a later issue adds it)",
                        c.key()
                    ),
                )
            }
            _ => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!("virtual_server option {} is not carried over", option(c)),
                )
            }
        }
    }
    if let Some(s) = n.child("sorry_server")
        && no_block(s, r)
    {
        extra(s, 3, r);
        if let Some(rs) = server(s, r) {
            let _ = writeln!(body.text, "\n  [service.sorry_server]");
            let _ = writeln!(body.text, "  address = {}", toml_str(&addr_port(&rs, fwd)));
            let _ = writeln!(body.text, "  forward = \"{fwd}\"");
            body.sorry = Some(rs);
        }
    }
    for c in n.children.iter().filter(|c| c.key() == "real_server") {
        if !block(c, r) {
            continue;
        }
        extra(c, 3, r);
        let Some(rs) = server(c, r) else { continue };
        real_server(c, &rs, fwd, inhibit, &interval, &mut body.text, r);
        body.real_servers.push(rs);
    }
    let index = out.bodies.len();
    out.bodies.push(body);
    for (at, addr, port) in vips {
        out.services.push(Service {
            at,
            key: crate::lvs::service::ServiceKey {
                protocol: match protocol {
                    "udp" => crate::lvs::service::Protocol::Udp,
                    _ => crate::lvs::service::Protocol::Tcp,
                },
                addr,
                port,
            },
            body: index,
        });
    }
}

/// A real or sorry server's address and port, checked.
fn server(n: &Node, r: &mut Report) -> Option<RealServer> {
    let Some(a) = n.arg(1) else {
        r.error(&n.at, format!("{} needs an address", option(n)));
        return None;
    };
    let addr = ipv4(a, "real server", &n.at, r);
    let port = match n.arg(2) {
        Some(p) => Some(port(p, &n.at, r)?),
        None => None,
    };
    let addr = addr?;
    if let Some(why) = never_a_host(addr) {
        r.error(
            &n.at,
            format!("{addr} cannot be a real server: it is {why}"),
        );
        return None;
    }
    Some(RealServer {
        at: n.at.clone(),
        addr,
        port,
    })
}

fn real_server(
    n: &Node,
    rs: &RealServer,
    fwd: &str,
    inhibit: bool,
    interval: &str,
    t: &mut String,
    r: &mut Report,
) {
    let _ = writeln!(t, "\n  [[service.real_server]]");
    let _ = writeln!(t, "  address = {}", toml_str(&addr_port(rs, fwd)));
    let _ = writeln!(t, "  forward = \"{fwd}\"");
    if let Some(wt) = n
        .child("weight")
        .and_then(|c| whole(c, 0, i32::MAX as u64, r))
    {
        let _ = writeln!(t, "  weight = {wt}");
    }
    let mut checks = 0;
    for c in &n.children {
        match c.key() {
            "weight" => {}
            "inhibit_on_failure" => {
                if no_block(c, r) && !inhibit {
                    r.warn(
                        &c.at,
                        "inhibit_on_failure on one real server: uvs sets it per service; not carried over",
                    );
                }
            }
            "TCP_CHECK" | "HTTP_GET" | "UDP_CHECK" | "DNS_CHECK" | "MISC_CHECK" | "SSL_GET" => {
                if !block(c, r) {
                    continue;
                }
                checks += 1;
                if checks > 1 {
                    r.warn(
                        &c.at,
                        "a second check on one real server: uvs runs one; not carried over",
                    );
                    continue;
                }
                if let Some(text) = check(c, interval, r) {
                    t.push_str(&text);
                }
            }
            _ => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!("real_server option {} is not carried over", option(c)),
                )
            }
        }
    }
}

/// A whole number option from `lo` to `hi`, or a warning and `None`:
/// keepalived too ignores a value out of its range and keeps its default.
fn whole(n: &Node, lo: u64, hi: u64, r: &mut Report) -> Option<u64> {
    let v = value(n, r)?;
    let ok = v.parse::<u64>().ok().filter(|x| (lo..=hi).contains(x));
    if ok.is_none() {
        r.warn(
            &n.at,
            format!(
                "{} {} is not a whole number from {lo} to {hi}; not carried over",
                n.key(),
                shown(v)
            ),
        );
    }
    ok
}

/// Seconds as uvs's checks take them (0.01 to 86400), or a warning and
/// `None`.
fn seconds(n: &Node, r: &mut Report) -> Option<String> {
    let v = value(n, r)?;
    let ok = v
        .parse::<f64>()
        .ok()
        .filter(|x| (0.01..=86_400.0).contains(x))
        .map(|x| x.to_string());
    if ok.is_none() {
        r.warn(
            &n.at,
            format!(
                "{} {} is not a number of seconds from 0.01 to 86400; not carried over",
                n.key(),
                shown(v)
            ),
        );
    }
    ok
}

/// `ADDR` or `ADDR:PORT`: DR and TUN use the service's port anyway.
fn addr_port(rs: &RealServer, fwd: &str) -> String {
    match (rs.port, fwd) {
        (Some(p), "nat") => format!("{}:{p}", rs.addr),
        _ => rs.addr.to_string(),
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A check's `[service.real_server.check]` table, or `None` (with a
/// warning) when there is none to write.
fn check(c: &Node, interval: &str, w: &mut Report) -> Option<String> {
    let kind = match c.key() {
        "TCP_CHECK" => "tcp",
        "HTTP_GET" => "http",
        "UDP_CHECK" => "udp",
        "DNS_CHECK" => "dns",
        "MISC_CHECK" => "exec",
        _ => {
            w.warn(
                &c.at,
                "SSL_GET (HTTPS) checks are not in uvs: not carried over, so this real server is not \
                 checked; use a TCP or exec check",
            );
            return None;
        }
    };
    // Each key once (a repeated keepalived option: the last one wins).
    let mut keys: Vec<(&str, String)> = vec![
        ("type", format!("\"{kind}\"")),
        ("interval", interval.to_string()),
        ("timeout", "5".into()),
    ];
    let mut set = |k: &'static str, v: String| match keys.iter_mut().find(|(x, _)| *x == k) {
        Some(e) => e.1 = v,
        None => keys.push((k, v)),
    };
    let mut dynamic = false;
    for o in &c.children {
        if o.key() == "url" {
            continue;
        }
        if !no_block(o, w) {
            continue;
        }
        match (o.key(), o.arg(1)) {
            ("connect_timeout" | "misc_timeout", Some(_)) => {
                if let Some(t) = seconds(o, w) {
                    set("timeout", t);
                }
            }
            ("connect_port", Some(_)) => {
                if let Some(p) = whole(o, 1, 65535, w) {
                    set("port", p.to_string());
                }
            }
            ("retry" | "nb_get_retry", Some(_)) => {
                if let Some(n) = whole(o, 0, u32::MAX.into(), w) {
                    set("fall", n.max(1).to_string());
                }
            }
            ("delay_before_retry", _) => w.warn(
                &o.at,
                "delay_before_retry is not carried over: uvs checks again at the interval",
            ),
            ("misc_path", Some(_)) => {
                set("command", toml_str(&o.words[1..].join(" ")));
            }
            ("misc_dynamic", _) => {
                extra(o, 1, w);
                dynamic = true;
            }
            ("name", Some(_)) if kind == "dns" => {
                if let Some(n) = value(o, w) {
                    set("name", toml_str(n));
                }
            }
            ("type", Some(_)) if kind == "dns" => {
                if let Some(t) = value(o, w)
                    && !t.eq_ignore_ascii_case("A")
                {
                    w.warn(
                        &o.at,
                        format!("DNS_CHECK type {}: uvs queries type A", shown(t)),
                    );
                }
            }
            ("payload", Some(_)) if kind == "udp" => match value(o, w).and_then(hex) {
                Some(s) => set("payload", toml_str(&s)),
                None => w.warn(
                    &o.at,
                    "UDP_CHECK payload is not printable text; not carried over",
                ),
            },
            ("require_reply", Some(_)) if kind == "udp" => match value(o, w).and_then(hex) {
                Some(s) => set("expect", toml_str(&s)),
                None => w.warn(
                    &o.at,
                    "UDP_CHECK require_reply is not printable text; not carried over",
                ),
            },
            (
                "connect_timeout" | "misc_timeout" | "connect_port" | "retry" | "nb_get_retry"
                | "misc_path" | "name" | "type" | "payload" | "require_reply",
                None,
            ) => w.error(&o.at, format!("{} needs a value", option(o))),
            _ => w.warn(
                &o.at,
                format!("{} option {} is not carried over", c.key(), option(o)),
            ),
        }
    }
    if kind == "exec" && !keys.iter().any(|(k, _)| *k == "command") {
        w.warn(
            &c.at,
            "MISC_CHECK without misc_path: keepalived skips the check, and so does the import",
        );
        return None;
    }
    if kind == "dns" && !keys.iter().any(|(k, _)| *k == "name") {
        w.warn(
            &c.at,
            "DNS_CHECK without name: keepalived queries the root, which uvs cannot; the check is \
             not carried over (give `name`)",
        );
        return None;
    }
    if kind == "exec" && !dynamic {
        w.warn(
            &c.at,
            "MISC_CHECK without misc_dynamic: uvs always applies misc_dynamic's rule (exit 2-255 is up \
             with weight code - 2, not down); make the script exit 1 for down",
        );
    }
    let mut out = String::new();
    let _ = writeln!(out, "    [service.real_server.check]");
    for (k, v) in &keys {
        let _ = writeln!(out, "    {k} = {v}");
    }
    let urls: Vec<&Node> = c.children.iter().filter(|u| u.key() == "url").collect();
    if kind != "http" {
        for u in &urls {
            w.warn(
                &u.at,
                format!("{} option `url` is not carried over", c.key()),
            );
        }
        return Some(out);
    }
    for (i, u) in urls.iter().enumerate() {
        if !block(u, w) {
            continue;
        }
        if i > 0 {
            w.warn(&u.at, "a second url: uvs checks one; not carried over");
            continue;
        }
        url(u, &mut out, w);
    }
    Some(out)
}

/// An HTTP_GET's first url: its path, status codes and digest.
fn url(u: &Node, out: &mut String, w: &mut Report) {
    extra(u, 1, w);
    for o in &u.children {
        if !no_block(o, w) {
            continue;
        }
        match o.key() {
            "path" | "digest" => {
                let key = if o.key() == "path" { "path" } else { "digest" };
                if let Some(v) = value(o, w) {
                    let _ = writeln!(out, "    {key} = {}", toml_str(v));
                }
            }
            "status_code" => {
                // Every code and range, as keepalived takes them; a bad
                // one is left out, as keepalived leaves it out.
                let mut codes = Vec::new();
                for s in &o.words[1..] {
                    match status(s) {
                        true => codes.push(toml_str(s)),
                        false => w.warn(
                            &o.at,
                            format!(
                                "status_code {} is not a code or range from 100 to 599; left out, \
                                 as keepalived leaves it out",
                                shown(s)
                            ),
                        ),
                    }
                }
                match codes.is_empty() {
                    true if o.words.len() == 1 => w.error(&o.at, "`status_code` needs a value"),
                    true => {}
                    false => {
                        let _ = writeln!(out, "    status = [{}]", codes.join(", "));
                    }
                }
            }
            _ => w.warn(
                &o.at,
                format!(
                    "url option {} is not carried over (uvs checks the status only)",
                    option(o)
                ),
            ),
        }
    }
}

/// A status code or range as keepalived's HTTP_GET takes it (100-599).
fn status(s: &str) -> bool {
    let code = |x: &str| x.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    match s.split_once('-') {
        Some((a, b)) => matches!((code(a), code(b)), (Some(a), Some(b)) if a <= b),
        None => code(s).is_some(),
    }
}

/// keepalived's UDP_CHECK payloads are hex; uvs's are text.
fn hex(h: &str) -> Option<String> {
    let h = h.trim_start_matches("0x");
    if !h.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    s.chars().all(|c| !c.is_control()).then_some(s)
}

#[cfg(test)]
mod tests;

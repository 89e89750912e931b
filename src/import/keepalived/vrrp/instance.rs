//! One `vrrp_instance` (and the `vrrp_script`s it tracks) as the parts
//! of a uvs HA role: keepalived's words read, each with its place, and a
//! warning for what uvs has no place for.

use super::super::read::Node;
use super::super::report::{Place, Report, shown};
use super::super::statement::{extra, ip_addr, no_block, option, value, whole};
use std::collections::HashMap;
use std::net::IpAddr;

/// A `vrrp_script`: its command and what uvs takes of it.
#[derive(Debug, Clone)]
pub(super) struct Script {
    pub command: String,
    /// keepalived's weight (0: fault).
    pub weight: i32,
}

/// A vrrp_instance as read.
#[derive(Debug, Clone, Default)]
pub(super) struct Instance {
    pub at: Place,
    pub name: String,
    pub interface: Option<String>,
    pub track_primary: bool,
    pub priority: u8,
    /// keepalived's advert_int in seconds (default 1).
    pub advert: f64,
    pub nopreempt: bool,
    pub preempt_delay: Option<f64>,
    pub peers: Vec<IpAddr>,
    pub src: Option<IpAddr>,
    pub mcast_src: Option<IpAddr>,
    /// (place, address, `dev`).
    pub vips: Vec<(Place, IpAddr, Option<String>)>,
    /// (interface, keepalived's weight: `None` unweighted).
    pub track_interfaces: Vec<(String, Option<i32>)>,
    /// (script name, its command, keepalived's weight).
    pub track_scripts: Vec<(String, String, i32)>,
    /// notify, notify_master, notify_backup, notify_fault commands.
    pub notify: super::notify::Notify,
    pub auth: Option<Place>,
    pub garp_refresh: Option<f64>,
    /// `state MASTER`'s place.
    pub master: Option<Place>,
}

/// The `vrrp_script`s by name; what uvs runs differently gets a warning
/// (uvs runs a track script every second, for 3 s at most, and one
/// failure counts).
pub(super) fn scripts<'a>(nodes: &'a [Node], r: &mut Report) -> HashMap<&'a str, Script> {
    let mut out = HashMap::new();
    for n in nodes.iter().filter(|n| n.key() == "vrrp_script") {
        let Some(name) = n.arg(1) else {
            r.error(&n.at, "vrrp_script needs a name");
            continue;
        };
        let mut s = Script {
            command: String::new(),
            weight: 0,
        };
        let mut differs = Vec::new();
        for c in &n.children {
            if !no_block(c, r) {
                continue;
            }
            match (c.key(), c.arg(1)) {
                ("script", Some(_)) => s.command = c.words[1..].join(" "),
                ("weight", Some(w)) => {
                    match w.parse::<i32>().ok().filter(|w| (-253..=253).contains(w)) {
                        Some(w) => s.weight = w,
                        None => r.warn(
                            &c.at,
                            format!("weight {} is not -253 to 253; not carried over", shown(w)),
                        ),
                    }
                    if c.words.len() > 2 {
                        differs.push("`reverse`".to_string());
                    }
                }
                ("interval", Some(v)) if v.parse::<f64>() != Ok(1.0) => {
                    differs.push(format!("interval {} (uvs: every second)", shown(v)))
                }
                ("timeout", Some(v)) if v.parse::<f64>() != Ok(3.0) => {
                    differs.push(format!("timeout {} (uvs: 3 s)", shown(v)))
                }
                ("rise" | "fall", Some(v)) if v != "1" => {
                    differs.push(format!("{} {} (uvs: one result counts)", c.key(), shown(v)))
                }
                ("interval" | "timeout" | "rise" | "fall", Some(_)) => {}
                ("init_fail", None) => differs.push("`init_fail`".into()),
                ("user", _) => differs.push("`user` (uvs runs it as itself)".into()),
                _ => r.warn(
                    &c.at,
                    format!("vrrp_script option {} is not carried over", option(c)),
                ),
            }
        }
        if s.command.is_empty() {
            r.warn(
                &n.at,
                format!(
                    "vrrp_script {} has no `script`; not carried over",
                    shown(name)
                ),
            );
            continue;
        }
        if !differs.is_empty() {
            r.warn(
                &n.at,
                format!(
                    "vrrp_script {}: uvs runs a track script every second for 3 s at most and \
                     takes each result, so {} are not carried over",
                    shown(name),
                    differs.join(", ")
                ),
            );
        }
        out.insert(name, s);
    }
    out
}

/// A vrrp_instance's parts, read with keepalived's defaults (priority
/// 100, advert_int 1 s, its interface tracked).
pub(super) fn instance(n: &Node, scripts: &HashMap<&str, Script>, r: &mut Report) -> Instance {
    let mut i = Instance {
        at: n.at.clone(),
        name: n.arg(1).unwrap_or("").to_string(),
        track_primary: true,
        priority: 100,
        advert: 1.0,
        ..Instance::default()
    };
    for c in &n.children {
        let k = c.key();
        match k {
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => vips(c, &mut i, r),
            "unicast_peer" => {
                for p in &c.children {
                    no_block(p, r);
                    if let Some(a) = ip_addr(p.key(), &p.at, r) {
                        i.peers.push(a.to_canonical());
                    }
                }
            }
            "track_interface" => {
                for t in &c.children {
                    no_block(t, r);
                    if let Some(w) = weight(t, r) {
                        i.track_interfaces.push((t.key().to_string(), w));
                    }
                }
            }
            "track_script" => {
                for t in &c.children {
                    no_block(t, r);
                    let Some(s) = scripts.get(t.key()) else {
                        r.warn(
                            &t.at,
                            format!("track_script {}: no such vrrp_script", shown(t.key())),
                        );
                        continue;
                    };
                    let w = match t.arg(1) {
                        Some("weight") => weight(t, r).flatten().unwrap_or(0),
                        _ => s.weight,
                    };
                    i.track_scripts
                        .push((t.key().to_string(), s.command.clone(), w));
                }
            }
            "authentication" => i.auth = Some(c.at.clone()),
            _ if i.notify.read(c, r) => {}
            _ => {
                if !no_block(c, r) {
                    continue;
                }
                option_of(c, &mut i, r);
            }
        }
    }
    // keepalived clears both for an instance that starts as MASTER (and
    // says so), as the holder it wants to be at once.
    if let Some(at) = &i.master {
        for (on, what) in [
            (std::mem::take(&mut i.nopreempt), "nopreempt"),
            (i.preempt_delay.take().is_some(), "preempt_delay"),
        ] {
            if on {
                r.warn(
                    at,
                    format!("{what} with state MASTER: keepalived clears it (and says so), and so does the import"),
                );
            }
        }
    }
    i
}

/// An option of one statement.
fn option_of(c: &Node, i: &mut Instance, r: &mut Report) {
    let secs = |c: &Node, r: &mut Report, hi: f64| {
        let v = value(c, r)?;
        let s = v.parse::<f64>().ok().filter(|s| (0.0..=hi).contains(s));
        if s.is_none() {
            r.warn(
                &c.at,
                format!(
                    "{} {} is not 0 to {hi} seconds; not carried over",
                    c.key(),
                    shown(v)
                ),
            );
        }
        s
    };
    match c.key() {
        "interface" => i.interface = value(c, r).map(str::to_string),
        "dont_track_primary" => i.track_primary = false,
        // The election is by priority in uvs, a director that starts
        // listening first: the initial state has no part in it.
        "state" => {
            if value(c, r).is_some_and(|s| s.eq_ignore_ascii_case("MASTER")) {
                i.master = Some(c.at.clone());
            }
        }
        "virtual_router_id" => {
            value(c, r);
        }
        "priority" => {
            if let Some(p) = whole(c, 1, 255, r) {
                if p == 255 {
                    r.warn(
                        &c.at,
                        "priority 255 (the address owner, MASTER at once): uvs's highest is 254, \
                         and a director that starts listens for its peers first; 254 is used",
                    );
                }
                i.priority = p.min(254) as u8;
            }
        }
        "advert_int" => {
            if let Some(s) = secs(c, r, 255.0).filter(|s| *s > 0.0) {
                i.advert = s;
            }
        }
        "nopreempt" | "no_preempt" => {
            extra(c, 1, r);
            i.nopreempt = true;
        }
        "preempt_delay" => i.preempt_delay = secs(c, r, 1000.0),
        "unicast_src_ip" => i.src = value(c, r).and_then(|a| ip_addr(a, &c.at, r)),
        "mcast_src_ip" => i.mcast_src = value(c, r).and_then(|a| ip_addr(a, &c.at, r)),
        "garp_master_refresh" => i.garp_refresh = secs(c, r, 86_400.0),
        // uvs announces a VIP at once and again a second later.
        "garp_master_delay" | "garp_master_repeat" | "garp_master_refresh_repeat" => {}
        _ => r.warn(
            &c.at,
            format!("vrrp_instance option {} is not carried over", option(c)),
        ),
    }
}

/// `NAME [weight W [reverse]]` of a track block: keepalived's weight,
/// `Some(None)` for none; `None` (with a warning) for what uvs cannot.
fn weight(t: &Node, r: &mut Report) -> Option<Option<i32>> {
    match (t.arg(1), t.arg(2)) {
        (None, _) => Some(None),
        (Some("weight"), Some(w)) => {
            let Some(w) = w.parse::<i32>().ok().filter(|w| (-254..=254).contains(w)) else {
                r.warn(
                    &t.at,
                    format!("weight {} is not -254 to 254; not carried over", shown(w)),
                );
                return None;
            };
            match t.arg(3) {
                Some("reverse") => {
                    r.warn(&t.at, "`reverse` weights are not in uvs; not carried over");
                    None
                }
                _ => Some(Some(w)),
            }
        }
        _ => {
            r.warn(
                &t.at,
                format!("{} takes `weight W`; not carried over", option(t)),
            );
            None
        }
    }
}

/// virtual_ipaddress entries: `ADDR[/LEN] [dev IF] ...`.
fn vips(c: &Node, i: &mut Instance, r: &mut Report) {
    for v in &c.children {
        no_block(v, r);
        let a = v.key().split('/').next().unwrap_or("");
        let Some(addr) = ip_addr(a, &v.at, r) else {
            continue;
        };
        let dev = v
            .words
            .iter()
            .position(|w| w == "dev")
            .and_then(|p| v.words.get(p + 1))
            .cloned();
        i.vips.push((v.at.clone(), addr.to_canonical(), dev));
    }
}

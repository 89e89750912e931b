//! keepalived's VRRP half as uvs's HA settings (docs/ha.md): the
//! `vrrp_instance`s, `vrrp_sync_group`s and `vrrp_script`s become keys
//! of the config's `[director]` table. uvs has one HA role per director
//! (all its VIPs move together), so a sync group, or instances that
//! agree, become that one role; instances that differ get a warning
//! naming both and which one was used. uvs's heartbeats are unicast:
//! `unicast_peer` gives `peers`, and a multicast instance gets a warning
//! saying what to list. keepalived's timing is kept (a heartbeat per
//! `advert_int`, a peer gone after 3), and so are its track weights (a
//! positive one turned into uvs's form, the same priority either way).

mod instance;
mod notify;

use super::converted::Converted;
use super::read::Node;
use super::report::{Place, Report, shown};
use super::statement::{block, no_block, option};
use instance::Instance;
use notify::Notify;
use std::net::IpAddr;

/// Where the HA key goes: keepalived's `authentication` has no file.
pub(super) const KEY_FILE: &str = "/etc/uvs/ha.key";

/// Whether `k` is a top-level block this module reads.
pub(super) fn reads(k: &str) -> bool {
    matches!(k, "vrrp_instance" | "vrrp_sync_group" | "vrrp_script")
}

/// The `[director]` table's lines for the VRRP blocks among `nodes`
/// (none: the file has no vrrp_instance), after `c`'s services were
/// converted (their VIPs are checked against the instances').
pub(super) fn director(nodes: &[Node], c: &Converted, r: &mut Report) -> Option<String> {
    let scripts = instance::scripts(nodes, r);
    let mut all: Vec<Instance> = Vec::new();
    for n in nodes.iter().filter(|n| n.key() == "vrrp_instance") {
        if !block(n, r) {
            continue;
        }
        if n.arg(1).is_none() {
            r.error(&n.at, "vrrp_instance needs a name");
            continue;
        }
        let mut i = instance::instance(n, &scripts, r);
        let kind_name = ("INSTANCE", i.name.clone());
        i.notify = std::mem::take(&mut i.notify).named(kind_name.0, &kind_name.1);
        all.push(i);
    }
    let (grouped, group_notify, weights) = sync_groups(nodes, &all, r);
    for k in grouped.iter().filter(|_| !weights) {
        unweighted(&mut all[*k], r);
    }
    if all.is_empty() {
        return None;
    }
    // The role: the first sync group's first member, else the first.
    let chosen = grouped.first().copied().unwrap_or(0);
    let role = all[chosen].clone();
    for (k, i) in all.iter().enumerate().filter(|(k, _)| *k != chosen) {
        let d = differences(&role, i);
        if !d.is_empty() {
            let together = match grouped.contains(&k) {
                true => "its sync group moves together, and ",
                false => "",
            };
            r.warn(
                &i.at,
                format!(
                    "vrrp_instance {} differs from {} (at {}): {}; {together}uvs has one HA role \
                     per director (docs/ha.md), so {}'s settings are used, and {}'s VIPs move \
                     with them",
                    shown(&i.name),
                    shown(&role.name),
                    role.at,
                    d.join(", "),
                    shown(&role.name),
                    shown(&i.name)
                ),
            );
        }
    }
    check_vips(&all, c, r);
    let mut notify = Notify::default();
    for i in &all {
        notify.add(i.notify.clone());
    }
    notify.add(group_notify);
    Some(render(&role, &all, &notify, r))
}

/// A sync group member's track weights: keepalived ignores them (a
/// failing track is a fault) unless the group has
/// `sync_group_tracking_weight`, and says so.
fn unweighted(i: &mut Instance, r: &mut Report) {
    let weighted = i.track_interfaces.iter().any(|t| t.1.is_some())
        || i.track_scripts.iter().any(|t| t.2 != 0);
    if weighted {
        r.warn(
            &i.at,
            format!(
                "vrrp_instance {} is in a sync group: keepalived ignores its track weights (a \
                 failing track is a fault) without sync_group_tracking_weight, and so does the import",
                shown(&i.name)
            ),
        );
    }
    for t in &mut i.track_interfaces {
        t.1 = None;
    }
    for t in &mut i.track_scripts {
        t.2 = 0;
    }
}

/// The sync groups' members (indexes into `all`, in group order), their
/// notify scripts and whether a group keeps its members' track weights;
/// what uvs does not take gets a warning.
fn sync_groups(nodes: &[Node], all: &[Instance], r: &mut Report) -> (Vec<usize>, Notify, bool) {
    let mut members = Vec::new();
    let mut notify = Notify::default();
    let mut weights = false;
    for n in nodes.iter().filter(|n| n.key() == "vrrp_sync_group") {
        if !block(n, r) {
            continue;
        }
        let name = n.arg(1).unwrap_or("");
        let mut own = Notify::default();
        for c in &n.children {
            if c.key() == "group" {
                for m in &c.children {
                    no_block(m, r);
                    match all.iter().position(|i| i.name == m.key()) {
                        Some(k) => members.push(k),
                        None => r.error(
                            &m.at,
                            format!(
                                "sync group member {}: no such vrrp_instance",
                                shown(m.key())
                            ),
                        ),
                    }
                }
            } else if c.key() == "sync_group_tracking_weight" {
                weights = true;
            } else if !own.read(c, r) && no_block(c, r) {
                r.warn(
                    &c.at,
                    format!("vrrp_sync_group option {} is not carried over", option(c)),
                );
            }
        }
        notify.add(own.named("GROUP", name));
    }
    (members, notify, weights)
}

/// What makes instance `b`'s role differ from `a`'s.
fn differences(a: &Instance, b: &Instance) -> Vec<String> {
    let mut d = Vec::new();
    if a.priority != b.priority {
        d.push(format!("priority {} (not {})", b.priority, a.priority));
    }
    if a.nopreempt != b.nopreempt {
        d.push(format!("nopreempt {}", b.nopreempt));
    }
    if a.preempt_delay != b.preempt_delay {
        d.push(format!("preempt_delay {}", b.preempt_delay.unwrap_or(0.0)));
    }
    if a.advert != b.advert {
        d.push(format!("advert_int {} (not {})", b.advert, a.advert));
    }
    if a.peers != b.peers {
        let p: Vec<String> = b.peers.iter().map(IpAddr::to_string).collect();
        d.push(format!("unicast_peer [{}]", p.join(" ")));
    }
    d
}

/// A VIP of an instance that no virtual server has, and a virtual
/// server's VIP in no instance, each get a warning: uvs moves exactly
/// its services' VIPs with its role.
fn check_vips(all: &[Instance], c: &Converted, r: &mut Report) {
    let services: Vec<(&Place, IpAddr)> = c
        .services
        .iter()
        .filter(|s| s.key.fwmark().is_none())
        .map(|s| (&s.at, s.key.addr))
        .collect();
    let vips = all.iter().flat_map(|i| i.vips.iter());
    let mut warned: Vec<IpAddr> = Vec::new();
    for (at, a, _) in vips.clone() {
        if !services.iter().any(|(_, s)| s == a) && !warned.contains(a) {
            warned.push(*a);
            r.warn(
                at,
                format!(
                    "virtual_ipaddress {a} is no virtual server's: uvs holds and moves only its \
                     services' VIPs, so it is not carried over (an address such as the NAT real \
                     servers' gateway stays on the hosts, or with keepalived)"
                ),
            );
        }
    }
    for (at, s) in services {
        if !vips.clone().any(|(_, a, _)| *a == s) && !warned.contains(&s) {
            warned.push(s);
            r.warn(
                at,
                format!(
                    "virtual server address {s} is in no vrrp_instance's virtual_ipaddress: \
                     keepalived did not move it, uvs holds it on the active director only"
                ),
            );
        }
    }
}

/// One `[director]` line: the key and its value, written by `toml`.
fn line(key: &str, v: toml::Value, note: &str) -> String {
    match note {
        "" => format!("{key} = {v}\n"),
        n => format!("{key} = {v}   # {n}\n"),
    }
}

fn strings<S: ToString>(items: impl IntoIterator<Item = S>) -> toml::Value {
    toml::Value::Array(
        items
            .into_iter()
            .map(|s| toml::Value::String(s.to_string()))
            .collect(),
    )
}

/// Seconds as uvs's settings take them: a whole number where it is one.
fn secs(s: f64) -> toml::Value {
    match s.fract() == 0.0 {
        true => toml::Value::Integer(s as i64),
        false => toml::Value::Float(s),
    }
}

/// The table's lines: the interfaces, then the HA settings (commented
/// out, with a multicast role, until `peers` is filled in).
fn render(role: &Instance, all: &[Instance], notify: &Notify, r: &mut Report) -> String {
    let mut interfaces: Vec<&str> = Vec::new();
    let devs = all
        .iter()
        .flat_map(|i| i.vips.iter().filter_map(|v| v.2.as_deref()));
    for i in std::iter::once(role)
        .chain(all)
        .filter_map(|i| i.interface.as_deref())
        .chain(devs)
    {
        if !interfaces.contains(&i) {
            interfaces.push(i);
        }
    }
    let mut text = String::new();
    match interfaces.is_empty() {
        true => text.push_str(super::output::INTERFACES),
        false => text.push_str(&line(
            "interfaces",
            strings(&interfaces),
            "vrrp_instance interfaces; add the NAT real servers' side if it is another",
        )),
    }
    let names: Vec<String> = all
        .iter()
        .map(|i| format!("{} ({})", i.name, i.at))
        .collect();
    text.push_str(&format!(
        "\n# HA (docs/ha.md), from vrrp_instance {}.\n",
        names.join(", ")
    ));
    let mut ha = String::new();
    let (priority, tracks) = tracks(role, all, r);
    if let Some(src) = role.src {
        let key = if src.is_ipv4() {
            "tun_source"
        } else {
            "tun_source6"
        };
        let v = toml::Value::String(src.to_string());
        ha.push_str(&line(key, v, "unicast_src_ip: the heartbeats' source"));
    }
    ha.push_str(&line("peers", strings(&role.peers), "unicast_peer"));
    ha.push_str(&line(
        "ha_key_file",
        toml::Value::String(KEY_FILE.into()),
        "keys every message, as authentication did: 16+ random bytes, mode 0600, the same on each director",
    ));
    ha.push_str(&line("priority", toml::Value::Integer(priority.into()), ""));
    if role.nopreempt {
        ha.push_str(&line("nopreempt", toml::Value::Boolean(true), ""));
    }
    if let Some(d) = role.preempt_delay {
        ha.push_str(&line("preempt_delay", secs(d), ""));
    }
    let ms = (role.advert * 1000.0).round().clamp(10.0, 10_000.0) as i64;
    if ms as f64 != (role.advert * 1000.0).round() {
        r.warn(
            &role.at,
            format!(
                "advert_int {} s: uvs's heartbeats are 10 ms to 10 s apart; {ms} ms is used",
                role.advert
            ),
        );
    }
    ha.push_str(&line(
        "heartbeat_ms",
        toml::Value::Integer(ms),
        "advert_int",
    ));
    ha.push_str(&line(
        "dead_after",
        toml::Value::Integer(3),
        "as keepalived: a peer is gone after 3 adverts (uvs's own default: 100 ms x 10)",
    ));
    ha.push_str(&tracks);
    if let Some(cmd) = notify.command() {
        ha.push_str(&line(
            "notify",
            toml::Value::String(cmd),
            "notify, notify_master/backup/fault",
        ));
    }
    if let Some(g) = role.garp_refresh.filter(|g| *g > 0.0) {
        ha.push_str(&line(
            "garp_refresh",
            secs(g.max(1.0)),
            "garp_master_refresh",
        ));
    }
    if role.auth.is_some() {
        text.push_str("# authentication: uvs keys heartbeats and sync with ha_key_file instead.\n");
    }
    if role.peers.is_empty() {
        let src = role
            .mcast_src
            .map_or(String::new(), |a| format!(" (this one's is {a})"));
        r.warn(
            &role.at,
            format!(
                "vrrp_instance {} uses multicast (no unicast_peer): uvs's heartbeats are unicast \
                 and it has no multicast VRRP; list the other directors' addresses{} in `peers` \
                 and uncomment the HA settings written commented out",
                shown(&role.name),
                role.interface
                    .as_deref()
                    .map_or(String::new(), |i| format!(" on {i}"))
                    + &src
            ),
        );
        text.push_str("# Multicast VRRP: list the other directors in `peers`, then uncomment.\n");
        for l in ha.lines() {
            text.push_str(&format!("# {l}\n"));
        }
    } else {
        text.push_str(&ha);
    }
    text
}

/// The priority and the track lines. A failing uvs track adds its
/// weight to the priority, or puts the director in fault without one;
/// keepalived's positive weights (added while the condition holds) are
/// turned around: w added to the priority, and -w while it fails, the
/// same priority either way. The lines: each instance's interface unless `dont_track_primary`, its
/// track_interfaces and track_scripts.
fn tracks(role: &Instance, all: &[Instance], r: &mut Report) -> (u8, String) {
    let mut base = i32::from(role.priority);
    // keepalived's weight w as uvs's, `base` raised by a positive one.
    let mut turn = |w: Option<i32>| match w {
        None | Some(0) => None,
        Some(w) if w > 0 => {
            base += w;
            Some(-w)
        }
        w => w,
    };
    let mut ifs: Vec<(String, Option<i32>)> = Vec::new();
    for i in all {
        let own = i
            .interface
            .iter()
            .filter(|_| i.track_primary)
            .map(|n| (n.clone(), None));
        for (n, w) in own.chain(i.track_interfaces.iter().cloned()) {
            if !ifs.iter().any(|(m, _)| *m == n) {
                ifs.push((n, w));
            }
        }
    }
    let ifs: Vec<String> = ifs
        .into_iter()
        .map(|(n, w)| match turn(w) {
            None => n,
            Some(w) => format!("{n}:{w}"),
        })
        .collect();
    let mut scripts: Vec<(String, String, i32)> = Vec::new();
    for i in all {
        for s in &i.track_scripts {
            if !scripts.iter().any(|x| x.1 == s.1) {
                scripts.push(s.clone());
            }
        }
    }
    let mut out = String::new();
    if !ifs.is_empty() {
        out.push_str(&line(
            "track_interfaces",
            strings(&ifs),
            "interface, track_interface",
        ));
    }
    if let Some((first, _, w)) = scripts.first() {
        if let Some(odd) = scripts.iter().find(|s| s.2 != *w) {
            r.warn(
                &role.at,
                format!(
                    "track_script {} has weight {} and {} {}: uvs has one weight for all its track \
                     scripts, so {}'s ({w}) is used for each",
                    shown(first),
                    w,
                    shown(&odd.0),
                    odd.2,
                    shown(first)
                ),
            );
        }
        let mut uvs_w = None;
        for _ in &scripts {
            uvs_w = turn(Some(*w));
        }
        let cmds: Vec<&str> = scripts.iter().map(|s| s.1.as_str()).collect();
        out.push_str(&line("track_scripts", strings(cmds), "vrrp_script"));
        if let Some(w) = uvs_w {
            out.push_str(&line(
                "track_script_weight",
                toml::Value::String(w.to_string()),
                "",
            ));
        }
    }
    if base > 254 {
        r.warn(
            &role.at,
            format!(
                "priority {} with its positive track weights is {base}: uvs's highest is 254 \
                 (keepalived's effective one too), so the weights lower it less",
                role.priority
            ),
        );
    }
    (base.clamp(1, 254) as u8, out)
}

//! Where an audit's facts come from: the live host (/proc/sys and
//! rtnetlink), a dump directory (`sysctl -a` text and `ip -j` JSON saved on
//! another machine), or the same read-only commands run over ssh.

use super::{Addr6, Error, Family, HostState};
use crate::host::{self, IfAddr, Link, Prefix, Route};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The per-interface and global IPv4 sysctls the audit reads.
pub const CONF_KEYS: [&str; 5] = [
    "arp_ignore",
    "arp_announce",
    "rp_filter",
    "accept_local",
    "forwarding",
];
pub const GLOBAL_KEYS: [&str; 3] = ["ip_forward", "tcp_timestamps", "tcp_tw_recycle"];
/// The per-interface IPv6 sysctls the audit reads (net.ipv6.conf.*).
pub const CONF6_KEYS: [&str; 7] = [
    "disable_ipv6",
    "forwarding",
    "accept_ra",
    "accept_dad",
    "dad_transmits",
    "proxy_ndp",
    "keep_addr_on_down",
];

/// ARPHRD_TUNNEL6 (ip6tnl) and ARPHRD_SIT (sit): the kernel's tunnels
/// that deliver IPv6, by the type /sys/class/net/*/type shows.
const TUNNEL6_TYPES: [&str; 2] = ["769", "776"];

fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// Parses `sysctl -a` output ("key = value" lines). CRLF, a BOM, blank
/// lines and keys the audit does not know are accepted; a line that is not
/// "key = value" is an error naming `what` and the line.
pub fn parse_sysctl(text: &str, what: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut m = BTreeMap::new();
    for (i, line) in strip_bom(text).lines().enumerate() {
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        // `sysctl -a` on some systems prints permission errors inline.
        if line.starts_with("sysctl: ") {
            continue;
        }
        let Some((k, v)) = line.split_once(" = ").or_else(|| line.split_once('=')) else {
            return Err(Error::SysctlLine {
                what: what.to_string(),
                line: i + 1,
                text: line.to_string(),
            });
        };
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(Error::SysctlKey {
                what: what.to_string(),
                line: i + 1,
                key: k.to_string(),
            });
        }
        m.insert(k.to_string(), v.trim().to_string());
    }
    if !m.contains_key("net.ipv4.conf.all.arp_ignore") {
        return Err(Error::NotSysctl {
            what: what.to_string(),
        });
    }
    Ok(m)
}

/// `ip -j` output (`command`'s): a JSON array of `items`.
fn json_list(
    text: &str,
    what: &str,
    command: &'static str,
    items: &'static str,
) -> Result<Vec<serde_json::Value>, Error> {
    let what = what.to_string();
    match serde_json::from_str(strip_bom(text).trim()) {
        Ok(serde_json::Value::Array(a)) => Ok(a),
        Ok(_) => Err(Error::NotList { what, items }),
        Err(source) => Err(Error::Json {
            what,
            command,
            source,
        }),
    }
}

/// The addresses of family `F` in the `addr_info` of `l`, link `name` of
/// `ip -j addr` output: each with its prefix length and its entry (for
/// the flags). One without an address or a valid prefix is an error.
fn family_addrs<'a, F: Family>(
    l: &'a serde_json::Value,
    name: &str,
    what: &str,
) -> Result<Vec<(F, u8, &'a serde_json::Value)>, Error> {
    let mut found = Vec::new();
    for a in l["addr_info"].as_array().into_iter().flatten() {
        if a["family"].as_str() != Some(F::NAME) {
            continue;
        }
        let addr: F = a["local"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::NoLocal {
                what: what.to_string(),
                link: name.to_string(),
                family: F::NAME,
            })?;
        let prefix = a["prefixlen"]
            .as_u64()
            .filter(|p| *p <= u64::from(F::BITS))
            .ok_or_else(|| Error::BadPrefixLen {
                what: what.to_string(),
                link: name.to_string(),
                addr: addr.into(),
            })? as u8;
        found.push((addr, prefix, a));
    }
    Ok(found)
}

/// Parses `ip -j addr` output into links and IPv4 addresses.
pub fn parse_ip_addr(text: &str, what: &str) -> Result<(Vec<Link>, Vec<IfAddr>), Error> {
    let arr = json_list(text, what, "ip -j addr", "links")?;
    let mut links = Vec::new();
    let mut addrs = Vec::new();
    for (i, l) in arr.iter().enumerate() {
        let name = l["ifname"]
            .as_str()
            .ok_or_else(|| Error::NoIfname {
                what: what.to_string(),
                index: i + 1,
            })?
            .to_string();
        let flags: Vec<&str> = l["flags"].as_array().map_or(Vec::new(), |f| {
            f.iter().filter_map(|x| x.as_str()).collect()
        });
        let link_type = l["link_type"].as_str().unwrap_or("").to_string();
        links.push(Link {
            name: name.clone(),
            up: flags.contains(&"UP"),
            mtu: l["mtu"].as_u64().unwrap_or(0) as u32,
            loopback: link_type == "loopback" || flags.contains(&"LOOPBACK"),
            tunnel: link_type == "ipip" || link_type == "none" || name == "tunl0",
        });
        for (ip, prefix, _) in family_addrs::<Ipv4Addr>(l, &name, what)? {
            addrs.push((name.clone(), ip, prefix));
        }
    }
    Ok((links, addrs))
}

/// The IPv6 side of `ip -j addr` output: addresses with their DAD state,
/// and the links that are kernel IPv6 tunnels (link_type tunnel6, sit).
/// Links without a name are left to [`parse_ip_addr`] to report.
pub fn parse_ip_addr6(text: &str, what: &str) -> Result<(Vec<Addr6>, Vec<String>), Error> {
    let arr = json_list(text, what, "ip -j addr", "links")?;
    let mut addrs = Vec::new();
    let mut tunnels = Vec::new();
    for l in &arr {
        let Some(name) = l["ifname"].as_str() else {
            continue;
        };
        if matches!(l["link_type"].as_str(), Some("tunnel6" | "sit")) {
            tunnels.push(name.to_string());
        }
        for (addr, prefix, a) in family_addrs::<Ipv6Addr>(l, name, what)? {
            let flag = |k: &str| a[k].as_bool() == Some(true);
            addrs.push(Addr6 {
                dev: name.to_string(),
                addr,
                prefix,
                tentative: flag("tentative"),
                dadfailed: flag("dadfailed"),
                nodad: flag("nodad"),
            });
        }
    }
    Ok((addrs, tunnels))
}

/// `ip -j -6 neigh show proxy` output: (link, address) of each IPv6 proxy
/// entry; entries without both are skipped.
pub fn parse_neigh_proxy(text: &str, what: &str) -> Result<Vec<(String, Ipv6Addr)>, Error> {
    let list = json_list(text, what, "ip -j -6 neigh show proxy", "neighbours")?;
    Ok(list
        .iter()
        .filter_map(|n| {
            let addr = n["dst"].as_str()?.parse().ok()?;
            Some((n["dev"].as_str()?.to_string(), addr))
        })
        .collect())
}

/// The unicast routes of `ip -j route` output (main table). Entries that
/// are not objects or lack a device are skipped, not errors.
pub fn parse_routes(text: &str, what: &str) -> Result<Vec<Route>, Error> {
    let list = json_list(text, what, "ip -j route", "routes")?;
    let metric = |r: &serde_json::Value, k: &str| -> Option<u32> {
        r["metrics"]
            .as_array()?
            .iter()
            .find_map(|m| m[k].as_u64())
            .and_then(|x| u32::try_from(x).ok())
    };
    Ok(list
        .iter()
        .filter(|r| r["type"].as_str().is_none_or(|t| t == "unicast"))
        .filter(|r| r["table"].as_str().is_none_or(|t| t == "main"))
        .filter_map(|r| {
            let dst: Prefix = r["dst"].as_str()?.parse().ok()?;
            Some(Route {
                dst,
                gateway: r["gateway"].as_str().and_then(|g| g.parse().ok()),
                dev: r["dev"].as_str()?.to_string(),
                advmss: metric(r, "advmss"),
                mtu: metric(r, "mtu"),
                kernel: r["protocol"].as_str() == Some("kernel"),
                prefsrc: r["prefsrc"].as_str().and_then(|g| g.parse().ok()),
            })
        })
        .collect())
}

/// The host's state from what a source read; `ethtool` gives `ethtool -k`
/// output for an interface, where the source has it.
fn assemble(
    sysctl: BTreeMap<String, String>,
    (links, addrs): (Vec<Link>, Vec<IfAddr>),
    routes: Vec<Route>,
    decap_running: bool,
    ethtool: impl Fn(&str) -> Option<String>,
    source: String,
) -> HostState {
    let offloads = links
        .iter()
        .filter(|l| !l.loopback && !l.tunnel)
        .filter_map(|l| Some((l.name.clone(), ethtool(&l.name)?)))
        .collect();
    HostState {
        sysctl,
        links,
        addrs,
        routes,
        decap_running,
        offloads,
        source,
        ..HostState::default()
    }
}

/// Reads a dump directory: sysctl.txt (`sysctl -a`), addr.json
/// (`ip -j addr`), and optionally route.json (`ip -j route`) and
/// processes.txt (`ps -eo args`).
pub fn from_dump(dir: &Path) -> Result<HostState, Error> {
    let read = |name: &str| -> Result<Option<String>, Error> {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => String::from_utf8(b).map(Some).map_err(|e| Error::NotUtf8 {
                at: e.utf8_error().valid_up_to(),
                path,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    };
    let needed = |file: &'static str, command: &'static str| {
        read(file)?.ok_or_else(|| Error::Missing {
            dir: dir.to_path_buf(),
            file,
            command,
        })
    };
    let s = needed("sysctl.txt", "sysctl -a")?;
    let a = needed("addr.json", "ip -j addr")?;
    let sysctl = parse_sysctl(&s, "sysctl.txt")?;
    let (links, addrs) = parse_ip_addr(&a, "addr.json")?;
    let routes = match read("route.json")? {
        Some(r) => parse_routes(&r, "route.json")?,
        None => Vec::new(),
    };
    let decap = read("processes.txt")?.is_some_and(|p| p.lines().any(is_decap_cmdline));
    // Optional: ethtool-IFACE.txt holds `ethtool -k IFACE`.
    let ethtool = |n: &str| read(&format!("ethtool-{n}.txt")).ok().flatten();
    let source = format!("dump {}", dir.display());
    let mut state = assemble(sysctl, (links, addrs), routes, decap, ethtool, source);
    (state.addrs6, state.tunnels6) = parse_ip_addr6(&a, "addr.json")?;
    state.proxies6 = match read("neigh-proxy.json")? {
        Some(n) => Some(parse_neigh_proxy(&n, "neigh-proxy.json")?),
        None => None,
    };
    Ok(state)
}

fn is_decap_cmdline(l: &str) -> bool {
    let w: Vec<&str> = l.split_whitespace().collect();
    w.windows(2)
        .any(|p| p[0].ends_with("uvs") && p[1] == "decap")
}

/// Runs the read-only commands over the system ssh client.
pub fn from_ssh(target: &str) -> Result<HostState, Error> {
    if target.starts_with('-') || target.contains(char::is_whitespace) {
        return Err(Error::SshTarget(target.to_string()));
    }
    let run = |cmd: &str| {
        let args = ["-o", "BatchMode=yes", "--", target, cmd];
        host::run("ssh", &args, &format!("ssh {target} {cmd}"))
    };
    let sysctl = parse_sysctl(
        &run("sysctl -a 2>/dev/null")?,
        &format!("{target}: sysctl -a"),
    )?;
    let addr = run("ip -j addr")?;
    let (links, addrs) = parse_ip_addr(&addr, &format!("{target}: ip -j addr"))?;
    let routes = parse_routes(&run("ip -j route")?, &format!("{target}: ip -j route"))?;
    let decap = run("ps -eo args")
        .map(|p| p.lines().any(is_decap_cmdline))
        .unwrap_or(false);
    let ethtool = |n: &str| run(&format!("ethtool -k {n}")).ok();
    let source = format!("ssh {target}");
    let mut state = assemble(sysctl, (links, addrs), routes, decap, ethtool, source);
    (state.addrs6, state.tunnels6) = parse_ip_addr6(&addr, &format!("{target}: ip -j addr"))?;
    let what = format!("{target}: ip -j -6 neigh show proxy");
    state.proxies6 = run("ip -j -6 neigh show proxy")
        .ok()
        .and_then(|n| parse_neigh_proxy(&n, &what).ok());
    Ok(state)
}

// IFA_F_* (linux/if_addr.h): an IPv6 address's DAD state.
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// The live host: /proc/sys for sysctls, rtnetlink for links, addresses
/// (both families), routes and IPv6 proxy entries; /sys for which links
/// are kernel IPv6 tunnels.
pub fn live() -> Result<HostState, Error> {
    let mut sysctl = BTreeMap::new();
    let conf = Path::new("/proc/sys/net/ipv4/conf");
    let dirs = std::fs::read_dir(conf).map_err(|source| Error::Read {
        path: conf.to_path_buf(),
        source,
    })?;
    for d in dirs.flatten() {
        let ifname = d.file_name().to_string_lossy().into_owned();
        for k in CONF_KEYS {
            if let Ok(v) = std::fs::read_to_string(d.path().join(k)) {
                sysctl.insert(format!("net.ipv4.conf.{ifname}.{k}"), v.trim().to_string());
            }
        }
    }
    for k in GLOBAL_KEYS {
        if let Ok(v) = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{k}")) {
            sysctl.insert(format!("net.ipv4.{k}"), v.trim().to_string());
        }
    }
    // Absent when the kernel has no IPv6: the checks say so.
    let conf6 = std::fs::read_dir("/proc/sys/net/ipv6/conf");
    for d in conf6.into_iter().flatten().flatten() {
        let ifname = d.file_name().to_string_lossy().into_owned();
        for k in CONF6_KEYS {
            if let Ok(v) = std::fs::read_to_string(d.path().join(k)) {
                sysctl.insert(format!("net.ipv6.conf.{ifname}.{k}"), v.trim().to_string());
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (links, addrs, routes, v6) = rt.block_on(async {
        let nl = crate::host::netlink::Netlink::new()?;
        let links = nl.links().await?;
        let name = |idx: u32| {
            let l = links.iter().find(|l| l.1 == idx);
            l.map_or_else(|| format!("if{idx}"), |l| l.0.name.clone())
        };
        let mut addrs = Vec::new();
        for (ip, idx, prefix) in nl.addresses_with_prefix().await? {
            addrs.push((name(idx), ip, prefix));
        }
        let mut routes = Vec::new();
        for (mut r, idx) in nl.routes().await? {
            r.dev = name(idx);
            routes.push(r);
        }
        let mut addrs6 = Vec::new();
        for (addr, idx, prefix, flags) in nl.addresses6().await? {
            addrs6.push(Addr6 {
                dev: name(idx),
                addr,
                prefix,
                tentative: flags & IFA_F_TENTATIVE != 0,
                dadfailed: flags & IFA_F_DADFAILED != 0,
                nodad: flags & IFA_F_NODAD != 0,
            });
        }
        let proxies6: Vec<(String, Ipv6Addr)> = nl
            .proxies6()
            .await?
            .into_iter()
            .map(|(a, idx)| (name(idx), a))
            .collect();
        Ok::<_, Error>((
            links.into_iter().map(|l| l.0).collect::<Vec<Link>>(),
            addrs,
            routes,
            (addrs6, proxies6),
        ))
    })?;
    // A decapsulator counts only in this network namespace: one in
    // another (a container, another lab) unwraps nothing here.
    let netns = |p: &Path| std::fs::read_link(p.join("ns/net")).ok();
    let ours = netns(Path::new("/proc/self"));
    let decap = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|p| {
            let cmd = std::fs::read(p.path().join("cmdline"))
                .map(|c| is_decap_cmdline(&String::from_utf8_lossy(&c).replace('\0', " ")))
                .unwrap_or(false);
            cmd && netns(&p.path()) == ours
        });
    let ethtool = |n: &str| host::run("ethtool", &["-k", n], "ethtool").ok();
    let tunnels6 = links
        .iter()
        .filter(|l| {
            let t = std::fs::read_to_string(format!("/sys/class/net/{}/type", l.name));
            t.is_ok_and(|t| TUNNEL6_TYPES.contains(&t.trim()))
        })
        .map(|l| l.name.clone())
        .collect();
    let source = "this host".to_string();
    let mut state = assemble(sysctl, (links, addrs), routes, decap, ethtool, source);
    (state.addrs6, state.proxies6) = (v6.0, Some(v6.1));
    state.tunnels6 = tunnels6;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_parsing_accepts_crlf_bom_and_unknown_keys() {
        let t = "\u{feff}net.ipv4.conf.all.arp_ignore = 1\r\nkernel.foo.bar = a\tb\r\n\r\nnet.ipv4.ip_local_port_range = 32768\t60999\n";
        let m = parse_sysctl(t, "x").unwrap();
        assert_eq!(m["net.ipv4.conf.all.arp_ignore"], "1");
        assert_eq!(m["kernel.foo.bar"], "a\tb");
    }

    #[test]
    fn sysctl_parsing_rejects_garbage_with_line() {
        let e = parse_sysctl(
            "net.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.al",
            "sysctl.txt",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("sysctl.txt line 2:"), "{e}");
        let e = parse_sysctl("kernel.x = 1\n", "sysctl.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(parse_sysctl("", "s").is_err());
    }

    #[test]
    fn ip_addr_parsing() {
        let j = r#"[{"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"link_type":"loopback","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet","local":"198.18.0.100","prefixlen":32},{"family":"inet6","local":"::1","prefixlen":128}]},
                   {"ifname":"tunl0","flags":["NOARP","UP"],"mtu":1480,"link_type":"ipip","addr_info":[]}]"#;
        let (l, a) = parse_ip_addr(j, "addr.json").unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].loopback && l[1].tunnel);
        assert_eq!(
            a,
            vec![
                ("lo".into(), Ipv4Addr::new(127, 0, 0, 1), 8),
                ("lo".into(), Ipv4Addr::new(198, 18, 0, 100), 32)
            ]
        );
        assert!(
            parse_ip_addr(&j[..40], "addr.json")
                .unwrap_err()
                .to_string()
                .starts_with("addr.json: not valid")
        );
        assert!(parse_ip_addr("{}", "addr.json").is_err());
        assert!(parse_ip_addr(r#"[{"ifname":"x","addr_info":[{"family":"inet","local":"1.2.3.4","prefixlen":99}]}]"#, "a").is_err());
    }

    #[test]
    fn ip_addr_parsing_ipv6() {
        // `ip -j addr` leaves {} for addresses a filter left out.
        let j = r#"[{"ifname":"lo","link_type":"loopback","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"2001:2::100","prefixlen":128,"scope":"global"}]},
                   {"ifname":"eth0","link_type":"ether","addr_info":[{},{"family":"inet6","local":"2001:2::11","prefixlen":64,"dadfailed":true,"tentative":true},{"family":"inet6","local":"fe80::1","prefixlen":64,"nodad":true}]},
                   {"ifname":"ip6tnl0","link_type":"tunnel6","addr_info":[]},{"ifname":"sit0","link_type":"sit"}]"#;
        let (a, t) = parse_ip_addr6(j, "addr.json").unwrap();
        assert_eq!(t, ["ip6tnl0", "sit0"]);
        let shown: Vec<(String, String, bool, bool, bool)> = a
            .iter()
            .map(|a| {
                let p = format!("{}/{}", a.addr, a.prefix);
                (a.dev.clone(), p, a.tentative, a.dadfailed, a.nodad)
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("lo".into(), "2001:2::100/128".into(), false, false, false),
                ("eth0".into(), "2001:2::11/64".into(), true, true, false),
                ("eth0".into(), "fe80::1/64".into(), false, false, true),
            ]
        );
        let bad =
            r#"[{"ifname":"x","addr_info":[{"family":"inet6","local":"::1","prefixlen":129}]}]"#;
        let e = parse_ip_addr6(bad, "a").unwrap_err().to_string();
        assert_eq!(e, "a: link x address ::1 has no valid prefixlen");
        let e = parse_ip_addr6(r#"[{"ifname":"x","addr_info":[{"family":"inet6"}]}]"#, "a")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "a: link x has an inet6 address without 'local'");
    }

    #[test]
    fn neigh_proxy_parsing() {
        let j = r#"[{"dst":"2001:2::100","dev":"eth0","proxy":null},{"dst":"198.18.0.1","dev":"eth0"},{"dev":"eth1"},7]"#;
        let p = parse_neigh_proxy(j, "neigh-proxy.json").unwrap();
        assert_eq!(p, [("eth0".to_string(), "2001:2::100".parse().unwrap())]);
        assert!(parse_neigh_proxy("{}", "n").is_err());
    }
}

//! `uvs audit --fix`: apply the sysctl fixes now and persist them in a
//! sysctl.d file (shown as a diff first); address changes only with
//! --fix-addresses.

use super::{Error, Finding, Fix};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub sysctls: BTreeMap<String, String>,
    pub addresses: Vec<String>,
    pub manual: Vec<String>,
}

pub fn plan(findings: &[Finding]) -> Plan {
    let mut p = Plan::default();
    for f in findings {
        for x in &f.fixes {
            match x {
                Fix::Sysctl { key, value } => {
                    p.sysctls.insert(key.clone(), value.clone());
                }
                Fix::Address { command } if !p.addresses.contains(command) => {
                    p.addresses.push(command.clone())
                }
                Fix::Manual { command } if !p.manual.contains(command) => {
                    p.manual.push(command.clone())
                }
                _ => {}
            }
        }
    }
    p
}

/// /proc/sys path of a `net.ipv4...` or `net.ipv6.conf...` key; interface
/// names may contain dots (eth0.100), so for conf keys only the last dot
/// separates the setting.
pub fn proc_path(key: &str) -> Result<PathBuf, Error> {
    let ok =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
    for family in ["ipv4", "ipv6"] {
        let Some(rest) = key.strip_prefix(&format!("net.{family}.conf.")) else {
            continue;
        };
        let (dev, name) = rest
            .rsplit_once('.')
            .ok_or_else(|| Error::SysctlName(key.to_string()))?;
        if ok(dev) && ok(name) {
            let conf = Path::new("/proc/sys/net").join(family).join("conf");
            return Ok(conf.join(dev).join(name));
        }
        return Err(Error::UnexpectedKey(key.to_string()));
    }
    if let Some(name) = key.strip_prefix("net.ipv4.")
        && ok(name)
        && !name.contains('.')
    {
        return Ok(Path::new("/proc/sys/net/ipv4").join(name));
    }
    Err(Error::UnexpectedKey(key.to_string()))
}

/// The new content of the sysctl.d file with `sets` merged in, keeping
/// the settings it already had.
pub fn merged_file(existing: &str, sets: &BTreeMap<String, String>) -> String {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for l in existing.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            m.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    m.extend(sets.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut s = String::from(
        "# Written by `uvs audit --fix`: settings LVS real servers and directors need.\n",
    );
    for (k, v) in m {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

/// A minimal line diff: removed lines with '-', added with '+'.
pub fn diff(old: &str, new: &str) -> String {
    let o: Vec<&str> = old.lines().collect();
    let n: Vec<&str> = new.lines().collect();
    let mut s = String::new();
    for l in &o {
        if !n.contains(l) {
            s.push_str(&format!("-{l}\n"));
        }
    }
    for l in &n {
        if !o.contains(l) {
            s.push_str(&format!("+{l}\n"));
        }
    }
    s
}

pub fn apply_sysctls(sets: &BTreeMap<String, String>) -> Result<(), Error> {
    for (k, v) in sets {
        let path = proc_path(k)?;
        std::fs::write(&path, format!("{v}\n")).map_err(|source| Error::Set {
            key: k.clone(),
            path,
            source,
        })?;
    }
    Ok(())
}

pub fn write_file(path: &Path, content: &str) -> Result<(), Error> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        |source| Error::Write { path, source }
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(failed(d))?;
    }
    std::fs::write(path, content).map_err(failed(path))
}

/// Runs `ip ...` address commands (never through a shell).
pub fn apply_addresses(cmds: &[String]) -> Result<(), Error> {
    for c in cmds {
        let w: Vec<&str> = c.split_whitespace().collect();
        if w.first() != Some(&"ip") {
            return Err(Error::Command(c.clone()));
        }
        crate::host::run("ip", &w[1..], c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_confined() {
        let confined = [
            ("net.ipv4.conf.all.rp_filter", "ipv4/conf/all/rp_filter"),
            (
                "net.ipv4.conf.eth0.100.arp_ignore",
                "ipv4/conf/eth0.100/arp_ignore",
            ),
            ("net.ipv4.tcp_tw_recycle", "ipv4/tcp_tw_recycle"),
            (
                "net.ipv6.conf.eth0.100.disable_ipv6",
                "ipv6/conf/eth0.100/disable_ipv6",
            ),
        ];
        for (key, path) in confined {
            let want = Path::new("/proc/sys/net").join(path);
            assert_eq!(proc_path(key).unwrap(), want, "{key}");
        }
        let refused = [
            "net.ipv6.route.flush",
            "net.ipv6.conf.../x",
            "kernel.panic",
            "net.ipv4.conf.../x",
            "net.ipv4.conf.a/b.x",
        ];
        for key in refused {
            assert!(proc_path(key).is_err(), "{key}");
        }
    }

    #[test]
    fn file_merge_and_diff() {
        let mut sets = BTreeMap::new();
        sets.insert("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string());
        let old = "# mine\nnet.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.all.rp_filter = 1\n";
        let new = merged_file(old, &sets);
        assert!(new.contains("net.ipv4.conf.all.arp_ignore = 1\n"));
        assert!(new.contains("net.ipv4.conf.all.rp_filter = 0\n"));
        let d = diff(old, &new);
        assert!(d.contains("-net.ipv4.conf.all.rp_filter = 1\n"));
        assert!(d.contains("+net.ipv4.conf.all.rp_filter = 0\n"));
    }
}

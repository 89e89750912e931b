//! Name lookups for non-numeric listings and for host/service names in
//! arguments. Only /etc/hosts and /etc/services are read: a load-balancer
//! tool must never stall on, or send, DNS queries.

use crate::lvs::service::Protocol;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

struct Db {
    hosts: Vec<(Ipv4Addr, Vec<String>)>,
    services: Vec<(String, u16, String, Vec<String>)>,
}

fn db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| Db {
        hosts: parse_hosts(&std::fs::read_to_string("/etc/hosts").unwrap_or_default()),
        services: parse_services(&std::fs::read_to_string("/etc/services").unwrap_or_default()),
    })
}

fn strip_comment(l: &str) -> &str {
    l.split('#').next().unwrap_or("")
}

pub fn parse_hosts(text: &str) -> Vec<(Ipv4Addr, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let mut f = strip_comment(l).split_whitespace();
            let ip: Ipv4Addr = f.next()?.parse().ok()?;
            let names: Vec<String> = f.map(str::to_string).collect();
            (!names.is_empty()).then_some((ip, names))
        })
        .collect()
}

/// (name, port, protocol, aliases) rows of /etc/services.
pub fn parse_services(text: &str) -> Vec<(String, u16, String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let mut f = strip_comment(l).split_whitespace();
            let name = f.next()?.to_string();
            let (port, proto) = f.next()?.split_once('/')?;
            let port = port.parse().ok()?;
            Some((
                name,
                port,
                proto.to_string(),
                f.map(str::to_string).collect(),
            ))
        })
        .collect()
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        // A mark template's: no service names it (its port is 0).
        Protocol::Ip => "ip",
    }
}

pub fn host_to_addr(name: &str) -> Option<Ipv4Addr> {
    db().hosts
        .iter()
        .find(|(_, n)| n.iter().any(|x| x == name))
        .map(|(ip, _)| *ip)
}

pub fn addr_to_host(ip: Ipv4Addr) -> Option<&'static str> {
    db().hosts
        .iter()
        .find(|(a, _)| *a == ip)
        .map(|(_, n)| n[0].as_str())
}

pub fn service_to_port(name: &str, p: Protocol) -> Option<u16> {
    db().services
        .iter()
        .find(|(n, _, pr, al)| pr == proto_name(p) && (n == name || al.iter().any(|a| a == name)))
        .map(|s| s.1)
}

pub fn port_to_service(port: u16, p: Protocol) -> Option<&'static str> {
    db().services
        .iter()
        .find(|(_, po, pr, _)| *po == port && pr == proto_name(p))
        .map(|s| s.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_services() {
        let h =
            parse_hosts("127.0.0.1 localhost # c\n::1 ip6\n198.18.0.11 rs1 rs1.lab\nbad line\n");
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].1, vec!["rs1", "rs1.lab"]);
        let s = parse_services("http 80/tcp www # WorldWideWeb\ndomain 53/udp\nbroken\n");
        assert_eq!(s[0], ("http".into(), 80, "tcp".into(), vec!["www".into()]));
        assert_eq!(s.len(), 2);
    }
}

//! End-to-end: persistence (`-p`, `-M`) with real TCP from the client
//! namespace through `uvs director` (DR, rr, two real servers): a client
//! keeps its real server across new connections, a /24 shares one, a
//! port-0 service carries every port of the VIP, and after the timeout
//! with no connections the next one is scheduled afresh.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count, lab_tool, wait_until};
use std::time::Duration;

/// Two real servers answering TCP 80 and 443 with their names.
fn lab() -> Option<Lab> {
    let mut l = Lab::up(2)?;
    for n in ["rs1", "rs2"] {
        l.start_server_on(n, &["--tcp", "80", "--tcp", "443"]);
    }
    l.start_director();
    Some(l)
}

/// `n` TCP connections to VIP:`port` from the client, from `source`
/// when given (an address the client namespace holds).
pub(crate) fn names(l: &Lab, port: u16, n: u32, source: Option<&str>) -> serde_json::Value {
    let target = format!("{VIP}:{port}");
    let n = n.to_string();
    let mut args = vec!["tcp-names", "--target", &target, "--count", &n];
    if let Some(s) = source {
        args.extend(["--source", s]);
    }
    let o = l.exec("cl", &lab_tool(), &args);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)))
}

/// The one server all of `v`'s answers came from.
pub(crate) fn only_server(v: &serde_json::Value, n: u64) -> &'static str {
    match (count(v, "rs1"), count(v, "rs2")) {
        (a, 0) if a == n => "rs1",
        (0, b) if b == n => "rs2",
        _ => panic!("not all {n} from one server: {v}"),
    }
}

/// The rows of `-Lnc` listing `conns` that are templates of client
/// (network) `client`.
fn template_rows<'a>(conns: &'a str, client: &str) -> Vec<&'a str> {
    let client = format!(" {client}:0 ");
    conns.lines().filter(|r| r.contains(&client)).collect()
}

/// The `-Lnc` row of the one template of client (network) `client`.
#[track_caller]
fn one_template(l: &Lab, client: &str) -> String {
    let conns = l.adm("-Lnc");
    let rows = template_rows(&conns, client);
    assert_eq!(rows.len(), 1, "{conns}");
    rows[0].to_string()
}

/// Whether `-Lnc` listing `conns` has client `client`'s one template,
/// pointing at real server `name` (`rs1`, `rs2`) port 80.
pub(crate) fn pinned_to(conns: &str, client: &str, name: &str) -> bool {
    let rows = template_rows(conns, client);
    rows.len() == 1 && rows[0].ends_with(&format!(" {}:80", rip(name)))
}

/// `n` TCP connections to VIP:80 from a client of its own, address
/// `addr` (added to the client namespace): the one server they reached.
pub(crate) fn client_at(l: &Lab, addr: &str, n: u32) -> &'static str {
    l.sh("cl", &format!("ip addr add {addr}/24 dev eth0"));
    only_server(&names(l, 80, n, Some(addr)), u64::from(n))
}

pub(crate) fn rip(name: &str) -> &'static str {
    if name == "rs1" { RS1 } else { RS2 }
}

#[test]
fn a_client_keeps_its_server_until_the_template_expires() {
    let Some(l) = lab() else { return };
    // FIN_WAIT for 1 s: the connections end soon after they close.
    l.adm("--set 0 1 0");
    l.adm(&format!("-A -t {VIP}:80 -s rr -p 3"));
    for rs in [RS1, RS2] {
        l.adm(&format!("-a -t {VIP}:80 -r {rs} -g -w 1"));
    }
    let first = names(&l, 80, 100, None);
    let pinned = only_server(&first, 100);
    let list = l.adm("-Ln");
    holds(&list, &format!("TCP  {VIP}:80 rr persistent 3\n"));
    let t = one_template(&l, "198.18.0.10");
    assert!(t.starts_with("TCP "), "{t}");
    assert!(t.contains("ASSURED") || t.contains("NONE"), "{t}");
    let vip = format!("{VIP}:80");
    assert!(t.ends_with(&format!("{vip:<18} {}:80", rip(pinned))), "{t}");
    let pc = l.adm("-Ln --persistent-conn");
    let line = format!("  -> {:<28} 1         1", format!("{}:80", rip(pinned)));
    holds(&pc, &line);

    // The connections end, then the template (3 s after its last use):
    // the next connection is scheduled afresh, rr's next server.
    wait_until(
        Duration::from_secs(30),
        || !l.adm("-Lnc").contains("198.18.0.10:0 "),
        || format!("the template stayed: {}", l.adm("-Lnc")),
    );
    let again = names(&l, 80, 20, None);
    assert_ne!(only_server(&again, 20), pinned, "{again}");
}

#[test]
fn a_network_shares_a_server_across_the_ports_of_a_port_0_service() {
    let Some(l) = lab() else { return };
    l.sh("cl", "ip addr add 198.18.0.20/24 dev eth0");
    l.adm(&format!("-A -t {VIP}:0 -s rr -p -M 255.255.255.0"));
    for rs in [RS1, RS2] {
        l.adm(&format!("-a -t {VIP}:0 -r {rs} -g -w 1"));
    }
    let list = l.adm("-Ln");
    holds(
        &list,
        &format!("TCP  {VIP}:0 rr persistent 360 mask 255.255.255.0\n"),
    );
    let web = names(&l, 80, 30, None);
    let pinned = only_server(&web, 30);
    let tls = names(&l, 443, 30, None);
    assert_eq!(only_server(&tls, 30), pinned, "443 from the same client");
    let neighbour = names(&l, 80, 30, Some("198.18.0.20"));
    assert_eq!(only_server(&neighbour, 30), pinned, "the same /24");
    // One template for the network, port 0 on both sides.
    let conns = l.adm("-Lnc");
    let t: Vec<&str> = conns
        .lines()
        .filter(|r| r.contains("198.18.0.0:0 "))
        .collect();
    assert_eq!(t.len(), 1, "{conns}");
    let vip = format!("{VIP}:0");
    assert!(
        t[0].ends_with(&format!("{vip:<18} {}:0", rip(pinned))),
        "{conns}"
    );
    // Connections to 443 name the real server's 443.
    holds(&conns, &format!("{}:443", rip(pinned)));
}

//! End-to-end: persistence on IPv6 services (`-p`, `-M 64`) with real
//! TCP and UDP from the client namespace to `[2001:2::100]` through `uvs
//! director` (DR, rr, two real servers). The client takes extra addresses
//! in two /64s of its own (2001:2:0:5::/64 and 2001:2:0:6::/64, on its
//! eth0; the real servers route them there) to act as several clients:
//! the hosts of one /64 reach one real server, the other /64 is
//! scheduled anew, and the listings say so as ipvsadm would. An IPv6
//! firewall-mark service (`-f 7 -6`) serves the two ports its mark's
//! IPv6 rule names, one /64 on one server across both.

use crate::persist::only_server;
use crate::support::{Lab, RS1_6, RS2_6, VIP6, holds, lab_tool};

/// The client's addresses: two hosts of one /64, one of another.
const NET5: [&str; 2] = ["2001:2:0:5::10", "2001:2:0:5::20"];
const NET6: &str = "2001:2:0:6::10";

/// Real servers answering TCP 80 and 443 and UDP `[VIP6]:53`, the
/// director on the suite's backend (from `config` when given), the client
/// holding the extra addresses and the real servers routing them to it.
fn lab(config: Option<&str>) -> Option<Lab> {
    let mut l = Lab::up(2)?;
    let udp6 = format!("[{VIP6}]:53");
    for rs in ["rs1", "rs2"] {
        l.start_server_on(rs, &["--tcp", "80", "--tcp", "443", "--udp", &udp6]);
        for net in ["2001:2:0:5::/64", "2001:2:0:6::/64"] {
            l.sh(rs, &format!("ip -6 route add {net} dev eth0"));
        }
    }
    for a in NET5.iter().chain([&NET6]) {
        l.sh("cl", &format!("ip -6 addr add {a}/64 dev eth0 nodad"));
    }
    let path = l.dir.join("uvs.toml");
    let mut args = vec!["--interface", "eth0"];
    if let Some(text) = config {
        std::fs::write(&path, text).unwrap();
        args.extend(["--config", path.to_str().unwrap()]);
    }
    l.start_director_with(&args);
    Some(l)
}

/// `n` TCP connections (`tcp-names`) or UDP requests from new sockets
/// (`udp-names`) to `[VIP6]:port` from `source`: the one server that
/// answered them all.
fn from(l: &Lab, kind: &str, port: u16, source: &str, n: u32) -> &'static str {
    let target = format!("[{VIP6}]:{port}");
    let n_s = n.to_string();
    let o = l.exec(
        "cl",
        &lab_tool(),
        &[
            kind, "--target", &target, "--count", &n_s, "--source", source,
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    only_server(&v, u64::from(n))
}

fn rip6(name: &str) -> &'static str {
    if name == "rs1" { RS1_6 } else { RS2_6 }
}

#[test]
fn the_hosts_of_one_64_share_a_real_server_over_tcp_and_udp() {
    let Some(l) = lab(None) else { return };
    for (o, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-A {o} [{VIP6}]:{port} -s rr -p 600 -M 64"));
        for rs in [RS1_6, RS2_6] {
            l.adm(&format!("-a {o} [{VIP6}]:{port} -r {rs} -g -w 1"));
        }
    }
    for (kind, port) in [("tcp-names", 80), ("udp-names", 53)] {
        let pinned = from(&l, kind, port, NET5[0], 10);
        assert_eq!(from(&l, kind, port, NET5[1], 10), pinned, "{kind}: one /64");
        let other = from(&l, kind, port, NET6, 10);
        assert_ne!(other, pinned, "{kind}: another /64, rr's next server");
        assert_eq!(from(&l, kind, port, NET5[1], 5), pinned, "{kind}: still");
        // One template per /64: the network, port 0, to its server.
        let conns = l.adm("-Lnc");
        let proto = if port == 80 { "TCP" } else { "UDP" };
        for (net, name) in [("2001:2:0:5::", pinned), ("2001:2:0:6::", other)] {
            let client = format!(" [{net}]:0 ");
            let rows: Vec<&str> = conns
                .lines()
                .filter(|r| r.starts_with(proto) && r.contains(&client))
                .collect();
            assert_eq!(rows.len(), 1, "{conns}");
            let rs = format!("[{}]:{port}", rip6(name));
            assert!(rows[0].ends_with(&rs), "{conns}");
        }
    }
    let ln = l.adm("-Ln");
    holds(
        &ln,
        &format!("TCP  [{VIP6}]:80 rr persistent 600 mask 64\n"),
    );
    holds(
        &ln,
        &format!("UDP  [{VIP6}]:53 rr persistent 600 mask 64\n"),
    );
    // -S's rules (-M 64) rebuild the same table through -C and -R.
    let saved = l.save_round_trip("-S -n");
    holds(&saved, &format!("-A -t [{VIP6}]:80 -s rr -p 600 -M 64\n"));
    holds(&saved, &format!("-A -u [{VIP6}]:53 -s rr -p 600 -M 64\n"));
}

/// Mark 7 = TCP to `[VIP6]`:80,443 (as `ip6tables -t mangle -A PREROUTING
/// -d 2001:2::100/128 -p tcp -m multiport --dports 80,443 -j MARK
/// --set-mark 7` would), served by `-f 7 -6`, persistent by /64.
#[test]
fn an_ipv6_mark_service_serves_two_ports_and_pins_a_64_across_them() {
    let mark =
        format!("[[mark]]\nid = 7\nprotocol = \"tcp\"\nvip = \"{VIP6}\"\nports = \"80,443\"\n");
    let Some(l) = lab(Some(&mark)) else { return };
    // Mark 7 has no IPv4 rule: its IPv6 service only serves frames.
    l.adm("-A -f 7 -6 -s rr -p 600 -M 64");
    for rs in [RS1_6, RS2_6] {
        l.adm(&format!("-a -f 7 -6 -r {rs} -g -w 1"));
    }
    let pinned = from(&l, "tcp-names", 80, NET5[0], 10);
    assert_eq!(from(&l, "tcp-names", 443, NET5[0], 10), pinned, "443 too");
    assert_eq!(from(&l, "tcp-names", 443, NET5[1], 10), pinned, "one /64");
    let other = from(&l, "tcp-names", 443, NET6, 10);
    assert_ne!(other, pinned, "another /64, rr's next server");
    assert_eq!(from(&l, "tcp-names", 80, NET6, 5), other);
    let ln = l.adm("-Ln");
    holds(&ln, "FWM  7 IPv6 rr persistent 600 mask 64\n");
    let rs1 = format!("[{RS1_6}]:0");
    holds(&ln, &format!("  -> {rs1:<28} Route   1      "));
    // One template per /64, of protocol IP, the mark for VIP; the
    // connections name the ports they were to.
    let conns = l.adm("-Lnc");
    let tpl: Vec<&str> = conns.lines().filter(|r| r.starts_with("IP ")).collect();
    assert_eq!(tpl.len(), 2, "{conns}");
    let t5 = tpl
        .iter()
        .find(|r| r.contains(" [2001:2:0:5::]:0 "))
        .expect("/64 5");
    assert!(t5.ends_with(&format!("[{}]:0", rip6(pinned))), "{conns}");
    holds(&conns, &format!("[{VIP6}]:443"));
    let saved = l.save_round_trip("-S -n");
    holds(&saved, "-A -f 7 -6 -s rr -p 600 -M 64\n");
    holds(&saved, &format!("-a -f 7 -6 -r [{RS2_6}]:0 -g -w 1\n"));
}

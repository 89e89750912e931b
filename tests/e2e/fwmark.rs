//! End-to-end: firewall-mark services (`-f`), their marks defined in the
//! config file, and one-packet scheduling (`-o`), with real traffic.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count};

/// Two real servers answering TCP 80 and 443 and UDP VIP:53, and the
/// director started from a file that defines mark 100 (TCP 80 and 443 of
/// the VIP, as `iptables -t mangle -A PREROUTING -d VIP -p tcp -m
/// multiport --dports 80,443 -j MARK --set-mark 100` would).
fn lab() -> Option<Lab> {
    let mut l = Lab::up(2)?;
    for n in ["rs1", "rs2"] {
        let udp = format!("{VIP}:53");
        l.start_server_on(n, &["--tcp", "80", "--tcp", "443", "--udp", &udp]);
    }
    let path = l.dir.join("uvs.toml");
    let marks = format!(
        "[[mark]]\nid = 100\nprotocol = \"tcp\"\nvip = \"{VIP}\"\nports = \"80,443\"\n\n\
         [[mark]]\nid = 7\nprotocol = \"udp\"\nvip = \"{VIP}\"\nports = \"5000:5010\"\n"
    );
    std::fs::write(&path, marks).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    Some(l)
}

/// `count` TCP connections to VIP:`port`; the answers by server name.
fn names(l: &Lab, port: u16, n: u32) -> (u64, u64) {
    let target = format!("{VIP}:{port}");
    let v = l.client(&["tcp-names", "--target", &target, "--count", &n.to_string()]);
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    (count(&v, "rs1"), count(&v, "rs2"))
}

#[test]
fn a_mark_service_serves_its_marks_ports_first() {
    let Some(l) = lab() else { return };
    // A mark nobody defined is refused with the way to define it.
    let o = l.uvsadm(&["-A", "-f", "300", "-s", "rr"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("Firewall mark 300 is not defined"),
        "{e}"
    );

    // A plain service on port 80 with one server: the mark's service, with
    // two, takes port 80's frames first (IPVS looks a marked packet up by
    // its mark first).
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g"));
    l.adm("-A -f 100 -s rr");
    l.adm(&format!("-a -f 100 -r {RS1} -g"));
    l.adm(&format!("-a -f 100 -r {RS2} -g"));
    let list = l.adm("-Ln");
    holds(
        &list,
        &format!("FWM  100 rr\n  -> {RS1}:0                Route   1      0          0         \n"),
    );
    assert_eq!(names(&l, 80, 10), (5, 5));
    assert_eq!(names(&l, 443, 10), (5, 5));
    let conns = l.adm("-Lnc");
    holds(&conns, &format!("{VIP}:443"));
    assert!(
        conns.lines().skip(2).all(|c| c.starts_with("TCP ")),
        "{conns}"
    );
    let stats = l.adm("-Ln --stats --exact -f 100");
    let fwm = stats.lines().find(|x| x.starts_with("FWM  100")).unwrap();
    assert_eq!(fwm.split_whitespace().nth(2), Some("20"), "{stats}");
    let plain = l.adm(&format!("-Ln --stats --exact -t {VIP}:80"));
    assert!(
        plain
            .lines()
            .any(|x| x.starts_with("TCP") && x.split_whitespace().nth(2) == Some("0")),
        "{plain}"
    );
    l.adm("-Z -f 100");

    // Source hashing: one client's ports 80 and 443, under one mark, reach
    // one server (with persistence, `-p`, any scheduler will).
    l.adm("-E -f 100 -s sh");
    let (a80, b80) = names(&l, 80, 10);
    let (a443, b443) = names(&l, 443, 10);
    assert!(
        (a80 == 10 && a443 == 10) || (b80 == 10 && b443 == 10),
        "80: {a80}/{b80}, 443: {a443}/{b443}"
    );

    // Deleting the mark's service gives port 80 back to the plain service.
    l.adm("-D -f 100");
    assert_eq!(names(&l, 80, 4), (4, 0));
}

/// One-packet scheduling: each datagram of one client port is scheduled
/// on its own (round robin over both servers) and no entry is kept; and
/// the save/clear/restore round trip keeps marks and `-o`.
#[test]
fn one_packet_scheduling_spreads_one_flows_datagrams_and_round_trips() {
    let Some(l) = lab() else { return };
    let e = l.uvsadm(&["-A", "-t", &format!("{VIP}:81"), "-o"]);
    assert_eq!(
        String::from_utf8_lossy(&e.stderr).trim(),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    l.adm(&format!("-A -u {VIP}:53 -s rr -o"));
    l.adm(&format!("-a -u {VIP}:53 -r {RS1} -g"));
    l.adm(&format!("-a -u {VIP}:53 -r {RS2} -g"));
    assert!(l.adm("-Ln").contains(&format!("UDP  {VIP}:53 rr ops\n")));
    let (mut a, mut b) = (0, 0);
    for _ in 0..10 {
        // The same source port every time: one flow to IPVS and uvs.
        let v = l.udp_names(1, 40000);
        assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
        a += count(&v, "rs1");
        b += count(&v, "rs2");
    }
    assert_eq!((a, b), (5, 5));
    let conns = l.adm("-Lnc");
    assert_eq!(conns.lines().count(), 2, "no entry: {conns}");

    l.adm("-A -f 7 -s wlc -o");
    l.adm(&format!("-a -f 7 -r {RS2}:0 -m -w 0"));
    let listing = l.adm("-Ln");
    let saved = l.save_round_trip("-Ln");
    assert!(
        saved.ends_with(&format!(
            "-A -u {VIP}:53 -s rr -o\n-a -u {VIP}:53 -r {RS1}:53 -g -w 1\n\
             -a -u {VIP}:53 -r {RS2}:53 -g -w 1\n-A -f 7 -s wlc -o\n-a -f 7 -r {RS2}:0 -m -w 0\n"
        )),
        "{saved}"
    );
    holds(&listing, &format!("FWM  7 wlc ops\n  -> {RS2}:0"));
}

/// Issue 27, test 2: ports 80 and 443 of one VIP under one mark, with
/// persistence, go to one server for one client across many connections,
/// through one template for the client and the mark, listed as IPVS
/// lists it (protocol IP, the mark as the virtual address).
#[test]
fn a_persistent_mark_keeps_one_clients_ports_on_one_server() {
    let Some(l) = lab() else { return };
    l.adm("-A -f 100 -s rr -p 60");
    for rs in [RS1, RS2] {
        l.adm(&format!("-a -f 100 -r {rs} -g -w 1"));
    }
    let list = l.adm("-Ln");
    holds(&list, "FWM  100 rr persistent 60\n");
    let web = names(&l, 80, 20);
    assert!(web == (20, 0) || web == (0, 20), "80: {web:?}");
    for _ in 0..2 {
        assert_eq!(names(&l, 443, 20), web, "443 from the same client");
        assert_eq!(names(&l, 80, 20), web, "80 again");
    }
    let pinned = if web.0 > 0 { RS1 } else { RS2 };
    let conns = l.adm("-Lnc");
    let rows: Vec<&str> = conns.lines().filter(|r| r.starts_with("IP  ")).collect();
    assert_eq!(
        rows.len(),
        1,
        "one template for the client and mark: {conns}"
    );
    let want = format!("198.18.0.10:0      0.0.0.100:0        {pinned}:0");
    assert!(
        rows[0].ends_with(&want) && rows[0].contains(" ASSURED "),
        "{conns}"
    );
    // No template of the old shape (TCP, the VIP), and the connections
    // name the ports they reached.
    assert!(
        !conns.contains(&format!(" 198.18.0.10:0      {VIP}")),
        "{conns}"
    );
    holds(&conns, &format!("{pinned}:443"));
    let pc = l.adm("-Ln --persistent-conn -f 100");
    let line = format!("  -> {:<28} 1         1", format!("{pinned}:0"));
    holds(&pc, &line);
}

//! End-to-end: uvsadm against a running daemon: errors leave the table
//! alone, and save/clear/restore gives the identical listing.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP};

fn lab() -> Option<Lab> {
    let mut l = Lab::up(2)?;
    l.start_director();
    Some(l)
}

/// Runs a failing uvsadm command; returns stderr, checking the exit status
/// and that the table did not change.
fn refused(l: &Lab, line: &str, stdin: Option<&[u8]>) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let args = &args[..];
    let before = l.adm("-Ln");
    let o = l.uvsadm_stdin(args, stdin);
    assert!(!o.status.success(), "{args:?} should fail");
    assert_eq!(l.adm("-Ln"), before, "{args:?} changed the table");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(l) = lab() else { return };
    l.adm(&format!("-A -t {VIP}:80 -s wrr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g -w 3"));

    let e = refused(&l, &format!("-A -t {VIP}:81 -s nosuch"), None);
    assert!(
        e.starts_with("Scheduler or persistence engine not found"),
        "{e}"
    );
    let e = refused(&l, "-A -t 198.18.0.999:80", None);
    assert_eq!(e.trim(), "illegal virtual server address[:port] specified");
    let e = refused(&l, &format!("-a -t {VIP}:8080 -r {RS2}"), None);
    assert_eq!(e.trim(), "Service not defined");
    let e = refused(&l, &format!("-D -t {VIP}:8080"), None);
    assert_eq!(e.trim(), "No such service");
    let e = refused(&l, &format!("-a -t {VIP}:80 -r {RS1} -w 1"), None);
    assert_eq!(e.trim(), "Destination already exists");
    // A NAT real server the director has no route to (yet): kept, never
    // scheduled until a route and its MAC appear (e2e/health.rs).
    l.adm(&format!("-a -t {VIP}:80 -r 198.18.5.5:8080 -m"));
    assert!(l.adm("-Ln").contains("198.18.5.5:8080"));
    l.adm(&format!("-d -t {VIP}:80 -r 198.18.5.5:8080"));
    let e = refused(
        &l,
        &format!("-a -t {VIP}:80 -r {RS2} -i --tun-type gre"),
        None,
    );
    holds(&e, "GRE");
    // Not on-link: no route to it from the director's segment.
    let e = refused(&l, &format!("-a -t {VIP}:80 -r 198.19.7.7"), None);
    holds(&e, "198.19.7.7");
    // On-link but nobody answers ARP: kept as configuration (IPVS accepts
    // any destination), never scheduled until it answers (e2e/health.rs).
    l.adm(&format!("-a -t {VIP}:80 -r 198.18.0.77"));
    assert!(l.adm("-Ln").contains("198.18.0.77:80"));
    l.adm(&format!("-d -t {VIP}:80 -r 198.18.0.77"));
    // A VIP configured on the director is refused with the fix.
    l.sh("dir", "ip addr add 198.18.0.200/32 dev lo");
    let e = refused(&l, "-A -t 198.18.0.200:80 -s rr", None);
    holds(&e, "ip addr del 198.18.0.200/32 dev lo");

    // Restore: a bad line anywhere rejects everything, naming the line.
    let input = format!(
        "-A -t {VIP}:90 -s rr\n-a -t {VIP}:90 -r {RS1} -g -w 1\n-a -t {VIP}:90 -r {RS2} -g -w many\n"
    );
    let e = refused(&l, "-R", Some(input.as_bytes()));
    assert_eq!(e.trim(), "line 3: illegal weight specified");
    // A semantic error in the daemon is reported with its line, too.
    let input = format!(
        "-A -t {VIP}:90 -s rr\n-a -t {VIP}:90 -r {RS1} -g -w 1\n-a -t {VIP}:80 -r {RS1} -g -w 1\n"
    );
    let e = refused(&l, "-R", Some(input.as_bytes()));
    assert!(e.starts_with("line 3: Destination already exists"), "{e}");
    let e = refused(&l, "-R", Some(b"\xef\xbb\xbf-C\r\n-A -t 1.2.3\r\n"));
    assert!(e.starts_with("line 2: "), "{e}");
    // Garbage on the socket does not take the daemon down.
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(l.socket()).unwrap();
    s.write_all(b"\x00\xff{not json\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    holds(&resp, "bad request");
    assert!(l.adm("-Ln").contains(&format!("{RS1}:80")));
}

#[test]
fn save_clear_restore_round_trip() {
    let Some(l) = lab() else { return };
    l.dr_services("wrr", 3, 1);
    l.adm(&format!("-A -t {VIP}:443 -s rr"));
    l.adm(&format!("-a -t {VIP}:443 -r {RS2}"));
    // Persistence: -p with and without a mask, and a port-0 service.
    l.adm(&format!("-A -t {VIP}:8443 -s wlc -p 600 -M 255.255.255.0"));
    l.adm(&format!("-a -t {VIP}:8443 -r {RS1}"));
    l.adm(&format!("-A -t {VIP}:0 -s rr -p"));
    l.adm(&format!("-a -t {VIP}:0 -r {RS2}"));
    l.adm("--set 600 60 200");
    let listing = l.adm("-Ln");
    let saved = l.adm("-S -n");
    holds(&saved, &format!("-a -t {VIP}:80 -r {RS1}:80 -g -w 3"));
    for rule in [
        format!("-A -t {VIP}:8443 -s wlc -p 600 -M 255.255.255.0\n"),
        format!("-A -t {VIP}:0 -s rr -p 360\n"),
    ] {
        holds(&saved, &rule);
    }
    holds(
        &listing,
        &format!("TCP  {VIP}:8443 wlc persistent 600 mask 255.255.255.0\n"),
    );
    l.adm("-C");
    assert_eq!(l.adm("-Ln").lines().count(), 3, "cleared");
    l.restore(&saved);
    assert_eq!(l.adm("-Ln"), listing);
    assert_eq!(
        l.adm("-L --timeout"),
        "Timeout (tcp tcpfin udp): 600 60 200\n"
    );
    // The same file edited on Windows (BOM, CRLF) restores identically.
    l.adm("-C");
    let mut dos = vec![0xef, 0xbb, 0xbf];
    dos.extend_from_slice(saved.replace('\n', "\r\n").as_bytes());
    let o = l.uvsadm_stdin(&["-R"], Some(&dos));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(l.adm("-Ln"), listing);
    // One service listed alone has the title but not the version line.
    let one = l.adm(&format!("-Ln -t {VIP}:443"));
    assert!(
        one.starts_with("Prot LocalAddress:Port Scheduler Flags\n"),
        "{one}"
    );
}

/// IPv6 services beside IPv4 ones through the daemon: listed after them
/// (ipvsadm sorts by family first), written `[addr]:port`, a long address
/// pushing the columns right rather than cut; `-S -n`, `-C` and `-R` give
/// the identical table back.
#[test]
fn ipv6_services_list_save_and_restore_as_ipvsadm_does() {
    use crate::support::{RS1_6, VIP6};
    let Some(l) = lab() else { return };
    // The longest address 2001:2::/48 holds (33 characters), as a VIP and
    // as a real server that nobody answers for (kept, never scheduled).
    let long_vip = "2001:2:0:ffff:ffff:ffff:ffff:ff00";
    let long_rs = "2001:2::ffff:ffff:ffff:ff01";
    l.adm(&format!("-A -t [{long_vip}]:443 -s wlc"));
    l.adm(&format!(
        "-a -t [{long_vip}]:443 -r [{long_rs}]:8443 -g -w 7"
    ));
    l.adm(&format!("-A -u [{VIP6}]:53 -s sh"));
    l.adm(&format!("-a -u [{VIP6}]:53 -r {RS1_6} -g -w 2"));
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g"));
    let listing = l.adm("-Ln");
    let services: Vec<&str> = listing
        .lines()
        .skip(2)
        .filter(|x| !x.starts_with(' '))
        .collect();
    assert_eq!(
        services,
        [
            format!("TCP  {VIP}:80 rr"),
            format!("TCP  [{long_vip}]:443 wlc"),
            format!("UDP  [{VIP6}]:53 sh"),
        ],
        "{listing}"
    );
    // ipvsadm's "  -> %-28s %-7s %-6d %-10u %-10u": a 33-character name
    // takes its own width, one space, then the other columns (DR keeps
    // the service's port, as IPVS does).
    holds(
        &listing,
        &format!("  -> [{long_rs}]:443 Route   7      0          0         \n"),
    );
    holds(
        &listing,
        &format!(
            "  -> {:<28} Route   2      0          0         \n",
            format!("[{RS1_6}]:53")
        ),
    );
    let saved = l.adm("-S -n");
    holds(&saved, &format!("-A -t [{long_vip}]:443 -s wlc\n"));
    holds(
        &saved,
        &format!("-a -t [{long_vip}]:443 -r [{long_rs}]:443 -g -w 7\n"),
    );
    holds(
        &saved,
        &format!("-a -u [{VIP6}]:53 -r [{RS1_6}]:53 -g -w 2\n"),
    );
    let stats = l.adm("-Ln --stats");
    holds(&stats, &format!("UDP  [{VIP6}]:53 "));
    assert_eq!(l.save_round_trip("-Ln"), saved);
    assert_eq!(l.adm("-S -n"), saved);
}

//! The AF_XDP backend (`--io xdp`) on the namespace lab: VIP traffic and
//! NAT replies come through the XDP program's sockets, while traffic to
//! the director's own addresses (an operator's ssh, the director's own
//! connections to a real server) still reaches its kernel; the program
//! goes with the director.

mod support;
use support::{Lab, VIP, count};

const DIRECTOR: &str = "198.18.0.2";
const NAT1: &str = "198.18.2.11";

fn xdp_attached(l: &Lab, ifname: &str) -> bool {
    let o = l.exec("dir", "ip", &["link", "show", ifname]);
    String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
}

#[test]
fn xdp_takes_vip_traffic_and_leaves_the_directors_own_to_the_kernel() {
    let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
    l.start_server_on("nat1", &["--tcp", "8080"]);
    // "ssh" to the director: a listener on its own address.
    l.start_server_on("dir", &["--tcp", "2222"]);
    let pid = l.start_director_with(&["--io", "xdp", "-i", "eth0", "-i", "eth1"]);
    let log = l.log("director.log");
    assert!(log.contains("packet I/O: AF_XDP"), "{log}");
    assert!(xdp_attached(&l, "eth0") && xdp_attached(&l, "eth1"));
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT1}:8080 -m"));

    let t = l.tcp_names(100);
    assert_eq!(count(&t, "nat1"), 100, "{t}");
    // Both ways steered: the client's frames on eth0 and the replies from
    // NAT1:8080 on eth1 (at least a SYN and an ACK each way).
    let steered = l.dp_counter_settled("xdp_rx");
    assert!(steered >= 400, "xdp_rx {steered}");

    // The director's own address from a client: the kernel answers.
    let target = format!("{DIRECTOR}:2222");
    let own = l.client(&["tcp-names", "--target", &target, "--count", "20"]);
    assert_eq!(count(&own, "dir"), 20, "{own}");
    // The director's own connections (from 198.18.2.1) to a NAT real
    // server's port, as a health check makes: the replies are the
    // kernel's, not uvs's.
    let target = format!("{NAT1}:8080");
    let o = l.exec(
        "dir",
        &support::lab_tool(),
        &["tcp-names", "--target", &target, "--count", "20"],
    );
    let mine: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(count(&mine, "nat1"), 20, "{mine}");
    assert_eq!(
        l.dp_counter_settled("xdp_rx"),
        steered,
        "the program took kernel traffic"
    );
    // An address the director gains while running is its own too: the
    // maps learn it within 5 s (no table change is needed), and its
    // connections to NAT1:8080 work.
    l.sh("dir", "ip addr add 198.18.2.5/24 dev eth1");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let o = l.exec(
        "dir",
        &support::lab_tool(),
        &[
            "tcp-names",
            "--target",
            &target,
            "--count",
            "20",
            "--source",
            "198.18.2.5",
        ],
    );
    let later: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(count(&later, "nat1"), 20, "{later}");
    assert_eq!(l.dp_counter_settled("xdp_rx"), steered);

    // The program goes with the director.
    l.sh("dir", &format!("kill {pid}"));
    support::wait_until(
        std::time::Duration::from_secs(5),
        || !xdp_attached(&l, "eth0") && !xdp_attached(&l, "eth1"),
        || "the XDP program stayed attached after the director stopped".into(),
    );
}

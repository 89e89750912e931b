//! End-to-end: `uvs trace` (issue 32, test 1) with real traffic: an
//! established TCP flow's entry, a new client of an rr service, a
//! persistence template and an sh and mh service whose predicted server
//! is the one the next real connection reaches, the sorry server of a
//! lost quorum, a flow the kernel program carries, and `--live` naming a
//! TTL=1 frame's drop and a normal frame's real server.

use crate::support::{Lab, RS1, RS2, VIP, count};
use std::process::Command;
use std::time::Duration;

const CL: &str = "198.18.0.10";
const RS3: &str = "198.18.0.13";

/// `uvs trace ARGS --json`'s report.
fn trace(l: &Lab, args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("trace")
        .arg("--socket")
        .arg(l.socket())
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "uvs trace {args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The trace once `done` holds of it, within `secs` seconds.
fn wait_trace(
    l: &Lab,
    args: &[&str],
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
    what: &str,
) -> serde_json::Value {
    let t = std::time::Instant::now();
    loop {
        let r = trace(l, args);
        if done(&r) {
            return r;
        }
        assert!(t.elapsed() < Duration::from_secs(secs), "{what}: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn said(r: &serde_json::Value, what: &str) -> bool {
    r["why"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains(what))
}

/// The lab name of a real server's address.
fn name_of(server: &str) -> &'static str {
    match server.split(':').next().unwrap() {
        RS1 => "rs1",
        RS2 => "rs2",
        RS3 => "rs3",
        other => panic!("not a real server: {other}"),
    }
}

/// An established flow's entry, an rr service's new client, a template
/// that pins the client, sh and mh predictions the next connections
/// confirm. On the backend where uvs sees every frame (the default's
/// kernel program schedules rr itself).
#[test]
fn trace_explains_entries_templates_and_predictions() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(3) else { return };
    l.start_servers(3);
    l.start_director_with(&["--io", "packet", "-i", "eth0"]);
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    for rs in [RS1, RS2] {
        l.adm(&format!("-a -t {VIP}:80 -r {rs} -g"));
    }
    let vip80 = format!("{VIP}:80");

    // A new client: rr's candidates, no certainty.
    let r = trace(&l, &[CL, &vip80]);
    assert_eq!(r["deterministic"], false, "{r}");
    assert!(said(&r, "depends on what arrives first"), "{r}");
    assert!(
        said(&r, &format!("{RS1}:80 (weight 1), {RS2}:80 (weight 1)")),
        "{r}"
    );

    // An established flow: its entry.
    l.stick_bg(60, 50, "stick.json");
    let r = wait_trace(
        &l,
        &[CL, &vip80],
        3,
        |r| r["entries"][0]["state"] == "ESTABLISHED",
        "no established entry",
    );
    let port = r["entries"][0]["cport"].as_u64().unwrap().to_string();
    let one = trace(&l, &[&format!("{CL}:{port}"), &vip80]);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["entries"][0]["offloaded"], false, "{one}");
    assert!(said(&one, "frames follow the entry"), "{one}");
    let stick = l.wait_child_logs("stick.json", Duration::from_secs(10));
    let server = one["entries"][0]["server"].as_str().unwrap();
    assert_eq!(count(&stick, name_of(server)), 60, "{stick} {one}");

    // Persistent: the first connection makes the template, the trace
    // names it, the next connections go there.
    l.adm(&format!("-E -t {VIP}:80 -s rr -p 60"));
    l.tcp_names(1);
    let r = trace(&l, &[CL, &vip80]);
    let pinned = r["template"]["server"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(said(&r, "pins the client"), "{r}");
    assert_eq!(r["deterministic"], true, "{r}");
    let t = l.tcp_names(4);
    assert_eq!(count(&t, name_of(pinned)), 4, "{t} {r}");

    // sh and mh: the prediction is the server the next datagram reaches.
    l.adm(&format!("-A -u {VIP}:53 -s sh"));
    for rs in [RS1, RS2, RS3] {
        l.adm(&format!("-a -u {VIP}:53 -r {rs} -g"));
    }
    // A client port per scheduler: the sh datagram's entry would decide
    // the next one of its flow.
    for (sched, port) in [("sh", 40100), ("mh", 40101)] {
        l.adm(&format!("-E -u {VIP}:53 -s {sched}"));
        let r = trace(&l, &["-u", &format!("{CL}:{port}"), &format!("{VIP}:53")]);
        assert_eq!(
            (&r["deterministic"], &r["ecmp_agree"]),
            (&true.into(), &true.into())
        );
        let next = r["next_server"].as_str().unwrap_or_else(|| panic!("{r}"));
        let u = l.udp_names(1, port);
        assert_eq!(count(&u, name_of(next)), 1, "{sched}: {u} {r}");
    }
}

/// The real server is down and the quorum lost: the trace names the
/// sorry server, and the next connection reaches it.
#[test]
fn trace_names_the_sorry_server() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(3) else { return };
    l.start_server("rs3");
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         [service.check]\ntype = \"tcp\"\ninterval = 0.2\ntimeout = 0.2\nrise = 1\nfall = 1\n\
         [service.sorry_server]\naddress = \"{RS3}\"\n\
         [[service.real_server]]\naddress = \"{RS1}\"\n"
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&[
        "--io",
        "packet",
        "-i",
        "eth0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let vip80 = format!("{VIP}:80");
    let r = wait_trace(
        &l,
        &[CL, &vip80],
        5,
        |r| r["quorum"]["lost"] == true && r["next_server"] == format!("{RS3}:80"),
        "no sorry server",
    );
    assert!(said(&r, &format!("go to the sorry server {RS3}:80")), "{r}");
    assert!(said(&r, &format!("{RS1}:80 is down")), "{r}");
    assert_eq!(count(&l.tcp_names(1), "rs3"), 1);
}

/// Default `--io auto`: an established DR flow the tc program carries.
#[test]
fn trace_says_the_kernel_program_carries_a_flow() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director_with(&["-i", "eth0"]);
    l.dr_services("rr", 1, 1);
    l.stick_bg(100, 50, "stick.json");
    let vip80 = format!("{VIP}:80");
    let r = wait_trace(
        &l,
        &[CL, &vip80],
        4,
        |r| r["entries"][0]["offloaded"] == true,
        "no offloaded entry",
    );
    assert!(said(&r, "the kernel program carries it"), "{r}");
}

/// `--live`: a TTL=1 datagram dropped at egress with its reason, then a
/// normal one of the same flow forwarded to its real server.
#[test]
fn live_trace_shows_a_ttl_drop_and_a_forwarded_frame() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(1) else { return };
    l.start_servers(1);
    l.start_director_with(&["--io", "packet", "-i", "eth0"]);
    l.adm(&format!("-A -u {VIP}:53 -s rr"));
    l.adm(&format!("-a -u {VIP}:53 -r {RS1} -g"));
    let socket = l.socket();
    let target = format!("{VIP}:53");
    let args = [
        "trace",
        "--socket",
        socket.to_str().unwrap(),
        "-u",
        &format!("{CL}:40200"),
        &target,
        "--live",
        "3",
        "--json",
    ];
    let live = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let send = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{CL}', 40200))\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)\ns.sendto(b'x', ('{VIP}', 53))\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)\ns.sendto(b'y', ('{VIP}', 53))\n\
         s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s2.sendto(b'z', ('{VIP}', 53))\n"
    );
    let o = l.exec("cl", "python3", &["-c", &send]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = live.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<serde_json::Value> = text
        .lines()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(frames.len(), 2, "only the traced flow's frames: {text}");
    assert_eq!(frames[0]["ttl"], 1, "{text}");
    assert_eq!(frames[0]["stage"], "egress", "{text}");
    assert_eq!(frames[0]["verdict"]["dropped"], "ttl", "{text}");
    let fwd = &frames[1]["verdict"]["forwarded"];
    assert_eq!(fwd["server"], RS1, "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 frame(s) traced, 0 lost"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! End-to-end: `uvs director --metrics` scraped with curl from the client
//! namespace after known TCP and UDP traffic: every service's and real
//! server's connections, packets and bytes equal what `uvsadm -Ln --stats`
//! prints at the same moment; an address that cannot be listened on stops
//! the start with an error naming --metrics.

use crate::support::{Lab, RS1, RS2, VIP, fixed_backend_run, holds, tally2};
use std::time::Duration;

const METRICS: &str = "198.18.0.2:9647";

/// curl in the client namespace: (HTTP status, Content-Type, body).
fn curl(l: &Lab, path: &str, headers: &[&str]) -> (String, String, String) {
    let url = format!("http://{METRICS}{path}");
    let mut args = vec!["-sS", "--max-time", "5", "-o", "-", "-w"];
    args.push("\n%{http_code} %{content_type}");
    for h in headers {
        args.extend(["-H", *h]);
    }
    args.push(&url);
    let o = l.exec("cl", "curl", &args);
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let (body, tail) = out.rsplit_once('\n').unwrap();
    let (code, ctype) = tail.split_once(' ').unwrap();
    (code.into(), ctype.into(), body.into())
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(page: &str, name: &str, labels: &str) -> u64 {
    let head = match labels {
        "" => format!("{name} "),
        _ => format!("{name}{{{labels}}} "),
    };
    let line = page.lines().find_map(|l| l.strip_prefix(&head));
    line.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {head}in\n{page}"))
}

const FIGURES: [&str; 5] = [
    "connections_total",
    "in_packets_total",
    "out_packets_total",
    "in_bytes_total",
    "out_bytes_total",
];

#[test]
fn a_scrape_agrees_with_uvsadm_stats() {
    if !fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    // Not an address of this host: refused, naming the flag.
    let o = l.director_once(
        &["-i", "eth0", "--metrics", "198.18.99.99:9647"],
        &l.dir.join("refused.sock"),
    );
    assert_eq!(o.status.code(), Some(1));
    holds(
        &String::from_utf8_lossy(&o.stderr),
        "--metrics 198.18.99.99:9647: cannot listen there",
    );
    l.start_servers(2);
    // uvs sees every frame (no kernel program, whose counts reach
    // `--stats` only when a flow is taken back): the known traffic
    // gives known figures.
    l.start_director_with(&["-i", "eth0", "--io", "packet", "--metrics", METRICS]);
    l.dr_services("rr", 1, 1);
    let t = l.tcp_names(20);
    assert_eq!(tally2(&t, "rs1", "rs2"), (10, 10, Some(0)), "{t}");
    let u = l.udp_names(30, 30000);
    assert_eq!(tally2(&u, "rs1", "rs2"), (15, 15, Some(0)), "{u}");
    // The traffic has stopped once the listing holds still (the last
    // FINs and ACKs); then the scrape and the listing must agree.
    let mut before = l.adm("-Ln --stats --exact");
    let (page, stats) = loop {
        std::thread::sleep(Duration::from_millis(300));
        let (code, ctype, page) = curl(&l, "/metrics", &[]);
        assert_eq!(code, "200", "{page}");
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        let after = l.adm("-Ln --stats --exact");
        if after == before {
            break (page, after);
        }
        before = after;
    };
    let mut rows = 0;
    let mut service = String::new();
    for line in stats.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (labels, prefix) = match w.as_slice() {
            [proto @ ("TCP" | "UDP"), at, ..] => {
                let (vip, port) = at.rsplit_once(':').unwrap();
                service = format!(
                    r#"proto="{proto}",local_address="{vip}",local_port="{port}",local_mark="""#
                );
                (service.clone(), "uvs_service")
            }
            ["->", at, ..] if w.len() == 7 => {
                let (rs, port) = at.rsplit_once(':').unwrap();
                let labels = format!(r#"{service},remote_address="{rs}",remote_port="{port}""#);
                (labels, "uvs_real_server")
            }
            _ => continue,
        };
        let want: Vec<u64> = w[w.len() - 5..]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        let got: Vec<u64> = FIGURES
            .iter()
            .map(|f| sample(&page, &format!("{prefix}_{f}"), &labels))
            .collect();
        assert_eq!(got, want, "{labels}: uvsadm {line:?}\n{page}");
        rows += 1;
    }
    assert_eq!(rows, 6, "two services of two real servers each:\n{stats}");
    // The known traffic itself: 20 connections and 30 datagrams.
    let udp = r#"proto="UDP",local_address="198.18.0.100",local_port="53",local_mark="""#;
    assert_eq!(sample(&page, "uvs_service_connections_total", udp), 30);
    assert_eq!(sample(&page, "uvs_service_in_packets_total", udp), 30);
    let tcp = format!(r#"proto="TCP",local_address="{VIP}",local_port="80",local_mark="""#);
    assert_eq!(sample(&page, "uvs_service_connections_total", &tcp), 20);
    for rs in [RS1, RS2] {
        let d = format!(r#"{tcp},remote_address="{rs}",remote_port="80""#);
        assert_eq!(sample(&page, "uvs_real_server_weight", &d), 1);
        assert_eq!(
            sample(
                &page,
                "uvs_real_server_state",
                &format!(r#"{d},state="up""#)
            ),
            1
        );
    }
    // The data plane's figures are `uvs status`'s.
    let rx = sample(&page, "uvs_rx_frames_total", "");
    assert!(rx > 0 && rx <= l.dp_counter("rx_frames"), "{page}");
    holds(&page, "# TYPE uvs_dropped_frames_total counter\n");
    // OpenMetrics when asked for, as Prometheus does; errors elsewhere.
    let om = ["Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"];
    let (code, ctype, page) = curl(&l, "/metrics", &om);
    assert_eq!(code, "200");
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert_eq!(curl(&l, "/", &[]).0, "404");
    // A client that connects and says nothing does not hold the others.
    let idle = "exec 3<>/dev/tcp/198.18.0.2/9647; sleep 4";
    l.spawn("cl", "bash", &["-c", idle], "idle.log");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(curl(&l, "/metrics", &[]).0, "200");
}

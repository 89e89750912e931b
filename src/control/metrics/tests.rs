use super::http::{MAX_HEAD, Route, answer_within, route};
use super::*;
use crate::control::proto::{DestSnap, DestSpec, ServiceDef, ServiceSnap};
use crate::ha::status::{PeerStatus, SyncStatus};
use crate::lvs::service::{Forward, Protocol, SchedFlags, SchedulerKind, ServiceKey};
use crate::lvs::stats::{DataplaneCounters, StatsSnapshot};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn stats(base: u64) -> StatsSnapshot {
    StatsSnapshot {
        conns: base,
        inpkts: base * 10,
        outpkts: base * 9,
        inbytes: base * 1000,
        outbytes: base * 900,
    }
}

/// One TCP service with one real server, one mark service, two workers.
fn scrape() -> Scrape {
    let key = ServiceKey::addr(Protocol::Tcp, [198, 18, 0, 100], 80);
    let dest = DestSnap {
        spec: DestSpec {
            addr: [198, 18, 1, 11].into(),
            port: 8080,
            forward: Forward::Masq,
            weight: 3,
            uthreshold: 0,
            lthreshold: 0,
            slow_start: 0,
        },
        active: 4,
        inactive: 1,
        persistent: 0,
        ramp_to: None,
        stats: stats(5),
        rates: Default::default(),
    };
    let service = |key, dests| ServiceSnap {
        def: ServiceDef::of(key, SchedulerKind::Wrr, SchedFlags::default(), false, None),
        stats: stats(7),
        rates: Default::default(),
        dests,
    };
    let mark = ServiceKey::mark_of(100, true);
    let health = HealthRow {
        service: "TCP 198.18.0.100:80".into(),
        server: "198.18.1.11:8080".into(),
        forward: "Masq".into(),
        weight: 3,
        weight_now: 0,
        ramp_left_ms: None,
        state: "down".into(),
        reason: "connect refused".into(),
        resolution: "resolved 02:00:00:00:00:01".into(),
        check: "down".into(),
        since_secs: 2,
        since_unix_ms: 1_700_000_000_500,
    };
    let mut status: Vec<(String, u64)> = DataplaneCounters::default()
        .pairs()
        .into_iter()
        .map(|(k, _)| (k.to_string(), 0))
        .collect();
    for (k, v) in &mut status {
        *v = match k.as_str() {
            "rx_frames" => 100,
            "no_dest" => 3,
            "conns" => 6,
            "kernel_scheduled" => 2,
            _ => 0,
        };
    }
    status.push(("workers".into(), 2));
    status.push(("worker0_rx_frames".into(), 60));
    status.push(("worker1_rx_frames".into(), 40));
    status.push(("worker0_kernel_scheduled".into(), 0));
    status.push(("worker1_kernel_scheduled".into(), 2));
    Scrape {
        snapshot: Snapshot {
            services: vec![service(key, vec![dest]), service(mark, Vec::new())],
            timeouts: Default::default(),
        },
        health: vec![health],
        status,
        ha: None,
    }
}

fn ha_status() -> HaStatus {
    HaStatus {
        role: "backup".into(),
        priority: 100,
        effective_priority: 50,
        fault: None,
        preempt: true,
        preempt_delay_ms: 0,
        ready: true,
        reason: String::new(),
        seq: 42,
        peers: vec![PeerStatus {
            addr: [198, 18, 0, 3].into(),
            live: true,
            priority: 150,
            active: true,
            heard_ms_ago: Some(250),
            hears_us: true,
            heard_seq: 7,
            heard_our_seq: 42,
            ready: true,
            sync_applied: 90,
            sync_highest: 95,
            sync_lag: 5,
            synced: true,
            hears_witness: false,
        }],
        tracks: vec![crate::ha::track::TrackStatus {
            track: crate::ha::track::Track {
                watch: crate::ha::track::Watch::Interface("eth1".into()),
                weight: Some(-50),
            },
            failing: true,
        }],
        counters: Default::default(),
        sync: SyncStatus {
            sent_seq: 0,
            sent_per_s: 0.0,
            received_per_s: 12.0,
            digest: "mismatch at seq 80".into(),
            resync: None,
            counters: crate::ha::sync::SyncCounters {
                records_received: 300,
                resyncs_asked: 1,
                ..Default::default()
            },
        },
        witness: Some(crate::ha::status::WitnessStatus {
            addr: "198.18.0.4:5405".parse().unwrap(),
            live: true,
            heard_ms_ago: Some(80),
            votes_for_us: false,
            grantee: None,
            votes: 2,
            voters: 3,
            received: 10,
            bad_mac: 0,
            malformed: 0,
            replayed: 0,
        }),
    }
}

const SERVICE: &str = r#"proto="TCP",local_address="198.18.0.100",local_port="80",local_mark="""#;
const SERVER: &str = r#"remote_address="198.18.1.11",remote_port="8080""#;

fn has(page: &str, line: &str) {
    assert!(page.lines().any(|l| l == line), "no `{line}` in\n{page}");
}

#[test]
fn a_known_scrape_gives_known_lines() {
    let page = page(&scrape(), Format::Text);
    let s = SERVICE;
    let d = format!("{SERVICE},{SERVER}");
    for line in [
        format!("uvs_service_connections_total{{{s}}} 7"),
        format!("uvs_service_in_packets_total{{{s}}} 70"),
        format!("uvs_service_out_bytes_total{{{s}}} 6300"),
        format!("uvs_service_info{{{s},scheduler=\"wrr\"}} 1"),
        format!("uvs_real_server_connections_total{{{d}}} 5"),
        format!("uvs_real_server_in_packets_total{{{d}}} 50"),
        format!("uvs_real_server_out_packets_total{{{d}}} 45"),
        format!("uvs_real_server_in_bytes_total{{{d}}} 5000"),
        format!("uvs_real_server_out_bytes_total{{{d}}} 4500"),
        format!("uvs_real_server_active_connections{{{d}}} 4"),
        format!("uvs_real_server_inactive_connections{{{d}}} 1"),
        format!("uvs_real_server_weight{{{d}}} 3"),
        format!("uvs_real_server_info{{{d},forward=\"masq\"}} 1"),
        format!("uvs_real_server_state{{{d},state=\"up\"}} 0"),
        format!("uvs_real_server_state{{{d},state=\"down\"}} 1"),
        format!("uvs_real_server_state{{{d},state=\"unresolved\"}} 0"),
        format!("uvs_real_server_check{{{d},check=\"down\"}} 1"),
        format!("uvs_real_server_state_change_time_seconds{{{d}}} 1700000000.5"),
        // The IPv6 mark service: its family's address, port 0, its mark.
        r#"uvs_service_connections_total{proto="FWM",local_address="::",local_port="0",local_mark="100"} 7"#.into(),
        "# TYPE uvs_dropped_frames_total counter".into(),
        r#"uvs_dropped_frames_total{reason="no_dest"} 3"#.into(),
        r#"uvs_dropped_frames_total{reason="malformed"} 0"#.into(),
        "uvs_rx_frames_total 100".into(),
        "uvs_kernel_scheduled_total 2".into(),
        "uvs_kernel_ring_full_total 0".into(),
        "uvs_conn_table_entries 6".into(),
        "uvs_workers 2".into(),
        r#"uvs_worker_rx_frames_total{worker="1"} 40"#.into(),
        r#"uvs_worker_kernel_scheduled_total{worker="1"} 2"#.into(),
    ] {
        has(&page, &line);
    }
    assert!(!page.contains("uvs_ha_"), "no HA without peers");
    assert!(!page.contains("# EOF"), "the classic format has no EOF");
}

#[test]
fn ha_state_is_exported() {
    let mut s = scrape();
    s.ha = Some(Box::new(ha_status()));
    s.status.push(("sync_sent_per_s".into(), 0));
    let page = page(&s, Format::OpenMetrics);
    for line in [
        r#"uvs_ha_role{role="backup"} 1"#,
        r#"uvs_ha_role{role="active"} 0"#,
        "uvs_ha_effective_priority 50",
        "uvs_ha_heartbeat_sequence 42",
        r#"uvs_ha_peer_up{peer="198.18.0.3"} 1"#,
        r#"uvs_ha_peer_priority{peer="198.18.0.3"} 150"#,
        r#"uvs_ha_peer_sync_lag_messages{peer="198.18.0.3"} 5"#,
        r#"uvs_ha_peer_last_heard_seconds{peer="198.18.0.3"} 0.25"#,
        r#"uvs_ha_sync_digest{result="mismatch"} 1"#,
        r#"uvs_ha_sync_records_total{direction="received"} 300"#,
        r#"uvs_ha_sync_resyncs_total{kind="asked"} 1"#,
        "# TYPE uvs_ha_sync_records counter",
        r#"uvs_ha_track_failing{kind="interface",name="eth1"} 1"#,
        r#"uvs_ha_votes{of="counted"} 2"#,
        r#"uvs_ha_witness_up{witness="198.18.0.4:5405"} 1"#,
    ] {
        has(&page, line);
    }
    assert!(!page.contains("sync_sent_per_s"), "rates are Prometheus's");
    assert!(page.ends_with("# EOF\n"));
}

#[test]
fn every_status_figure_has_its_metric() {
    for (name, _) in DataplaneCounters::default().pairs() {
        assert!(plane::kind(name).is_some(), "`{name}` has no metric");
    }
    // Names follow Prometheus's rules.
    let mut s = scrape();
    s.ha = Some(Box::new(ha_status()));
    let sheet = sheet(&s);
    for f in sheet.families() {
        assert!(f.name.starts_with("uvs_"), "{}", f.name);
        let ok = f
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        assert!(ok && !f.name.ends_with("_total"), "{}", f.name);
    }
}

/// docs/metrics.md names every family a scrape can have, as written
/// (counters with `_total`).
#[test]
fn every_metric_is_documented() {
    let doc = include_str!("../../../docs/metrics.md");
    let mut s = scrape();
    s.ha = Some(Box::new(ha_status()));
    for f in sheet(&s).families() {
        let name = match f.kind {
            prometheus_client::metrics::MetricType::Counter => format!("{}_total", f.name),
            _ => f.name.clone(),
        };
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/metrics.md lacks `{name}`"
        );
    }
}

#[test]
fn a_label_value_is_escaped() {
    let mut sheet = Sheet::default();
    let labels = vec![("name", "a \"b\"\\c\nd".to_string())];
    sheet.gauge("uvs_x", "x", labels, 1);
    has(
        &sheet.encode(Format::Text),
        r#"uvs_x{name="a \"b\"\\c\nd"} 1"#,
    );
}

#[test]
fn requests_are_routed() {
    let page = |format| Route::Page {
        format,
        head: false,
    };
    assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), page(Format::Text));
    assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), page(Format::Text));
    let om = b"GET /metrics HTTP/1.1\r\nHost: x\r\naccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
    assert_eq!(route(om), page(Format::OpenMetrics));
    assert!(matches!(
        route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
        Route::Page { head: true, .. }
    ));
    assert_eq!(
        route(b"GET / HTTP/1.1\r\n\r\n"),
        Route::Status(404, "Not Found")
    );
    let post = route(b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(post, Route::Status(405, "Method Not Allowed"));
    for bad in [
        &b""[..],
        b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
        b"GET /metrics HTTP/1.1 x\r\n\r\n",
        b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(route(bad), Route::Status(400, "Bad Request"), "{bad:?}");
    }
}

/// What `answer` writes back for `request` (sent whole, then the write
/// half closed unless `hold`).
fn exchange(request: &[u8], hold: bool, limit: Duration) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(answer_within(
            server,
            |f| async move { format!("page {f:?}\n") },
            limit,
        ));
        let _ = client.write_all(request).await;
        if !hold {
            let _ = client.shutdown().await;
        }
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        serve.await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    })
}

#[test]
fn the_responder_answers_what_it_can_and_never_panics() {
    let long = Duration::from_secs(5);
    let ok = exchange(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", false, long);
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(ok.contains("Content-Length: 10\r\n") && ok.ends_with("\r\n\r\npage Text\n"));
    let head = exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n", false, long);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    let wrong = exchange(b"GET /other HTTP/1.1\r\n\r\n", false, long);
    assert!(wrong.starts_with("HTTP/1.1 404 "), "{wrong}");
    let post = exchange(b"PUT /metrics HTTP/1.1\r\n\r\n", false, long);
    assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"));
    // Garbage, cut short or binary.
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"GET /metr",
        b"\xff\xff\xff\r\n\r\n",
    ] {
        let r = exchange(junk, false, long);
        assert!(r.starts_with("HTTP/1.1 400 "), "{junk:?}: {r}");
    }
    // Nothing at all: closed without an answer.
    assert_eq!(exchange(b"", false, long), "");
    // A head that never ends: refused once it reaches the limit, with
    // what was read bounded (the client's write is not all taken).
    let big = vec![b'a'; 4 * MAX_HEAD];
    let r = exchange(&big, true, long);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // A client that sends half a head and waits: timed out.
    let t = std::time::Instant::now();
    let r = exchange(
        b"GET /metrics HTTP/1.1\r\n",
        true,
        Duration::from_millis(100),
    );
    assert!(r.starts_with("HTTP/1.1 408 "), "{r}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn ipv6_addresses_are_bare_in_labels() {
    let v6 = |a: &str| a.parse::<std::net::IpAddr>().unwrap();
    let k = ServiceKey::addr(Protocol::Udp, v6("2001:2::100"), 53);
    let got = table::server_labels(&k, v6("2001:2::11"), 5353);
    let want = [
        ("proto", "UDP"),
        ("local_address", "2001:2::100"),
        ("local_port", "53"),
        ("local_mark", ""),
        ("remote_address", "2001:2::11"),
        ("remote_port", "5353"),
    ];
    let want: Labels = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
    assert_eq!(got, want);
}

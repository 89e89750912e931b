use super::*;

/// A directory of its own for each test's files.
fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("uvs-ka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn import_text(name: &str, text: &str) -> Result<Imported, ImportError> {
    let d = dir(name);
    let f = d.join("k.conf");
    std::fs::write(&f, text).unwrap();
    let r = import(&f);
    std::fs::remove_dir_all(&d).unwrap();
    r
}

#[test]
fn unbalanced_blocks_are_errors_naming_the_place() {
    let e = import_text("unbalanced", "virtual_server 1.2.3.4 80 {\n lb_algo rr\n").unwrap_err();
    assert!(
        e.errors[0].contains("k.conf:1") && e.errors[0].contains("never closed"),
        "{e:?}"
    );
    let e = import_text("close", "\n}\n").unwrap_err();
    assert!(
        e.errors[0].contains("k.conf:2: `}` without an open block"),
        "{e:?}"
    );
    let e = import_text("open", "{\n").unwrap_err();
    assert!(
        e.errors[0].contains("k.conf:1: `{` without a keyword"),
        "{e:?}"
    );
    let deep = "virtual_server {".repeat(read::MAX_BLOCK_DEPTH + 1);
    let e = import_text("deep", &deep).unwrap_err();
    assert!(e.errors[0].contains("blocks nest deeper"), "{e:?}");
}

#[test]
fn a_brace_on_the_next_line_opens_the_block() {
    let i = import_text(
        "allman",
        "virtual_server 198.18.0.100 80\n{\n  protocol TCP\n  lb_kind DR\n  real_server 198.18.0.11 80\n  {\n    weight 4\n  }\n}\n",
    )
    .unwrap();
    assert!(
        i.config.contains("address = \"198.18.0.100:80\""),
        "{}",
        i.config
    );
    assert!(i.config.contains("weight = 4"), "{}", i.config);
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}

/// keepalived's defaults, not uvs's: without protocol and lb_kind,
/// keepalived sets UDP and NAT (and reports both); so does the import.
#[test]
fn keepalived_defaults_apply_where_the_file_says_nothing() {
    let i = import_text(
        "defaults",
        "virtual_server 198.18.0.100 53 {\n  real_server 198.18.2.11 5353 {\n  }\n}\n",
    )
    .unwrap();
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    let s = &c.services[0];
    assert_eq!(s.def.key.protocol, crate::lvs::service::Protocol::Udp);
    assert_eq!(
        s.real_servers[0].forward,
        crate::lvs::service::Forward::Masq
    );
    assert_eq!(s.real_servers[0].port, 5353);
    assert_eq!(s.def.scheduler, "wlc");
    assert!(
        i.warnings[0].contains("k.conf:1: virtual_server without protocol"),
        "{:?}",
        i.warnings
    );
    assert!(
        i.warnings[1].contains("k.conf:1: virtual_server without lb_kind"),
        "{:?}",
        i.warnings
    );
}

/// The output starts with the header and the director's table, its note
/// on the interfaces kept as a comment (TOML serialization has none).
#[test]
fn the_output_keeps_its_header_and_the_interfaces_note() {
    let i = import_text(
        "header",
        "virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n  real_server 198.18.0.11 80 {\n  }\n}\n",
    )
    .unwrap();
    let head = "# Review the warnings it printed: each names an option not carried over.\n\n\
                [director]\n\
                # interfaces = [\"eth0\"]   # keepalived does not say; give --interface\n\n\
                [[service]]\n";
    assert!(
        i.config.starts_with("# uvs config imported from ") && i.config.contains(head),
        "{}",
        i.config
    );
}

/// A url's options as keepalived takes them when repeated: the last path,
/// every status_code's codes; a second digest keepalived reports, and so
/// does the import. Each is one key of the output.
#[test]
fn repeated_url_options_are_written_once() {
    let conf = |url: &str| {
        format!(
            "virtual_server 198.18.0.100 80 {{\n  protocol TCP\n  lb_kind DR\n\
             real_server 198.18.0.11 80 {{\n    HTTP_GET {{\n      url {{\n{url}      }}\n    }}\n  }}\n}}\n"
        )
    };
    let i = import_text(
        "url-repeats",
        &conf("path /a\npath /b\nstatus_code 200\nstatus_code 204-206\n"),
    )
    .unwrap();
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    let check = c.services[0].real_servers[0].check.as_ref().unwrap();
    match &check.kind {
        crate::control::check::CheckKind::Http { path, status, .. } => {
            assert_eq!(path, "/b");
            assert_eq!(status, &[(200, 200), (204, 206)]);
        }
        other => panic!("{other:?}"),
    }
    let digest = "digest 9b3a0c85a887a256d6939da88aabd8cd\n";
    let e = import_text("url-digests", &conf(&format!("path /\n{digest}{digest}"))).unwrap_err();
    assert!(
        e.errors[0].contains("k.conf:9: a second `digest` in one url"),
        "{e:?}"
    );
}

/// IPv6 virtual and real servers are carried over, written as the
/// config file takes them (`[v6]:port`); what the director refuses for
/// IPv6 is reported at its line.
#[test]
fn ipv6_virtual_servers_are_carried_over() {
    let i = import_text(
        "v6",
        "virtual_server 2001:2::100 80 {\n  protocol TCP\n  lb_kind DR\n  lb_algo rr\n  real_server 2001:2::11 80 {\n    weight 2\n  }\n}\n",
    )
    .unwrap();
    assert!(
        i.config.contains("address = \"[2001:2::100]:80\""),
        "{}",
        i.config
    );
    assert!(
        i.config.contains("address = \"2001:2::11\""),
        "{}",
        i.config
    );
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    assert_eq!(c.services[0].real_servers[0].weight, 2);
    assert_eq!(c.services[0].def.key.addr.to_string(), "2001:2::100");

    let e = import_text(
        "v6bad",
        "virtual_server 2001:2::100 80 {\n  protocol TCP\n  lb_kind DR\n  real_server ff02::1 80 {\n  }\n  real_server 2001:2::zz 80 {\n  }\n}\nvirtual_server ::1 80 {\n}\n",
    )
    .unwrap_err();
    let all = e.errors.join("\n");
    assert!(
        all.contains("k.conf:9: ::1 cannot be a VIP: it is the loopback address"),
        "{all}"
    );
    assert!(
        all.contains("k.conf:4: ff02::1 cannot be a real server: it is a multicast address"),
        "{all}"
    );
    assert!(
        all.contains("k.conf:6: `2001:2::zz` is not an IPv4 or IPv6 address"),
        "{all}"
    );
}

/// A NAT real server of an IPv6 service keeps its own port, bracketed.
#[test]
fn an_ipv6_nat_real_server_is_written_with_its_port() {
    let i = import_text(
        "v6nat",
        "virtual_server 2001:2::100 53 {\n  protocol UDP\n  lb_kind NAT\n  real_server 2001:2:0:1::11 5353 {\n  }\n}\n",
    )
    .unwrap();
    assert!(
        i.config.contains("address = \"[2001:2:0:1::11]:5353\""),
        "{}",
        i.config
    );
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    assert_eq!(c.services[0].real_servers[0].port, 5353);
    assert_eq!(
        c.services[0].real_servers[0].forward,
        crate::lvs::service::Forward::Masq
    );
}

/// keepalived reads `persistence_granularity` by the service's family: a
/// netmask for IPv4, a prefix length for IPv6; the import carries either
/// over and the director pairs it with the family.
#[test]
fn an_ipv6_persistence_granularity_is_a_prefix_length() {
    let vs = |addr: &str, g: &str| {
        format!(
            "virtual_server {addr} 80 {{\n  protocol TCP\n  lb_kind DR\n  persistence_timeout 600\n  \
             persistence_granularity {g}\n  real_server 2001:2::11 80 {{\n  }}\n}}\n"
        )
    };
    let i = import_text("pgr6", &vs("2001:2::100", "64")).unwrap();
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    let p = c.services[0].def.persistent.unwrap();
    assert_eq!((p.timeout, p.prefix6), (600, 64));
    let e = import_text("pgr6bad", &vs("2001:2::100", "129")).unwrap_err();
    assert!(
        e.errors[0].contains("k.conf:1: persistence_granularity `129` is neither"),
        "{e:?}"
    );
}

/// keepalived's `connect_ip` at the VIP checks through the data path
/// (`via_vip`); at any other address it is not carried over, with a
/// warning.
#[test]
fn connect_ip_at_the_vip_is_a_via_vip_check() {
    let conf = |ip: &str| {
        format!(
            "virtual_server 198.18.0.100 80 {{\n  protocol TCP\n  lb_kind DR\n  \
             real_server 198.18.0.11 80 {{\n    TCP_CHECK {{\n      connect_ip {ip}\n    }}\n  }}\n}}\n"
        )
    };
    let i = import_text("vip", &conf("198.18.0.100")).unwrap();
    assert!(i.config.contains("via_vip = true"), "{}", i.config);
    let c = crate::config::parse(Path::new("i.toml"), i.config.as_bytes()).unwrap();
    assert!(
        c.services[0].real_servers[0]
            .check
            .as_ref()
            .unwrap()
            .via_vip
    );
    let i = import_text("other", &conf("198.18.0.50")).unwrap();
    assert!(!i.config.contains("via_vip"), "{}", i.config);
    assert!(
        i.warnings
            .iter()
            .any(|w| w.contains("connect_ip other than the VIP")),
        "{:?}",
        i.warnings
    );
}

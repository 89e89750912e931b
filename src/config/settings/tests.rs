use super::*;

#[test]
fn every_default_passes_its_check_and_the_table_agrees_with_the_planes() {
    let s = Settings::default().with_defaults();
    assert_eq!(s.max_conns, Some(crate::lvs::conn::DEFAULT_MAX_CONNS));
    assert_eq!(
        s.socket.as_deref(),
        Some(std::path::Path::new(DEFAULT_SOCKET))
    );
    // No default worker count: the director's links and CPUs give it.
    assert_eq!((s.workers, s.priority), (None, Some(100)));
    assert_eq!(s.garp_refresh, Some(Duration::ZERO));
    assert!(s.given.is_empty(), "defaults are not given");
    // Flags and keys are unique.
    let mut flags = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for st in SETTINGS {
        assert!(flags.insert(st.flag), "{}", st.flag);
        if let Some(k) = st.key {
            assert!(keys.insert(k), "{k}");
            assert_eq!(by_key(k).map(|x| x.flag), Some(st.flag));
        }
    }
}

#[test]
fn a_flag_replaces_the_file_s_value_and_list() {
    let set = |s: &mut Settings, flag: &str, v: &str| {
        let st = SETTINGS.iter().find(|x| x.flag == flag).unwrap();
        s.set(st, flag, v)
    };
    let mut file = Settings::default();
    set(&mut file, "interface", "eth0").unwrap();
    set(&mut file, "interface", "eth1").unwrap();
    set(&mut file, "priority", "50").unwrap();
    set(&mut file, "workers", "2").unwrap();
    let mut cli = Settings::default();
    set(&mut cli, "interface", "eth9").unwrap();
    set(&mut cli, "priority", "200").unwrap();
    let s = file.overlaid(&cli).with_defaults();
    assert_eq!(s.interfaces, vec!["eth9"]);
    assert_eq!((s.priority, s.workers), (Some(200), Some(2)));
    assert_eq!(
        set(&mut Settings::default(), "priority", "0").map_err(|e| e.to_string()),
        Err("priority 0: give 1 to 254".into())
    );
    assert!(set(&mut Settings::default(), "offload", "yes").is_err());
    // --metrics: IPv4 or IPv6 with a port, no default.
    let mut m = Settings::default();
    set(&mut m, "metrics", "[2001:2::2]:9647").unwrap();
    assert_eq!(m.metrics, Some("[2001:2::2]:9647".parse().unwrap()));
    assert!(set(&mut m, "metrics", "198.18.0.2").is_err());
    assert_eq!(Settings::default().with_defaults().metrics, None);
}

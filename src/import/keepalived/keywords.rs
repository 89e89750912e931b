//! keepalived's vocabulary as the importer needs it: the words that open
//! blocks (so a block after a statement that takes none can be named),
//! and the words that start statements (so a file that is not config,
//! say `/etc/shadow`, is recognised and never shown).

/// keepalived's checkers: each opens a block inside a real server.
pub(super) const CHECKERS: &[&str] = &[
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "UDP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "SMTP_CHECK",
    "BFD_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

/// The words that open a block in keepalived: these and the checkers.
pub(super) const BLOCKS: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "real_server",
    "url",
];

/// keepalived's words that start statements: the top-level blocks, and
/// the options of the blocks most files have. A file with words but none
/// of these (nor an address, nor an include) is not keepalived config.
/// The scheduler-flag statements of a virtual server (lbflags).
pub(super) const SCHED_FLAGS: [&str; 7] = [
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
    "flag-1",
    "flag-2",
    "flag-3",
];

const KEYWORDS: &[&str] = &[
    // Top level.
    "global_defs",
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_use_polling",
    "linkbeat_interfaces",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "garp_group",
    "track_file",
    "track_group",
    "bfd_instance",
    "interface_up_down_delays",
    "SSL",
    // global_defs.
    "router_id",
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "enable_script_security",
    "script_user",
    "lvs_sync_daemon",
    // VRRP.
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "track_interface",
    "track_script",
    "authentication",
    "auth_type",
    "auth_pass",
    "nopreempt",
    "preempt_delay",
    "notify",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "unicast_src_ip",
    "unicast_peer",
    "script",
    "interval",
    "fall",
    "rise",
    "group",
    // Virtual servers.
    "delay_loop",
    "lb_algo",
    "lvs_sched",
    "lb_kind",
    "lvs_method",
    "protocol",
    "persistence_timeout",
    "persistence_granularity",
    "persistence_engine",
    "inhibit_on_failure",
    "quorum",
    "quorum_up",
    "quorum_down",
    "hysteresis",
    "sorry_server",
    "real_server",
    "fwmark",
    "weight",
    "ha_suspend",
    "alpha",
    "omega",
    "virtualhost",
    "smtp_alert",
    "uthreshold",
    "lthreshold",
    "notify_up",
    "notify_down",
    // Checks (besides the checkers themselves, CHECKERS).
    "connect_ip",
    "connect_port",
    "connect_timeout",
    "bindto",
    "bind_port",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "warmup",
    "url",
    "path",
    "digest",
    "status_code",
    "misc_path",
    "misc_timeout",
    "misc_dynamic",
    "name",
    "type",
    "payload",
    "require_reply",
];

/// A keyword of keepalived's, or an address (a group member, a virtual
/// IP), or a `vrrp_` block.
pub(super) fn is_keepalived(w: &str) -> bool {
    KEYWORDS.contains(&w)
        || SCHED_FLAGS.contains(&w)
        || CHECKERS.contains(&w)
        || w.starts_with("vrrp_")
        || w.split(['-', '/'])
            .next()
            .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
}

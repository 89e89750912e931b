//! Issue 27, test 5: persistence survives a failover. A client pinned
//! to a real server by its template on the active director keeps that
//! server for its next connections through the backup after a `kill -9`
//! of the active one: the template reached the backup in the sync stream
//! (record kind 3) before the kill. The same for a firewall mark's
//! template (protocol IP, the mark as its virtual address), shared by
//! the mark's ports 80 and 443.

use super::{Pair, pair_config, tcp_head};
use crate::persist::{client_at, names, only_server, pinned_to, rip};
use crate::support::holds;
use crate::support::{VIP, wait_until};
use std::time::Duration;

#[test]
fn a_pinned_client_keeps_its_server_through_the_backup_after_a_kill() {
    let Some(p) = pair_config(
        &[],
        [&[], &[]],
        &mut |_| {},
        &tcp_head("persistence_timeout = 120\n"),
    ) else {
        return;
    };
    let list = p.adm(1, "-Ln");
    holds(&list, "rr persistent 120\n");
    let pinned_on = |conns: &str, name| pinned_to(conns, "198.18.0.10", name);
    keeps_through_a_kill(&p, &[80], &pinned_on, "failover with persistence");
}

/// A first client takes rr's first server; the client under test
/// (198.18.0.10) is pinned to the other one on every port of `ports`.
/// The backup has the client's template from the stream, pointing at the
/// same real server (`pinned_on`: whether a `-Lnc` listing shows it so),
/// and its digest agrees. After a kill -9 of A, through B, every new
/// connection of the client on every port goes to its server, where
/// B's rr, which starts afresh, sends a client without a template
/// elsewhere: to rr's first server.
fn keeps_through_a_kill(
    p: &Pair,
    ports: &[u16],
    pinned_on: &dyn Fn(&str, &'static str) -> bool,
    what: &str,
) {
    let first = client_at(&p.l, "198.18.0.30", 3);
    let pinned = only_server(&names(&p.l, ports[0], 10, None), 10);
    assert_ne!(first, pinned);
    for &port in &ports[1..] {
        assert_eq!(only_server(&names(&p.l, port, 10, None), 10), pinned);
    }
    wait_until(
        Duration::from_secs(10),
        || pinned_on(&p.adm(1, "-Lnc"), pinned),
        || {
            format!(
                "A:\n{}B:\n{}{}",
                p.adm(0, "-Lnc"),
                p.adm(1, "-Lnc"),
                p.logs()
            )
        },
    );
    p.wait_b_synced(15);
    p.fail_over_quickly(what);
    for &port in ports.iter().rev() {
        let again = names(&p.l, port, 20, None);
        assert_eq!(only_server(&again, 20), pinned, "{again}\n{}", p.logs());
    }
    assert_eq!(client_at(&p.l, "198.18.0.20", 5), first);
    let conns = p.adm(1, "-Lnc");
    assert!(pinned_on(&conns, pinned), "{conns}");
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
}

/// Whether `-Lnc` listing `conns` has the one template of client
/// 198.18.0.10 on mark 100, IPVS-shaped, pointing at real server `name`.
fn mark_pinned_to(conns: &str, name: &str) -> bool {
    let tail = format!(" 198.18.0.10:0      0.0.0.100:0        {}:0", rip(name));
    let rows: Vec<&str> = conns
        .lines()
        .filter(|r| r.starts_with("IP  ") && r.contains(" 198.18.0.10:0 "))
        .collect();
    rows.len() == 1 && rows[0].ends_with(&tail)
}

#[test]
fn a_client_pinned_by_a_mark_keeps_its_server_through_the_backup_after_a_kill() {
    let head = format!(
        "[[mark]]\nid = 100\nprotocol = \"tcp\"\nvip = \"{VIP}\"\nports = \"80,443\"\n\n\
         [[service]]\nfwmark = 100\nscheduler = \"rr\"\npersistence_timeout = 120\n"
    );
    let mut tls = |l: &mut crate::support::Lab| {
        for n in ["rs1", "rs2"] {
            l.start_server_on(n, &["--tcp", "443"]);
        }
    };
    let Some(p) = pair_config(&[], [&[], &[]], &mut tls, &head) else {
        return;
    };
    let list = p.adm(1, "-Ln");
    holds(&list, "FWM  100 rr persistent 120\n");
    let what = "failover with a mark's persistence";
    keeps_through_a_kill(&p, &[80, 443], &mark_pinned_to, what);
}

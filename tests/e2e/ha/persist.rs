//! Issue 27, test 5: persistence survives a failover. A client pinned
//! to a real server by its template on the active director keeps that
//! server for its next connections through the backup after a `kill -9`
//! of the active one: the template reached the backup in the sync stream
//! (record kind 3) before the kill.

use super::pair_of;
use crate::persist::{client_at, names, only_server, pinned_to};
use crate::support::wait_until;
use std::time::Duration;

#[test]
fn a_pinned_client_keeps_its_server_through_the_backup_after_a_kill() {
    let Some(p) = pair_of(&[], [&[], &[]], &mut |_| {}, "persistence_timeout = 120\n") else {
        return;
    };
    let list = p.adm(1, "-Ln");
    assert!(list.contains("rr persistent 120\n"), "{list}");
    // A first client takes rr's first server; the client under test is
    // pinned to the other one.
    let first = client_at(&p.l, "198.18.0.30", 3);
    let pinned = only_server(&names(&p.l, 80, 10, None), 10);
    assert_ne!(first, pinned);
    // The backup has the client's template from the stream, pointing at
    // the same real server, and its digest agrees.
    wait_until(
        Duration::from_secs(10),
        || pinned_to(&p.adm(1, "-Lnc"), "198.18.0.10", pinned),
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
    p.fail_over_quickly("failover with persistence");
    // Through B: every new connection of the client to its server...
    let again = names(&p.l, 80, 20, None);
    assert_eq!(only_server(&again, 20), pinned, "{again}\n{}", p.logs());
    // ...where B's rr, which starts afresh, sends a client without a
    // template elsewhere: to rr's first server.
    assert_eq!(client_at(&p.l, "198.18.0.20", 5), first);
    let conns = p.adm(1, "-Lnc");
    assert!(pinned_to(&conns, "198.18.0.10", pinned), "{conns}");
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
}

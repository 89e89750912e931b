//! `uvs drain`: asks the director to withdraw its routes (it keeps
//! forwarding whatever still arrives), then watches its counters and
//! says when no packet for a VIP has come for `quiet`: the routers send
//! it nothing any more, and it can be stopped or upgraded without a
//! reset. `--cancel` announces the routes again.

use super::client;
use crate::control::proto::{Request, Response};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Options {
    pub socket: PathBuf,
    /// Done once no VIP packet came for this long.
    pub quiet: Duration,
    /// Give up (exit 1) after this long.
    pub timeout: Duration,
    pub cancel: bool,
}

/// The counters whose sum grows with every packet for a VIP: forwarded
/// by uvs or by the kernel program, or dropped for want of a connection
/// or a real server.
const TRAFFIC: &[&str] = &[
    "forwarded",
    "offload_forwarded",
    "no_conn_dropped",
    "no_dest",
];

/// The VIP packets so far and the connections in the table.
fn sample(socket: &std::path::Path) -> Result<(u64, u64), String> {
    match client::call(socket, &Request::Status).map_err(|e| e.to_string())? {
        Response::Status(pairs) => {
            let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map_or(0, |p| p.1);
            Ok((TRAFFIC.iter().map(|k| get(k)).sum(), get("conns")))
        }
        Response::Error { message, .. } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    }
}

/// Runs `uvs drain`: progress on stdout once a second; `Err` on timeout.
pub fn run(o: &Options) -> Result<(), String> {
    let req = Request::Drain { on: !o.cancel };
    match client::call(&o.socket, &req).map_err(|e| e.to_string())? {
        Response::Done(m) => println!("{m}"),
        Response::Error { message, .. } => return Err(message),
        _ => return Err("unexpected answer from the daemon".into()),
    }
    if o.cancel {
        return Ok(());
    }
    let start = Instant::now();
    let (mut prev, _) = sample(&o.socket)?;
    let mut shown = (Instant::now(), prev);
    let mut quiet_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let (now, conns) = sample(&o.socket)?;
        if now != prev {
            quiet_since = Instant::now();
            prev = now;
        }
        let quiet = quiet_since.elapsed();
        if quiet >= o.quiet {
            println!(
                "drained: no packet for a VIP for {:.1} s; {conns} connection(s) left to expire",
                quiet.as_secs_f64()
            );
            return Ok(());
        }
        if shown.0.elapsed() >= Duration::from_secs(1) {
            println!(
                "draining: {} packet(s) in the last second, {conns} connection(s); quiet for \
                 {:.1} s",
                now.saturating_sub(shown.1),
                quiet.as_secs_f64()
            );
            shown = (Instant::now(), now);
        }
        if start.elapsed() >= o.timeout {
            return Err(format!(
                "still receiving after {:.0} s (--timeout): the routers still send flows here",
                o.timeout.as_secs_f64()
            ));
        }
    }
}

//! `uvs top`: the services and real servers with their connections,
//! rates, health and the director's HA role, redrawn in place at an
//! interval (what `watch ipvsadm -Ln --rate` gives, plus `uvs health`'s
//! state and `uvs ha`'s role). A frame is built from the daemon's own
//! answers (the snapshot, the health rows, the HA status) and drawn as
//! plain text; [`term`] keeps the terminal for the live view.

mod term;

use super::client;
use super::format::{addrport, sorted_dests, sorted_services};
use crate::control::proto::{HealthRow, Request, Response, Snapshot};
use crate::ha::HaStatus;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What `uvs top` is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub interval: Duration,
    /// One frame and exit (also when stdout is not a terminal).
    pub once: bool,
}

/// One moment of the director, as three requests answer it.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub snapshot: Snapshot,
    pub health: Vec<HealthRow>,
    /// None: no peers (a director alone).
    pub ha: Option<HaStatus>,
}

/// The daemon's answer of the expected kind, or its error.
fn ask<T>(
    socket: &std::path::Path,
    req: &Request,
    want: impl FnOnce(Response) -> Option<T>,
) -> Result<T, String> {
    match client::call(socket, req).map_err(|e| e.to_string())? {
        Response::Error { message, .. } => Err(message),
        r => want(r).ok_or_else(|| "unexpected answer from the daemon".into()),
    }
}

impl Frame {
    /// Asks the daemon at `socket` for a frame.
    pub fn fetch(socket: &std::path::Path) -> Result<Frame, String> {
        let snapshot = ask(socket, &Request::Snapshot, |r| match r {
            Response::Snapshot(s) => Some(s),
            _ => None,
        })?;
        let health = ask(socket, &Request::Health, |r| match r {
            Response::Health(h) => Some(h),
            _ => None,
        })?;
        let ha = ask(socket, &Request::Ha, |r| match r {
            Response::Ha(h) => Some(h.map(|h| *h)),
            _ => None,
        })?;
        Ok(Frame {
            snapshot,
            health,
            ha,
        })
    }

    /// The HA line: the role, the priority in effect and each peer.
    fn role(&self) -> String {
        let Some(h) = &self.ha else {
            return "role standalone (no peers)".into();
        };
        let mut s = format!("role {} (priority {})", h.role, h.effective_priority);
        for p in &h.peers {
            let live = if p.live { "live" } else { "gone" };
            let _ = write!(s, ", peer {} {live}", p.addr);
        }
        if let Some(f) = &h.fault {
            let _ = write!(s, ", fault: {f}");
        }
        s
    }

    /// A real server's state as `uvs health` gives it (`-` if it has no
    /// row yet: added after the health answer).
    fn health_of(&self, service: &str, server: SocketAddr) -> &str {
        let server = server.to_string();
        self.health
            .iter()
            .find(|r| r.service == service && r.server == server)
            .map_or("-", |r| r.state.as_str())
    }

    /// The frame as text: a header of two lines, the column titles, a
    /// line per service and per real server. `every` is the interval
    /// shown (none: a single frame).
    pub fn render(&self, every: Option<Duration>) -> String {
        let services = sorted_services(&self.snapshot, false);
        let servers: usize = services.iter().map(|s| s.dests.len()).sum();
        let mut o = String::new();
        let _ = write!(o, "uvs top - {}", self.role());
        if let Some(e) = every {
            let _ = write!(o, " - every {:.1} s, q quits", e.as_secs_f64());
        }
        let _ = writeln!(
            o,
            "\n{} services, {servers} real servers; rates per second (2 s estimator, as --rate)\n",
            services.len()
        );
        let _ = writeln!(
            o,
            "{:<34} {:<7} {:>6} {:>8} {:>9} {:>8} {:>9} {:>9} {:>11} {:>11}  Health",
            "Prot LocalAddress:Port",
            "Forward",
            "Weight",
            "ActConn",
            "InActConn",
            "Conn/s",
            "InPkt/s",
            "OutPkt/s",
            "InByte/s",
            "OutByte/s",
        );
        for s in &services {
            let key = &s.def.key;
            let name = match key.fwmark() {
                Some(_) => key.to_string(),
                None => format!(
                    "{:<4} {}",
                    key.protocol.name(),
                    addrport(key.addr, key.port, key.protocol, true)
                ),
            };
            let dests = sorted_dests(s, false);
            let (act, inact) = dests
                .iter()
                .fold((0, 0), |(a, i), d| (a + d.active, i + d.inactive));
            let service = key.to_string();
            let up = dests
                .iter()
                .filter(|d| {
                    self.health_of(&service, SocketAddr::new(d.spec.addr, d.spec.port)) == "up"
                })
                .count();
            let r = s.rates;
            let _ = writeln!(
                o,
                "{:<34} {:<7} {:>6} {act:>8} {inact:>9} {:>8} {:>9} {:>9} {:>11} {:>11}  {up}/{} up",
                format!("{name} {}", s.def.scheduler),
                "",
                "",
                r.cps,
                r.inpps,
                r.outpps,
                r.inbps,
                r.outbps,
                dests.len()
            );
            for d in &dests {
                let r = d.rates;
                let at = addrport(d.spec.addr, d.spec.port, key.protocol, true);
                let _ = writeln!(
                    o,
                    "  -> {at:<30} {:<7} {:>6} {:>8} {:>9} {:>8} {:>9} {:>9} {:>11} {:>11}  {}",
                    d.spec.forward.name(),
                    d.spec.weight,
                    d.active,
                    d.inactive,
                    r.cps,
                    r.inpps,
                    r.outpps,
                    r.inbps,
                    r.outbps,
                    self.health_of(&service, SocketAddr::new(d.spec.addr, d.spec.port))
                );
            }
        }
        o
    }
}

/// Runs `uvs top`: one frame when stdout is not a terminal (or with
/// `--once`), else the live view until q or Ctrl-C.
pub fn run(o: &Options) -> Result<(), String> {
    if o.once || !term::is_terminal() {
        let f = Frame::fetch(&o.socket)?;
        print!("{}", f.render(None));
        return Ok(());
    }
    let screen = term::Screen::take().map_err(|e| format!("the terminal: {e}"))?;
    loop {
        // A daemon that stops answering is shown, and asked again.
        let text = match Frame::fetch(&o.socket) {
            Ok(f) => f.render(Some(o.interval)),
            Err(e) => format!("uvs top: {e}\n"),
        };
        screen
            .draw(&text)
            .map_err(|e| format!("the terminal: {e}"))?;
        if screen.quit_within(o.interval) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;

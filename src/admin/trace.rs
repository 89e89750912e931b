//! `uvs trace`: asks the director where a flow goes and why, and prints
//! the answer (or, `--live`, each frame's verdict as it happens).

use super::client;
use crate::control::proto::TraceReport;
use crate::control::proto::{Request, Response};
use crate::lvs::service::Protocol;
use crate::lvs::trace::{FrameVerdict, TraceQuery, Verdict};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub struct Options {
    pub socket: PathBuf,
    pub query: TraceQuery,
    /// Follow the flow's frames for this many seconds.
    pub live: Option<u32>,
    pub json: bool,
}

/// `CLIENT[:PORT]` and `VIP:PORT` as a query (`udp`: `-u`, else TCP).
pub fn query(udp: bool, client: &str, vip: &str) -> Result<TraceQuery, String> {
    let (client, cport) = match client.parse::<SocketAddr>() {
        Ok(s) => (s.ip(), Some(s.port())),
        Err(_) => match client.parse::<IpAddr>() {
            Ok(a) => (a, None),
            Err(_) => return Err(format!("`{client}`: give CLIENT or CLIENT:PORT")),
        },
    };
    let vip: SocketAddr = vip.parse().map_err(|_| format!("`{vip}`: give VIP:PORT"))?;
    if client.is_ipv4() != vip.is_ipv4() {
        return Err("the client and the VIP must be of one family".into());
    }
    Ok(TraceQuery {
        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
        client,
        cport,
        vip: vip.ip(),
        vport: vip.port(),
    })
}

pub fn run(o: &Options) -> Result<(), String> {
    match o.live {
        Some(secs) => live(o, secs),
        None => once(o),
    }
}

fn once(o: &Options) -> Result<(), String> {
    let req = Request::Trace(o.query);
    match client::call(&o.socket, &req).map_err(|e| e.to_string())? {
        Response::Trace(r) if o.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Response::Trace(r) => {
            print!("{}", text(&r));
            Ok(())
        }
        Response::Error { message, .. } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    }
}

fn live(o: &Options, secs: u32) -> Result<(), String> {
    let req = Request::TraceLive {
        query: o.query,
        secs,
    };
    let wait = Duration::from_secs(u64::from(secs) + 30);
    let more = |r: &Response| matches!(r, Response::Frame(_));
    client::call_streamed::<String>(&o.socket, &req, wait, more, |r| match r {
        Response::Frame(v) if o.json => {
            println!("{}", serde_json::to_string(&v).unwrap_or_default());
            Ok(())
        }
        Response::Frame(v) => {
            println!("{}", frame_line(&v));
            Ok(())
        }
        Response::Done(summary) => {
            eprintln!("{summary}");
            Ok(())
        }
        Response::Error { message, .. } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    })
}

impl From<client::Error> for String {
    fn from(e: client::Error) -> String {
        e.to_string()
    }
}

/// One frame's line: `198.18.0.1:40000 -> 198.18.0.100:80 ttl 64 [S]
/// egress: forwarded to 198.18.0.11:80 (new connection)`.
pub fn frame_line(v: &FrameVerdict) -> String {
    let what = match v.verdict {
        Verdict::Forwarded { server, port, new } => format!(
            "forwarded to {}{}",
            SocketAddr::new(server, port),
            if new { " (new connection)" } else { "" }
        ),
        Verdict::Dropped(why) => format!("dropped: {}", why.name()),
    };
    let stage = serde_json::to_value(v.stage)
        .ok()
        .and_then(|s| s.as_str().map(str::to_string))
        .unwrap_or_default();
    format!(
        "worker {} {} -> {} ttl {} flags {:#04x} {stage}: {what}",
        v.worker,
        SocketAddr::new(v.client, v.cport),
        SocketAddr::new(v.vip, v.vport),
        v.ttl,
        v.tcp_flags
    )
}

/// The report as text.
pub fn text(r: &TraceReport) -> String {
    let mut out = format!("flow     {}\n", r.flow);
    let Some(svc) = &r.service else {
        for w in &r.why {
            out.push_str(&format!("why      {w}\n"));
        }
        return out;
    };
    out.push_str(&format!(
        "service  {svc} scheduler {}{}\n",
        r.scheduler.as_deref().unwrap_or("?"),
        r.persistent_secs
            .map_or(String::new(), |p| format!(" persistent {p}s"))
    ));
    out.push_str(&format!(
        "next     {}{}\n",
        r.next_server.as_deref().unwrap_or("none (refused)"),
        if r.deterministic {
            ""
        } else {
            " (depends on the order of arrivals)"
        }
    ));
    for s in &r.servers {
        out.push_str(&format!(
            "server   {:<24} weight {:<4} {}{}{}\n",
            s.server,
            s.weight,
            s.state,
            if s.sorry { " (sorry server)" } else { "" },
            if s.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", s.reason)
            }
        ));
    }
    if let Some(h) = &r.ha {
        out.push_str(&format!("ha       {h}\n"));
    }
    for w in &r.why {
        out.push_str(&format!("why      {w}\n"));
    }
    out
}

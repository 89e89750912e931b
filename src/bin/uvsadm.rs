//! `uvsadm`: ipvsadm's command line for the uvs daemon.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use uvs::admin::args::{self, Cmd, Invocation, Opt, Parsed};
use uvs::admin::client::{self, DEFAULT_SOCKET};
use uvs::admin::format::{self, Columns, Format};
use uvs::admin::restore;
use uvs::control::proto::{Request, Response, Snapshot};

const VERSION: &str = concat!(
    "uvsadm ",
    env!("CARGO_PKG_VERSION"),
    " (ipvsadm v1.31 compatible, IPVS v1.2.1 emulated by uvs)"
);

fn usage(prog: &str) -> String {
    let forms: String = args::SYNOPSIS
        .iter()
        .map(|f| format!("  {prog} {f}\n"))
        .collect();
    format!(
        "{VERSION}\nUsage:\n{forms}\n{}\n\
uvs options: --socket PATH (or UVS_SOCKET) selects the daemon's control socket, default {DEFAULT_SOCKET}.\n\
Firewall marks (-f) need their [[mark]] in uvs's config file; thresholds and the sync daemon are refused with a message naming them.\n\
See docs/cli.md for what is supported next to ipvsadm.\n",
        args::help(),
    )
}

struct Ctx {
    prog: String,
    socket: PathBuf,
}

impl Ctx {
    fn call(&self, req: &Request) -> Result<Response, (String, u8)> {
        client::call(&self.socket, req).map_err(|e| (e.to_string(), 2))
    }

    fn snapshot(&self) -> Result<Snapshot, (String, u8)> {
        match self.call(&Request::Snapshot)? {
            Response::Snapshot(s) => Ok(s),
            Response::Error { message, .. } => Err((message, 1)),
            _ => Err(("unexpected answer from the daemon".into(), 1)),
        }
    }
}

fn main() -> ExitCode {
    let mut raw: Vec<String> = std::env::args().collect();
    let prog = raw
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        .unwrap_or_else(|| "uvsadm".into());
    raw.remove(0);
    // --socket is uvs's own; take it out before ipvsadm parsing.
    let mut socket =
        std::env::var_os("UVS_SOCKET").map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
    let mut args = Vec::new();
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        if a == "--socket" {
            match it.next() {
                Some(p) => socket = PathBuf::from(p),
                None => {
                    eprintln!("--socket: missing argument");
                    return ExitCode::from(2);
                }
            }
        } else if let Some(p) = a.strip_prefix("--socket=") {
            socket = PathBuf::from(p);
        } else {
            args.push(a);
        }
    }
    let ctx = Ctx { prog, socket };
    match run(&ctx, &args) {
        Ok(out) => {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err((msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

fn run(ctx: &Ctx, args: &[String]) -> Result<String, (String, u8)> {
    if args.is_empty() {
        let snap = ctx.snapshot()?;
        return Ok(format::list_all(&snap, &Format::default()));
    }
    let p = match args::parse(&ctx.prog, args) {
        Ok(Invocation::Help) => return Ok(usage(&ctx.prog)),
        Ok(Invocation::Version) => return Ok(format!("{VERSION}\n")),
        Ok(Invocation::Run(p)) => p,
        Err(f) => return Err((f.msg, f.code as u8)),
    };
    match p.cmd {
        Cmd::List => list(ctx, &p),
        Cmd::Save => {
            let snap = ctx.snapshot()?;
            let f = Format {
                numeric: p.has(Opt::Numeric),
                columns: Columns::Rule,
                ..Format::default()
            };
            Ok(format::list_all(&snap, &f))
        }
        Cmd::Restore => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .map_err(|e| (format!("cannot read standard input: {e}"), 2))?;
            let ops = restore::parse(&ctx.prog, &input)
                .map_err(|e| (format!("line {}: {}", e.line, e.msg), 2))?;
            let lines: Vec<usize> = ops.iter().map(|(l, _)| *l).collect();
            let ops = ops.into_iter().map(|(_, o)| o).collect();
            match ctx.call(&Request::Apply(ops))? {
                Response::Ok => Ok(String::new()),
                Response::Error { index, message } => {
                    let at = index
                        .and_then(|i| lines.get(i))
                        .map_or(String::new(), |l| format!("line {l}: "));
                    Err((format!("{at}{message}\nnothing was changed"), 1))
                }
                _ => Err(("unexpected answer from the daemon".into(), 1)),
            }
        }
        _ => {
            let op = args::to_op(&p)
                .map_err(|f| (f.msg, f.code as u8))?
                .ok_or_else(|| ("nothing to do".to_string(), 2))?;
            match ctx.call(&Request::Apply(vec![op]))? {
                Response::Ok => Ok(String::new()),
                Response::Error { message, .. } => Err((message, 1)),
                _ => Err(("unexpected answer from the daemon".into(), 1)),
            }
        }
    }
}

/// `-Lnc` (or its `--json`), printed chunk by chunk as the daemon
/// streams it (a table of millions is never held whole, here or in the
/// daemon).
fn list_conns(ctx: &Ctx, numeric: bool, json: bool) -> Result<String, (String, u8)> {
    let mut so = std::io::BufWriter::new(std::io::stdout().lock());
    let mut text = match json {
        true => format::json::CONNS_HEAD.to_string(),
        false => format::conns_header(),
    };
    let mut first = true;
    let mut failed = None;
    // The daemon's errors and this side's (writing, an odd answer) alike.
    type BoxError = Box<dyn std::error::Error>;
    let r = client::call_chunked(
        &ctx.socket,
        &Request::Conns,
        |resp| -> Result<(), BoxError> {
            match resp {
                Response::ConnChunk(c) | Response::Conns(c) => {
                    for conn in &c {
                        match json {
                            true => format::json::conn_entry(&mut text, conn, first),
                            false => format::conn_line(&mut text, conn, numeric),
                        }
                        first = false;
                    }
                    so.write_all(text.as_bytes())
                        .map_err(|e| format!("writing the listing: {e}"))?;
                    text.clear();
                    Ok(())
                }
                Response::Error { message, .. } => {
                    failed = Some(message);
                    Ok(())
                }
                _ => Err("unexpected answer from the daemon".into()),
            }
        },
    );
    r.map_err(|e| (e.to_string(), 2))?;
    if let Some(m) = failed {
        return Err((m, 1));
    }
    if json {
        so.write_all(format::json::CONNS_TAIL.as_bytes())
            .map_err(|e| (format!("writing the listing: {e}"), 1))?;
    }
    so.flush()
        .map_err(|e| (format!("writing the listing: {e}"), 1))?;
    Ok(String::new())
}

fn list(ctx: &Ctx, p: &Parsed) -> Result<String, (String, u8)> {
    let f = Format {
        columns: p.columns(),
        numeric: p.has(Opt::Numeric),
        nosort: p.has(Opt::NoSort),
        exact: p.has(Opt::Exact),
    };
    let json = p.has(Opt::Json);
    if p.has(Opt::Connection) {
        return list_conns(ctx, f.numeric, json);
    }
    if p.has(Opt::Daemon) {
        // Without peers there is no sync: nothing to list, as ipvsadm
        // shows with no sync daemon running.
        return match ctx.call(&Request::Ha)? {
            Response::Ha(h) if json => Ok(format::json::list_daemon(h.as_deref())),
            Response::Ha(h) => Ok(h.map_or_else(String::new, |h| format::list_daemon(&h))),
            Response::Error { message, .. } => Err((message, 1)),
            _ => Err(("unexpected answer from the daemon".into(), 1)),
        };
    }
    let snap = ctx.snapshot()?;
    if p.has(Opt::Timeout) {
        return Ok(match json {
            true => format::json::list_timeout(&snap.timeouts),
            false => format::list_timeout(&snap.timeouts),
        });
    }
    let parts = p.json_parts();
    if let Some(key) = p.service_key().filter(|_| p.has(Opt::Service)) {
        return match snap.services.iter().find(|s| s.def.key == key) {
            Some(s) if json => Ok(format::json::list_service(s, &parts)),
            Some(s) => Ok(format::list_service(s, &f)),
            None => Err(("No such service".into(), 1)),
        };
    }
    Ok(match json {
        true => format::json::list_all(&snap, &parts),
        false => format::list_all(&snap, &f),
    })
}

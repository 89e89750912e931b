//! `uvs director --config FILE`: the director's start state in TOML
//! (docs/config.md has the complete example). A file is checked whole
//! before anything is applied; every error names the file, line and
//! column. Loading gives the director's options and the table as control
//! ops; a reload applies only the difference between the file as last
//! loaded and as it is now, so what `uvsadm` changed on top stays, and
//! unchanged services and real servers keep their connections and
//! counters.

use crate::control::check::CheckSpec;
use crate::control::model::FailAction;
use crate::control::plan::{CheckedServer, Plan, Quorum};
use crate::control::proto::Op;
use crate::control::proto::ServiceDef;
use crate::lvs::mark::MarkRule;
use crate::lvs::service::{Forward, Timeouts};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

mod changes;
mod checked;
mod file;
mod ha_addr;
mod marks;
mod source;
pub use source::FileSource;
pub mod cli;
pub mod settings;
pub use changes::{Changes, Kind as ChangeKind, ServiceChange, counted};
pub use settings::Settings;

use checked::{check, dest_spec};
pub(crate) use file::{CheckSection, File, RealServerSection, ServiceSection};

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {msg}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub msg: String,
}

/// A real server as the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub check: Option<CheckSpec>,
    /// Seconds of its weight's ramp when it joins (0: none).
    pub slow_start: u32,
}

/// A virtual service as the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// What `-A` would say of it: key, scheduler, flags, `-o`, `-p`/`-M`
    /// (an op's and a reload's comparison).
    pub def: ServiceDef,
    pub on_failure: FailAction,
    pub real_servers: Vec<RealServer>,
    pub quorum: Quorum,
}

/// What a config file holds, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The `[director]` table's settings (only what it gives).
    pub director: Settings,
    pub timeouts: Option<Timeouts>,
    /// Each firewall mark's rules (`[[mark]]`).
    pub marks: BTreeMap<u32, Vec<MarkRule>>,
    pub services: Vec<Service>,
}

/// Line and column (from 1) of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The file being checked: spans are byte ranges into `text` (after a
/// BOM, if there was one).
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            msg: msg.into(),
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, &bytes)
}

/// Checks config text (`path` only names it in errors). A UTF-8 BOM and
/// CRLF line ends are accepted.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let ok = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
        let (line, column) = line_col(ok, ok.len());
        ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            msg: "not valid UTF-8".into(),
        }
    })?;
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let cx = Ctx {
        file: path,
        text: body,
    };
    let file: File = toml::from_str(body).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().trim_end().to_string())
    })?;
    check(&cx, file)
}

impl Config {
    /// The plan that turns the running table from `old` (the file as last
    /// loaded; empty at start) into this config, with every check and
    /// quorum of this one.
    pub fn plan_from(&self, old: &Config) -> Plan {
        let checks = self
            .services
            .iter()
            .flat_map(|s| {
                s.real_servers.iter().filter_map(|r| {
                    Some(CheckedServer {
                        key: s.def.key,
                        addr: r.addr,
                        port: r.port,
                        on_failure: s.on_failure,
                        spec: r.check.clone()?,
                    })
                })
            })
            .collect();
        let quorums = self
            .services
            .iter()
            .map(|s| (s.def.key, s.quorum.clone()))
            .collect();
        Plan {
            ops: self.ops_from(old),
            checks,
            quorums,
        }
    }

    /// The ops that turn the running table from `old` (the file as last
    /// loaded; empty at start) into this config: services and real
    /// servers that did not change get no op at all, so they keep their
    /// connections, scheduler state and counters.
    pub fn ops_from(&self, old: &Config) -> Vec<Op> {
        let mut ops = Vec::new();
        for o in &old.services {
            if !self.services.iter().any(|s| s.def.key == o.def.key) {
                ops.push(Op::DelService { key: o.def.key });
            }
        }
        // Marks new or changed before the services that use them, marks
        // gone after the services that used them.
        let set = |m: &u32, r: &[MarkRule]| Op::SetMark {
            mark: *m,
            rules: r.to_vec(),
        };
        for (m, r) in &self.marks {
            if old.marks.get(m) != Some(r) {
                ops.push(set(m, r));
            }
        }
        for s in &self.services {
            let before = old.services.iter().find(|o| o.def.key == s.def.key);
            match before {
                None => ops.push(Op::AddService(s.def.clone())),
                Some(o) if o.def != s.def => ops.push(Op::EditService(s.def.clone())),
                Some(_) => {}
            }
            let old_rs: &[RealServer] = before.map_or(&[], |o| &o.real_servers);
            for r in old_rs {
                if !s
                    .real_servers
                    .iter()
                    .any(|x| x.addr == r.addr && x.port == r.port)
                {
                    ops.push(Op::DelDest {
                        key: s.def.key,
                        addr: r.addr,
                        port: r.port,
                    });
                }
            }
            for r in &s.real_servers {
                match old_rs.iter().find(|x| x.addr == r.addr && x.port == r.port) {
                    None => ops.push(Op::AddDest {
                        key: s.def.key,
                        dest: dest_spec(r),
                    }),
                    // A changed check alone is not a table change.
                    Some(x) if dest_spec(x) != dest_spec(r) => ops.push(Op::EditDest {
                        key: s.def.key,
                        dest: dest_spec(r),
                    }),
                    Some(_) => {}
                }
            }
        }
        for m in old.marks.keys().filter(|m| !self.marks.contains_key(m)) {
            ops.push(set(m, &[]));
        }
        if self.timeouts != old.timeouts
            && let Some(t) = self.timeouts
        {
            ops.push(Op::SetTimeouts(t));
        }
        ops
    }
}

#[cfg(test)]
mod tests;

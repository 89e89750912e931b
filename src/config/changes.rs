//! What a reload changes, counted from the file as last loaded and as it
//! is now: printed by `uvs reload` and logged before anything is applied,
//! so an operator sees a reload that would remove most of the table
//! before it does (a truncated file).

use super::{Config, RealServer, Service};
use crate::control::proto::{ChangeCounts, ReloadReport, ServiceChangeReport};
use crate::lvs::service::ServiceKey;
use std::fmt;

/// At most this many services are named one per line; a summary of
/// thousands stays readable (the counts cover them all).
const NAMED: usize = 20;

/// What happens to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Removed,
    Changed,
}

/// One service that a reload adds, removes or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChange {
    pub key: ServiceKey,
    pub kind: Kind,
    /// Its real servers added, removed (all of them, for a removed
    /// service) and changed (forwarding, weight or check).
    pub real_added: usize,
    pub real_removed: usize,
    pub real_changed: usize,
    /// Its own settings that changed (scheduler, on_failure, quorum, the
    /// sorry server), by their names in the file.
    pub settings: Vec<&'static str>,
}

/// Everything a reload changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// In the file's order: removed services first, then the new file's.
    pub services: Vec<ServiceChange>,
    pub timeouts: bool,
    /// Services in the running file before and in the new one.
    pub before: usize,
    pub after: usize,
}

/// `n` and `what`, with an s when `n` is not 1: `1 real server`,
/// `2 services`.
pub fn counted(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

fn same_server(a: &RealServer, b: &RealServer) -> bool {
    a.addr == b.addr && a.port == b.port
}

/// The settings of a service present in both files that differ.
fn settings(old: &Service, new: &Service) -> Vec<&'static str> {
    let mut s = Vec::new();
    if old.def.scheduler != new.def.scheduler {
        s.push("scheduler");
    }
    if old.def.flags != new.def.flags {
        s.push("sched_flags");
    }
    if old.def.persistent != new.def.persistent {
        s.push("persistence");
    }
    if old.def.ops != new.def.ops {
        s.push("ops");
    }
    if old.on_failure != new.on_failure {
        s.push("on_failure");
    }
    if old.quorum.sorry != new.quorum.sorry {
        s.push("sorry_server");
    }
    let (mut a, mut b) = (old.quorum.clone(), new.quorum.clone());
    (a.sorry, b.sorry) = (None, None);
    if a != b {
        s.push("quorum");
    }
    s
}

impl Changes {
    /// What turning the file `old` (as last loaded) into `new` changes.
    pub fn between(old: &Config, new: &Config) -> Changes {
        let mut services = Vec::new();
        for o in &old.services {
            if !new.services.iter().any(|s| s.def.key == o.def.key) {
                services.push(ServiceChange {
                    key: o.def.key,
                    kind: Kind::Removed,
                    real_added: 0,
                    real_removed: o.real_servers.len(),
                    real_changed: 0,
                    settings: Vec::new(),
                });
            }
        }
        for s in &new.services {
            let Some(o) = old.services.iter().find(|o| o.def.key == s.def.key) else {
                services.push(ServiceChange {
                    key: s.def.key,
                    kind: Kind::Added,
                    real_added: s.real_servers.len(),
                    real_removed: 0,
                    real_changed: 0,
                    settings: Vec::new(),
                });
                continue;
            };
            let c = ServiceChange {
                key: s.def.key,
                kind: Kind::Changed,
                real_added: s
                    .real_servers
                    .iter()
                    .filter(|r| !o.real_servers.iter().any(|x| same_server(x, r)))
                    .count(),
                real_removed: o
                    .real_servers
                    .iter()
                    .filter(|r| !s.real_servers.iter().any(|x| same_server(x, r)))
                    .count(),
                real_changed: s
                    .real_servers
                    .iter()
                    .filter(|r| o.real_servers.iter().any(|x| same_server(x, r) && x != *r))
                    .count(),
                settings: settings(o, s),
            };
            if c.real_added + c.real_removed + c.real_changed > 0 || !c.settings.is_empty() {
                services.push(c);
            }
        }
        Changes {
            services,
            timeouts: old.timeouts != new.timeouts && new.timeouts.is_some(),
            before: old.services.len(),
            after: new.services.len(),
        }
    }

    fn count(&self, kind: Kind) -> usize {
        self.services.iter().filter(|c| c.kind == kind).count()
    }

    /// Services this reload removes.
    pub fn removed(&self) -> usize {
        self.count(Kind::Removed)
    }

    /// Real servers added, removed and changed, over every service.
    pub fn real_servers(&self) -> (usize, usize, usize) {
        self.services.iter().fold((0, 0, 0), |(a, r, c), s| {
            (a + s.real_added, r + s.real_removed, c + s.real_changed)
        })
    }

    /// Whether the reload changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && !self.timeouts
    }

    /// The new file has no services, and the running one had some: the
    /// reload would empty the table of what the file put there (a 0-byte
    /// or truncated file).
    pub fn removes_every_service(&self) -> bool {
        self.after == 0 && self.removed() > 0
    }

    /// The counts on one line: `services: 0 added, 1 removed, 2 changed;
    /// real servers: 1 added, 2 removed, 1 changed`.
    pub fn counts(&self) -> String {
        let (a, r, c) = self.real_servers();
        let mut s = format!(
            "services: {} added, {} removed, {} changed; real servers: {a} added, {r} removed, \
             {c} changed",
            self.count(Kind::Added),
            self.removed(),
            self.count(Kind::Changed),
        );
        if self.timeouts {
            s.push_str("; timeouts changed");
        }
        s
    }

    /// One line per service concerned (the first [`NAMED`] of them).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .services
            .iter()
            .take(NAMED)
            .map(|c| {
                let svc = c.key.to_string();
                match c.kind {
                    Kind::Added => {
                        format!("+ {svc}: added, {}", counted(c.real_added, "real server"))
                    }
                    Kind::Removed => format!(
                        "- {svc}: removed, with {}",
                        counted(c.real_removed, "real server")
                    ),
                    Kind::Changed => {
                        let mut what = Vec::new();
                        for (n, verb) in [
                            (c.real_added, "added"),
                            (c.real_removed, "removed"),
                            (c.real_changed, "changed"),
                        ] {
                            if n > 0 {
                                what.push(format!("{} {verb}", counted(n, "real server")));
                            }
                        }
                        if !c.settings.is_empty() {
                            what.push(format!("{} changed", c.settings.join(", ")));
                        }
                        format!("~ {svc}: {}", what.join(", "))
                    }
                }
            })
            .collect();
        if self.services.len() > NAMED {
            out.push(format!(
                "... and {} more services",
                self.services.len() - NAMED
            ));
        }
        out
    }
}

impl Changes {
    /// The same facts for `uvs reload --json`, every service named
    /// (`file` and `dry_run` are the caller's).
    pub fn report(&self, table_changes: usize) -> ReloadReport {
        let (added, removed, changed) = self.real_servers();
        ReloadReport {
            table_changes,
            services: ChangeCounts {
                added: self.count(Kind::Added),
                removed: self.removed(),
                changed: self.count(Kind::Changed),
            },
            real_servers: ChangeCounts {
                added,
                removed,
                changed,
            },
            timeouts_changed: self.timeouts,
            changed: self
                .services
                .iter()
                .map(|c| ServiceChangeReport {
                    service: c.key.to_string(),
                    change: match c.kind {
                        Kind::Added => "added",
                        Kind::Removed => "removed",
                        Kind::Changed => "changed",
                    }
                    .into(),
                    real_servers: ChangeCounts {
                        added: c.real_added,
                        removed: c.real_removed,
                        changed: c.real_changed,
                    },
                    settings: c.settings.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..ReloadReport::default()
        }
    }
}

/// The counts, then one indented line per service.
impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.counts())?;
        for l in self.lines() {
            write!(f, "\n  {l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        super::super::parse(Path::new("uvs.toml"), text.as_bytes()).unwrap()
    }

    const TWO: &str = include_str!("../../tests/fixtures/config/two.toml");

    #[test]
    fn the_same_file_changes_nothing() {
        let c = Changes::between(&cfg(TWO), &cfg(TWO));
        assert!(c.is_empty());
        assert!(!c.removes_every_service());
        assert_eq!(
            c.to_string(),
            "services: 0 added, 0 removed, 0 changed; real servers: 0 added, 0 removed, 0 changed"
        );
    }

    #[test]
    fn added_removed_and_changed_services_and_real_servers_are_counted() {
        // The UDP service goes; TCP 80 gets rr, RS1 weight 1, RS2 out and
        // RS3 in; TCP 81 is new with one server; timeouts set.
        let new = cfg(include_str!("../../tests/fixtures/config/changed.toml"));
        let c = Changes::between(&cfg(TWO), &new);
        assert_eq!(c.removed(), 1);
        assert_eq!(c.real_servers(), (2, 2, 1));
        assert!(!c.removes_every_service());
        assert_eq!(
            c.to_string(),
            "services: 1 added, 1 removed, 1 changed; real servers: 2 added, 2 removed, 1 changed; \
             timeouts changed\n\
             \x20 - UDP 198.18.0.100:53: removed, with 1 real server\n\
             \x20 ~ TCP 198.18.0.100:80: 1 real server added, 1 real server removed, \
             1 real server changed, scheduler changed\n\
             \x20 + TCP 198.18.0.100:81: added, 1 real server"
        );
        // The same facts for scripts.
        let r = c.report(7);
        let counts = |added, removed, changed| ChangeCounts {
            added,
            removed,
            changed,
        };
        assert_eq!(r.table_changes, 7);
        assert_eq!(
            (r.services, r.real_servers),
            (counts(1, 1, 1), counts(2, 2, 1))
        );
        assert!(r.timeouts_changed);
        let named: Vec<(&str, &str)> = r
            .changed
            .iter()
            .map(|c| (c.service.as_str(), c.change.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("UDP 198.18.0.100:53", "removed"),
                ("TCP 198.18.0.100:80", "changed"),
                ("TCP 198.18.0.100:81", "added")
            ]
        );
        assert_eq!(r.changed[1].real_servers, counts(1, 1, 1));
        assert_eq!(r.changed[1].settings, ["scheduler"]);
    }

    #[test]
    fn a_changed_check_or_quorum_is_a_change() {
        let old = cfg(TWO);
        let new = cfg(&TWO.replace(
            "  [[service.real_server]]\n  address = \"198.18.0.12\"",
            "  [[service.real_server]]\n  address = \"198.18.0.12\"\n    \
             [service.real_server.check]\n    type = \"tcp\"",
        ));
        let c = Changes::between(&old, &new);
        assert_eq!(c.real_servers(), (0, 0, 1), "{c}");
        let new = cfg(&TWO.replace("scheduler = \"wrr\"", "scheduler = \"wrr\"\nquorum = 2"));
        let c = Changes::between(&old, &new);
        assert_eq!(c.services[0].settings, vec!["quorum"], "{c}");
    }

    #[test]
    fn an_empty_or_truncated_file_removes_every_service() {
        let old = cfg(TWO);
        for text in [
            "",
            "# nothing yet\n",
            "[director]\ninterfaces = [\"eth0\"]\n",
        ] {
            let c = Changes::between(&old, &cfg(text));
            assert!(c.removes_every_service(), "{text:?}");
            assert_eq!(c.removed(), 2);
            assert_eq!(c.real_servers(), (0, 3, 0));
        }
        // Cut at a service boundary: fewer services, not none.
        let cut = &TWO[..TWO.find("[[service]]\nprotocol = \"udp\"").unwrap()];
        let c = Changes::between(&old, &cfg(cut));
        assert!(!c.removes_every_service());
        assert_eq!(
            c.lines(),
            vec!["- UDP 198.18.0.100:53: removed, with 1 real server"]
        );
        // Nothing to remove: an empty file after an empty one.
        let c = Changes::between(&cfg(""), &cfg(""));
        assert!(!c.removes_every_service() && c.is_empty());
    }

    #[test]
    fn many_services_are_counted_all_and_named_up_to_a_limit() {
        let mut text = String::new();
        for p in 1..=30 {
            text += &format!("[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:{p}\"\n");
        }
        let c = Changes::between(&cfg(&text), &Config::default());
        assert_eq!(c.removed(), 30);
        let lines = c.lines();
        assert_eq!(lines.len(), NAMED + 1);
        assert_eq!(lines[NAMED], "... and 10 more services");
        // JSON names every one.
        assert_eq!(c.report(30).changed.len(), 30);
    }

    /// A file cut anywhere (a write that did not finish) either fails to
    /// parse, and the reload is refused with the place, or parses as a
    /// smaller file, and the summary shows what it loses: services or
    /// real servers removed, a setting back to its default, a number cut
    /// short (`udp = 60` as `udp = 6`).
    #[test]
    fn a_file_cut_anywhere_is_refused_or_shows_its_losses() {
        let full = format!("[timeouts]\nudp = 60\n{TWO}");
        let whole = cfg(&full);
        let content = full.trim_end().len();
        for cut in 0..content {
            let Ok(part) = super::super::parse(Path::new("uvs.toml"), &full.as_bytes()[..cut])
            else {
                continue;
            };
            let c = Changes::between(&whole, &part);
            assert!(!c.is_empty(), "cut at {cut}: {:?}", &full[..cut]);
        }
    }
}

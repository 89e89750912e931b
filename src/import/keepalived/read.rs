//! Reading keepalived.conf and what it includes into a tree of
//! statements. An include is textual, as in keepalived: the included
//! files' statements and braces continue the including file's at the
//! place of the `include`, their paths relative to the including file's
//! directory, with keepalived's `{a,b}` alternatives and glob patterns.
//!
//! Only regular files are opened (a device such as `/dev/zero`, a FIFO,
//! a directory or an executable is skipped with a warning, as keepalived
//! skips them), each of at most [`FILE_LIMIT`] bytes, [`TOTAL_LIMIT`] and
//! [`MAX_WORDS`] in all, includes [`MAX_INCLUDE_DEPTH`] deep and
//! [`MAX_FILES`] files, blocks [`MAX_BLOCK_DEPTH`] deep: whatever the
//! input, the import ends soon in bounded memory. A file with no
//! keepalived statement in it (say `/etc/shadow`) is not read on: one
//! warning names it and the lines, never their text.

use super::report::{Place, Report, shown};
use super::syntax::{self, Flaw, Token};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bytes of one file: keepalived.conf files are kilobytes.
pub(super) const FILE_LIMIT: u64 = 4 << 20;
/// Bytes of all files together.
pub(super) const TOTAL_LIMIT: u64 = 16 << 20;
/// Words and braces of all files together.
pub(super) const MAX_WORDS: usize = 1_000_000;
/// Files read (the main one and every include).
pub(super) const MAX_FILES: usize = 256;
/// Includes within includes.
pub(super) const MAX_INCLUDE_DEPTH: usize = 8;
/// Blocks within blocks: keepalived's deepest is four (virtual_server,
/// real_server, HTTP_GET, url).
pub(super) const MAX_BLOCK_DEPTH: usize = 16;
/// Alternatives of one include's `{a,b}` patterns.
const MAX_ALTERNATIVES: usize = 64;
/// Bytes of an include's pattern (PATH_MAX).
const MAX_PATTERN: usize = 4096;

/// One statement: its words, and its block if it opens one.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub at: Place,
    pub words: Vec<String>,
    /// Whether a `{` followed the statement (its block may be empty).
    pub opens: bool,
    pub children: Vec<Node>,
}

impl Node {
    pub fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    pub fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.key() == key)
    }
}

/// Reads `path` and its includes. `None`: an error was reported that
/// leaves no tree to convert.
pub(super) fn read(path: &Path, report: &mut Report) -> Option<Vec<Node>> {
    let mut r = Reader {
        report,
        levels: vec![Vec::new()],
        open: Vec::new(),
        can_open: false,
        chain: Vec::new(),
        files: 0,
        bytes: 0,
        words: MAX_WORDS,
    };
    r.file(path, None).ok()?;
    if let Some(n) = r.open.last() {
        let msg = format!(
            "the block of `{}` opened here is never closed",
            n.words
                .iter()
                .map(|w| shown(w))
                .collect::<Vec<_>>()
                .join(" ")
        );
        r.report.error(&n.at, msg);
        return None;
    }
    r.levels.pop()
}

/// An error that ends the reading (already reported).
struct Fatal;

struct Reader<'a> {
    report: &'a mut Report,
    /// The statements of each open level; the first is the top.
    levels: Vec<Vec<Node>>,
    /// The statements whose blocks are open, outermost first.
    open: Vec<Node>,
    /// Whether the last thing read was a statement, which a `{` opens.
    can_open: bool,
    /// The files being read (canonical), outermost first.
    chain: Vec<PathBuf>,
    files: usize,
    bytes: u64,
    /// Words and braces still allowed.
    words: usize,
}

impl Reader<'_> {
    /// Reads one file into the tree; `from` is the include that names
    /// it (`None`: the main file).
    fn file(&mut self, path: &Path, from: Option<&Place>) -> Result<(), Fatal> {
        let name: Rc<Path> = Rc::from(path);
        let whole = Place {
            file: name.clone(),
            line: 0,
        };
        let at = from.unwrap_or(&whole).clone();
        if self.chain.len() > MAX_INCLUDE_DEPTH {
            return self.fatal(
                &at,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
            );
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return self.fatal(&at, format!("more than {MAX_FILES} files are included"));
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.chain.contains(&canonical) {
            return self.fatal(&at, format!("{} includes itself", path.display()));
        }
        let limit = FILE_LIMIT.min(TOTAL_LIMIT - self.bytes);
        let bytes = match read_regular(path, limit) {
            Ok(b) => b,
            Err(why) => {
                let msg = match (&why, from) {
                    (_, None) => format!("cannot read: {why}"),
                    (Refusal::NotRegular(_) | Refusal::Executable, Some(_)) => format!(
                        "include: {} is {why}; skipped, as keepalived skips it",
                        path.display()
                    ),
                    (_, Some(_)) => format!("include: cannot read {}: {why}", path.display()),
                };
                return match (&why, from) {
                    (_, None) => self.fatal(&at, msg),
                    (Refusal::NotRegular(_) | Refusal::Executable, Some(_)) => {
                        self.report.warn(&at, msg);
                        Ok(())
                    }
                    _ => {
                        self.report.error(&at, msg);
                        Ok(())
                    }
                };
            }
        };
        self.bytes += bytes.len() as u64;
        let text = String::from_utf8_lossy(&bytes);
        let Ok(lexed) = syntax::lex(&text, &mut self.words) else {
            return self.fatal(
                &at,
                format!(
                    "{}: more than {MAX_WORDS} words and braces in all; larger than any \
                     keepalived.conf the import takes",
                    path.display()
                ),
            );
        };
        drop(text);
        if let Some(lines) = not_config(&lexed.tokens) {
            let what = "not keepalived config: no line of it starts with a keepalived keyword";
            let msg = match from {
                Some(_) => format!(
                    "include: {} is {what} (lines {lines}); not carried over, and its text is not \
                     shown",
                    path.display()
                ),
                None => {
                    format!("{what} (lines {lines}); nothing imported, and its text is not shown")
                }
            };
            return match from {
                Some(_) => {
                    self.report.warn(&at, msg);
                    Ok(())
                }
                None => self.fatal(&at, msg),
            };
        }
        for (line, flaw) in &lexed.flaws {
            let p = Place {
                file: name.clone(),
                line: *line,
            };
            self.report.warn(
                &p,
                match flaw {
                    Flaw::OpenQuote => {
                        "a `\"` is not closed: the rest of the statement is ignored, as keepalived \
                         ignores it"
                    }
                    Flaw::Nul => "a NUL byte: the line is ignored, as keepalived ignores it",
                },
            );
        }
        self.chain.push(canonical);
        for (line, t) in lexed.tokens {
            let p = Place {
                file: name.clone(),
                line,
            };
            self.token(t, p)?;
        }
        self.chain.pop();
        Ok(())
    }

    fn token(&mut self, t: Token, at: Place) -> Result<(), Fatal> {
        match t {
            Token::Words(words) => {
                self.level().push(Node {
                    at,
                    words,
                    opens: false,
                    children: Vec::new(),
                });
                self.can_open = true;
            }
            Token::Open => {
                if !self.can_open {
                    return self.fatal(&at, "`{` without a keyword before it");
                }
                if self.open.len() >= MAX_BLOCK_DEPTH {
                    return self.fatal(&at, format!("blocks nest deeper than {MAX_BLOCK_DEPTH}"));
                }
                let Some(mut node) = self.level().pop() else {
                    return self.fatal(&at, "`{` without a keyword before it");
                };
                node.opens = true;
                self.open.push(node);
                self.levels.push(Vec::new());
                self.can_open = false;
            }
            Token::Close => {
                let (Some(mut node), Some(kids)) = (self.open.pop(), self.levels.pop()) else {
                    return self.fatal(&at, "`}` without an open block");
                };
                node.children = kids;
                self.level().push(node);
                self.can_open = false;
            }
            Token::Include(pattern) => self.include(&pattern, &at)?,
        }
        Ok(())
    }

    fn level(&mut self) -> &mut Vec<Node> {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let n = self.levels.len() - 1;
        &mut self.levels[n]
    }

    /// Follows an include: each alternative of its `{a,b}` patterns in
    /// order, each one's matches sorted, as glob(3) gives them to
    /// keepalived. A pattern without wildcards that matches nothing gets
    /// a warning (keepalived skips it); one with wildcards is fine.
    fn include(&mut self, pattern: &str, at: &Place) -> Result<(), Fatal> {
        if pattern.len() > MAX_PATTERN {
            self.report.error(
                at,
                format!("include: a pattern longer than {MAX_PATTERN} bytes; not followed"),
            );
            return Ok(());
        }
        let Some(alternatives) = alternatives(pattern, MAX_ALTERNATIVES) else {
            self.report.error(
                at,
                format!(
                    "include {}: more than {MAX_ALTERNATIVES} alternatives; not followed",
                    shown(pattern)
                ),
            );
            return Ok(());
        };
        let base = at.file.parent().unwrap_or(Path::new(""));
        for mut alt in alternatives {
            // glob(3) has no recursive `**`: it is `*` there, and here,
            // so a pattern never walks a whole tree.
            while alt.contains("**") {
                alt = alt.replace("**", "*");
            }
            let full = base.join(&alt);
            let wild = alt.contains(['*', '?', '[']);
            let paths = match glob::glob(&full.to_string_lossy()) {
                Ok(p) => p,
                Err(e) => {
                    self.report.warn(
                        at,
                        format!(
                            "include {}: not a pattern ({}); not followed",
                            shown(&alt),
                            e.msg
                        ),
                    );
                    continue;
                }
            };
            let mut found: Vec<PathBuf> = paths.flatten().take(MAX_FILES + 1).collect();
            found.sort();
            if found.is_empty() && !wild {
                self.report.warn(
                    at,
                    format!(
                        "include {}: no such file; keepalived skips it too",
                        shown(&alt)
                    ),
                );
            }
            for f in found {
                self.file(&f, Some(at))?;
            }
        }
        Ok(())
    }

    fn fatal(&mut self, at: &Place, msg: impl std::fmt::Display) -> Result<(), Fatal> {
        self.report.error(at, msg);
        Err(Fatal)
    }
}

/// Why a file is not read.
#[derive(Debug)]
enum Refusal {
    NotRegular(&'static str),
    Executable,
    TooLarge(u64),
    Io(std::io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRegular(what) => write!(f, "{what}, not a regular file"),
            Refusal::Executable => f.write_str("executable (keepalived reads no executable file)"),
            Refusal::TooLarge(limit) => write!(
                f,
                "larger than {} KiB (the import reads {} KiB a file, {} KiB in all)",
                limit / 1024,
                FILE_LIMIT / 1024,
                TOTAL_LIMIT / 1024
            ),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A regular, non-executable file's bytes, at most `limit` of them. The
/// type is checked before the file is opened (opening a device can have
/// effects, and opening a FIFO waits for a writer) and again on the open
/// file, which is opened non-blocking in case it was swapped meanwhile.
fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
    let kind = |m: &std::fs::Metadata| -> Result<(), Refusal> {
        let t = m.file_type();
        let what = if t.is_file() {
            if m.permissions().mode() & 0o111 != 0 {
                return Err(Refusal::Executable);
            }
            return Ok(());
        } else if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        Err(Refusal::NotRegular(what))
    };
    kind(&std::fs::metadata(path).map_err(Refusal::Io)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(Refusal::Io)?;
    kind(&f.metadata().map_err(Refusal::Io)?)?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(Refusal::Io)?;
    if out.len() as u64 > limit {
        return Err(Refusal::TooLarge(limit));
    }
    Ok(out)
}

/// keepalived's `{a,b}` alternatives of a pattern (nested ones too, `\{`
/// being a brace itself), or `None` past `max` of them.
fn alternatives(pattern: &str, max: usize) -> Option<Vec<String>> {
    let b = pattern.as_bytes();
    // The first top-level `{...}` group that has a comma in it.
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'{' => {
                let (mut depth, mut j, mut commas) = (0usize, i, Vec::new());
                while j < b.len() {
                    match b[j] {
                        b'\\' => j += 1,
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b',' if depth == 1 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                }
                if j >= b.len() || commas.is_empty() {
                    i += 1;
                    continue;
                }
                let (head, tail) = (&pattern[..i], &pattern[j + 1..]);
                let mut out = Vec::new();
                let mut start = i + 1;
                for end in commas.into_iter().chain([j]) {
                    let one = format!("{head}{}{tail}", &pattern[start..end]);
                    for x in alternatives(&one, max)? {
                        out.push(x);
                        if out.len() > max {
                            return None;
                        }
                    }
                    start = end + 1;
                }
                return Some(out);
            }
            _ => i += 1,
        }
    }
    Some(vec![pattern.to_string()])
}

/// keepalived's words that start statements: the top-level blocks, and
/// the options of the blocks most files have. A file with words but none
/// of these (nor an address, nor an include) is not keepalived config.
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
    // Checks (besides the checkers themselves, super::CHECKERS).
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

/// `None` when the tokens are keepalived config (or there are none);
/// else the lines of the statements, as a short list.
fn not_config(tokens: &[(usize, Token)]) -> Option<String> {
    let mut lines = Vec::new();
    for (line, t) in tokens {
        match t {
            Token::Include(_) => return None,
            Token::Words(w) if is_keepalived(&w[0]) => return None,
            Token::Words(_) if lines.last() != Some(line) => lines.push(*line),
            _ => {}
        }
    }
    if lines.is_empty() {
        return None;
    }
    let mut s: Vec<String> = lines.iter().take(10).map(usize::to_string).collect();
    if lines.len() > 10 {
        s.push(format!("… {} lines in all", lines.len()));
    }
    Some(s.join(", "))
}

/// A keyword of keepalived's, or an address (a group member, a virtual
/// IP), or a `vrrp_` block.
fn is_keepalived(w: &str) -> bool {
    KEYWORDS.contains(&w)
        || super::CHECKERS.contains(&w)
        || w.starts_with("vrrp_")
        || w.split(['-', '/'])
            .next()
            .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_expand_like_glob_brace() {
        assert_eq!(alternatives("a/*.conf", 8).unwrap(), ["a/*.conf"]);
        assert_eq!(
            alternatives("{a,b/{c,d}}.conf", 8).unwrap(),
            ["a.conf", "b/c.conf", "b/d.conf"]
        );
        assert_eq!(alternatives("x{y}z,{", 8).unwrap(), ["x{y}z,{"]);
        assert!(alternatives("{a,b}{a,b}{a,b}{a,b}", 8).is_none());
    }

    #[test]
    fn a_file_without_keepalived_keywords_is_not_config() {
        let mut budget = 1000;
        let lex = |s: &str, b: &mut usize| syntax::lex(s, b).unwrap().tokens;
        let shadow = lex(
            "root:$6$x:1:0:99999:7:::\nhunter2\n\npassword = x\n",
            &mut budget,
        );
        assert_eq!(not_config(&shadow).as_deref(), Some("1, 2, 4"));
        assert_eq!(not_config(&lex("# only comments\n", &mut budget)), None);
        assert_eq!(not_config(&lex("198.18.0.1 80\n", &mut budget)), None);
        assert_eq!(
            not_config(&lex("junk\nvrrp_script x {\n}", &mut budget)),
            None
        );
    }
}

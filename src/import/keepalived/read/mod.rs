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

mod include;
mod open;

use super::keywords::is_keepalived;
use super::report::{Place, Report, shown};
use super::syntax::{self, Flaw, Token};
use open::{Refusal, read_regular};
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

    fn fatal(&mut self, at: &Place, msg: impl std::fmt::Display) -> Result<(), Fatal> {
        self.report.error(at, msg);
        Err(Fatal)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! The importer's findings, each naming its file and line. Warnings are
//! what is left out of an output that still loads; errors are what the
//! director would refuse, or what keepalived itself does not read, so the
//! import prints no config. At most [`PER_FILE`] of each kind are kept
//! per file (then a count), so an odd file cannot flood the terminal; and
//! input words are only shown through [`shown`].

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::rc::Rc;

/// Warnings (and errors) kept per file.
pub(super) const PER_FILE: usize = 50;

/// A place in the input: a file and a line (0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Place {
    pub file: Rc<Path>,
    pub line: usize,
}

impl Default for Place {
    fn default() -> Place {
        Place {
            file: Rc::from(Path::new("")),
            line: 0,
        }
    }
}

impl Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.file.display()),
            n => write!(f, "{}:{n}", self.file.display()),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Report {
    warnings: Vec<String>,
    errors: Vec<String>,
    /// Per file and kind (true: errors): how many were found.
    counts: HashMap<(Rc<Path>, bool), usize>,
    /// The files in the order of their first finding, for the counts.
    order: Vec<Rc<Path>>,
}

impl Report {
    pub fn warn(&mut self, at: &Place, msg: impl Display) {
        self.add(at, msg, false);
    }

    pub fn error(&mut self, at: &Place, msg: impl Display) {
        self.add(at, msg, true);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    fn add(&mut self, at: &Place, msg: impl Display, error: bool) {
        let n = self.counts.entry((at.file.clone(), error)).or_default();
        *n += 1;
        if *n == 1 && !self.order.contains(&at.file) {
            self.order.push(at.file.clone());
        }
        if *n <= PER_FILE {
            let line = format!("{at}: {msg}");
            match error {
                true => self.errors.push(line),
                false => self.warnings.push(line),
            }
        }
    }

    /// The warnings and the errors, each list ending with the count of
    /// those not shown, per file.
    pub fn finish(mut self) -> (Vec<String>, Vec<String>) {
        for f in &self.order {
            for (error, what) in [(false, "warnings"), (true, "errors")] {
                let n = self.counts.get(&(f.clone(), error)).copied().unwrap_or(0);
                if n > PER_FILE {
                    let line = format!("{}: {} more {what} not shown", f.display(), n - PER_FILE);
                    match error {
                        true => self.errors.push(line),
                        false => self.warnings.push(line),
                    }
                }
            }
        }
        (self.warnings, self.errors)
    }
}

/// A word of the input as a message shows it: in backquotes when it is
/// short printable ASCII, else only its length. A message never carries a
/// long value (a password hash, a key) or terminal control characters.
pub(super) fn shown(w: &str) -> String {
    if w.len() <= 64 && w.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        format!("`{w}`")
    } else {
        format!("(a word of {} bytes, not shown)", w.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_capped_per_file_and_kind() {
        let mut r = Report::default();
        let a = Place {
            file: Rc::from(Path::new("a.conf")),
            line: 3,
        };
        for _ in 0..PER_FILE + 7 {
            r.warn(&a, "w");
        }
        r.error(&a, "e");
        let (w, e) = r.finish();
        assert_eq!(w.len(), PER_FILE + 1);
        assert_eq!(w[0], "a.conf:3: w");
        assert_eq!(w[PER_FILE], "a.conf: 7 more warnings not shown");
        assert_eq!(e, ["a.conf:3: e"]);
    }

    #[test]
    fn only_short_printable_words_are_shown() {
        assert_eq!(shown("lblc"), "`lblc`");
        assert_eq!(shown("a\u{1b}[2J"), "(a word of 5 bytes, not shown)");
        assert_eq!(shown(&"x".repeat(65)), "(a word of 65 bytes, not shown)");
    }
}

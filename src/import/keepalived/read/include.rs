//! Following an `include` as keepalived does: the rest of the line is a
//! glob pattern relative to the including file's directory, with
//! keepalived's `{a,b}` alternatives, each alternative's matches sorted
//! as glob(3) gives them; their files continue the including one at the
//! place of the `include`.

use super::super::report::{Place, shown};
use super::{Fatal, MAX_FILES, Reader};
use std::path::{Path, PathBuf};

/// Alternatives of one include's `{a,b}` patterns.
const MAX_ALTERNATIVES: usize = 64;
/// Bytes of an include's pattern (PATH_MAX).
const MAX_PATTERN: usize = 4096;

impl Reader<'_> {
    /// Follows an include: each alternative of its `{a,b}` patterns in
    /// order, each one's matches sorted, as glob(3) gives them to
    /// keepalived. A pattern without wildcards that matches nothing gets
    /// a warning (keepalived skips it); one with wildcards is fine.
    pub(super) fn include(&mut self, pattern: &str, at: &Place) -> Result<(), Fatal> {
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
}

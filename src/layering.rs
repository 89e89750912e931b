//! The layers, held by a test: every module of `src/` may use only its
//! own top module and the layers below it (the order is written once, in
//! docs/architecture.md's `layers` block), two top modules of one layer
//! may not use each other, and no two modules use each other unless one
//! holds the other (a parent and its children share a concept). The
//! source is read as text: `use` trees and `crate::` paths, `super::` and
//! `self::` resolved from the file's place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`control::server`).
fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            modules(root, &p, out);
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let rel = p.strip_prefix(root).expect("under src/");
        let mut parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if parts.first().is_some_and(|f| f == "bin") {
            continue;
        }
        if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
            parts.pop();
        }
        out.insert(parts.join("::"), p);
    }
}

/// The paths a `use` tree names, `{a, b::c}` groups expanded.
fn use_paths(tree: &str) -> Vec<String> {
    let words: Vec<&str> = tree.split_whitespace().collect();
    // `X as Y` names X.
    let mut kept = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" {
            i += 2;
            continue;
        }
        kept.push(words[i]);
        i += 1;
    }
    let tree: String = kept.concat();
    let mut out = Vec::new();
    expand("", &tree, &mut out);
    out
}

fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |a: &str, b: &str| match a.is_empty() {
        true => b.to_string(),
        false => format!("{a}::{b}"),
    };
    match tree.find('{') {
        None if tree == "self" => out.push(prefix.to_string()),
        None => out.push(join(prefix, tree)),
        Some(open) => {
            let head = tree[..open].trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let mut depth = 0;
            let mut start = 0;
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                expand(&base, &inner[start..], out);
            }
        }
    }
}

/// The code without comments, string and character literals (a doc
/// comment that names `crate::x` is not a use of it, nor is a message
/// that says "use" across lines) and its unit tests (a test may drive a
/// neighbour: `#[cfg(test)] mod` to the end of the file). Lines are kept.
fn code(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let c: Vec<char> = kept.chars().collect();
    let mut out = String::with_capacity(c.len());
    let mut i = 0;
    // Skips to the end of a literal from `i`, newlines kept; `quote` ends
    // it, after `hashes` #s for a raw string (which has no escapes).
    let literal = |i: &mut usize, out: &mut String, quote: char, raw: Option<usize>| {
        while let Some(&ch) = c.get(*i) {
            *i += 1;
            match ch {
                '\n' => out.push('\n'),
                '\\' if raw.is_none() => *i += 1,
                _ if ch == quote => {
                    let hashes = raw.unwrap_or(0);
                    if c[*i..].iter().take(hashes).filter(|h| **h == '#').count() == hashes {
                        *i += hashes;
                        return;
                    }
                }
                _ => {}
            }
        }
    };
    while let Some(&ch) = c.get(i) {
        i += 1;
        let next = c.get(i).copied();
        match ch {
            '/' if next == Some('/') => {
                while c.get(i).is_some_and(|x| *x != '\n') {
                    i += 1;
                }
            }
            '"' => literal(&mut i, &mut out, '"', None),
            // r"..." and r#"..."#, not an identifier ending in r.
            'r' if matches!(next, Some('"' | '#'))
                && !out.ends_with(|p: char| p.is_alphanumeric() || p == '_') =>
            {
                let hashes = c[i..].iter().take_while(|h| **h == '#').count();
                if c.get(i + hashes) == Some(&'"') {
                    i += hashes + 1;
                    literal(&mut i, &mut out, '"', Some(hashes));
                } else {
                    out.push(ch);
                }
            }
            // A character literal ('"', '\''), not a lifetime ('a).
            '\'' if next == Some('\\') || c.get(i + 1) == Some(&'\'') => {
                literal(&mut i, &mut out, '\'', None)
            }
            _ => out.push(ch),
        }
    }
    out
}

/// The modules `module`'s code names: absolute paths (`crate::`),
/// `super::` and `self::` resolved.
fn named(module: &str, text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut paths = Vec::new();
    for stmt in code.split(';') {
        if let Some(i) = stmt.find("use ") {
            let before = &stmt[..i];
            if before.trim().is_empty()
                || before.trim_end().ends_with("pub")
                || before.contains(')')
            {
                paths.extend(use_paths(&stmt[i + 4..]));
            }
        }
    }
    for (i, _) in code.match_indices("crate::") {
        let rest: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(rest);
    }
    for (i, _) in code.match_indices("super::") {
        if i > 0 && code[..i].ends_with("::") {
            continue;
        }
        let rest: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(rest);
    }
    // `super` is the module's parent (a `mod.rs` is its folder's module).
    let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut out = BTreeSet::new();
    for p in paths {
        let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
        let abs: Vec<&str> = match segs.first() {
            Some(&"crate") => segs[1..].to_vec(),
            Some(&"super") => {
                let mut base = here.clone();
                let mut rest = &segs[..];
                while rest.first() == Some(&"super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend_from_slice(rest);
                base
            }
            Some(&"self") => {
                let mut base = here.clone();
                base.extend_from_slice(&segs[1..]);
                base
            }
            _ => continue,
        };
        if !abs.is_empty() {
            out.insert(abs.join("::"));
        }
    }
    out
}

/// The longest module among `mods` that `path` lies in.
fn owner<'a>(path: &str, mods: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find_map(|p| mods.get_key_value(&p).map(|(k, _)| k.as_str()))
}

/// `a` is `b` or holds it.
fn holds(a: &str, b: &str) -> bool {
    a.is_empty() || b == a || b.starts_with(&format!("{a}::"))
}

/// The first fenced block of `doc` whose info string is `info`: the tests
/// read what the documentation shows (the layers here, the example
/// config in `config::settings`), so the two cannot drift apart.
pub(crate) fn fenced<'a>(doc: &'a str, info: &str) -> &'a str {
    doc.split(&format!("```{info}\n"))
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("no ```{info} block"))
}

/// The layers, bottom first, from docs/architecture.md's `layers` block:
/// a line per layer, its top modules.
fn layers() -> BTreeMap<String, usize> {
    let block = fenced(include_str!("../docs/architecture.md"), "layers");
    let mut out = BTreeMap::new();
    for (i, line) in block.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        for m in line.split_whitespace() {
            out.insert(m.to_string(), i);
        }
    }
    out
}

#[test]
fn modules_use_only_their_layer_and_those_below_and_never_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    modules(&root, &root, &mut mods);
    let layer = layers();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (m, path) in &mods {
        let text = std::fs::read_to_string(path).expect("a source file");
        let top = m.split("::").next().unwrap_or("");
        if !top.is_empty() && !layer.contains_key(top) {
            wrong.push(format!("src/{top} is in no layer of docs/architecture.md"));
            continue;
        }
        for n in named(m, &text) {
            let Some(target) = owner(&n, &mods) else {
                continue;
            };
            if target == m || target.is_empty() {
                continue;
            }
            uses.entry(m.clone())
                .or_default()
                .insert(target.to_string());
            let ttop = target.split("::").next().unwrap_or("");
            if top.is_empty() || ttop == top {
                continue;
            }
            let (l, tl) = (layer[top], layer.get(ttop).copied().unwrap_or(usize::MAX));
            if tl > l {
                wrong.push(format!(
                    "{m} uses {n}: {ttop} is in a higher layer than {top}"
                ));
            } else if tl == l {
                wrong.push(format!("{m} uses {n}: {ttop} and {top} are of one layer"));
            }
        }
    }
    for (a, targets) in &uses {
        for b in targets {
            let back = uses.get(b).is_some_and(|t| t.contains(a));
            if back && a < b && !holds(a, b) && !holds(b, a) {
                wrong.push(format!("{a} and {b} use each other"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering:\n{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_use_trees_and_paths() {
    let got = named(
        "control::server::ha",
        "use super::{Control, lock};\nuse crate::ha::{self, msg::{Heartbeat as H}};\n\
         // crate::nothing\nfn f() { crate::wire::ha::seal(); let s = \"crate::no\"; }\n",
    );
    let want: BTreeSet<String> = [
        "control::server",
        "control::server::Control",
        "control::server::lock",
        "ha",
        "ha::msg::Heartbeat",
        "wire::ha::seal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
    // A message across lines is no use, whatever it says, nor is a `//`
    // in a string a comment.
    let text = r#"fn f() -> &'static str {
    "one; \
     use crate::nothing; also '\"' //"
}
use crate::wire;
"#;
    let got = named("x", text);
    assert_eq!(got, BTreeSet::from(["wire".to_string()]));
}

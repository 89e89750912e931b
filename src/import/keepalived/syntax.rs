//! keepalived.conf's lexical rules, as keepalived's own reader applies
//! them: a line loses its comment (`#` or `!` outside double quotes, `\#`
//! and `\!` being the characters themselves), then is cut at every `{` and
//! `}` outside double quotes. The text between two cuts is one statement,
//! split into words at white space; a word that starts with `"` runs to
//! the next `"`. So a statement ends only at a brace or at the end of a
//! line, wherever the braces are: `real_server A 80 { weight 2 }` is the
//! same as the three-line form, and `url { path / status_code 200 }` is
//! the one statement `path / status_code 200` in a block, which keepalived
//! reads as path `/` (the converter warns about the words it ignores).
//! There is no line continuation outside keepalived's `$NAME=` parameter
//! definitions, which the importer does not expand.
//!
//! Hand-written: the grammar is this small, and no crate speaks it.

/// One token of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// A statement's words (never empty).
    Words(Vec<String>),
    Open,
    Close,
    /// `include PATTERN`, or one of keepalived's variants (`includer`,
    /// `includem`, `includew`, `includeb`, `includea`) that differ only in
    /// what keepalived logs: the pattern is the rest of the line.
    Include(String),
}

/// Something keepalived reports on a line and reads past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flaw {
    /// A `"` without its closing `"`: the rest of the statement is dropped.
    OpenQuote,
    /// A NUL byte: keepalived ignores the whole line.
    Nul,
}

/// A file's tokens and flaws, each with its line (from 1).
#[derive(Debug, Default)]
pub(super) struct Lexed {
    pub tokens: Vec<(usize, Token)>,
    pub flaws: Vec<(usize, Flaw)>,
}

/// More words and braces than the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooMany;

/// Splits a file's text into tokens; `budget` is the number of words and
/// braces still allowed, and goes down by what this file has.
pub(super) fn lex(text: &str, budget: &mut usize) -> Result<Lexed, TooMany> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Lexed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.contains('\0') {
            out.flaws.push((line, Flaw::Nul));
            continue;
        }
        let (clean, mut open_quote) = decomment(raw);
        let mut rest = clean.trim();
        while !rest.is_empty() {
            if let Some(pattern) = include_pattern(rest) {
                take(budget, 1)?;
                out.tokens.push((line, Token::Include(pattern.to_string())));
                break;
            }
            let (statement, brace) = match first_brace(rest) {
                Some(0) => ("", Some(rest.as_bytes()[0])),
                Some(p) => (&rest[..p], None),
                None => (rest, None),
            };
            if let Some(b) = brace {
                take(budget, 1)?;
                let t = if b == b'{' { Token::Open } else { Token::Close };
                out.tokens.push((line, t));
                rest = rest[1..].trim_start();
                continue;
            }
            let (words, unmatched) = words(statement);
            open_quote |= unmatched;
            if !words.is_empty() {
                take(budget, words.len())?;
                out.tokens.push((line, Token::Words(words)));
            }
            rest = &rest[statement.len()..];
        }
        if open_quote {
            out.flaws.push((line, Flaw::OpenQuote));
        }
    }
    Ok(out)
}

fn take(budget: &mut usize, n: usize) -> Result<(), TooMany> {
    *budget = budget.checked_sub(n).ok_or(TooMany)?;
    Ok(())
}

/// The line without its comment, `\#` and `\!` unescaped; and whether a
/// `"` was left open.
fn decomment(line: &str) -> (String, bool) {
    let mut out = String::with_capacity(line.len());
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some(n @ ('#' | '!')) if !quote => out.push(n),
                Some(n) => {
                    out.push(c);
                    out.push(n);
                }
                None => out.push(c),
            },
            '#' | '!' if !quote => break,
            c => out.push(c),
        }
    }
    (out, quote)
}

/// The pattern of an include line: `include` (or a variant: one more
/// letter of `rmwba`), white space, then the rest of the line.
fn include_pattern(s: &str) -> Option<&str> {
    let after = s.strip_prefix("include")?;
    let after = match after.as_bytes().first()? {
        b'r' | b'm' | b'w' | b'b' | b'a' => &after[1..],
        _ => after,
    };
    after.starts_with([' ', '\t']).then(|| after.trim())
}

/// Where the first `{` or `}` outside double quotes is. An unclosed quote
/// hides every brace after it, as in keepalived.
fn first_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'}' => return Some(i),
            b'"' => {
                let close = b[i + 1..].iter().position(|c| *c == b'"')?;
                i += close + 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// A statement's words, and whether a quote was left open (the words
/// from it on are dropped).
fn words(s: &str) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.is_empty() {
            return (out, false);
        }
        if let Some(q) = rest.strip_prefix('"') {
            let Some(end) = q.find('"') else {
                return (out, true);
            };
            out.push(q[..end].to_string());
            rest = &q[end + 1..];
        } else {
            let end = rest
                .find(|c: char| c.is_ascii_whitespace() || c == '"')
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Token::{Close, Include, Open, Words};
    use super::*;

    fn toks(text: &str) -> Vec<(usize, Token)> {
        let mut budget = usize::MAX;
        lex(text, &mut budget).unwrap().tokens
    }

    fn w(s: &str) -> Token {
        Words(s.split(' ').map(String::from).collect())
    }

    /// The tokens of `text` a line each, as "LINE: words", "LINE: {" or
    /// "LINE: }".
    fn shown(text: &str) -> String {
        let one = |(n, t): &(usize, Token)| match t {
            Words(w) => format!("{n}: {}\n", w.join(" ")),
            Open => format!("{n}: {{\n"),
            Close => format!("{n}: }}\n"),
            Include(p) => format!("{n}: include {p}\n"),
        };
        toks(text).iter().map(one).collect()
    }

    #[test]
    fn statements_end_at_braces_and_line_ends_only() {
        assert_eq!(
            shown("real_server 1.2.3.4 80 { weight 2 TCP_CHECK{connect_timeout 3}}"),
            "1: real_server 1.2.3.4 80\n1: {\n1: weight 2 TCP_CHECK\n1: {\n\
             1: connect_timeout 3\n1: }\n1: }\n"
        );
        assert_eq!(
            shown("url { path / status_code 200 }\n}x"),
            "1: url\n1: {\n1: path / status_code 200\n1: }\n2: }\n2: x\n"
        );
    }

    #[test]
    fn comments_quotes_and_escapes_as_keepalived_reads_them() {
        assert_eq!(toks("a b{ # c }"), [(1, w("a b")), (1, Open)]);
        assert_eq!(toks("digest ab!cd"), [(1, w("digest ab"))]);
        assert_eq!(toks("x a\\#b \\!c"), [(1, w("x a#b !c"))]);
        assert_eq!(
            toks("misc_path \"/bin/x {1} # 2\" }"),
            [
                (1, Words(vec!["misc_path".into(), "/bin/x {1} # 2".into()])),
                (1, Close)
            ]
        );
        assert_eq!(
            toks("a\"b c\"d"),
            [(1, Words(vec!["a".into(), "b c".into(), "d".into()]))]
        );
        assert_eq!(toks("\u{feff}! all comment\r\n\r\n"), []);
        let l = lex("name \"open { x\nok\n", &mut 100).unwrap();
        assert_eq!(l.tokens, [(1, w("name")), (2, w("ok"))]);
        assert_eq!(l.flaws, [(1, Flaw::OpenQuote)]);
        assert_eq!(lex("a\0b\n", &mut 100).unwrap().flaws, [(1, Flaw::Nul)]);
    }

    #[test]
    fn include_takes_the_rest_of_the_line() {
        assert_eq!(
            toks("include  a b/*.conf  # c\n} includew x\ninclude\nincluded y"),
            [
                (1, Include("a b/*.conf".into())),
                (2, Close),
                (2, Include("x".into())),
                (3, w("include")),
                (4, w("included y")),
            ]
        );
    }

    #[test]
    fn the_budget_bounds_the_tokens() {
        let mut b = 5;
        assert!(lex("a b c\n{ }", &mut b).is_ok());
        assert_eq!(b, 0);
        assert_eq!(lex("a", &mut b).unwrap_err(), TooMany);
    }
}

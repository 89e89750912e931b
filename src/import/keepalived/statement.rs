//! One statement's words as keepalived reads them, with the importer's
//! messages: whether it opens a block (and must), its value (one, and
//! what it ignores after), a whole number, seconds, a port or an IPv4
//! address in range. Every part of the translation reads its options
//! through these, so a statement gets the same message wherever it is.

use super::keywords::{BLOCKS, CHECKERS};
use super::read::Node;
use super::report::{Place, Report, shown};
use std::net::IpAddr;

/// Whether `n` opens a block; an error if not (keepalived reports a
/// missing `{` and reads what follows as the block).
pub(super) fn block(n: &Node, r: &mut Report) -> bool {
    if !n.opens {
        r.error(
            &n.at,
            format!(
                "{} needs a block `{{ … }}` after it; keepalived reports it missing",
                option(n)
            ),
        );
    }
    n.opens
}

/// An error when a statement that takes no block has one: keepalived
/// ends a statement only at a brace or a line end, so `weight 2 TCP_CHECK
/// {` is one statement, `weight` with two values, and the block is no
/// check. Returns whether the statement is sound.
pub(super) fn no_block(n: &Node, r: &mut Report) -> bool {
    if !n.opens {
        return true;
    }
    let hint = match n
        .words
        .iter()
        .skip(1)
        .rfind(|w| BLOCKS.contains(&w.as_str()) || CHECKERS.contains(&w.as_str()))
    {
        Some(b) => format!(
            ", and its block is no {b}: write {b} on a line of its own (or after a `{{` or `}}`)"
        ),
        None => String::new(),
    };
    r.error(
        &n.at,
        format!(
            "{} takes no block, but a `{{` follows: keepalived ends a statement only at a brace or \
             a line end, so it reads this whole line up to the `{{` as one {} statement{hint}",
            option(n),
            n.key()
        ),
    );
    false
}

/// A warning for words after the `keep` first ones (keepalived ignores
/// them): `path / status_code 200` is path `/`, and its status is lost.
pub(super) fn extra(n: &Node, keep: usize, r: &mut Report) {
    if n.words.len() > keep {
        r.warn(
            &n.at,
            format!(
                "{} takes {}; keepalived ignores the rest of the statement ({}), and so does the \
                 import: write each option on a line of its own",
                option(n),
                match keep {
                    1 => "no value".to_string(),
                    2 => "one value".to_string(),
                    k => format!("{} values", k - 1),
                },
                shown(&n.words[keep..].join(" "))
            ),
        );
    }
}

/// An option's one value: an error if there is none (keepalived stops on
/// a missing parameter), a warning for more.
pub(super) fn value<'a>(n: &'a Node, r: &mut Report) -> Option<&'a str> {
    if no_block(n, r) {
        extra(n, 2, r);
    }
    let v = n.arg(1);
    if v.is_none() {
        r.error(&n.at, format!("{} needs a value", option(n)));
    }
    v
}

/// A statement's keyword as messages name it: in backquotes if it is a
/// word, else not at all (a line of a file that is not config).
pub(super) fn option(n: &Node) -> String {
    let k = n.key();
    if k.starts_with(['$', '@', '~']) {
        "a keepalived parameter, conditional line or sequence ($NAME, @ID, ~SEQ; the import does \
         not expand them: expand them first)"
            .into()
    } else if !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        format!("`{k}`")
    } else {
        "a statement that does not start with a keepalived keyword (not shown)".into()
    }
}

/// A whole number option from `lo` to `hi`, or a warning and `None`:
/// keepalived too ignores a value out of its range and keeps its default.
pub(super) fn whole(n: &Node, lo: u64, hi: u64, r: &mut Report) -> Option<u64> {
    let v = value(n, r)?;
    let ok = v.parse::<u64>().ok().filter(|x| (lo..=hi).contains(x));
    if ok.is_none() {
        r.warn(
            &n.at,
            format!(
                "{} {} is not a whole number from {lo} to {hi}; not carried over",
                n.key(),
                shown(v)
            ),
        );
    }
    ok
}

/// Seconds as uvs's checks take them (0.01 to 86400), or a warning and
/// `None`: a whole number as an integer (`interval = 60`), else a float.
pub(super) fn seconds(n: &Node, r: &mut Report) -> Option<toml::Value> {
    let v = value(n, r)?;
    let ok = v
        .parse::<f64>()
        .ok()
        .filter(|x| (0.01..=86_400.0).contains(x))
        .map(|x| match x.fract() == 0.0 {
            true => toml::Value::Integer(x as i64),
            false => toml::Value::Float(x),
        });
    if ok.is_none() {
        r.warn(
            &n.at,
            format!(
                "{} {} is not a number of seconds from 0.01 to 86400; not carried over",
                n.key(),
                shown(v)
            ),
        );
    }
    ok
}

/// A port word: 1 to 65535, else an error naming it.
pub(super) fn port(w: &str, at: &Place, r: &mut Report) -> Option<u16> {
    match w.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            r.error(at, format!("port {} is not a port (1 to 65535)", shown(w)));
            None
        }
    }
}

/// An address word of either family (IPVS and uvs take both), else an
/// error naming it.
pub(super) fn ip_addr(w: &str, at: &Place, r: &mut Report) -> Option<IpAddr> {
    match w.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.error(at, format!("{} is not an IPv4 or IPv6 address", shown(w)));
            None
        }
    }
}

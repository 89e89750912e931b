//! Texts: the restore parser (ipvsadm's save format), the control
//! protocol and the config file, mutated.

use super::{config, fake_hop, model, ops};
use proptest::prelude::*;
use std::sync::LazyLock;
use uvs::admin::restore;
use uvs::control::model::Model;
use uvs::control::proto::{Op, Request};

const SAVE: &str = "-A -t 198.18.0.100:80 -s wrr\r\n\
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3\n\
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -i -w 1\n\
# a comment\n\
\n\
-A -u 198.18.0.100:53 -s rr\n\
-a -u 198.18.0.100:53 -r 198.18.1.11:5353 -m -w 1\n\
--set 900 120 300\n";

/// Bytes of a text, mutated: byte flips, a line repeated or dropped, a
/// token from ipvsadm's vocabulary spliced in; with or without a BOM.
pub fn text_mutations(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "-A",
        "-a",
        "-E",
        "-e",
        "-d",
        "-D",
        "-C",
        "-t",
        "-u",
        "-f",
        "-s",
        "-r",
        "-g",
        "-i",
        "-m",
        "-w",
        "-x",
        "-y",
        "-p",
        "--set",
        "4294967296",
        "-1",
        "0",
        "::1",
        "1.2.3.4:99999",
        "\u{feff}",
        "\r",
        "\t",
        " ",
        "\"",
        "{",
        "}",
        "null",
        "[",
        "]",
        ":",
        ",",
        "\u{0}",
    ];
    let edits = prop::collection::vec((any::<u16>(), 0u8..4, 0..TOKENS.len(), any::<u8>()), 0..6);
    (edits, any::<bool>()).prop_map(move |(edits, bom)| {
        let mut b = base.as_bytes().to_vec();
        for (at, kind, tok, x) in edits {
            let at = usize::from(at) % (b.len() + 1);
            match kind {
                0 => {
                    if at < b.len() {
                        b[at] ^= x;
                    }
                }
                1 => {
                    let t = TOKENS[tok].as_bytes();
                    b.splice(at..at, t.iter().copied());
                }
                2 => {
                    let end = (at + usize::from(x)).min(b.len());
                    b.drain(at..end);
                }
                _ => {
                    let line: Vec<u8> = b[at..].split(|c| *c == b'\n').next().unwrap().to_vec();
                    b.splice(at..at, line.into_iter().chain([b'\n']));
                }
            }
        }
        if bom {
            b.splice(0..0, [0xef, 0xbb, 0xbf]);
        }
        b
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn restore_parser(input in text_mutations(SAVE)) {
        let lines = input.split(|c| *c == b'\n').count();
        match restore::parse("uvsadm", &input) {
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}", e.line);
                prop_assert!(!e.msg.is_empty());
            }
            Ok(ops) => {
                let ops: Vec<Op> = ops.into_iter().map(|(_, o)| o).collect();
                let before = base();
                let snap = before.snapshot();
                if let Err((i, e)) = before.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                    prop_assert!(i < ops.len());
                    prop_assert!(!e.to_string().is_empty());
                }
                prop_assert_eq!(before.snapshot(), snap);
            }
        }
    }

    #[test]
    fn control_protocol(input in text_mutations(&REQUEST)) {
        let Ok(Request::Apply(ops)) = serde_json::from_slice::<Request>(&input) else {
            return Ok(());
        };
        let before = base();
        let snap = before.snapshot();
        match before.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
            Ok(after) => {
                // What was accepted can be listed and published.
                let _ = after.snapshot();
                let _ = after.table(1);
            }
            Err((i, e)) => {
                prop_assert!(i < ops.len());
                prop_assert!(!e.to_string().is_empty());
            }
        }
        prop_assert_eq!(before.snapshot(), snap);
    }
}

/// The model the restore and protocol cases start from.
fn base() -> Model {
    model()
        .apply_all(&ops(), &mut fake_hop, &mut |_, _| {})
        .unwrap()
}

/// A valid control request (the restore seed as one `Apply`), as the
/// client sends it.
static REQUEST: LazyLock<&'static str> = LazyLock::new(|| {
    let ops = restore::parse("uvsadm", SAVE.as_bytes()).unwrap();
    let ops: Vec<Op> = ops.into_iter().map(|(_, o)| o).collect();
    let json = serde_json::to_string(&Request::Apply(ops)).unwrap();
    Box::leak(json.into_boxed_str())
});

/// The documented config example and the keepalived fixture, mutated.
static CONFIG_DOC: LazyLock<&'static str> = LazyLock::new(|| {
    let doc = include_str!("../../docs/config.md");
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    Box::leak(block.to_string().into_boxed_str())
});

proptest! {
    #![proptest_config(config())]

    /// A config file of any shape: checked with a place for every error,
    /// never a panic; what loads turns into ops that apply or fail with a
    /// message.
    #[test]
    fn config_file(input in text_mutations(&CONFIG_DOC)) {
        match uvs::config::parse(std::path::Path::new("fuzz.toml"), &input) {
            Err(e) => {
                let lines = input.split(|c| *c == b'\n').count();
                prop_assert!(e.line <= lines + 1, "line {} of {lines}: {}", e.line, e.msg);
                prop_assert!(!e.msg.is_empty());
            }
            Ok(c) => {
                let ops = c.ops_from(&uvs::config::Config::default());
                let m = model();
                if let Err((i, e)) = m.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                    prop_assert!(i < ops.len());
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}

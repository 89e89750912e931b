//! `uvsadm -R`: what `ipvsadm -S` wrote, read back as one transaction.
//! A UTF-8 BOM and CRLF line ends (files edited on Windows) are accepted;
//! blank lines and `#` comments are skipped (ipvsadm-restore strips them
//! too); any other malformed line rejects the whole input with its number.

use super::args::{self, Cmd, Invocation};
use crate::control::proto::Op;

/// A restore line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub msg: String,
}

/// Parses restore input into (line number, op) pairs.
pub fn parse(prog: &str, input: &[u8]) -> Result<Vec<(usize, Op)>, LineError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let line = input[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(LineError {
                line,
                msg: "not valid UTF-8".into(),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ops = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = n + 1;
        let words: Vec<String> = raw
            .split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty() && *w != "ipvsadm" && *w != "uvsadm")
            .map(String::from)
            .collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let err = |msg: String| LineError { line, msg };
        let p = match args::parse(prog, &words).map_err(|f| err(f.msg))? {
            Invocation::Run(p) => p,
            Invocation::Help | Invocation::Version => {
                return Err(err("only table commands can be restored".into()));
            }
        };
        if matches!(p.cmd, Cmd::List | Cmd::Save | Cmd::Restore) {
            return Err(err(format!(
                "the '{}' command cannot be used in a restore",
                p.cmd.name()
            )));
        }
        match args::to_op(&p).map_err(|f| err(f.msg))? {
            Some(op) => ops.push((line, op)),
            None => return Err(err("only table commands can be restored".into())),
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_crlf_comments() {
        let input = "\u{feff}# saved\r\n-A -t 198.18.0.100:80 -s wrr\r\n\r\nipvsadm -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3\r\n";
        let ops = parse("uvsadm", input.as_bytes()).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].0, 2);
        assert_eq!(ops[1].0, 4);
    }

    #[test]
    fn bad_lines_are_numbered() {
        let input = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11 -w lots\n";
        assert_eq!(
            parse("uvsadm", input.as_bytes()).unwrap_err(),
            LineError {
                line: 2,
                msg: "illegal weight specified".into()
            }
        );
        let e = parse("uvsadm", b"-C\n-L -n\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("uvsadm", b"-C\n\xff\xfe\n").unwrap_err();
        assert_eq!(
            e,
            LineError {
                line: 2,
                msg: "not valid UTF-8".into()
            }
        );
        let e = parse("uvsadm", b"-R\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}

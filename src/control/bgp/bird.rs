//! BIRD's control socket, spoken directly (what birdc speaks): on
//! connecting BIRD greets with `0001 BIRD … ready.`; each command is one
//! line, and each reply line starts with a four-digit code and `-` (more
//! follows) or ` ` (the reply's last line), or with a space alone (one
//! more line of the code before it). Codes 8xxx and 9xxx are errors.
//! Doing this here rather than running `birdc` keeps the codes (birdc
//! prints only the text), needs no process per look and bounds every
//! step with a timeout.

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The longest a whole exchange with BIRD may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why BIRD did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("BIRD's control socket {path}: {source}")]
    Socket {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("BIRD's control socket {0}: no answer within 5 s")]
    Timeout(String),
    #[error("BIRD's control socket {0}: the connection closed mid-answer")]
    Closed(String),
    #[error("BIRD's control socket {0}: `{1}` is not a reply line")]
    Garbled(String, String),
    /// An error reply: its code and text.
    #[error("BIRD refused `{cmd}`: {code:04} {text}")]
    Refused {
        cmd: String,
        code: u16,
        text: String,
    },
}

/// One reply line: its code (a continuation line carries the code before
/// it) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// A reply line as read: `Some(last)` with the code and text, or `None`
/// for a line that is not a reply line. `prev` is the code before, for a
/// continuation line.
pub fn parse_line(raw: &str, prev: u16) -> Option<(Line, bool)> {
    let raw = raw.trim_end_matches(['\n', '\r']);
    if let Some(rest) = raw.strip_prefix(' ') {
        let line = Line {
            code: prev,
            text: rest.to_string(),
        };
        return Some((line, false));
    }
    let (digits, sep) = (raw.get(..4)?, raw.get(4..5)?);
    let code = digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse::<u16>().ok())??;
    let last = match sep {
        " " => true,
        "-" => false,
        _ => return None,
    };
    let text = raw.get(5..).unwrap_or_default().to_string();
    Some((Line { code, text }, last))
}

/// Whether a code is an error reply (runtime 8xxx, syntax 9xxx).
pub fn is_error(code: u16) -> bool {
    code >= 8000
}

/// Sends one command and reads its whole reply.
pub async fn command(socket: &Path, cmd: &str) -> Result<Vec<Line>, BirdError> {
    let path = socket.display().to_string();
    match tokio::time::timeout(TIMEOUT, exchange(socket, cmd, &path)).await {
        Ok(r) => r,
        Err(_) => Err(BirdError::Timeout(path)),
    }
}

async fn exchange(socket: &Path, cmd: &str, path: &str) -> Result<Vec<Line>, BirdError> {
    let io = |source| BirdError::Socket {
        path: path.to_string(),
        source,
    };
    let stream = UnixStream::connect(socket).await.map_err(io)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    // The greeting, then the command's reply.
    read_reply(&mut r, path).await?;
    w.write_all(format!("{cmd}\n").as_bytes())
        .await
        .map_err(io)?;
    let lines = read_reply(&mut r, path).await?;
    match lines.iter().find(|l| is_error(l.code)) {
        Some(e) => Err(BirdError::Refused {
            cmd: cmd.to_string(),
            code: e.code,
            text: e.text.clone(),
        }),
        None => Ok(lines),
    }
}

/// Reads reply lines up to the last one.
async fn read_reply(
    r: &mut (impl AsyncBufReadExt + Unpin),
    path: &str,
) -> Result<Vec<Line>, BirdError> {
    let mut lines = Vec::new();
    let mut prev = 0;
    loop {
        let mut raw = String::new();
        let n = r
            .read_line(&mut raw)
            .await
            .map_err(|source| BirdError::Socket {
                path: path.to_string(),
                source,
            })?;
        if n == 0 {
            return Err(BirdError::Closed(path.to_string()));
        }
        // Asynchronous messages (`+`) are not part of the reply.
        if raw.starts_with('+') {
            continue;
        }
        let Some((line, last)) = parse_line(&raw, prev) else {
            return Err(BirdError::Garbled(path.to_string(), raw.trim_end().into()));
        };
        prev = line.code;
        lines.push(line);
        if last {
            return Ok(lines);
        }
    }
}

/// One row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    /// `BGP`, `Static`, `Kernel`, `Device`...
    pub proto: String,
    /// `up`, `down`, `start`...
    pub state: String,
    /// The rest of the row after Since: for BGP the session's state (`Established`,
    /// `Active`, `Connect`...) and its last error.
    pub info: String,
}

impl Protocol {
    pub fn is_bgp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("bgp")
    }

    pub fn established(&self) -> bool {
        self.is_bgp() && self.state == "up" && self.info.contains("Established")
    }
}

/// The rows of a `show protocols` reply (code 1002; the header is 2002).
pub fn protocols(lines: &[Line]) -> Vec<Protocol> {
    lines
        .iter()
        .filter(|l| l.code == 1002)
        .filter_map(|l| {
            let mut f = l.text.split_whitespace();
            let (name, proto, _table, state) = (f.next()?, f.next()?, f.next()?, f.next()?);
            // Since: one word (`10:00:01.000`, or a date once older).
            let _since = f.next();
            Some(Protocol {
                name: name.into(),
                proto: proto.into(),
                state: state.into(),
                info: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_carry_their_code_and_whether_they_end_the_reply() {
        let (l, last) = parse_line("0001 BIRD 2.0.12 ready.\n", 0).unwrap();
        assert_eq!(
            (l.code, l.text.as_str(), last),
            (1, "BIRD 2.0.12 ready.", true)
        );
        let (l, last) = parse_line("1002-uvs_vips   Static  master4  up  10:00:00", 0).unwrap();
        assert_eq!((l.code, last), (1002, false));
        let (l, last) = parse_line(" peer1  BGP  ---  up  10:00:01  Established", 1002).unwrap();
        assert_eq!((l.code, last), (1002, false));
        assert!(l.text.starts_with("peer1"));
        assert!(parse_line("0000 \n", 1002).unwrap().1);
        for bad in ["", "12", "abcd efg", "0003+x", "-1234 x"] {
            assert_eq!(parse_line(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn show_protocols_gives_each_bgp_sessions_state() {
        let raw = [
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-device1    Device     ---        up     10:00:00.000  ",
            " uvs_vips   Static     master4    up     10:00:00.000  ",
            " router1    BGP        ---        up     10:00:01.000  Established   ",
            " router2    BGP        ---        start  10:00:01.000  Active        Socket: Connection refused",
            "0000 ",
        ];
        let mut prev = 0;
        let lines: Vec<Line> = raw
            .iter()
            .map(|r| {
                let l = parse_line(r, prev).unwrap().0;
                prev = l.code;
                l
            })
            .collect();
        let p = protocols(&lines);
        assert_eq!(p.len(), 4);
        let bgp: Vec<_> = p.iter().filter(|p| p.is_bgp()).collect();
        assert_eq!(bgp.len(), 2);
        assert!(bgp[0].established());
        assert!(!bgp[1].established());
        assert!(bgp[1].info.starts_with("Active"));
        assert!(is_error(8002) && is_error(9001) && !is_error(3));
    }
}

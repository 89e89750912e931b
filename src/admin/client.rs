//! The client side of the daemon socket.

use crate::control::proto::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The control socket unless given (the director's setting's default).
pub use crate::config::settings::DEFAULT_SOCKET;

/// Sends one request and waits for its response.
pub fn call(socket: &Path, req: &Request) -> Result<Response, String> {
    let mut r = send(socket, req)?;
    read_one(&mut r)
}

/// Sends a request whose answer may come in chunks (`ConnChunk` lines
/// ended by another response) and hands each response to `each` as it
/// arrives, so the client never holds the whole answer either.
pub fn call_chunked(
    socket: &Path,
    req: &Request,
    mut each: impl FnMut(Response) -> Result<(), String>,
) -> Result<(), String> {
    let mut r = send(socket, req)?;
    loop {
        let resp = read_one(&mut r)?;
        let last = !matches!(resp, Response::ConnChunk(_));
        each(resp)?;
        if last {
            return Ok(());
        }
    }
}

fn read_one(r: &mut BufReader<UnixStream>) -> Result<Response, String> {
    let mut resp = String::new();
    let n = r
        .read_line(&mut resp)
        .map_err(|e| format!("reading from the daemon: {e}"))?;
    if n == 0 {
        return Err("the daemon closed the connection without an answer".into());
    }
    serde_json::from_str(&resp).map_err(|e| format!("bad answer from the daemon: {e}"))
}

fn send(socket: &Path, req: &Request) -> Result<BufReader<UnixStream>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the uvs daemon at {}: {e}\nIs `uvs director` running (and is this the right --socket)?",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("sending to the daemon: {e}"))?;
    Ok(BufReader::new(s))
}

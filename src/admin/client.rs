//! The client side of the daemon socket.

use crate::control::proto::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_SOCKET: &str = "/run/uvs/uvs.sock";

/// Sends one request and waits for its response.
pub fn call(socket: &Path, req: &Request) -> Result<Response, String> {
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
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)
        .map_err(|e| format!("reading from the daemon: {e}"))?;
    serde_json::from_str(&resp).map_err(|e| format!("bad answer from the daemon: {e}"))
}

//! The client side of the daemon socket.

use crate::control::proto::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The control socket unless given (the director's setting's default).
pub use crate::config::settings::DEFAULT_SOCKET;

/// What failed talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach the uvs daemon at {}: {source}\nIs `uvs director` running (and is this \
         the right --socket)?",
        socket.display()
    )]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The request would not serialize.
    #[error(transparent)]
    Encode(serde_json::Error),
    #[error("sending to the daemon: {0}")]
    Send(#[source] std::io::Error),
    #[error("reading from the daemon: {0}")]
    Receive(#[source] std::io::Error),
    #[error("the daemon closed the connection without an answer")]
    Closed,
    #[error("bad answer from the daemon: {0}")]
    Decode(#[source] serde_json::Error),
}

/// Sends one request and waits for its response.
pub fn call(socket: &Path, req: &Request) -> Result<Response, Error> {
    let mut r = send(socket, req, Duration::from_secs(60))?;
    read_one(&mut r)
}

/// Sends a request whose answer may come in chunks (`ConnChunk` lines
/// ended by another response) and hands each response to `each` as it
/// arrives, so the client never holds the whole answer either. `each`
/// may fail with an error of its own.
pub fn call_chunked<E: From<Error>>(
    socket: &Path,
    req: &Request,
    each: impl FnMut(Response) -> Result<(), E>,
) -> Result<(), E> {
    let more = |r: &Response| matches!(r, Response::ConnChunk(_));
    call_streamed(socket, req, Duration::from_secs(60), more, each)
}

/// Sends a request answered by a stream of lines (`more` says which are
/// followed by another), each handed to `each`; the daemon may be silent
/// between two for up to `wait`.
pub fn call_streamed<E: From<Error>>(
    socket: &Path,
    req: &Request,
    wait: Duration,
    more: impl Fn(&Response) -> bool,
    mut each: impl FnMut(Response) -> Result<(), E>,
) -> Result<(), E> {
    let mut r = send(socket, req, wait)?;
    loop {
        let resp = read_one(&mut r)?;
        let last = !more(&resp);
        each(resp)?;
        if last {
            return Ok(());
        }
    }
}

fn read_one(r: &mut BufReader<UnixStream>) -> Result<Response, Error> {
    let mut resp = String::new();
    let n = r.read_line(&mut resp).map_err(Error::Receive)?;
    if n == 0 {
        return Err(Error::Closed);
    }
    serde_json::from_str(&resp).map_err(Error::Decode)
}

fn send(socket: &Path, req: &Request, wait: Duration) -> Result<BufReader<UnixStream>, Error> {
    let mut s = UnixStream::connect(socket).map_err(|source| Error::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(wait)).ok();
    let mut line = serde_json::to_string(req).map_err(Error::Encode)?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(Error::Send)?;
    Ok(BufReader::new(s))
}

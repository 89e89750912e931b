//! The control socket: one request line per client, its answer, and the
//! connection listing streamed in chunks.

use super::Control;
use super::lifecycle::log_lines;
use crate::control::proto::{ReloadOptions, Request, Response};
use crate::control::workers::AskError;
use crate::lvs::ConnInfo;
use crate::lvs::request::DpRequest;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Largest request accepted (a restore of a very large table fits).
const MAX_REQUEST: u64 = 64 << 20;

/// Control clients served at once.
pub const MAX_CLIENTS: usize = 32;
/// A client must have sent its whole request line within this time.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must take each response line within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes one response line.
pub(super) async fn send_line(
    w: &mut (impl AsyncWriteExt + Unpin),
    resp: &Response,
) -> std::io::Result<()> {
    let mut out = serde_json::to_string(resp).unwrap_or_else(|_| "\"Ok\"".into());
    out.push('\n');
    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(out.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("the client does not read")),
    }
}

/// How a listener waits after a failed accept (out of descriptors, say):
/// doubling from 10 ms to 1 s, logged once per episode rather than once
/// per attempt.
pub(super) struct Backoff {
    what: &'static str,
    wait: Duration,
}

impl Backoff {
    pub(super) fn new(what: &'static str) -> Backoff {
        Backoff {
            what,
            wait: Duration::ZERO,
        }
    }

    /// An accept succeeded.
    pub(super) fn recovered(&mut self) {
        if !self.wait.is_zero() {
            tracing::info!("{} accepting again", self.what);
            self.wait = Duration::ZERO;
        }
    }

    /// An accept failed: waits before the next.
    pub(super) async fn failed(&mut self, e: &std::io::Error) {
        if self.wait.is_zero() {
            tracing::info!(
                "{} accept failed: {e}; backing off (not logged again until it recovers)",
                self.what
            );
        }
        self.wait = (self.wait * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.wait).await;
    }
}

impl Control {
    /// Accepts connections for as long as the daemon runs. At most
    /// [`MAX_CLIENTS`] are served at once (more are told so and closed), a
    /// client that sends no request within [`IDLE_TIMEOUT`] is dropped, and
    /// accept errors (out of descriptors, say) back off, logged once per
    /// episode rather than once per attempt.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
        let mut backoff = Backoff::new("control socket");
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    backoff.recovered();
                    let Ok(permit) = clients.clone().try_acquire_owned() else {
                        let busy = Response::Error {
                            index: None,
                            message: format!(
                                "the daemon is serving {MAX_CLIENTS} control clients already; \
                                 try again"
                            ),
                        };
                        tokio::spawn(async move {
                            let write = send_line(&mut stream, &busy);
                            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                        });
                        continue;
                    };
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.connection(stream).await;
                        drop(permit);
                    });
                }
                Err(e) => backoff.failed(&e).await,
            }
        }
    }

    pub(super) async fn connection(self: &Arc<Self>, stream: UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(r.take(MAX_REQUEST));
        let read = tokio::time::timeout(IDLE_TIMEOUT, reader.read_line(&mut line));
        let Ok(read) = read.await else {
            return;
        };
        let resp = match read {
            Err(e) => Response::Error {
                index: None,
                message: format!("bad request: {e}"),
            },
            Ok(_) => match serde_json::from_str::<Request>(&line) {
                Err(e) => Response::Error {
                    index: None,
                    message: format!("bad request: {e}"),
                },
                // These two answer on the connection itself: a listing in
                // chunks, and a handoff that stops the daemon once sent.
                Ok(Request::Conns) => return self.stream_conns(&mut w).await,
                Ok(Request::TraceLive { query, secs }) => {
                    return self.trace_live(query, secs, &mut w).await;
                }
                Ok(Request::Handoff) => {
                    let resp = self.handoff().await;
                    let done = matches!(resp, Response::Handoff(_));
                    let _ = send_line(&mut w, &resp).await;
                    let _ = w.shutdown().await;
                    if done {
                        self.handed_off.notify_one();
                    }
                    return;
                }
                Ok(req) => self.handle(req).await,
            },
        };
        let _ = send_line(&mut w, &resp).await;
    }

    /// The answer to a request of one response line.
    pub(super) async fn handle(self: &Arc<Self>, req: Request) -> Response {
        match req {
            Request::Apply(ops) => match self.apply(&ops).await {
                Ok(()) => Response::Ok,
                Err((index, e)) => Response::Error {
                    index: Some(index),
                    message: e.to_string(),
                },
            },
            Request::Snapshot => Response::Snapshot(self.state.lock().await.model.snapshot()),
            Request::Reload => self.reload_reply(ReloadOptions::default()).await,
            Request::ReloadWith(o) => self.reload_reply(o).await,
            Request::Ha => Response::Ha(self.ha_status()),
            Request::Health => Response::Health(self.state.lock().await.health_rows()),
            Request::Trace(q) => match self.trace(&q).await {
                Ok(r) => Response::Trace(Box::new(r)),
                Err(e) => Response::Error {
                    index: None,
                    message: e.to_string(),
                },
            },
            Request::Conns | Request::Handoff | Request::TraceLive { .. } => Response::Error {
                index: None,
                message: "answered on the connection, not here".into(),
            },
            Request::Status => Response::Status(self.status_pairs()),
            Request::Drain { on } => self.drain(on),
        }
    }

    /// `uvs status`: the data plane's counters, the routes (draining,
    /// BGP), and with HA the sync
    /// stream's rate (records per second each way) and records.
    pub(super) fn status_pairs(&self) -> Vec<(String, u64)> {
        let mut pairs = self.dp.pairs();
        pairs.extend(self.route_pairs());
        if let Some(h) = self.ha_status() {
            pairs.push(("sync_sent_per_s".into(), h.sync.sent_per_s.round() as u64));
            pairs.push((
                "sync_received_per_s".into(),
                h.sync.received_per_s.round() as u64,
            ));
            pairs.push(("sync_sent_records".into(), h.sync.counters.records_sent));
            pairs.push((
                "sync_received_records".into(),
                h.sync.counters.records_received,
            ));
        }
        pairs
    }

    /// A reload's answer, logged: its summary line (the details were
    /// logged before applying), or why it was refused.
    pub(super) async fn reload_reply(self: &Arc<Self>, o: ReloadOptions) -> Response {
        match self.reload(o).await {
            Ok(m) => {
                tracing::info!("{}", m.text.lines().next().unwrap_or_default());
                match o.json {
                    true => Response::Reloaded(Box::new(m.report)),
                    false => Response::Done(m.text),
                }
            }
            Err(e) => {
                let message = e.to_string();
                log_lines("reload refused, the table stays as it is: ", &message);
                Response::Error {
                    index: None,
                    message,
                }
            }
        }
    }

    /// One chunk of worker `w`'s connection listing from slot `from`,
    /// asked between its frames.
    pub(super) async fn conn_chunk(
        &self,
        w: usize,
        from: usize,
    ) -> Result<(Vec<ConnInfo>, Option<usize>), AskError> {
        let ask = |reply| DpRequest::Conns { from, reply };
        self.dp.ask(w, ask, Duration::from_secs(5)).await
    }

    /// Streams the listing chunk by chunk, worker after worker: the daemon
    /// holds one chunk at a time whatever the table's size, and a worker
    /// answers each between frames, so a listing of millions never pauses
    /// forwarding.
    pub(super) async fn stream_conns(&self, w: &mut (impl AsyncWriteExt + Unpin)) {
        let mut from = Some((0, 0));
        while let Some((worker, f)) = from {
            let (part, next) = match self.conn_chunk(worker, f).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = send_line(
                        w,
                        &Response::Error {
                            index: None,
                            message: e.to_string(),
                        },
                    )
                    .await;
                    return;
                }
            };
            let next = self.dp.next_cursor(worker, next);
            let resp = match next {
                Some(_) => Response::ConnChunk(part),
                None => Response::Conns(part),
            };
            if send_line(w, &resp).await.is_err() {
                return;
            }
            from = next;
        }
    }
}

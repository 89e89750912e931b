//! The daemon's control socket. Each connection carries one JSON request
//! line and gets one JSON response line. Changes are checked against the
//! host, applied to a copy of the model, and only then published. The
//! model's lock is never held across a netlink request: host lookups run
//! between a dry run and the real apply, so a listing never waits behind
//! an unresolved neighbour.

use super::acd;
use super::check::{self, CheckSpec};
use super::health::Health;
use super::model::FailAction;
use super::model::{Model, Need, OpError};
use super::proto::{Op, ReloadOptions, Request, Response};
use super::publish::Publisher;
use super::resolve;
use super::workers::Workers;
use crate::config::{self, Changes, Config, Quorum};
use crate::host::netlink::Netlink;
use crate::host::sys;
use crate::lvs::ConnInfo;
use crate::lvs::request::DpRequest;
use crate::lvs::service::Forward;
use crate::lvs::service::ServiceKey;
use crate::lvs::table::{LinkRoute, NextHop};
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

mod ha;
pub use ha::Queues;

/// Largest request accepted (a restore of a very large table fits).
const MAX_REQUEST: u64 = 64 << 20;

/// Puts a sorry server in (`add`) or takes it out.
fn sorry_op(key: ServiceKey, r: &config::RealServer, add: bool) -> Op {
    match add {
        true => Op::AddDest {
            key,
            dest: crate::control::proto::DestSpec {
                addr: r.addr,
                port: r.port,
                forward: r.forward,
                weight: 1,
                uthreshold: 0,
                lthreshold: 0,
            },
        },
        false => Op::DelDest {
            key,
            addr: r.addr,
            port: r.port,
        },
    }
}

/// Runs an operator's command (`sh -c`) without waiting for it; its exit
/// status is logged when it ends.
fn run_command(what: String, cmd: String) {
    tokio::spawn(async move {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .kill_on_drop(true)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("uvs: {what} command `{cmd}` failed: {s}"),
            Err(e) => eprintln!("uvs: {what} command `{cmd}` could not run: {e}"),
        }
    });
}

/// An op as a reload error names it.
fn describe(op: &Op) -> String {
    let svc = |k: &crate::lvs::service::ServiceKey| {
        format!("service {} {}:{}", k.protocol.name(), k.addr, k.port)
    };
    match op {
        Op::AddService { key, .. } | Op::EditService { key, .. } | Op::DelService { key } => {
            svc(key)
        }
        Op::AddDest { key, dest } | Op::EditDest { key, dest } => {
            format!("{}, real server {}:{}", svc(key), dest.addr, dest.port)
        }
        Op::DelDest { key, addr, port } => format!("{}, real server {addr}:{port}", svc(key)),
        Op::SetTimeouts(_) => "timeouts".into(),
        Op::Clear | Op::Zero { .. } => "the table".into(),
    }
}

/// Logs a message of several lines (a reload's summary) line by line,
/// each as a line of uvs's, the first after `what`.
pub fn log_lines(what: &str, message: &str) {
    let mut lines = message.lines();
    eprintln!("uvs: {what}{}", lines.next().unwrap_or_default());
    for l in lines {
        eprintln!("uvs: {l}");
    }
}

/// Control clients served at once.
pub const MAX_CLIENTS: usize = 32;
/// A client must have sent its whole request line within this time.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must take each response line within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A std mutex of the control plane, whatever a panicked holder left.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes one response line.
async fn send_line(w: &mut (impl AsyncWriteExt + Unpin), resp: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_string(resp).unwrap_or_else(|_| "\"Ok\"".into());
    out.push('\n');
    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(out.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("the client does not read")),
    }
}

/// How often an apply is retried when the model changed under its host
/// lookups (another change came in meanwhile) and needs new ones.
const APPLY_ROUNDS: usize = 4;

struct State {
    model: Model,
    /// Each real server's resolution state and since when.
    health: Health,
    publisher: Publisher,
    /// The kernel's routes through the director's links, for NAT replies.
    routes: Vec<LinkRoute>,
}

impl State {
    fn publish(&mut self) {
        self.publisher.publish(&self.model, &self.routes);
    }
}

pub struct Control {
    state: Mutex<State>,
    /// The data plane's workers: their requests and counters.
    dp: Workers,
    netlink: Netlink,
    /// The director's links: interface index and name, in link order.
    links: Vec<(u32, String)>,
    /// The config file and what it held when last loaded (a reload
    /// applies the difference from this).
    config: Mutex<Option<(PathBuf, Config)>>,
    /// The running health checks, one task per checked real server.
    checks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each configured service's quorum, and whether it is lost now.
    quorums: std::sync::Mutex<HashMap<ServiceKey, (Quorum, bool)>>,
    /// Set once the table was handed to a successor: the daemon stops.
    pub handed_off: tokio::sync::Notify,
    /// HA: the heartbeat state, when the director has peers.
    ha: std::sync::Mutex<Option<crate::ha::Ha>>,
}

/// What host lookups found for one apply.
#[derive(Default)]
struct Found {
    hops: HashMap<(Ipv4Addr, Forward), NextHop>,
    /// New VIPs already checked in this apply.
    vips: std::collections::HashSet<Ipv4Addr>,
    /// Real servers kept although they do not resolve yet, and why.
    pending: Vec<(Ipv4Addr, Forward, String)>,
    resolved: Vec<(Ipv4Addr, Forward)>,
    locals: Option<Vec<(Ipv4Addr, u32)>>,
}

impl Control {
    /// `publisher` is the one whose tables the data plane reads.
    pub fn new(
        publisher: Publisher,
        dp: Workers,
        netlink: Netlink,
        links: Vec<(u32, String)>,
        tun_source: Option<Ipv4Addr>,
    ) -> Control {
        Control {
            state: Mutex::new(State {
                model: Model::with_tun_source(tun_source),
                health: Health::default(),
                publisher,
                routes: Vec::new(),
            }),
            dp,
            netlink,
            links,
            config: Mutex::new(None),
            checks: std::sync::Mutex::new(Vec::new()),
            quorums: std::sync::Mutex::new(HashMap::new()),
            handed_off: tokio::sync::Notify::new(),
            ha: std::sync::Mutex::new(None),
        }
    }

    /// A planned restart, the old side: stops the data plane, hands the
    /// table (as ops) and every connection to the caller, and lets the
    /// daemon stop. The model's lock is held throughout, so no change
    /// slips in between.
    async fn handoff(&self) -> Response {
        let mut st = self.state.lock().await;
        let conns = match self
            .dp
            .ask_all(DpRequest::Handoff, Duration::from_secs(10))
            .await
        {
            Ok(c) => c.concat(),
            Err(message) => {
                return Response::Error {
                    index: None,
                    message,
                };
            }
        };
        // The XDP programs go now, not when this process ends: the
        // successor attaches its own, and until then the frames reach the
        // kernel (and its packet sockets) rather than our stopped ones.
        st.publisher.release_steering();
        let stopped_unix_ms = crate::host::unix_ms();
        eprintln!(
            "uvs: handing {} connections and {} services to a new director; stopping",
            conns.len(),
            st.model.services.len()
        );
        let state = crate::control::proto::HandoffState {
            ops: st.model.ops(),
            conns,
            stopped_unix_ms,
            pid: std::process::id(),
        };
        Response::Handoff(Box::new(state))
    }

    /// A planned restart, the new side: the old director's table, applied
    /// without probing its VIPs (they were this host's until a moment
    /// ago); the config file, if any, is remembered for reloads but not
    /// applied again.
    pub async fn take_over(
        self: &Arc<Self>,
        ops: &[Op],
        config: Option<(PathBuf, Config)>,
    ) -> Result<(), String> {
        let vips = ops.iter().filter_map(|o| match o {
            Op::AddService { key, .. } => Some(key.addr),
            _ => None,
        });
        self.apply_with(ops, vips.collect())
            .await
            .map_err(|(i, e)| format!("the handed-over table: {}: {e}", describe(&ops[i])))?;
        if let Some((path, cfg)) = config {
            self.start_checks(&cfg);
            self.set_quorums(&cfg).await;
            *self.config.lock().await = Some((path, cfg));
        }
        Ok(())
    }

    /// Applies a config file's table at start; the file is remembered for
    /// reloads. An error names what could not be applied.
    pub async fn load_config(self: &Arc<Self>, path: &Path, cfg: Config) -> Result<(), String> {
        if cfg.services.is_empty() {
            // Nothing runs yet (a --takeover start does not come here), so
            // nothing is lost: an operator may add services with uvsadm.
            eprintln!(
                "uvs: warning: {} has no services: the table starts empty (add services to the \
                 file and `uvs reload`, or with uvsadm)",
                path.display()
            );
        }
        let ops = cfg.ops_from(&Config::default());
        self.apply(&ops)
            .await
            .map_err(|(i, e)| format!("{}: {}: {e}", path.display(), describe(&ops[i])))?;
        eprintln!(
            "uvs: loaded {}: {} services, {} real servers",
            path.display(),
            cfg.services.len(),
            cfg.services
                .iter()
                .map(|s| s.real_servers.len())
                .sum::<usize>()
        );
        self.start_checks(&cfg);
        self.set_quorums(&cfg).await;
        *self.config.lock().await = Some((path.to_path_buf(), cfg));
        Ok(())
    }

    /// Takes each service's quorum from `cfg` and judges it now. A service
    /// whose sorry server changed while its quorum was lost gets the new
    /// one at once.
    async fn set_quorums(&self, cfg: &Config) {
        let old = std::mem::take(&mut *lock(&self.quorums));
        for (key, (q, lost)) in &old {
            let same = cfg
                .services
                .iter()
                .any(|s| s.key == *key && s.quorum.sorry == q.sorry);
            if *lost
                && !same
                && let Some(r) = &q.sorry
            {
                let _ = self.apply(&[sorry_op(*key, r, false)]).await;
            }
        }
        {
            let mut qs = lock(&self.quorums);
            for s in &cfg.services {
                let lost = old
                    .get(&s.key)
                    .is_some_and(|(q, lost)| *lost && q.sorry == s.quorum.sorry);
                qs.insert(s.key, (s.quorum.clone(), lost));
            }
        }
        for s in &cfg.services {
            self.judge_quorum(s.key).await;
        }
    }

    /// Compares a service's live weight (real servers up and resolved,
    /// the sorry server not counted) with its quorum. Losing it runs
    /// `quorum_down` and puts the sorry server in; regaining it runs
    /// `quorum_up` and takes the sorry server out. Each is logged once.
    async fn judge_quorum(&self, key: ServiceKey) {
        let Some((q, lost)) = lock(&self.quorums).get(&key).cloned() else {
            return;
        };
        let sorry = q.sorry.as_ref().map(|r| (r.addr, r.port));
        let live = self.state.lock().await.model.live_weight(&key, sorry);
        let now_lost = live < q.min_weight;
        if now_lost == lost {
            return;
        }
        let svc = format!("{} {}:{}", key.protocol.name(), key.addr, key.port);
        let (what, cmd) = match now_lost {
            true => ("lost", &q.down_cmd),
            false => ("regained", &q.up_cmd),
        };
        let to = match (&q.sorry, now_lost) {
            (Some(r), true) => format!(
                "; new connections go to the sorry server {}:{}",
                r.addr, r.port
            ),
            (Some(_), false) => "; the sorry server is taken out".into(),
            (None, _) => String::new(),
        };
        eprintln!(
            "uvs: {svc} quorum {what}: live weight {live}, quorum {}{to}",
            q.min_weight
        );
        if let Some(r) = &q.sorry
            && let Err((_, e)) = self.apply(&[sorry_op(key, r, now_lost)]).await
        {
            eprintln!("uvs: {svc}: sorry server {}:{}: {e}", r.addr, r.port);
        }
        if let Some(c) = lock(&self.quorums).get_mut(&key) {
            c.1 = now_lost;
        }
        if let Some(cmd) = cmd {
            run_command(
                format!("{svc} quorum_{}", if now_lost { "down" } else { "up" }),
                cmd.clone(),
            );
        }
    }

    /// (Re)starts one check task per checked real server of `cfg`. A
    /// server keeps its up or down state across a restart; its rise and
    /// fall counts start over.
    fn start_checks(self: &Arc<Self>, cfg: &Config) {
        let mut tasks = lock(&self.checks);
        for t in tasks.drain(..) {
            t.abort();
        }
        for s in &cfg.services {
            for r in &s.real_servers {
                let Some(spec) = r.check.clone() else {
                    continue;
                };
                let me = self.clone();
                let (key, addr, port, action) = (s.key, r.addr, r.port, s.on_failure);
                tasks.push(tokio::spawn(async move {
                    me.check_loop(key, addr, port, action, spec).await
                }));
            }
        }
    }

    /// One real server's check, forever: after a random warm-up, one
    /// check per interval; `fall` failures in a row take it down (quiesce
    /// or remove), `rise` successes bring it back. Each change is logged
    /// once, with the reason, and published.
    async fn check_loop(
        &self,
        key: crate::lvs::service::ServiceKey,
        addr: Ipv4Addr,
        port: u16,
        action: FailAction,
        spec: CheckSpec,
    ) {
        use std::hash::BuildHasher;
        let warm = spec.warmup.as_micros().max(1) as u64;
        let jitter = foldhash::fast::RandomState::default().hash_one((addr, port)) % warm;
        tokio::time::sleep(Duration::from_micros(jitter)).await;
        let up = !self.state.lock().await.model.is_down(&key, addr, port);
        let mut counter = check::Counter::new(up);
        let to = check::target(&spec, addr, port);
        let mut tick = tokio::time::interval(spec.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = check::run_once(&spec, to).await;
            if let Ok(Some(w)) = result {
                self.dynamic_weight(key, addr, port, w).await;
            }
            let Some(now_up) = counter.record(result.is_ok(), spec.rise, spec.fall) else {
                continue;
            };
            let why = match &result {
                Ok(_) => format!(
                    "{} check passed, {} of {} in a row",
                    spec.kind_name(),
                    spec.rise,
                    spec.rise
                ),
                Err(e) => format!("{e}, {} of {} checks failed", spec.fall, spec.fall),
            };
            let svc = format!("{} {}:{}", key.protocol.name(), key.addr, key.port);
            let what = match (now_up, action) {
                (true, _) => "up",
                (false, FailAction::Quiesce) => "down (quiesced: weight 0)",
                (false, FailAction::Remove) => "down (removed)",
            };
            eprintln!("uvs: {svc} real server {addr}:{port} {what}: {why}");
            {
                let mut st = self.state.lock().await;
                let down = (!now_up).then_some(action);
                st.health.checked(key, addr, port, why);
                if st.model.set_down(&key, addr, port, down) {
                    st.publish();
                }
            }
            self.judge_quorum(key).await;
        }
    }

    /// An exec check's exit code set a weight (misc_dynamic): used in
    /// place of the configured one, shown by `-Ln`, logged when it changes.
    async fn dynamic_weight(&self, key: ServiceKey, addr: Ipv4Addr, port: u16, w: u32) {
        let changed = {
            let mut st = self.state.lock().await;
            let changed = st.model.set_dynamic_weight(&key, addr, port, Some(w));
            if changed {
                st.publish();
            }
            changed
        };
        if changed {
            eprintln!(
                "uvs: {} {}:{} real server {addr}:{port} weight {w} (set by its check)",
                key.protocol.name(),
                key.addr,
                key.port
            );
            self.judge_quorum(key).await;
        }
    }

    pub async fn has_config(&self) -> bool {
        self.config.lock().await.is_some()
    }

    /// Re-reads the config file and applies only what changed since it
    /// was last loaded, all or nothing: an error in the file or in
    /// applying it leaves the running table as it is. What changes is
    /// logged before it is applied and is the answer (its first line the
    /// summary, then one line per service). A file with no services,
    /// where the file as last loaded had some, is refused unless forced:
    /// a 0-byte or truncated file would remove every service and end
    /// their connections.
    pub async fn reload(self: &Arc<Self>, o: ReloadOptions) -> Result<String, String> {
        let mut cur = self.config.lock().await;
        let Some((path, old)) = cur.as_ref() else {
            return Err("the director was started without --config: nothing to reload".into());
        };
        let file = path.display();
        let new = config::load(path).map_err(|e| e.to_string())?;
        let changes = Changes::between(old, &new);
        let ops = new.ops_from(old);
        let mut summary = format!(
            "{} to the table ({})",
            config::counted(ops.len(), "change"),
            changes.counts()
        );
        for l in changes.lines() {
            summary += "\n  ";
            summary += &l;
        }
        if changes.removes_every_service() && !o.force {
            return Err(format!(
                "{file} has no services: this reload would remove all {} the file had and end \
                 their connections (an empty or truncated file?). Nothing changed. If the file is \
                 right, apply it with `uvs reload --force` (a SIGHUP cannot force it)\n{summary}",
                config::counted(changes.removed(), "service")
            ));
        }
        if o.dry_run {
            // The model's own checks (a service uvsadm removed, say); the
            // host's (ARP probes, MACs) wait for the real reload.
            let st = self.state.lock().await;
            st.model
                .apply_all(&ops, &mut |_, _| Ok(NO_HOP), &mut |_, _| {})
                .map_err(|(i, e)| format!("{file}: {}: {e}", describe(&ops[i])))?;
            return Ok(format!("dry run, nothing applied: {file}: {summary}"));
        }
        if !ops.is_empty() || !changes.is_empty() {
            log_lines(&format!("reloading {file}: "), &summary);
        }
        if !ops.is_empty() {
            self.apply(&ops)
                .await
                .map_err(|(i, e)| format!("{file}: {}: {e}", describe(&ops[i])))?;
        }
        let msg = format!("reloaded {file}: {summary}");
        let path = path.clone();
        self.start_checks(&new);
        self.set_quorums(&new).await;
        *cur = Some((path, new));
        Ok(msg)
    }

    /// Accepts connections for as long as the daemon runs. At most
    /// [`MAX_CLIENTS`] are served at once (more are told so and closed), a
    /// client that sends no request within [`IDLE_TIMEOUT`] is dropped, and
    /// accept errors (out of descriptors, say) back off, logged once per
    /// episode rather than once per attempt.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
        let mut backoff = Duration::ZERO;
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    if !backoff.is_zero() {
                        eprintln!("uvs: control socket accepting again");
                        backoff = Duration::ZERO;
                    }
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
                Err(e) => {
                    if backoff.is_zero() {
                        eprintln!(
                            "uvs: control socket accept failed: {e}; backing off (not logged \
                             again until it recovers)"
                        );
                    }
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    async fn connection(self: &Arc<Self>, stream: UnixStream) {
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
    async fn handle(self: &Arc<Self>, req: Request) -> Response {
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
            Request::Health => {
                let mut st = self.state.lock().await;
                let st = &mut *st;
                Response::Health(st.health.rows(&st.model))
            }
            Request::Conns | Request::Handoff => Response::Error {
                index: None,
                message: "answered on the connection, not here".into(),
            },
            Request::Status => {
                let mut pairs = self.dp.pairs();
                // HA: the sync stream's rate, records per second each way.
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
                Response::Status(pairs)
            }
        }
    }

    /// A reload's answer, logged: its summary line (the details were
    /// logged before applying), or why it was refused.
    async fn reload_reply(self: &Arc<Self>, o: ReloadOptions) -> Response {
        match self.reload(o).await {
            Ok(m) => {
                eprintln!("uvs: {}", m.lines().next().unwrap_or_default());
                Response::Done(m)
            }
            Err(message) => {
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
    async fn conn_chunk(
        &self,
        w: usize,
        from: usize,
    ) -> Result<(Vec<ConnInfo>, Option<usize>), String> {
        let ask = |reply| DpRequest::Conns { from, reply };
        self.dp.ask(w, ask, Duration::from_secs(5)).await
    }

    /// Streams the listing chunk by chunk, worker after worker: the daemon
    /// holds one chunk at a time whatever the table's size, and a worker
    /// answers each between frames, so a listing of millions never pauses
    /// forwarding.
    async fn stream_conns(&self, w: &mut (impl AsyncWriteExt + Unpin)) {
        let mut from = Some((0, 0));
        while let Some((worker, f)) = from {
            let (part, next) = match self.conn_chunk(worker, f).await {
                Ok(c) => c,
                Err(message) => {
                    let _ = send_line(
                        w,
                        &Response::Error {
                            index: None,
                            message,
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

    /// All or nothing: a dry run finds semantic errors and what the host
    /// must be asked; the host checks and MAC lookups run with the model
    /// unlocked; then the ops are applied for real to a copy that replaces
    /// the model and is published. If the model changed meanwhile so that
    /// other lookups are needed, the round is repeated.
    async fn apply(&self, ops: &[Op]) -> Result<(), (usize, OpError)> {
        self.apply_with(ops, Default::default()).await
    }

    /// `apply`, with these VIPs taken as already checked.
    async fn apply_with(
        &self,
        ops: &[Op],
        known_vips: std::collections::HashSet<Ipv4Addr>,
    ) -> Result<(), (usize, OpError)> {
        let mut found = Found {
            vips: known_vips,
            ..Found::default()
        };
        for _ in 0..APPLY_ROUNDS {
            let (needs, nat_before) = {
                let st = self.state.lock().await;
                let mut needs: Vec<(usize, Need)> = Vec::new();
                st.model
                    .apply_all(ops, &mut |_, _| Ok(NO_HOP), &mut |i, n| needs.push((i, n)))?;
                (needs, st.model.has_masq())
            };
            let adds_nat = needs
                .iter()
                .any(|(_, n)| matches!(n, Need::Mac(_, Forward::Masq)));
            self.ask_host(&mut found, needs).await?;
            // The first NAT server's table needs the routes towards
            // clients (with the gateways' MACs): read them now, unlocked,
            // rather than at the next refresh.
            let routes = match adds_nat && !nat_before {
                true => Some(resolve::link_routes(&self.netlink, &self.links).await),
                false => None,
            };
            let mut st = self.state.lock().await;
            let mut missing = false;
            let lookup = &mut |ip, f| match found.hops.get(&(ip, f)) {
                Some(h) => Ok(*h),
                None => {
                    missing = true;
                    Err(OpError::Host(format!("no MAC for {ip}")))
                }
            };
            let new = match st.model.apply_all(ops, lookup, &mut |_, _| {}) {
                Err(_) if missing => continue,
                r => r?,
            };
            let nat_now = !st.model.has_masq() && new.has_masq();
            st.model = new;
            for (ip, fwd, why) in found.pending.drain(..) {
                eprintln!(
                    "uvs: real server {ip} ({}) does not resolve yet: {why}; kept, and not \
                     scheduled until it answers",
                    fwd.name()
                );
                st.health.pending(ip, fwd, why);
            }
            for (ip, fwd) in found.resolved.drain(..) {
                st.health.seen_resolved(ip, fwd);
            }
            if let Some(routes) = routes.filter(|_| nat_now) {
                st.routes = routes;
            }
            st.publish();
            return Ok(());
        }
        Err((
            0,
            OpError::Host("the configuration kept changing; try again".into()),
        ))
    }

    /// Asks the host this round's new questions, each once and all at
    /// once: ARP probes and neighbour resolution wait on the network, so a
    /// restore of many new VIPs or many absent servers takes as long as
    /// the slowest, not the sum. The first failure in op order is the
    /// answer.
    async fn ask_host(
        &self,
        found: &mut Found,
        needs: Vec<(usize, Need)>,
    ) -> Result<(), (usize, OpError)> {
        let mut todo: Vec<(usize, Need)> = Vec::new();
        for (i, need) in needs {
            let new = match need {
                Need::NewVip(v) => !found.vips.contains(&v),
                Need::Mac(ip, f) => !found.hops.contains_key(&(ip, f)),
            };
            if new && !todo.iter().any(|(_, n)| *n == need) {
                todo.push((i, need));
            }
        }
        if found.locals.is_none() && todo.iter().any(|(_, n)| matches!(n, Need::NewVip(_))) {
            let first = todo
                .iter()
                .find(|(_, n)| matches!(n, Need::NewVip(_)))
                .map_or(0, |t| t.0);
            found.locals = Some(
                self.netlink
                    .addresses()
                    .await
                    .map_err(|e| (first, OpError::Host(e)))?,
            );
        }
        let locals = found.locals.clone().unwrap_or_default();
        let answers =
            futures::future::join_all(todo.iter().map(|(_, n)| self.ask(*n, &locals))).await;
        for ((i, need), answer) in todo.into_iter().zip(answers) {
            match (need, answer.map_err(|e| (i, e))?) {
                (Need::NewVip(v), _) => {
                    found.vips.insert(v);
                }
                (Need::Mac(ip, fwd), Some(resolve::Hop::Resolved(h))) => {
                    found.hops.insert((ip, fwd), h);
                    found.resolved.push((ip, fwd));
                }
                (Need::Mac(ip, fwd), Some(resolve::Hop::Pending { link, why })) => {
                    found.hops.insert((ip, fwd), NextHop::pending(link));
                    found.pending.push((ip, fwd, why));
                }
                (Need::Mac(..), None) => {}
            }
        }
        Ok(())
    }

    /// Answers one host question: a new VIP's checks (`None`), or a real
    /// server's next hop.
    async fn ask(
        &self,
        need: Need,
        locals: &[(Ipv4Addr, u32)],
    ) -> Result<Option<resolve::Hop>, OpError> {
        match need {
            Need::NewVip(vip) => {
                if let Some((_, idx)) = locals.iter().find(|(a, _)| *a == vip) {
                    let dev = self.netlink.link_name(*idx).await;
                    return Err(OpError::Host(format!(
                        "VIP {vip} is configured on the director ({dev}): the kernel would answer \
                         and reset its traffic. uvs answers ARP for the VIP itself; remove it with \
                         `ip addr del {vip}/32 dev {dev}` (use the address's real prefix)"
                    )));
                }
                self.check_vip_on_links(vip).await?;
                Ok(None)
            }
            Need::Mac(ip, fwd) => resolve::next_hop(&self.netlink, ip, fwd, &self.links)
                .await
                .map(Some)
                .map_err(OpError::Host),
        }
    }

    /// A new VIP must not be the network or broadcast address of a subnet
    /// on the director's links, and no host there may answer ARP for it:
    /// announcing it would take another host's address over.
    async fn check_vip_on_links(&self, vip: Ipv4Addr) -> Result<(), OpError> {
        let addrs = self
            .netlink
            .addresses_with_prefix()
            .await
            .map_err(OpError::Host)?;
        for (addr, idx, len) in addrs {
            let Some((_, name)) = self.links.iter().find(|(i, _)| *i == idx) else {
                continue;
            };
            if len >= 31 {
                continue;
            }
            let mask = u32::MAX << (32 - u32::from(len));
            let network = Ipv4Addr::from(u32::from(addr) & mask);
            let broadcast = Ipv4Addr::from(u32::from(addr) | !mask);
            if vip == network || vip == broadcast {
                let which = if vip == network {
                    "network"
                } else {
                    "broadcast"
                };
                return Err(OpError::BadAddress(format!(
                    "{vip} cannot be a VIP: it is the {which} address of {network}/{len} on {name}"
                )));
            }
        }
        for (_, name) in &self.links {
            let Ok((mac, _)) = sys::link_info(name) else {
                continue;
            };
            let (name, mac) = (name.clone(), MacAddr(mac));
            let probe = tokio::task::spawn_blocking(move || {
                acd::probe(&name, mac, vip, acd::PROBE_WAIT).map(|o| (name, o))
            });
            match probe.await {
                // The other director of an HA pair holds it: as it should.
                Ok(Ok((name, Some(owner)))) if self.is_peer(owner).await => {
                    eprintln!("uvs: VIP {vip} is held by an HA peer ({owner} on {name})");
                }
                Ok(Ok((name, Some(owner)))) => {
                    return Err(OpError::Host(format!(
                        "VIP {vip} is in use: {owner} answered ARP for it on {name}. uvs will not \
                         announce an address another host has (its gratuitous ARP would take the \
                         address over on the whole segment); choose a free address"
                    )));
                }
                Ok(Ok((_, None))) => {}
                Ok(Err(e)) => eprintln!("uvs: warning: cannot probe for {vip} with ARP: {e}"),
                Err(e) => eprintln!("uvs: warning: cannot probe for {vip} with ARP: {e}"),
            }
        }
        Ok(())
    }

    /// Whether `mac` is one of the HA peers' (resolved by ARP if the
    /// neighbour table does not have it yet).
    async fn is_peer(&self, mac: MacAddr) -> bool {
        for peer in self.ha_peers() {
            let hop = resolve::next_hop(&self.netlink, peer, Forward::Route, &self.links).await;
            if matches!(hop, Ok(resolve::Hop::Resolved(h)) if h.mac == mac) {
                return true;
            }
        }
        false
    }

    /// Retries the real servers that do not resolve yet, every `every`:
    /// one that answers is put in service without any command (and
    /// logged); one whose route changed so that it can never work is
    /// logged and stays out of service.
    pub async fn resolve_pending(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let targets = self.state.lock().await.model.pending_targets();
            for (ip, fwd) in targets {
                let hop = resolve::next_hop(&self.netlink, ip, fwd, &self.links).await;
                let mut st = self.state.lock().await;
                match hop {
                    Ok(resolve::Hop::Resolved(h)) => {
                        if st.model.set_hop(ip, fwd, h) {
                            eprintln!(
                                "uvs: real server {ip} ({}) resolved ({}): in service",
                                fwd.name(),
                                h.mac
                            );
                            st.health.resolved(ip, fwd);
                            st.publish();
                            let keys: Vec<ServiceKey> =
                                st.model.services.iter().map(|s| s.key).collect();
                            drop(st);
                            for k in keys {
                                self.judge_quorum(k).await;
                            }
                            continue;
                        }
                    }
                    Ok(resolve::Hop::Pending { why, .. }) => st.health.pending(ip, fwd, why),
                    Err(why) => st.health.pending(ip, fwd, why),
                }
            }
        }
    }

    /// Drives the --rate estimators every 2 s, as the kernel does.
    pub async fn estimate_rates(self: Arc<Self>) {
        let period = Duration::from_secs(crate::lvs::stats::ESTIMATOR_PERIOD_SECS);
        let mut t = tokio::time::interval(period);
        loop {
            t.tick().await;
            self.state.lock().await.model.estimate();
        }
    }

    /// Keeps the MACs uvs sends to current: a real server (DR) or the next
    /// hop towards one (TUN, NAT: the server itself or its router) replaced
    /// behind the same address (failover, new NIC) and announced with a
    /// gratuitous ARP is followed without operator action. The routes NAT
    /// replies follow are re-read at the same time.
    pub async fn refresh_neighbours(self: Arc<Self>, every: Duration) {
        loop {
            let (targets, nat) = {
                let st = self.state.lock().await;
                (st.model.dest_targets(), st.model.has_masq())
            };
            let mut found = Vec::new();
            for (a, fwd, link) in targets {
                if let Some(m) =
                    resolve::current_mac(&self.netlink, a, fwd, link, &self.links).await
                {
                    found.push((a, fwd, m));
                }
            }
            let routes = match nat {
                true => resolve::link_routes(&self.netlink, &self.links).await,
                false => Vec::new(),
            };
            let mut st = self.state.lock().await;
            let mut changed = false;
            for (a, fwd, m) in found {
                changed |= st.model.set_mac(a, fwd, m);
            }
            if routes != st.routes {
                st.routes = routes;
                changed = true;
            }
            if changed {
                st.publish();
            } else {
                // An address added to the director since: its traffic is
                // the kernel's, so the XDP maps learn it.
                st.publisher.refresh_steering();
            }
            drop(st);
            tokio::time::sleep(every).await;
        }
    }

    /// Warns when a NAT real server of a TCP service gets packets but none
    /// of its replies come back through the director: its route to the clients bypasses
    /// the director, so clients get answers from the RIP they never asked
    /// and drop them. The director cannot read the real server's routes;
    /// this is what it can see.
    pub async fn watch_nat_replies(self: Arc<Self>, every: Duration) {
        let mut last: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut warned: std::collections::HashSet<u64> = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(every).await;
            let dests = self.state.lock().await.model.masq_dests();
            let mut seen = HashMap::new();
            for (id, addr, port, link, inpkts, outpkts) in dests {
                seen.insert(id, (inpkts, outpkts));
                let Some(&(in0, out0)) = last.get(&id) else {
                    continue;
                };
                if outpkts > out0 {
                    warned.remove(&id);
                } else if inpkts >= in0 + 3 && warned.insert(id) {
                    let ours = self.link_address(link).await;
                    eprintln!(
                        "uvs: warning: NAT real server {addr}:{port} got {} packets in {} s but none of its \
                         replies came back through the director. Either it is not answering at all, or its \
                         route back to the clients does not go through the director, so clients drop the \
                         answers. Make the director its gateway \
                         (on the real server: `ip route replace default via {ours}`), or check with \
                         `uvs audit --mode nat --director {ours}` there",
                        inpkts - in0,
                        every.as_secs()
                    );
                }
            }
            last = seen;
        }
    }

    /// The director's first address on `link`, or words naming the link,
    /// for messages.
    async fn link_address(&self, link: u8) -> String {
        let Some((index, name)) = self.links.get(usize::from(link)) else {
            return "this director's address".into();
        };
        match self.netlink.first_address(*index).await {
            Some(a) => a.to_string(),
            None => format!("this director's address on {name}"),
        }
    }
}

/// Placeholder next hop for the dry run, which only collects what to look
/// up.
const NO_HOP: NextHop = NextHop {
    link: 0,
    mac: MacAddr::ZERO,
};

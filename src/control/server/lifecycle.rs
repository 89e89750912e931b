//! The table's life: loaded from the config file at start, reloaded with
//! what changed, handed to a successor (`--takeover`) or taken from a
//! predecessor.

use super::Control;
use super::apply::NO_HOP;
use crate::control::model::OpError;
use crate::control::plan::{Source, SourceError};
use crate::control::proto::ServiceDef;
use crate::control::proto::{Op, ReloadOptions, ReloadReport, Response};
use crate::host::notify;
use crate::lvs::request::DpRequest;
use std::sync::Arc;
use std::time::Duration;

/// What a reload did: `uvs reload`'s text (its first line the summary)
/// and the same facts for scripts.
pub struct Reloaded {
    pub text: String,
    pub report: ReloadReport,
}

/// Why a table was not loaded, reloaded or taken over (the running
/// table stays as it is).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the director was started without --config: nothing to reload")]
    NoConfig,
    /// The source could not be read again (its own error).
    #[error(transparent)]
    Read(SourceError),
    /// The reload would remove every service: why, and how to force it.
    #[error("{0}")]
    Refused(String),
    /// An op of `from` (the file, or the handed-over table) was refused;
    /// `op` names it.
    #[error("{from}: {op}: {source}")]
    Apply {
        from: String,
        op: String,
        #[source]
        source: OpError,
    },
}

impl LoadError {
    /// Op `i` of `ops`, from `from`, refused.
    fn apply(from: &str, ops: &[Op]) -> impl FnOnce((usize, OpError)) -> LoadError {
        move |(i, source)| LoadError::Apply {
            from: from.to_string(),
            op: describe(&ops[i]),
            source,
        }
    }
}

/// An op as a reload error names it.
fn describe(op: &Op) -> String {
    let svc = |k: &crate::lvs::service::ServiceKey| format!("service {k}");
    match op {
        Op::AddService(ServiceDef { key, .. })
        | Op::EditService(ServiceDef { key, .. })
        | Op::DelService { key } => svc(key),
        Op::AddDest { key, dest } | Op::EditDest { key, dest } => {
            format!(
                "{}, real server {}",
                svc(key),
                std::net::SocketAddr::new(dest.addr, dest.port)
            )
        }
        Op::DelDest { key, addr, port } => {
            format!(
                "{}, real server {}",
                svc(key),
                std::net::SocketAddr::new(*addr, *port)
            )
        }
        Op::SetTimeouts(_) => "timeouts".into(),
        Op::SetMark { mark, .. } => format!("mark {mark}"),
        Op::Clear | Op::Zero { .. } => "the table".into(),
    }
}

/// Logs a message of several lines (a reload's summary) line by line,
/// each as a line of uvs's, the first after `what`.
pub fn log_lines(what: &str, message: &str) {
    let mut lines = message.lines();
    tracing::info!("{what}{}", lines.next().unwrap_or_default());
    for l in lines {
        tracing::info!("{l}");
    }
}

impl Control {
    /// A planned restart, the old side: stops the data plane, hands the
    /// table (as ops) and every connection to the caller, and lets the
    /// daemon stop. The model's lock is held throughout, so no change
    /// slips in between.
    pub(super) async fn handoff(&self) -> Response {
        let mut st = self.state.lock().await;
        let conns = match self
            .dp
            .ask_all(DpRequest::Handoff, Duration::from_secs(10))
            .await
        {
            Ok(c) => c.concat(),
            Err(e) => {
                return Response::Error {
                    index: None,
                    message: e.to_string(),
                };
            }
        };
        // The XDP programs go now, not when this process ends: the
        // successor attaches its own, and until then the frames reach the
        // kernel (and its packet sockets) rather than our stopped ones.
        st.publisher.release_steering();
        let stopped_unix_ms = crate::host::unix_ms();
        tracing::info!(
            "handing {} connections and {} services to a new director; stopping",
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
    /// ago); the config file, if any, is remembered for reloads and its
    /// checks and quorums run, but its table is not applied again.
    pub async fn take_over(
        self: &Arc<Self>,
        ops: &[Op],
        source: Option<Box<dyn Source>>,
    ) -> Result<(), LoadError> {
        let vips = ops.iter().flat_map(|o| match o {
            Op::AddService(ServiceDef { key, .. }) => key.vip().into_iter().collect(),
            Op::SetMark { rules, .. } => rules.iter().map(|r| r.vip).collect(),
            _ => Vec::new(),
        });
        self.apply_with(ops, vips.collect())
            .await
            .map_err(LoadError::apply("the handed-over table", ops))?;
        if let Some(src) = source {
            let p = src.supervision();
            self.start_checks(&p.checks);
            self.set_quorums(&p.quorums).await;
            *self.config.lock().await = Some(src);
        }
        Ok(())
    }

    /// Applies a source's (the config file's) table at start; the source
    /// is kept for reloads. An error names what could not be applied.
    pub async fn load_config(self: &Arc<Self>, source: Box<dyn Source>) -> Result<(), LoadError> {
        let (plan, notes) = source.start();
        let name = source.name();
        self.apply(&plan.ops)
            .await
            .map_err(LoadError::apply(&name, &plan.ops))?;
        for n in notes {
            tracing::info!("{n}");
        }
        self.start_checks(&plan.checks);
        self.set_quorums(&plan.quorums).await;
        *self.config.lock().await = Some(source);
        Ok(())
    }

    pub async fn has_config(&self) -> bool {
        self.config.lock().await.is_some()
    }

    /// Reloads the config file (`reload_file`), telling systemd
    /// (`RELOADING=1`, then `READY=1` whether it was applied or refused:
    /// `systemctl reload` waits for it). A dry run tells it nothing.
    pub async fn reload(self: &Arc<Self>, o: ReloadOptions) -> Result<Reloaded, LoadError> {
        if o.dry_run {
            return self.reload_file(o).await;
        }
        notify::reloading();
        let r = self.reload_file(o).await;
        notify::ready(match &r {
            Ok(m) => m.text.lines().next().unwrap_or("reloaded"),
            Err(_) => "forwarding; the last reload was refused, the table stays as it was",
        });
        r
    }

    /// Re-reads the config file and applies only what changed since it
    /// was last loaded, all or nothing: an error in the file or in
    /// applying it leaves the running table as it is. What changes is
    /// logged before it is applied and is the answer (its first line the
    /// summary, then one line per service). A file with no services,
    /// where the file as last loaded had some, is refused unless forced:
    /// a 0-byte or truncated file would remove every service and end
    /// their connections.
    async fn reload_file(self: &Arc<Self>, o: ReloadOptions) -> Result<Reloaded, LoadError> {
        let mut cur = self.config.lock().await;
        let Some(src) = cur.as_mut() else {
            return Err(LoadError::NoConfig);
        };
        let file = src.name();
        let r = src.reload().map_err(LoadError::Read)?;
        let ops = &r.plan.ops;
        if let Some(why) = r.refused_unless_forced.filter(|_| !o.force) {
            return Err(LoadError::Refused(why));
        }
        if o.dry_run {
            // The model's own checks (a service uvsadm removed, say); the
            // host's (ARP probes, MACs) wait for the real reload.
            let st = self.state.lock().await;
            st.model
                .apply_all(ops, &mut |_, _| Ok(NO_HOP), &mut |_, _| {})
                .map_err(LoadError::apply(&file, ops))?;
            return Ok(Reloaded {
                text: format!("dry run, nothing applied: {file}: {}", r.summary),
                report: ReloadReport {
                    dry_run: true,
                    ..r.report
                },
            });
        }
        if !r.changes_nothing {
            log_lines(&format!("reloading {file}: "), &r.summary);
        }
        if !ops.is_empty() {
            self.apply(ops)
                .await
                .map_err(LoadError::apply(&file, ops))?;
        }
        self.start_checks(&r.plan.checks);
        self.set_quorums(&r.plan.quorums).await;
        src.commit();
        Ok(Reloaded {
            text: format!("reloaded {file}: {}", r.summary),
            report: r.report,
        })
    }
}

//! The table's life: loaded from the config file at start, reloaded with
//! what changed, handed to a successor (`--takeover`) or taken from a
//! predecessor.

use super::Control;
use super::apply::NO_HOP;
use crate::config::{self, Changes, Config};
use crate::control::proto::{Op, ReloadOptions, Response};
use crate::dataplane::DpRequest;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
}

//! `uvs trace`: gathers what the workers and the model know of a flow
//! for [`explain`], and `--live`'s stream of frame verdicts.

use super::{Control, lock, serve::send_line};
use crate::control::proto::Response;
use crate::control::proto::{TraceQuorum, TraceReport};
use crate::control::trace::{Inputs, explain};
use crate::control::workers::AskError;
use crate::lvs::request::DpRequest;
use crate::lvs::service::ServiceKey;
use crate::lvs::trace::{FlowFacts, TraceQuery};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// The longest `--live` runs.
pub const LIVE_MAX_SECS: u32 = 3600;

impl Control {
    /// Where a flow goes and why.
    pub(super) async fn trace(&self, q: &TraceQuery) -> Result<TraceReport, AskError> {
        let facts = self.trace_facts(q).await?;
        let key = ServiceKey::addr(q.protocol, q.vip, q.vport);
        let (service, health) = {
            let mut st = self.state.lock().await;
            let snap = st.model.snapshot();
            let svc = snap.services.into_iter().find(|s| s.def.key == key);
            let name = key.to_string();
            let rows = st.health_rows();
            (
                svc,
                rows.into_iter()
                    .filter(|r| r.service == name)
                    .collect::<Vec<_>>(),
            )
        };
        let quorum = lock(&self.quorums).get(&key).map(|(q, lost)| TraceQuorum {
            min_weight: q.min_weight,
            lost: *lost,
            sorry: q
                .sorry
                .as_ref()
                .map(|s| SocketAddr::new(s.addr, s.port).to_string()),
        });
        Ok(explain(Inputs {
            query: q,
            service: service.as_ref(),
            health: &health,
            quorum,
            facts,
            ha_role: self.ha_status().map(|h| h.state()),
        }))
    }

    /// Every worker's facts combined: with a client port, the worker that
    /// owns it; without, the entries of every worker's whole table (in
    /// chunks, between frames), the template and next server from the
    /// worker that owns the client's port-0 flow.
    async fn trace_facts(&self, q: &TraceQuery) -> Result<FlowFacts, AskError> {
        let wait = Duration::from_secs(5);
        let owner = self.dp.of(q.client, q.cport.unwrap_or(0));
        let ask = |w: usize, from: usize| {
            let query = *q;
            self.dp.ask(
                w,
                move |reply| DpRequest::Trace { query, from, reply },
                wait,
            )
        };
        if q.cport.is_some() {
            return Ok(ask(owner, 0).await?.0);
        }
        let mut all = FlowFacts::default();
        for w in 0..self.dp.len() {
            let mut from = Some(0);
            while let Some(f) = from {
                let (mut part, next) = ask(w, f).await?;
                all.entries.append(&mut part.entries);
                if f == 0 && w == owner {
                    (all.template, all.predicted) = (part.template, part.predicted);
                }
                from = next;
            }
        }
        Ok(all)
    }

    /// `--live`: each verdict the workers report for `secs` seconds, a
    /// line each, then a summary. One live trace at a time.
    pub(super) async fn trace_live(
        &self,
        q: TraceQuery,
        secs: u32,
        w: &mut (impl AsyncWriteExt + Unpin),
    ) {
        let tap = self.dp.tap();
        let Some(rx) = tap.start(q) else {
            let busy = Response::Error {
                index: None,
                message: "a live trace is running already; try again when it ends".into(),
            };
            let _ = send_line(w, &busy).await;
            return;
        };
        let end = Instant::now() + Duration::from_secs(u64::from(secs.min(LIVE_MAX_SECS)));
        let mut frames = 0u64;
        let mut gone = false;
        while Instant::now() < end && !gone {
            while let Ok(v) = rx.try_recv() {
                frames += 1;
                if send_line(w, &Response::Frame(v)).await.is_err() {
                    gone = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lost = tap.lost.load(std::sync::atomic::Ordering::Relaxed);
        tap.stop(rx);
        let done = format!("{frames} frame(s) traced, {lost} lost to a full queue");
        let _ = send_line(w, &Response::Done(done)).await;
    }
}

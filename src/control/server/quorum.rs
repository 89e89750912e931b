//! Quorums and sorry servers: a service whose live real servers' weight
//! falls below its quorum gets its sorry server (and its down command);
//! back above the quorum plus the hysteresis, the other way round.

use super::{Control, lock, run_command};
use crate::control::plan::Quorum;
use crate::lvs::service::ServiceKey;

impl Control {
    /// Takes each service's quorum and judges it now. A service whose
    /// sorry server changed while its quorum was lost gets the new one at
    /// once.
    pub(super) async fn set_quorums(&self, quorums: &[(ServiceKey, Quorum)]) {
        let old = std::mem::take(&mut *lock(&self.quorums));
        for (key, (q, lost)) in &old {
            let same = quorums.iter().any(|(k, n)| k == key && n.sorry == q.sorry);
            if *lost
                && !same
                && let Some(r) = &q.sorry
            {
                let _ = self.apply(&[r.op(*key, false)]).await;
            }
        }
        {
            let mut qs = lock(&self.quorums);
            for (key, q) in quorums {
                let lost = old
                    .get(key)
                    .is_some_and(|(o, lost)| *lost && o.sorry == q.sorry);
                qs.insert(*key, (q.clone(), lost));
            }
        }
        for (key, _) in quorums {
            self.judge_quorum(*key).await;
        }
    }

    /// Compares a service's live weight (real servers up and resolved,
    /// the sorry server not counted) with its quorum. Losing it runs
    /// `quorum_down` and puts the sorry server in; regaining it runs
    /// `quorum_up` and takes the sorry server out. Each is logged once.
    pub(super) async fn judge_quorum(&self, key: ServiceKey) {
        let Some((q, lost)) = lock(&self.quorums).get(&key).cloned() else {
            return;
        };
        let sorry = q.sorry.as_ref().map(|r| (r.addr, r.port));
        let live = self.state.lock().await.model.live_weight(&key, sorry);
        let now_lost = live < q.min_weight;
        if now_lost == lost {
            return;
        }
        let svc = key.to_string();
        let (what, cmd) = match now_lost {
            true => ("lost", &q.down_cmd),
            false => ("regained", &q.up_cmd),
        };
        let to = match (&q.sorry, now_lost) {
            (Some(r), true) => format!(
                "; new connections go to the sorry server {}",
                std::net::SocketAddr::new(r.addr, r.port)
            ),
            (Some(_), false) => "; the sorry server is taken out".into(),
            (None, _) => String::new(),
        };
        tracing::info!(
            "{svc} quorum {what}: live weight {live}, quorum {}{to}",
            q.min_weight
        );
        if let Some(r) = &q.sorry
            && let Err((_, e)) = self.apply(&[r.op(key, now_lost)]).await
        {
            tracing::info!(
                "{svc}: sorry server {}: {e}",
                std::net::SocketAddr::new(r.addr, r.port)
            );
        }
        if let Some(c) = lock(&self.quorums).get_mut(&key) {
            c.1 = now_lost;
        }
        // Its VIP's route follows (`announce`).
        self.routes_changed.notify_one();
        if let Some(cmd) = cmd {
            run_command(
                format!("{svc} quorum_{}", if now_lost { "down" } else { "up" }),
                cmd.clone(),
            );
        }
    }
}

//! The metrics endpoint (`--metrics`): each scrape gathers the answers the
//! control socket gives (`Snapshot`, `Health`, `Status`, `Ha`) with the
//! same code, and `control::metrics` lays them out.

use super::Control;
use super::serve::Backoff;
use crate::control::metrics::{self, Scrape, http};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Scrapers served at once; more are closed at once.
pub const MAX_SCRAPERS: usize = 8;

impl Control {
    /// The control socket's answers at one moment.
    pub async fn scrape(&self) -> Scrape {
        let (snapshot, health) = {
            let mut st = self.state.lock().await;
            (st.model.snapshot(), st.health_rows())
        };
        Scrape {
            snapshot,
            health,
            status: self.status_pairs(),
            ha: self.ha_status(),
        }
    }

    /// Serves `/metrics` on `listener` for as long as the daemon runs.
    pub async fn serve_metrics(self: Arc<Self>, listener: TcpListener) {
        let scrapers = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
        let mut backoff = Backoff::new("metrics listener");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.recovered();
                    let Ok(permit) = scrapers.clone().try_acquire_owned() else {
                        continue;
                    };
                    let me = self.clone();
                    tokio::spawn(async move {
                        let page = |f| async move { metrics::page(&me.scrape().await, f) };
                        http::answer(stream, page).await;
                        drop(permit);
                    });
                }
                Err(e) => backoff.failed(&e).await,
            }
        }
    }
}

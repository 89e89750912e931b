//! Track conditions (interfaces, scripts, quorums) checked every second,
//! and the notify command run on every change of state.

use super::super::Control;
use crate::control::server::lock;
use crate::ha::track::Watch;
use std::sync::Arc;
use std::time::Duration;

impl Control {
    /// Evaluates the track conditions every second.
    pub(super) async fn watch_tracks(self: Arc<Self>, tracks: Vec<crate::ha::track::Track>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last: Vec<bool> = vec![false; tracks.len()];
        loop {
            tick.tick().await;
            let mut failing = Vec::with_capacity(tracks.len());
            for t in &tracks {
                failing.push(match &t.watch {
                    Watch::Interface(name) => {
                        let up = libc::IFF_UP as u32 | libc::IFF_RUNNING as u32;
                        crate::host::sys::link_flags(name).map_or(true, |f| f & up != up)
                    }
                    Watch::Script(cmd) => !script_ok(cmd).await,
                    Watch::Quorum => lock(&self.quorums).values().any(|(_, lost)| *lost),
                });
            }
            if failing != last {
                let mut g = lock(&self.ha);
                let Some(ha) = g.as_mut() else { return };
                ha.set_tracks(&failing);
                for (t, (now, was)) in tracks.iter().zip(failing.iter().zip(&last)) {
                    if now != was {
                        tracing::info!(
                            "HA: track: {} {}; priority {}{}",
                            t.describe(),
                            if *now { "(failing)" } else { "(recovered)" },
                            ha.priority,
                            ha.fault
                                .as_ref()
                                .map_or(String::new(), |f| format!(", fault: {f}"))
                        );
                    }
                }
                last = failing;
            }
        }
    }
}

/// Runs a track script: it passes if it exits 0 within 3 s.
async fn script_ok(cmd: &str) -> bool {
    let child = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(3), child).await,
        Ok(Ok(s)) if s.success()
    )
}

/// Runs the notify command in the background, as keepalived's notify
/// script: `sh -c CMD uvs STATE PRIORITY`, the reason in the environment.
pub(super) fn notify(cmd: &str, state: &str, priority: u8, why: &str) {
    let spawned = tokio::process::Command::new("sh")
        .args(["-c", cmd, "uvs", state, &priority.to_string()])
        .env("UVS_HA_REASON", why)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn();
    match spawned {
        Ok(mut child) => {
            let cmd = cmd.to_string();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => tracing::info!("HA: notify `{cmd}` {s}"),
                    Err(e) => tracing::info!("HA: notify `{cmd}`: {e}"),
                }
            });
        }
        Err(e) => tracing::info!("HA: cannot run notify `{cmd}`: {e}"),
    }
}

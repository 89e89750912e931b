//! `uvs health`'s text: one line per real server.

use crate::control::proto::HealthRow;
use std::time::Duration;

/// `uvs health` as text: one line per real server.
pub fn list_health(rows: &[HealthRow]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<24} {:<22} {:<7} {:>6} {:<11} {:>8}  {}\n",
        "SERVICE", "REAL SERVER", "METHOD", "WEIGHT", "STATE", "SINCE", "REASON"
    );
    for r in rows {
        let since = humantime(Duration::from_secs(r.since_secs));
        // Slow start: the weight now of the target, and the time left.
        let (weight, ramp) = match r.ramp_left_ms {
            Some(ms) => (
                format!("{}/{}", r.weight_now, r.weight),
                format!(
                    "; slow start: weight {} of {}, {:.1} s left",
                    r.weight_now,
                    r.weight,
                    ms as f64 / 1000.0
                ),
            ),
            None => (r.weight.to_string(), String::new()),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<22} {:<7} {:>6} {:<11} {:>8}  {}{ramp}",
            r.service, r.server, r.forward, weight, r.state, since, r.reason
        );
    }
    out
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

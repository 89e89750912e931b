//! Track conditions, as keepalived's track_interface and track_script: a
//! failing condition with a weight moves the director's priority by it
//! (negative: lower); one without a weight puts the director in fault,
//! where it never holds the VIPs.

use serde::{Deserialize, Serialize};

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watch {
    /// An interface must be up with its carrier (IFF_UP and IFF_RUNNING).
    Interface(String),
    /// A command must exit 0 (run by `sh -c` every second, 3 s at most).
    Script(String),
    /// No configured service may have lost its quorum.
    Quorum,
}

/// One condition and its weight (`None`: failing means fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub watch: Watch,
    pub weight: Option<i32>,
}

/// A condition as it stands, for `uvs ha`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackStatus {
    pub track: Track,
    pub failing: bool,
}

/// A track condition as given that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The weight of `flag` (`--track-interface`, ...).
    #[error("{flag}: weight '{weight}' is not a number from -254 to 254")]
    Weight { flag: &'static str, weight: String },
    #[error("--track-interface '{0}': not an interface name (IF or IF:WEIGHT)")]
    Interface(String),
    #[error("--track-script: the command is empty")]
    EmptyScript,
}

fn weight(s: &str, flag: &'static str) -> Result<i32, TrackError> {
    match s.parse::<i32>() {
        Ok(w) if (-254..=254).contains(&w) => Ok(w),
        _ => Err(TrackError::Weight {
            flag,
            weight: s.to_string(),
        }),
    }
}

impl Track {
    /// `IF` or `IF:WEIGHT` (an interface name cannot hold a colon).
    pub fn interface(spec: &str) -> Result<Track, TrackError> {
        let (name, w) = match spec.split_once(':') {
            Some((n, w)) => (n, Some(weight(w, "--track-interface")?)),
            None => (spec, None),
        };
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(TrackError::Interface(spec.to_string()));
        }
        Ok(Track {
            watch: Watch::Interface(name.into()),
            weight: w,
        })
    }

    pub fn script(cmd: &str, w: Option<&str>) -> Result<Track, TrackError> {
        if cmd.trim().is_empty() {
            return Err(TrackError::EmptyScript);
        }
        Ok(Track {
            watch: Watch::Script(cmd.into()),
            weight: w.map(|w| weight(w, "--track-script-weight")).transpose()?,
        })
    }

    /// `fault` or a weight.
    pub fn quorum(spec: &str) -> Result<Track, TrackError> {
        Ok(Track {
            watch: Watch::Quorum,
            weight: match spec {
                "fault" | "" => None,
                w => Some(weight(w, "--track-quorum")?),
            },
        })
    }

    pub fn describe(&self) -> String {
        match &self.watch {
            Watch::Interface(i) => format!("interface {i} down"),
            Watch::Script(c) => format!("track script `{c}` failing"),
            Watch::Quorum => "a service lost its quorum".into(),
        }
    }
}

/// The priority the director runs with, and why it is in fault if it is.
pub fn effective(priority: u8, states: &[TrackStatus]) -> (u8, Option<String>) {
    let failing = states.iter().filter(|s| s.failing);
    let mut p = i32::from(priority);
    let mut fault = Vec::new();
    for s in failing {
        match s.track.weight {
            Some(w) => p += w,
            None => fault.push(s.track.describe()),
        }
    }
    match fault.is_empty() {
        true => (p.clamp(1, 254) as u8, None),
        false => (0, Some(fault.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(t: Track, failing: bool) -> TrackStatus {
        TrackStatus { track: t, failing }
    }

    #[test]
    fn weights_move_the_priority_and_an_unweighted_failure_is_a_fault() {
        let eth1 = Track::interface("eth1:-50").unwrap();
        let q = Track::quorum("fault").unwrap();
        assert_eq!(effective(200, &[st(eth1.clone(), false)]), (200, None));
        assert_eq!(effective(200, &[st(eth1.clone(), true)]), (150, None));
        assert_eq!(effective(20, &[st(eth1.clone(), true)]), (1, None));
        let (p, why) = effective(200, &[st(eth1, true), st(q, true)]);
        assert_eq!(p, 0);
        assert_eq!(why.as_deref(), Some("a service lost its quorum"));
    }

    #[test]
    fn specs_are_checked() {
        assert!(Track::interface("eth0").unwrap().weight.is_none());
        assert!(Track::interface("eth0:x").is_err());
        assert!(Track::interface("eth0:300").is_err());
        assert!(Track::interface(":5").is_err());
        assert!(Track::script("  ", None).is_err());
        assert_eq!(
            Track::script("true", Some("-20")).unwrap().weight,
            Some(-20)
        );
        assert!(Track::quorum("lots").is_err());
    }
}

//! The checks that turn one setting's text into its value, and the error
//! naming how the user gave it (`--flag` or the file's key).

use super::super::ha_addr::{BadWitness, ha_unusable};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// A value a setting refuses; `name` is how the user gave the setting
/// (`--flag`, or the file's key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{name}: true or false, not `{value}`")]
    NotSwitch { name: String, value: String },
    #[error("{name}: empty")]
    Empty { name: String },
    /// A count above the planes' limit (or 0).
    #[error("{name} must be between 1 and {max}")]
    Range { name: String, max: usize },
    /// What the setting takes instead (`want`).
    #[error("{name} {value}: {want}")]
    Invalid {
        name: String,
        value: String,
        want: &'static str,
    },
    #[error("{name} {value}: {source}")]
    Witness {
        name: String,
        value: String,
        #[source]
        source: BadWitness,
    },
}

impl SettingError {
    pub(super) fn invalid(name: &str, value: &str, want: &'static str) -> SettingError {
        SettingError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            want,
        }
    }

    pub(super) fn range(name: &str, max: usize) -> SettingError {
        SettingError::Range {
            name: name.to_string(),
            max,
        }
    }
}

/// A count from 1 to `max`, or the range error naming `max`.
pub(super) fn upto(name: &str, v: &str, max: usize) -> Result<usize, SettingError> {
    int(v, 1, max as u64)
        .map(|n| n as usize)
        .ok_or_else(|| SettingError::range(name, max))
}

/// A whole number in `lo..=hi` as an `N`, or an error saying what to give.
pub(super) fn whole<N: TryFrom<u64>>(
    name: &str,
    v: &str,
    (lo, hi): (u64, u64),
    give: &'static str,
) -> Result<N, SettingError> {
    int(v, lo, hi)
        .and_then(|n| N::try_from(n).ok())
        .ok_or_else(|| SettingError::invalid(name, v, give))
}

/// A whole number from `lo` to `hi`.
pub(super) fn int(v: &str, lo: u64, hi: u64) -> Option<u64> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
}

/// Seconds from `lo` to `hi` (fractions allowed).
pub(super) fn seconds(v: &str, lo: f64, hi: f64) -> Option<Duration> {
    let s = v.trim().parse::<f64>().ok()?;
    (s.is_finite() && (lo..=hi).contains(&s)).then(|| Duration::from_secs_f64(s))
}

/// `true` or `false`, as a file gives a switch.
pub(super) fn switch(name: &str, v: &str) -> Result<bool, SettingError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SettingError::NotSwitch {
            name: name.to_string(),
            value: v.to_string(),
        }),
    }
}

pub(super) fn text(name: &str, v: &str) -> Result<String, SettingError> {
    match v.is_empty() {
        true => Err(SettingError::Empty {
            name: name.to_string(),
        }),
        false => Ok(v.to_string()),
    }
}

pub(super) fn ipv4(name: &str, v: &str) -> Result<Ipv4Addr, SettingError> {
    v.trim()
        .parse()
        .map_err(|_| SettingError::invalid(name, v, "not an IPv4 address"))
}

pub(super) fn ipv6(name: &str, v: &str) -> Result<Ipv6Addr, SettingError> {
    v.trim()
        .parse()
        .map_err(|_| SettingError::invalid(name, v, "not an IPv6 address"))
}

/// An HA peer: an IPv4 or IPv6 address (an IPv4-mapped one is the IPv4
/// address) that `ha_unusable` takes.
pub(super) fn ha_ip(name: &str, v: &str) -> Result<IpAddr, SettingError> {
    let ip = v
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| SettingError::invalid(name, v, "not an IPv4 or IPv6 address"))?
        .to_canonical();
    match ha_unusable(ip) {
        Some(why) => Err(SettingError::invalid(name, v, why)),
        None => Ok(ip),
    }
}

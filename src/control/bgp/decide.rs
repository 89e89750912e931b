//! Which VIPs to announce, as a pure function of what the director is
//! doing: every VIP is announced while the director forwards, is neither
//! draining nor stopping, has its links up, and every service on that
//! VIP meets its quorum; otherwise it is withdrawn, so the routers send
//! its flows to the other directors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The director's state, as far as its routes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Director {
    /// The data plane runs and, with HA peers, this director is active.
    pub forwarding: bool,
    /// `uvs drain`.
    pub draining: bool,
    /// SIGTERM: the routes go first, the data plane after the drain delay.
    pub stopping: bool,
    /// Every link is up (IFF_UP and IFF_RUNNING).
    pub links_up: bool,
}

/// Why a VIP is not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    Stopping,
    Draining,
    NotForwarding,
    LinkDown,
    QuorumLost,
}

impl Withheld {
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::Stopping => "stopping",
            Withheld::Draining => "draining",
            Withheld::NotForwarding => "not forwarding",
            Withheld::LinkDown => "a link is down",
            Withheld::QuorumLost => "quorum lost",
        }
    }
}

/// Whether one VIP is announced (`None`) or why not. `quorum_lost`: one
/// of the VIP's services is below its quorum.
pub fn verdict(d: Director, quorum_lost: bool) -> Option<Withheld> {
    if d.stopping {
        Some(Withheld::Stopping)
    } else if d.draining {
        Some(Withheld::Draining)
    } else if !d.forwarding {
        Some(Withheld::NotForwarding)
    } else if !d.links_up {
        Some(Withheld::LinkDown)
    } else if quorum_lost {
        Some(Withheld::QuorumLost)
    } else {
        None
    }
}

/// The VIPs to announce, from each VIP's "a service lost its quorum",
/// and the first reason one is withheld.
pub fn announced(
    d: Director,
    vips: &BTreeMap<IpAddr, bool>,
) -> (BTreeSet<IpAddr>, Option<Withheld>) {
    let mut why = None;
    let mut set = BTreeSet::new();
    for (&vip, &lost) in vips {
        match verdict(d, lost) {
            None => {
                set.insert(vip);
            }
            Some(w) => {
                why.get_or_insert(w);
            }
        }
    }
    (set, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Director = Director {
        forwarding: true,
        draining: false,
        stopping: false,
        links_up: true,
    };

    fn vips(v: &[(&str, bool)]) -> BTreeMap<IpAddr, bool> {
        v.iter().map(|(a, l)| (a.parse().unwrap(), *l)).collect()
    }

    #[test]
    fn forwarding_with_quorum_announces_every_vip() {
        let v = vips(&[("198.18.0.100", false), ("2001:2::100", false)]);
        let (set, why) = announced(UP, &v);
        assert_eq!(set.len(), 2);
        assert_eq!(why, None);
    }

    #[test]
    fn a_lost_quorum_withdraws_only_its_vip() {
        let v = vips(&[("198.18.0.100", true), ("198.18.0.101", false)]);
        let (set, why) = announced(UP, &v);
        assert_eq!(set, ["198.18.0.101".parse().unwrap()].into());
        assert_eq!(why, Some(Withheld::QuorumLost));
    }

    #[test]
    fn draining_stopping_not_forwarding_or_link_down_withdraw_everything() {
        let v = vips(&[("198.18.0.100", false), ("198.18.0.101", false)]);
        let cases = [
            (
                Director {
                    draining: true,
                    ..UP
                },
                Withheld::Draining,
            ),
            (
                Director {
                    stopping: true,
                    ..UP
                },
                Withheld::Stopping,
            ),
            (
                Director {
                    forwarding: false,
                    ..UP
                },
                Withheld::NotForwarding,
            ),
            (
                Director {
                    links_up: false,
                    ..UP
                },
                Withheld::LinkDown,
            ),
        ];
        for (d, w) in cases {
            let (set, why) = announced(d, &v);
            assert!(set.is_empty(), "{d:?}");
            assert_eq!(why, Some(w));
        }
    }

    #[test]
    fn stopping_is_the_reason_shown_over_the_others() {
        let d = Director {
            forwarding: false,
            draining: true,
            stopping: true,
            links_up: false,
        };
        assert_eq!(verdict(d, true), Some(Withheld::Stopping));
        assert_eq!(verdict(UP, false), None);
    }
}

//! Firewall marks in the model: a mark service's VIPs are its mark's,
//! claimed as any VIP is (never a real server, probed when new), and a
//! mark's rules change only while they stay disjoint from the others'.

use super::{Model, Need, OpError, check_vip};
use crate::lvs::mark::{MarkRule, check_disjoint};
use crate::lvs::service::{Protocol, ServiceKey};
use std::net::IpAddr;

/// `-o` only on UDP or mark services, as ipvsadm allows it. A service is
/// TCP or UDP (IP is only a mark template's protocol).
pub fn check_ops(key: &ServiceKey, ops: bool) -> Result<(), OpError> {
    if key.protocol == Protocol::Ip {
        return Err(OpError::Unsupported(
            "a virtual service is TCP or UDP (-t, -u) or a firewall mark (-f)".into(),
        ));
    }
    match ops && key.fwmark().is_none() && key.protocol != Protocol::Udp {
        true => Err(OpError::OpsNotUdp),
        false => Ok(()),
    }
}

impl Model {
    /// The rules of mark `m` (none if it is not defined).
    pub fn mark_rules(&self, m: u32) -> &[MarkRule] {
        self.marks.get(&m).map_or(&[], Vec::as_slice)
    }

    /// The VIPs of a service, which its probe claims: its address, or
    /// its mark's of its family (the mark must be defined).
    pub(super) fn key_vips(&self, key: &ServiceKey) -> Result<Vec<IpAddr>, OpError> {
        match key.fwmark() {
            None => Ok(key.vip().into_iter().collect()),
            Some(m) => {
                let rules = self.marks.get(&m).ok_or(OpError::MarkNotDefined(m))?;
                let own = rules
                    .iter()
                    .filter(|r| r.vip.is_ipv6() == key.addr.is_ipv6());
                Ok(own.map(|r| r.vip).collect())
            }
        }
    }

    /// Whether `a` is a VIP of a service (its own, or its mark's of its
    /// family).
    pub fn has_vip(&self, a: IpAddr) -> bool {
        self.services.iter().any(|s| match s.key.fwmark() {
            None => s.key.addr == a,
            Some(m) => {
                let v6 = s.key.addr.is_ipv6();
                self.mark_rules(m)
                    .iter()
                    .any(|r| r.vip == a && a.is_ipv6() == v6)
            }
        })
    }

    /// Checks a VIP a service is about to take, and asks for it to be
    /// probed if it is new.
    pub(super) fn claim_vip(&self, vip: IpAddr, need: &mut dyn FnMut(Need)) -> Result<(), OpError> {
        check_vip(vip)?;
        if let Some(d) = self.dest_with_addr(vip) {
            let proto = crate::control::acd::protocol(vip);
            return Err(OpError::BadAddress(format!(
                "VIP {vip} is the address of real server {d}: uvs would answer {proto} for it \
                 and take its traffic"
            )));
        }
        if !self.has_vip(vip) {
            need(Need::NewVip(vip));
        }
        Ok(())
    }

    /// `Op::SetMark`: the mark's rules replaced (none: deleted, refused
    /// while a service uses it).
    pub(super) fn set_mark(
        &mut self,
        mark: u32,
        rules: &[MarkRule],
        need: &mut dyn FnMut(Need),
    ) -> Result<(), OpError> {
        let used = self.services.iter().any(|s| s.key.fwmark() == Some(mark));
        if rules.is_empty() {
            if used {
                return Err(OpError::MarkInUse(mark));
            }
            self.marks.remove(&mark);
            return Ok(());
        }
        let others = self.marks.iter().filter(|(m, _)| **m != mark);
        let all = others
            .map(|(m, r)| (*m, r.as_slice()))
            .chain([(mark, rules)]);
        check_disjoint(all)?;
        // A rule's VIP is claimed when the mark's service of its family
        // exists; the others are only checked.
        let in_use = |v6| {
            self.services
                .iter()
                .any(|s| s.key == ServiceKey::mark_of(mark, v6))
        };
        let (used4, used6) = (in_use(false), in_use(true));
        for r in rules {
            match r.vip.is_ipv6() {
                false if used4 => self.claim_vip(r.vip, need)?,
                true if used6 => self.claim_vip(r.vip, need)?,
                _ => check_vip(r.vip)?,
            }
        }
        self.marks.insert(mark, rules.to_vec());
        Ok(())
    }
}

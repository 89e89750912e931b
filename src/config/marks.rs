//! The file's `[[mark]]` tables checked into each mark's rules.

use super::file::MarkSection;
use super::{ConfigError, Ctx};
use crate::lvs::mark::{self, MarkRule, PortRange};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Every mark's rules, checked: a VIP that can be one (of either family:
/// an IPv6 VIP's rules serve the mark's IPv6 service), ports as
/// iptables' `--dports`, no frame in two marks.
pub(super) fn marks(
    cx: &Ctx,
    sections: &[MarkSection],
) -> Result<BTreeMap<u32, Vec<MarkRule>>, ConfigError> {
    let mut out: BTreeMap<u32, Vec<MarkRule>> = BTreeMap::new();
    for m in sections {
        let id = *m.id.get_ref();
        if id == 0 {
            return Err(cx.err(m.id.span(), mark::MarkError::Zero.to_string()));
        }
        let protocol = match &m.protocol {
            None => None,
            Some(p) => {
                mark::parse_protocol(p.get_ref()).map_err(|e| cx.err(p.span(), e.to_string()))?
            }
        };
        let vip: IpAddr = m.vip.get_ref().trim().parse().map_err(|_| {
            let v = m.vip.get_ref();
            cx.err(m.vip.span(), format!("vip `{v}`: an IPv4 or IPv6 address"))
        })?;
        crate::control::model::check_vip(vip).map_err(|e| cx.err(m.vip.span(), e.to_string()))?;
        let ports = match &m.ports {
            None => vec![PortRange { lo: 0, hi: 65535 }],
            Some(p) => {
                mark::parse_ports(p.get_ref()).map_err(|e| cx.err(p.span(), e.to_string()))?
            }
        };
        out.entry(id).or_default().push(MarkRule {
            protocol,
            vip,
            ports,
        });
        let all = out.iter().map(|(m, r)| (*m, r.as_slice()));
        mark::check_disjoint(all).map_err(|e| cx.err(m.id.span(), e.to_string()))?;
    }
    Ok(out)
}

//! The translation: keepalived's statements as the config's services,
//! each part remembering the statement it came from, so that what the
//! director would refuse ([`super::verify`]) is reported at its place.
//! Top-level blocks are dispatched here; [`super::service`] converts a
//! virtual server, [`super::check`] its checks.

use super::converted::{Converted, Member};
use super::output;
use super::read::Node;
use super::report::{Place, Report, shown};
use super::service::virtual_server;
use super::statement::{block, extra, no_block, option};
use super::vrrp;
use std::collections::HashMap;
use std::path::Path;

/// The statements' services; what has no place in uvs gets a warning.
pub(super) fn convert(path: &Path, nodes: &[Node], r: &mut Report) -> Converted {
    let mut groups: HashMap<&str, Vec<Member>> = HashMap::new();
    for n in nodes.iter().filter(|n| n.key() == "virtual_server_group") {
        if !block(n, r) {
            continue;
        }
        let Some(name) = n.arg(1) else {
            r.error(&n.at, "virtual_server_group needs a name");
            continue;
        };
        extra(n, 2, r);
        let members = n
            .children
            .iter()
            .map(|m| {
                no_block(m, r);
                Member {
                    at: &m.at,
                    words: &m.words,
                }
            })
            .collect();
        if groups.insert(name, members).is_some() {
            r.error(
                &n.at,
                format!("virtual_server_group {} is defined twice", shown(name)),
            );
        }
    }
    let mut out = Converted {
        file: Place {
            file: std::rc::Rc::from(path),
            line: 0,
        },
        ..Converted::default()
    };
    for n in nodes {
        match n.key() {
            "virtual_server_group" => {}
            "virtual_server" => virtual_server(n, &groups, &mut out, r),
            "include" => r.warn(&n.at, "include without a file"),
            // After the services: their VIPs are checked against it.
            k if vrrp::reads(k) => {}
            k if k.starts_with("vrrp_")
                || k == "static_ipaddress"
                || k == "static_routes"
                || k == "static_rules" =>
            {
                r.warn(
                    &n.at,
                    format!(
                        "{k} is not carried over: uvs has no place for it (its HA settings come \
                         from vrrp_instance, vrrp_sync_group and vrrp_script)"
                    ),
                )
            }
            "global_defs" => r.warn(
                &n.at,
                "global_defs is not carried over (nothing in it applies to uvs)",
            ),
            _ => r.warn(&n.at, format!("{} is not carried over", option(n))),
        }
    }
    out.director = vrrp::director(nodes, &out, r);
    output::render(&mut out, r);
    out
}

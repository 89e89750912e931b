//! The services and real servers: `uvsadm -Ln --stats`'s figures and
//! `uvs health`'s states. Their labels are node_exporter's for IPVS
//! (`proto`, `local_address`, `local_port`, `local_mark`, then
//! `remote_address`, `remote_port`), so queries written for a kernel
//! director carry over.

use super::{Labels, Sheet};
use crate::control::proto::{HealthRow, Snapshot};
use crate::lvs::service::ServiceKey;
use crate::lvs::stats::StatsSnapshot;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// A service's labels. A firewall-mark service has `proto="FWM"`, its
/// mark, and its family's unspecified address with port 0.
pub fn service_labels(k: &ServiceKey) -> Labels {
    let (proto, mark) = match k.fwmark() {
        Some(m) => ("FWM", m.to_string()),
        None => (k.protocol.name(), String::new()),
    };
    vec![
        ("proto", proto.to_string()),
        ("local_address", k.addr.to_string()),
        ("local_port", k.port.to_string()),
        ("local_mark", mark),
    ]
}

/// A real server's labels: its service's, then its own.
pub fn server_labels(k: &ServiceKey, addr: IpAddr, port: u16) -> Labels {
    let mut l = service_labels(k);
    l.push(("remote_address", addr.to_string()));
    l.push(("remote_port", port.to_string()));
    l
}

/// The five traffic counters of `--stats`, under `prefix`.
fn traffic(sheet: &mut Sheet, prefix: &str, labels: &Labels, s: &StatsSnapshot) {
    let figures: [(&str, &'static str, u64); 5] = [
        (
            "connections",
            "Connections scheduled (ipvsadm --stats Conns)",
            s.conns,
        ),
        (
            "in_packets",
            "Packets from clients (ipvsadm --stats InPkts)",
            s.inpkts,
        ),
        (
            "out_packets",
            "Packets to clients, NAT replies (ipvsadm --stats OutPkts)",
            s.outpkts,
        ),
        (
            "in_bytes",
            "Bytes from clients (ipvsadm --stats InBytes)",
            s.inbytes,
        ),
        (
            "out_bytes",
            "Bytes to clients, NAT replies (ipvsadm --stats OutBytes)",
            s.outbytes,
        ),
    ];
    for (name, help, v) in figures {
        sheet.counter(&format!("{prefix}_{name}"), help, labels.clone(), v);
    }
}

/// The health states a real server can be in (`uvs health`).
pub const STATES: &[&str] = &["up", "down", "unresolved"];
/// Its health check's verdicts.
pub const CHECKS: &[&str] = &["up", "down", "none"];

/// Every service and real server of `snap`, with `health`'s state of each.
pub fn add(sheet: &mut Sheet, snap: &Snapshot, health: &[HealthRow]) {
    let rows: HashMap<(&str, &str), &HealthRow> = health
        .iter()
        .map(|r| ((r.service.as_str(), r.server.as_str()), r))
        .collect();
    for s in &snap.services {
        let key = &s.def.key;
        let labels = service_labels(key);
        traffic(sheet, "uvs_service", &labels, &s.stats);
        let mut info = labels.clone();
        info.push(("scheduler", s.def.scheduler.clone()));
        sheet.gauge(
            "uvs_service_info",
            "A virtual service and its scheduler (always 1)",
            info,
            1,
        );
        let service = key.to_string();
        for d in &s.dests {
            let labels = server_labels(key, d.spec.addr, d.spec.port);
            traffic(sheet, "uvs_real_server", &labels, &d.stats);
            let gauges: [(&str, &'static str, u32); 4] = [
                (
                    "uvs_real_server_active_connections",
                    "Connections established now (ipvsadm ActiveConn)",
                    d.active,
                ),
                (
                    "uvs_real_server_inactive_connections",
                    "Connections not established now (ipvsadm InActConn)",
                    d.inactive,
                ),
                (
                    "uvs_real_server_persistent_connections",
                    "Persistence templates pointing at it",
                    d.persistent,
                ),
                (
                    "uvs_real_server_weight",
                    "Its weight as configured",
                    d.spec.weight,
                ),
            ];
            for (name, help, v) in gauges {
                sheet.gauge(name, help, labels.clone(), i64::from(v));
            }
            let mut info = labels.clone();
            info.push(("forward", d.spec.forward.name().to_lowercase()));
            sheet.gauge(
                "uvs_real_server_info",
                "A real server and its forwarding method (always 1)",
                info,
                1,
            );
            let server = SocketAddr::new(d.spec.addr, d.spec.port).to_string();
            if let Some(r) = rows.get(&(service.as_str(), server.as_str())) {
                health_of(sheet, labels, r);
            }
        }
    }
}

/// One real server's `uvs health` row.
fn health_of(sheet: &mut Sheet, labels: Labels, r: &HealthRow) {
    sheet.states(
        "uvs_real_server_state",
        "Its state: up (scheduled by its weight), down (its check failed) or unresolved \
         (its next hop does not answer ARP/ND); 1 for the current state",
        labels.clone(),
        ("state", STATES),
        &r.state,
    );
    sheet.states(
        "uvs_real_server_check",
        "Its health check's last verdict: up, down, or none (no check, or none has changed \
         its state yet); 1 for the current one",
        labels.clone(),
        ("check", CHECKS),
        &r.check,
    );
    sheet.real(
        "uvs_real_server_state_change_time_seconds",
        "When it entered its current state, in seconds since the Unix epoch",
        labels,
        r.since_unix_ms as f64 / 1000.0,
    );
}

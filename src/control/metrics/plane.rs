//! The data plane's counters, as `uvs status` reports them: each status
//! name has its metric here (a frame dropped is one family with the
//! reason as a label), so a counter added to the data plane without one
//! fails the unit test rather than going missing.

use super::Sheet;

/// What one status figure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A counter of its own (name without `_total`).
    Counter(&'static str, &'static str),
    /// A gauge of its own.
    Gauge(&'static str, &'static str),
    /// `uvs_dropped_frames_total{reason=…}`.
    Dropped(&'static str),
    /// Shown elsewhere (`uvs_ha_*`), or a rate Prometheus computes itself.
    Skipped,
}

const DROPPED: &str = "uvs_dropped_frames";
const DROPPED_HELP: &str = "Frames dropped, by reason (uvs status)";

/// The metric of the status figure `name` (`None`: unknown to this table).
pub fn kind(name: &str) -> Option<Kind> {
    use Kind::*;
    Some(match name {
        "rx_frames" => Counter("uvs_rx_frames", "Frames received on the director's links"),
        "forwarded" => Counter(
            "uvs_forwarded_frames",
            "Frames sent on towards a real server or client",
        ),
        "arp_replies" => Counter("uvs_arp_replies", "ARP replies sent for VIPs"),
        "nd_replies" => Counter(
            "uvs_nd_replies",
            "Neighbour advertisements sent for IPv6 VIPs",
        ),
        "malformed" => Dropped("malformed"),
        "ext_headers_dropped" => Dropped("ext_headers"),
        "fragments_dropped" => Dropped("fragment"),
        "no_conn_dropped" => Dropped("no_conn"),
        "no_dest" => Dropped("no_dest"),
        "ttl_expired" => Dropped("ttl_expired"),
        "tx_errors" => Dropped("tx_error"),
        "conn_table_full" => Dropped("conn_table_full"),
        "nat_reply_clash" => Dropped("nat_reply_clash"),
        "rx_socket_drops" => Dropped("socket"),
        "gso_segmented" => Counter(
            "uvs_gso_segmented_frames",
            "Super-frames (GSO/GRO) cut into segments by uvs",
        ),
        "gso_passed" => Counter(
            "uvs_gso_passed_frames",
            "Super-frames sent whole, for the kernel to segment",
        ),
        "csum_completed" => Counter(
            "uvs_checksums_completed",
            "Partial checksums (CHECKSUM_PARTIAL) completed by uvs",
        ),
        "frag_needed" => Counter(
            "uvs_frag_needed_sent",
            "ICMP fragmentation-needed and packet-too-big errors sent",
        ),
        "fragmented" => Counter(
            "uvs_fragmented_packets",
            "Packets fragmented to fit the link",
        ),
        "nat_replies" => Counter("uvs_nat_replies", "NAT replies translated back to the VIP"),
        "icmp_related" => Counter(
            "uvs_icmp_related",
            "ICMP errors about a connection passed on",
        ),
        "conns" => Gauge("uvs_conn_table_entries", "Connections in the table now"),
        "conns_limit" => Gauge(
            "uvs_conn_table_limit",
            "The connection table's limit (--max-conns)",
        ),
        "conn_evictions" => Counter(
            "uvs_conn_table_evictions",
            "Cheap entries evicted to make room in a full table",
        ),
        "xdp_rx" => Counter(
            "uvs_xdp_rx_frames",
            "Frames the XDP program steered to AF_XDP sockets",
        ),
        "offload_forwarded" => Counter(
            "uvs_offload_forwarded_frames",
            "Frames the kernel program forwarded itself",
        ),
        "offloads" => Counter("uvs_offloaded_flows", "Flows handed to the kernel program"),
        "kernel_scheduled" => Counter(
            "uvs_kernel_scheduled",
            "New flows the kernel program scheduled itself",
        ),
        "kernel_refused" => Counter(
            "uvs_kernel_refused",
            "Flows the kernel program scheduled that uvs could not enter",
        ),
        "kernel_ring_full" => Counter(
            "uvs_kernel_ring_full",
            "Flows the kernel program could not report (ring full)",
        ),
        "icmp_rate_limited" => Counter(
            "uvs_icmp_rate_limited",
            "ICMP errors not sent because of the rate limits",
        ),
        "vip_conflicts" => Counter("uvs_vip_conflicts", "ARP from another host claiming a VIP"),
        "sync_events" => Counter(
            "uvs_sync_events",
            "Connection changes queued for the HA peers",
        ),
        "sync_overflows" => Counter(
            "uvs_sync_overflows",
            "Connection changes lost: the sync queue was full",
        ),
        "workers" => Gauge("uvs_workers", "Data-plane worker threads (--workers)"),
        "sync_sent_per_s"
        | "sync_received_per_s"
        | "sync_sent_records"
        | "sync_received_records" => Skipped,
        _ => return None,
    })
}

/// Each worker's figures of `uvs status` (`workerN_...`): metric, help
/// and the name's suffix.
const PER_WORKER: [(&str, &str, &str); 2] = [
    (
        "uvs_worker_rx_frames",
        "Frames each data-plane worker received",
        "_rx_frames",
    ),
    (
        "uvs_worker_kernel_scheduled",
        "New flows the kernel program scheduled and reported to each worker",
        "_kernel_scheduled",
    ),
];

/// Every figure of `uvs status`; `workerN_...` per worker.
pub fn add(sheet: &mut Sheet, status: &[(String, u64)]) {
    'next: for (name, v) in status {
        let v = *v;
        for (metric, help, suffix) in PER_WORKER {
            if let Some(w) = name
                .strip_prefix("worker")
                .and_then(|r| r.strip_suffix(suffix))
            {
                sheet.counter(metric, help, vec![("worker", w.into())], v);
                continue 'next;
            }
        }
        match kind(name) {
            Some(Kind::Counter(m, help)) => sheet.counter(m, help, Vec::new(), v),
            Some(Kind::Gauge(m, help)) => {
                sheet.gauge(m, help, Vec::new(), i64::try_from(v).unwrap_or(i64::MAX))
            }
            Some(Kind::Dropped(reason)) => {
                sheet.counter(DROPPED, DROPPED_HELP, vec![("reason", reason.into())], v)
            }
            Some(Kind::Skipped) => {}
            // A figure this table does not know yet still shows.
            None => {
                let help = "A data-plane counter of uvs status";
                sheet.counter(&format!("uvs_dataplane_{name}"), help, Vec::new(), v)
            }
        }
    }
}

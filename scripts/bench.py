#!/usr/bin/env python3
"""The side-by-side forwarding benchmark (docs/performance.md).

One lab, one generator (trafgen, 60-byte UDP frames), one sink (an
nftables counter-and-drop rule in each real server's prerouting hook, by
destination), and every path in the same run:

  direct        client -> real server, no director (the generator's cost)
  kernel        IP forwarding through the director namespace (uvs stopped)
  nft-dnat      nftables DNAT with numgen over two real servers
  floor         the least a forwarder can cost here: an XDP program on the
                director's link that sets the MACs toward rs1 and returns
                XDP_TX for every frame (no lookup, no state)
  default       uvs DR with the default flags (no --io, --offload or
                --workers: what a new user gets; the backend it chose is printed)
  uvs-dr/tun/nat  uvs on batched AF_PACKET, one data-plane thread
  uvs-dr-off    the same with --offload: the tc program forwards established flows
                (into the veth peer's receive: bpf_redirect_peer)
  uvs-dr-off-e  the same with --offload-egress (out of the link's transmit)
  xdp-dr/tun/nat  uvs on AF_XDP (the XDP program steers VIP traffic)

Each row is measured on each workload (BENCH_WORKLOADS, comma-separated,
default long,new): `long`, 256 long-lived UDP flows (source ports
1024-1279), every flow seen in the warm-up before the figure is taken;
`new`, every packet a new flow (a random client in 198.19.0.0/16 and a
random source port, written byte by byte with the IPv4 checksum redone
per packet; the director's rp_filter is 0); `many`, 64 Ki flows (source
ports 1024-65535), the workload of the figures before issue 29; `mixed`,
the long flows and new flows a frame of each in turn, the long flows
counted apart at the sink (their loss amid a new-flow flood). A row's
report key is ROW/WORKLOAD (uvs-dr/new).

The director's side is held to CPU1 for every row (RPS on its receive
queues; uvs pinned with taskset), the generator to CPU0. For each row and
workload: the CPU per delivered packet at a fixed rate below saturation
(busy time of each core and of both, wall time less idle from /proc/stat:
see cpu_times), then the peak delivered rate with the generator
unthrottled. Rounds interleave the rows (round 1 of every row and
workload, then round 2...); each row's ratio to the kernel row (and to
the floor row) on the same workload is taken within a round, and the
medians of BENCH_ROUNDS rounds are printed with their range. Then TCP
throughput (iperf3) direct, through the kernel's forwarding and through
uvs DR with the default flags and on each backend, new TCP connections
per second the same ways; real web clients (nginx on rs1, wrk -t1 -c32
-d5s with and without keep-alive) direct, through the kernel's
forwarding, uvs with the default flags and uvs --io packet --offload,
requests/s and p99 as ratios to direct; and uvs's memory per connection
with BENCH_FLOWS live UDP flows. The TCP and web figures are in
scripts/bench_tcp.py, the lab's plumbing in scripts/bench_lab.py.

Environment: BENCH_BIN (the binaries, default target/release), BENCH_BEFORE (another
build's binaries: each uvs row runs again with them as ROW@old, right
after it in every round, for a before/after within one run; the web
figures add uvs_dr_default@old),
BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_RATE (15000 pps),
BENCH_WORKLOADS (long,new; also many, mixed), BENCH_FLOWS (1000000; 0 skips),
BENCH_TCP_ROUNDS (3, for the TCP and web figures), BENCH_JSON (where to
write the figures, default target/bench.json), BENCH_ROWS
(comma-separated subset of the rows above and tcp, web, memory; the
direct row always runs), BENCH_XDP_NAPI (softirq, the default, or thread:
see xdp_napi_on_cpu1), BENCH_PERF (a directory: after a row's rounds, one
more pass at the fixed rate under `perf record -a` with DWARF call
graphs, not counted, its report in DIR/ROW-WORKLOAD.txt), BENCH_PERF_RATE
(that pass's rate in pps, 0 for the peak; the fixed rate unless set). UVS_IO and
UVS_WORKERS are not passed on: each row's flags are its own.
Traffic stays inside the lab's namespaces (198.18.0.0/15).
"""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts

from bench_lab import (BIN, NAT_RS, P, RATE, ROOT, RS, SECS, TMP, VIP, WORKLOADS, Uvs, f2, floor_program,
                       forwarding, mac, med, measure, pass_program_on_switch_port, procs, quiet, ratio,
                       run, sh, sink_setup, spread, stop, switch_knows_sinks, trafgen, trafgen_cfg,
                       workload_cfg, xdp_napi_on_cpu1)
from bench_tcp import tcp_figures, web_figures

OLD_BIN = os.environ.get("BENCH_BEFORE")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FLOWS = int(os.environ.get("BENCH_FLOWS", "1000000"))
OUT = os.environ.get("BENCH_JSON", os.path.join(ROOT, "target", "bench.json"))
ROWS = [r for r in os.environ.get("BENCH_ROWS", "").split(",") if r]
PERF = os.environ.get("BENCH_PERF")
# The profile's rate: the fixed rate by default, 0 for the peak.
PERF_RATE = int(os.environ.get("BENCH_PERF_RATE", str(RATE)))
WL = [w for w in os.environ.get("BENCH_WORKLOADS", "long,new").split(",") if w]


def rows():
    """(name, what, setup): setup() readies the row and returns its handle
    (for cleanup_row) and where the generator sends: (handle, MAC, address)."""
    dmac = mac("dir")
    table = [
        ("direct", "client to the real server, no director", lambda: (None, mac("rs1"), RS[0])),
        ("kernel", "kernel IP forwarding through the director", lambda: kernel(dmac)),
        ("nft-dnat", "nftables DNAT, numgen over 2 real servers", lambda: nft(dmac)),
        ("floor", "XDP: MACs set toward rs1, XDP_TX (no lookup)", lambda: floor(dmac)),
    ]

    def u(name, what, *args, **kw):
        # A uvs row; its setup takes the build to run (BENCH_BEFORE's twin).
        return (name, what, lambda b=BIN: uvs_row(b, dmac, *args, **kw))

    uvs = [
        u("default", "uvs DR, default flags (no --io, no --offload)", "-g", RS, None),
        u("uvs-dr", "uvs DR, AF_PACKET, 2 real servers", "-g", RS, "packet"),
        u("uvs-tun", "uvs TUN (IP-in-IP), AF_PACKET", "-i", RS, "packet"),
        u("uvs-nat", "uvs NAT (two-armed), AF_PACKET", "-m", NAT_RS, "packet"),
        u("uvs-dr-off", "uvs DR, AF_PACKET, --offload (tc program)", "-g", RS, "packet", offload=True),
        u("uvs-dr-off-e", "the same, --offload-egress (bpf_redirect)", "-g", RS, "packet", offload="egress"),
        u("ring-dr", "uvs DR, AF_PACKET with a TPACKET_V3 ring", "-g", RS, "packet-ring"),
        u("uvs-dr-w2", "uvs DR, AF_PACKET, 2 workers on CPU0-1", "-g", RS, "packet", 2),
        u("off-w2", "uvs DR, --offload (tc program), 2 workers on CPU0-1", "-g", RS, "packet", 2,
          offload=True),
        u("xdp-dr", "uvs DR, AF_XDP, 2 real servers", "-g", RS, "xdp"),
        u("xdp-dr-off", "uvs DR, AF_XDP, --offload (XDP_TX)", "-g", RS, "xdp", offload=True),
        u("xdp-dr-off-t", "the same, the veth's NAPI a thread on CPU1", "-g", RS, "xdp", offload=True,
          napi_thread=True),
        u("xdp-tun", "uvs TUN (IP-in-IP), AF_XDP", "-i", RS, "xdp"),
        u("xdp-nat", "uvs NAT (two-armed), AF_XDP", "-m", NAT_RS, "xdp"),
    ]
    if OLD_BIN:
        # Each uvs row again with the other build, right after it in every
        # round: a before/after within one run.
        uvs = [t for name, what, setup in uvs
               for t in ((name, what, setup),
                         (name + "@old", "the same, BENCH_BEFORE's build", lambda s=setup: s(OLD_BIN)))]
    return [r for r in table + uvs if not ROWS or r[0].split("@")[0] in ROWS or r[0] == "direct"]


def kernel(dmac):
    forwarding(True)
    return None, dmac, RS[0]


def nft(dmac):
    forwarding(True)
    sh("dir", "nft add table ip lb && "
              "nft add chain ip lb pre '{ type nat hook prerouting priority -100; }' && "
              "nft add rule ip lb pre ip daddr %s udp dport 9 dnat to numgen inc mod 2 map "
              "'{ 0 : %s, 1 : %s }'" % (VIP, RS[0], RS[1]))
    return "nft", dmac, VIP


def floor(dmac):
    """The floor row: floor_program on the director's eth0 (every frame to
    rs1's MAC from the director's, XDP_TX) with the pass program on the
    switch's port that the XDP offload rows use; its NAPI as the xdp rows'."""
    forwarding(False)
    pass_program_on_switch_port()
    sh("dir", "ip link set dev eth0 xdp obj %s sec xdp" % floor_program(mac("rs1"), dmac))
    xdp_napi_on_cpu1(["eth0"])
    return "floor", dmac, VIP


def uvs_row(bin_dir, dmac, method, servers, io, workers=1, offload=False, napi_thread=False):
    """io None: the default flags (no --io, --workers or --offload).
    workers > 1: the director's threads and its receive (RPS) may use
    both cores, the generator's included: the 2-core lab's only way to
    give two workers two cores. napi_thread: as BENCH_XDP_NAPI=thread for
    this row (the XDP program's work on CPU1, not the generator's core).
    offload: True for --offload, "egress" for --offload --offload-egress."""
    forwarding(False)
    ifaces = ["eth0", "eth1"] if method == "-m" else ["eth0"]
    cpus = "1" if workers == 1 else "0-1"
    for dev in ifaces:
        sh("dir", "echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus" % ("2" if workers == 1 else "3", dev))
    extra = [] if io is None else ["--io", io, "--workers", str(workers)] + (["--offload"] if offload else [])
    if offload == "egress":
        extra.append("--offload-egress")
    if offload and io == "xdp":
        pass_program_on_switch_port()
        extra.append("--xdp-peer-program")
    u = Uvs(ifaces, extra, cpus, bin_dir)
    if io == "xdp":
        xdp_napi_on_cpu1(ifaces, napi_thread)
        u.napi_thread = napi_thread
    u.adm("-A -u %s:9 -s rr" % VIP)
    for s in servers:
        u.adm("-a -u %s:9 -r %s:9 %s" % (VIP, s, method))
    time.sleep(0.3)
    return u, dmac, VIP


def cleanup_row(h):
    sh("sw", "ip link set dev p-dir xdp off", check=False)
    if getattr(h, "napi_thread", False) and os.environ.get("BENCH_XDP_NAPI", "softirq") != "thread":
        # Back to softirq after a napi_thread row.
        for i in ("eth0", "eth1"):
            sh("dir", "echo 0 > /sys/class/net/%s/threaded" % i, check=False)
    if isinstance(h, Uvs):
        h.stop()
    elif h == "nft":
        sh("dir", "nft delete table ip lb", check=False)
    elif h == "floor":
        sh("dir", "ip link set dev eth0 xdp off", check=False)
    forwarding(False)
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)


def memory_figures():
    """uvs's RSS growth per connection with FLOWS live UDP flows."""
    if FLOWS <= 0:
        return {}
    forwarding(False)
    u = Uvs(["eth0"], ["--max-conns", str(max(FLOWS, 1024))])
    u.adm("-A -u %s:9 -s rr" % VIP)
    for s in RS:
        u.adm("-a -u %s:9 -r %s -g" % (VIP, s))
    time.sleep(0.5)
    r0, c0 = u.rss_kib(), u.status().get("conns", 0)
    templates = (FLOWS + 64511) // 64512
    cfg = trafgen_cfg(mac("dir"), VIP, templates)
    # Each flow once, slowly enough for the director to take them all.
    n = templates * 64512
    deadline = time.time() + 600
    trafgen(cfg, 600, rate=int(os.environ.get("BENCH_FLOW_RATE", "20000")), num=n, burst=True)
    while time.time() < deadline:
        time.sleep(1.2)
        if u.status().get("conns", 0) >= c0 + min(FLOWS, n) * 0.9:
            break
    time.sleep(1.2)
    r1, c1 = u.rss_kib(), u.status().get("conns", 0)
    u.stop()
    return {
        "flows_sent": n,
        "conns": c1 - c0,
        "rss_growth_mib": (r1 - r0) / 1024,
        "bytes_per_conn": (r1 - r0) * 1024 / (c1 - c0) if c1 > c0 else None,
    }


def profile(name, cfg):
    """Where the CPU goes at the fixed rate: both cores sampled for one
    pass (perf's own cost would skew a counted round), the report by
    binary and symbol in PERF/NAME.txt."""
    os.makedirs(PERF, exist_ok=True)
    data = os.path.join(PERF, name + ".data")
    rec = subprocess.Popen(["perf", "record", "-q", "-a", "--call-graph", "dwarf,16384", "-F", "499", "-o", data,
                            "--", "sleep", str(max(1, SECS - 1))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(rec)
    trafgen(cfg, SECS, PERF_RATE)
    rec.wait()
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--sort", "cpu,comm,dso,sym", "--percent-limit", "0.5"],
                         capture_output=True, text=True)
    with open(os.path.join(PERF, name + ".txt"), "w") as f:
        f.write(rep.stdout)


def udp_rounds(table):
    """Every row on every workload, ROUNDS times, interleaved (round 1 of
    every row and workload, then round 2...): a slow drift of this shared
    VM's speed falls on every row alike, and each ratio to the kernel is
    taken within one round. Returns {ROW/WORKLOAD: [round's figures]}."""
    got = {"%s/%s" % (name, wl): [] for name, _, _ in table for wl in WL}
    chosen = {}
    for rnd in range(ROUNDS):
        for name, what, setup in table:
            for wl in WL:
                key = "%s/%s" % (name, wl)
                h, dst, daddr = setup()
                cfg = workload_cfg(wl, dst, daddr)
                # Warm-up: every flow once (neighbours resolved, conntrack
                # and connection tables filled), so the round measures
                # forwarding; new flows fill the tables as a flood would.
                trafgen(cfg, 2)
                if isinstance(h, Uvs) and (h.offload or name.startswith("default")) and wl != "new":
                    # A flow is handed over once uvs has seen two of its
                    # frames, and unthrottled uvs sees a fraction of them:
                    # every flow three more times, at a rate uvs keeps up
                    # with (the default row too: its flags may offload).
                    # New flows are never seen twice.
                    trafgen(cfg, 5, 40000)
                quiet()
                s0 = h.status() if isinstance(h, Uvs) else None
                got[key].append(measure(cfg, h.status if isinstance(h, Uvs) else None, wl == "mixed"))
                if s0 is not None:
                    # What reached uvs itself (the rest the offload forwarded).
                    s1 = h.status()
                    got[key][-1]["uvs"] = {k: s1.get(k, 0) - s0.get(k, 0)
                                           for k in UVS_COUNTS}
                    chosen.setdefault(name, h.io_chosen())
                if PERF and rnd == 0:
                    profile(key.replace("/", "-"), cfg)
                cleanup_row(h)
                print("bench: round %d/%d %-20s done" % (rnd + 1, ROUNDS, key), file=sys.stderr)
    return got, chosen


# What each uvs row's rounds record of `uvs status` (the difference over
# the round's measure): what reached uvs itself, what the kernel program
# forwarded, scheduled, could not report (a full ring), and uvs's own
# losses and evictions.
UVS_COUNTS = ("rx_frames", "offloads", "offload_forwarded", "kernel_scheduled", "kernel_refused",
              "kernel_ring_full", "rx_socket_drops", "conn_evictions")


def summary(table, got):
    """Each ROW/WORKLOAD's medians, and its per-round ratios to the kernel
    and floor rows on the same workload."""
    out = {}
    for name, what, _ in table:
        for wl in WL:
            rounds = got["%s/%s" % (name, wl)]
            dr = got["direct/%s" % wl]
            fixed = lambda k: med([r["fixed"][k] for r in rounds])
            peak = lambda k: med([r["peak"][k] for r in rounds])
            by_cpu = lambda c: med([(r["fixed"]["cpu_us_per_pkt_by_cpu"] or {}).get(c) for r in rounds])
            # The director's own cost: the row's all-CPU time less the
            # direct path's (the generator and the sink) in the same round.
            minus = [None if None in (r["fixed"]["cpu_us_per_pkt"], d["fixed"]["cpu_us_per_pkt"])
                     else r["fixed"]["cpu_us_per_pkt"] - d["fixed"]["cpu_us_per_pkt"] for r, d in zip(rounds, dr)]
            out["%s/%s" % (name, wl)] = {
                "row": name,
                "workload": wl,
                "what": what,
                "cpu_us_per_pkt": fixed("cpu_us_per_pkt"),
                "cpu_us_per_pkt_ticks": fixed("cpu_us_per_pkt_ticks"),
                "cpu0_us_per_pkt": by_cpu(0),
                "cpu1_us_per_pkt": by_cpu(1),
                "minus_direct_us_per_pkt_rounds": minus,
                "minus_direct_us_per_pkt": med(minus),
                "fixed_loss": fixed("loss"),
                "fixed_delivered_pps": fixed("delivered_pps"),
                "fixed_offered_pps": fixed("offered_pps"),
                "peak_offered_pps": peak("offered_pps"),
                "peak_delivered_pps": peak("delivered_pps"),
                "peak_loss": peak("loss"),
                "rounds": rounds,
                "uvs_rx_frames": med([r["uvs"]["rx_frames"] for r in rounds if "uvs" in r]),
                "offload_forwarded": med([r["uvs"]["offload_forwarded"] for r in rounds if "uvs" in r]),
                "uvs_counts": {k: med([r["uvs"][k] for r in rounds if "uvs" in r]) for k in UVS_COUNTS},
            }
            if wl == "mixed":
                for m in ("fixed", "peak"):
                    out["%s/%s" % (name, wl)]["long_loss_" + m] = med([r[m].get("long_loss") for r in rounds])
    for r in out.values():
        for base in ("kernel", "floor"):
            b = out.get("%s/%s" % (base, r["workload"]))
            if not b:
                continue
            # Paired: this row's round i against the base row's round i.
            r["director_vs_%s_rounds" % base] = [ratio(x, y) for x, y in zip(
                r["minus_direct_us_per_pkt_rounds"], b["minus_direct_us_per_pkt_rounds"])]
            r["cost_vs_%s_rounds" % base] = [ratio(x["fixed"]["cpu_us_per_pkt"], y["fixed"]["cpu_us_per_pkt"])
                                             for x, y in zip(r["rounds"], b["rounds"])]
            r["peak_vs_%s_rounds" % base] = [ratio(x["peak"]["delivered_pps"], y["peak"]["delivered_pps"])
                                             for x, y in zip(r["rounds"], b["rounds"])]
            for key in ("director_vs_", "cost_vs_", "peak_vs_"):
                r[key + base] = med(r[key + base + "_rounds"])
    return out


def print_udp(rows_, results):
    hdr = "%-14s %-46s %8s %6s %6s %8s %17s %17s %7s %9s %9s %5s %17s"
    for wl in WL:
        print()
        print("Forwarding, 60-byte UDP, workload %s: %s;" % (wl, WORKLOADS[wl]))
        print("director side on CPU1, generator on CPU0; medians of %d interleaved rounds of %.0f s;" % (ROUNDS, SECS))
        print("vs kernel: median of the per-round ratios [lowest-highest]")
        print(hdr % ("path", "", "all-CPU", "CPU0", "CPU1", "director", "director", "all-CPU",
                     "loss", "peak", "peak", "peak", "peak"))
        print(hdr % ("", "", "us/pkt", "gen.", "dir.", "us/pkt", "vs kernel", "vs kernel",
                     "fixed", "offered", "delivered", "loss", "vs kernel"))
        mine = [(k, r) for k, r in rows_.items() if r["workload"] == wl]
        for _, r in mine:
            print("%-14s %-46s %8s %6s %6s %8s %17s %17s %6.1f%% %9.0f %9.0f %4.0f%% %17s" % (
                r["row"], r["what"], f2(r["cpu_us_per_pkt"]), f2(r["cpu0_us_per_pkt"]), f2(r["cpu1_us_per_pkt"]),
                f2(r["minus_direct_us_per_pkt"]),
                spread(r.get("director_vs_kernel"), r.get("director_vs_kernel_rounds")),
                spread(r.get("cost_vs_kernel"), r.get("cost_vs_kernel_rounds")),
                100 * (r["fixed_loss"] or 0),
                r["peak_offered_pps"], r["peak_delivered_pps"], 100 * (r["peak_loss"] or 0),
                spread(r.get("peak_vs_kernel"), r.get("peak_vs_kernel_rounds"))))
        if any("cost_vs_floor" in r for _, r in mine):
            print("vs floor (all-CPU; peak): %s" % ", ".join(
                "%s %s; %s" % (r["row"], spread(r["cost_vs_floor"], r["cost_vs_floor_rounds"]),
                               spread(r["peak_vs_floor"], r["peak_vs_floor_rounds"]))
                for _, r in mine if r["row"] not in ("direct", "floor")))
        print("By the tick-sampled busy fields alone (what /proc/stat's user..softirq say): %s" % ", ".join(
            "%s %s" % (r["row"], f2(r["cpu_us_per_pkt_ticks"])) for _, r in mine))
        off = [r for _, r in mine if r["offload_forwarded"]]
        if off:
            print("Offload rows, frames per round's measure (fixed rate and peak) that uvs received / the program "
                  "forwarded: %s" % ", ".join("%s %d / %d" % (r["row"], r["uvs_rx_frames"], r["offload_forwarded"])
                                              for r in off))
            print("  and their uvs status over a round's measure (medians): %s" % "; ".join(
                "%s %s" % (r["row"], ", ".join("%s %d" % (k, v) for k, v in r["uvs_counts"].items()
                                               if v and k not in ("rx_frames", "offload_forwarded")))
                for r in off))
        if wl == "mixed":
            print("the long flows' loss amid the flood (at the fixed rate; at the peak): %s" % (", ".join(
                "%s %.1f%%; %.1f%%" % (r["row"], 100 * (r["long_loss_fixed"] or 0), 100 * (r["long_loss_peak"] or 0))
                for _, r in mine)))
        for one, two, key, what in (("uvs-dr", "uvs-dr-w2", "", "AF_PACKET DR"),
                                     ("uvs-dr-off", "off-w2", "offload_", "the tc program")):
            w1, w2 = rows_.get(one + "/" + wl), rows_.get(two + "/" + wl)
            if w1 and w2:
                w = [ratio(b["peak"]["delivered_pps"], a["peak"]["delivered_pps"])
                     for a, b in zip(w1["rounds"], w2["rounds"])]
                results["workers2_vs_1_%speak_%s" % (key, wl)] = med(w)
                print("two workers vs one (%s) peak: %s (the second worker shares CPU0 with the generator)"
                      % (what, spread(med(w), w)))
    print()
    fixed = sorted(r["fixed_offered_pps"] for r in rows_.values() if r.get("fixed_offered_pps"))
    print("fixed rate: trafgen paced at a frame per %d us (at most %d pps), offered %s pps (median of the rows)"
          % (1000000 // RATE, RATE, "%.0f" % fixed[len(fixed) // 2] if fixed else "-"))
    print("all-CPU: busy time of both cores per delivered packet at that rate (exact: wall time less")
    print("idle, see cpu_times); CPU0 holds the generator, CPU1 the director's side; director: all-CPU")
    print("less the direct path's in the same round (the generator's and the sink's cost).")
    print("(xdp and floor rows: the XDP program runs in the veth's NAPI on the sending CPU unless BENCH_XDP_NAPI=thread)")
    for name, line in results.get("io_chosen", {}).items():
        if name.startswith("default"):
            print("%s row: %s" % (name, line))


def print_tcp(t):
    print()
    print("TCP (iperf3, 5 s, client offloads on; new connections/s from one client thread),")
    print("medians of %d interleaved rounds; vs direct: median of the per-round ratios [lowest-highest]" % t["rounds"])
    for name in t["paths"]:
        g, c = t["iperf_%s_gbps" % name], t["conn_rate_%s" % name]
        print("  %-26s %6s Gbit/s %17s   %8s conn/s (%s)" % (
            name, f2(g), spread(t["iperf_%s_vs_direct" % name], t["iperf_%s_vs_direct_rounds" % name]),
            "-" if c is None else "%.0f" % c,
            "-" if c is None or not t["conn_rate_direct"] else "%.2fx" % (c / t["conn_rate_direct"])))


def print_web(w):
    print()
    print("Web: nginx on rs1 (a %d-byte file), %s from the client, with 'Connection: close'" % (w["file_bytes"], w["wrk"]))
    print("and keep-alive; medians of %d interleaved rounds; vs direct: median of the per-round ratios" % w["rounds"])
    for name, modes in w["paths"].items():
        print("  %-22s %s" % (name, "; ".join(
            "%s %8s req/s %17s, p99 %7s ms %17s%s" % (
                m, "-" if f["rps"] is None else "%.0f" % f["rps"], spread(f["rps_vs_direct"], f["rps_vs_direct_rounds"]),
                f2(f["p99_ms"]), spread(f["p99_ms_vs_direct"], f["p99_ms_vs_direct_rounds"]),
                ", %d errors" % f["errors"] if f["errors"] else "")
            for m, f in modes.items())))


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    unknown = [w for w in WL if w not in WORKLOADS]
    if unknown or not WL:
        raise SystemExit("bench: BENCH_WORKLOADS: unknown %s (known: %s)" % (",".join(unknown), ",".join(WORKLOADS)))
    tools = ["trafgen", "iperf3", "nft", "taskset", "clang"] + (["nginx", "wrk"] if not ROWS or "web" in ROWS else [])
    for tool in tools:
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode:
            raise SystemExit("bench: %s is missing (scripts/bench.sh installs it)" % tool)
    # After a build (scripts/bench.sh builds first) round 1's first row
    # cost twice its later rounds, and not in a run without one: likely
    # the build's dirty pages being written back. Flush them first.
    os.sync()
    run([os.path.join(ROOT, "testbed", "lab.sh"), "up", P, "2", "--nat"])
    sink_setup()
    switch_knows_sinks()
    # The director's receive on CPU1, for every row. (Steering the sinks'
    # receive to CPU1 as well was tried: it added loss on every path.)
    # No reverse-path filter: the new-flow workload's clients
    # (198.19.0.0/16) have no route back through the director.
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)
        sh("dir", "sysctl -qw net.ipv4.conf.%s.rp_filter=0" % dev)
    sh("dir", "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
    results = {"rate_pps": RATE, "seconds": SECS, "rounds": ROUNDS,
               "workloads": {w: WORKLOADS[w] for w in WL}}
    table = rows()
    got, results["io_chosen"] = udp_rounds(table)
    results["rows"] = rows_ = summary(table, got)
    print_udp(rows_, results)
    if not ROWS or "tcp" in ROWS:
        results["tcp"] = tcp_figures()
        print_tcp(results["tcp"])
    if not ROWS or "web" in ROWS:
        results["web"] = web_figures()
        print_web(results["web"])
    if not ROWS or "memory" in ROWS:
        results["memory"] = m = memory_figures()
        if m:
            print()
            print("Memory: %d live UDP flows in uvs's table, RSS grew %.1f MiB: %s bytes per connection" % (
                m["conns"], m["rss_growth_mib"], "-" if m["bytes_per_conn"] is None else "%.0f" % m["bytes_per_conn"]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(results, f, indent=1)
    print("\nfigures: %s" % OUT)


if __name__ == "__main__":
    # A SIGTERM ends the run through the cleanup below, as Ctrl-C does.
    import signal

    def on_term(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    finally:
        for p in procs:
            stop(p, grace=2)
        subprocess.run([os.path.join(ROOT, "testbed", "lab.sh"), "down", P], capture_output=True)
        subprocess.run(["rm", "-rf", TMP])

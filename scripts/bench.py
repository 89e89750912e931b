#!/usr/bin/env python3
"""The side-by-side forwarding benchmark (docs/performance.md).

One lab, one generator (trafgen, 60-byte UDP frames, 64 Ki flows), one
sink (an nftables counter-and-drop rule in each real server's prerouting
hook), and every path in the same run:

  direct        client -> real server, no director (the generator's cost)
  kernel        IP forwarding through the director namespace (uvs stopped)
  nft-dnat      nftables DNAT with numgen over two real servers
  uvs-dr/tun/nat  uvs on batched AF_PACKET, one data-plane thread
  uvs-dr-off    the same with --offload: the tc program forwards established flows
                (into the veth peer's receive: bpf_redirect_peer)
  uvs-dr-off-e  the same with --offload-egress (out of the link's transmit)
  xdp-dr/tun/nat  uvs on AF_XDP (the XDP program steers VIP traffic)

The director's side is held to CPU1 for every row (RPS on its receive
queues; uvs pinned with taskset), the generator to CPU0. For each row:
the CPU per delivered packet at a fixed rate below saturation (busy time
of each core and of both, wall time less idle from /proc/stat: see
cpu_times), then the peak delivered rate with the generator unthrottled.
Rounds interleave the rows (round 1 of every row, then round 2...); each
row's ratio to the kernel row is taken within a round, and the medians of
BENCH_ROUNDS rounds are printed with their range. Then TCP throughput
(iperf3) direct, through the kernel's forwarding and through uvs DR on
each backend, new TCP connections per second the same ways,
and uvs's memory per connection with BENCH_FLOWS live UDP flows.

Environment: BENCH_BIN (the binaries, default target/release), BENCH_BEFORE (another
build's binaries: each uvs row runs again with them as ROW@old, right
after it in every round, for a before/after within one run),
BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_RATE (15000 pps),
BENCH_FLOWS (1000000; 0 skips), BENCH_TCP_ROUNDS (3), BENCH_JSON (where to write the figures,
default target/bench.json), BENCH_ROWS (comma-separated subset),
BENCH_XDP_NAPI (softirq, the default, or thread: see xdp_napi_on_cpu1),
BENCH_PERF (a directory: after a row's rounds, one more pass at the fixed
rate under `perf record -a` with DWARF call
graphs, not counted, its report in DIR/ROW.txt).
Traffic stays inside the lab's namespaces (198.18.0.0/15).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "target", "release"))
OLD_BIN = os.environ.get("BENCH_BEFORE")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = float(os.environ.get("BENCH_SECONDS", "8"))
RATE = int(os.environ.get("BENCH_RATE", "15000"))
FLOWS = int(os.environ.get("BENCH_FLOWS", "1000000"))
OUT = os.environ.get("BENCH_JSON", os.path.join(ROOT, "target", "bench.json"))
ROWS = [r for r in os.environ.get("BENCH_ROWS", "").split(",") if r]
PERF = os.environ.get("BENCH_PERF")
P = "uvsb%d" % os.getpid()
VIP = "198.18.0.100"
RS = ["198.18.0.11", "198.18.0.12"]
NAT_RS = ["198.18.2.11", "198.18.2.12"]
HZ = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="uvsbench")
procs = []


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit("bench: %s failed: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def nse(node, *cmd, check=True):
    return run(["ip", "netns", "exec", "%s-%s" % (P, node), *cmd], check=check)


def sh(node, script, check=True):
    return nse(node, "sh", "-c", script, check=check)


def mac(node, dev="eth0"):
    return sh(node, "cat /sys/class/net/%s/address" % dev).strip()


def cpu_times():
    """Per CPU, the time it was not idle, in seconds, and the wall clock.

    The idle (and iowait) fields of /proc/stat are exact on a tickless
    kernel (measured at each entry to and exit from idle); the busy fields
    are sampled by the 250 Hz tick, which is stopped on an idle CPU, so
    softirq work done in short wake-ups from idle (the kernel path's whole
    forwarding) is mostly missed by them. Busy = wall - idle - iowait -
    steal is exact, and counts interrupts and softirqs wherever they ran.
    The busy fields' own sum is kept beside it, to show what it misses."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    wall = time.monotonic()
    idle, ticks = {}, {}
    for l in lines:
        w = l.split()
        if w[0].startswith("cpu") and w[0] != "cpu":
            v = [int(x) for x in w[1:]]
            idle[int(w[0][3:])] = (v[3] + v[4] + v[7]) / HZ
            ticks[int(w[0][3:])] = (v[0] + v[1] + v[2] + v[5] + v[6]) / HZ
    return idle, wall, ticks


def busy_between(a, b):
    """Per-CPU busy seconds between two cpu_times() readings."""
    (ia, wa, _), (ib, wb, _) = a, b
    return {c: max(0.0, (wb - wa) - (ib[c] - ia[c])) for c in ib if c in ia}


def ticked_between(a, b):
    """The same from the tick-sampled busy fields (user to softirq)."""
    return sum(b[2][c] - a[2][c] for c in b[2] if c in a[2])


def quiet(limit=15.0):
    """Waits (up to `limit` seconds) until both CPUs are nearly idle, so a
    row starts from an idle machine: work the kernel still does after the
    previous row's teardown (in its workers) would land in its figure.
    (It did not cure round 1's slow first row: see os.sync() in main.)"""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        a = cpu_times()
        time.sleep(0.5)
        if sum(busy_between(a, cpu_times()).values()) < 0.03 * 0.5 * len(a[0]):
            return


def tx_packets(node, dev="eth0"):
    j = json.loads(nse(node, "ip", "-s", "-j", "link", "show", dev))
    return j[0]["stats64"]["tx"]["packets"]


SINKS = ["rs1", "rs2", "nat1", "nat2"]


def sink_setup():
    for n in SINKS:
        sh(
            n,
            "nft add table ip sink && "
            "nft add chain ip sink pre '{ type filter hook prerouting priority -300; }' && "
            "nft add rule ip sink pre udp dport 9 counter drop && "
            "nft add rule ip sink pre ip protocol 4 counter drop",
        )


def switch_knows_sinks():
    """Static entries in the switch for the sinks' and the director's MACs.
    A sink only receives, so the bridge would not learn its port until
    something made it send (an ARP reply to the director), and until then
    floods every frame to it to all ports: flooded, the direct row cost
    4.2 us/pkt and peaked at 250-290k pps; learnt, 1.5 us/pkt and 930k."""
    for n, port in [(n, "p-" + n) for n in SINKS] + [("dir", "p-dir")]:
        sh("sw", "bridge fdb replace %s dev %s master static" % (mac(n), port))
    sh("sw", "bridge fdb replace %s dev p-dir1 master static" % mac("dir", "eth1"))


def delivered():
    total = 0
    for n in SINKS:
        j = json.loads(nse(n, "nft", "-j", "list", "table", "ip", "sink"))
        for e in j["nftables"]:
            rule = e.get("rule")
            if rule:
                for x in rule["expr"]:
                    if "counter" in x:
                        total += x["counter"]["packets"]
    return total


def trafgen_cfg(dst_mac, daddr, templates=1):
    """60-byte UDP frames to daddr:9 via dst_mac; source ports 1024..65535
    (and `templates` source addresses): 64 Ki flows per template."""
    path = os.path.join(TMP, "tg-%s-%s-%d.cfg" % (dst_mac.replace(":", ""), daddr, templates))
    with open(path, "w") as f:
        for t in range(templates):
            src = "198.19.%d.%d" % (t // 250, t % 250 + 1)
            f.write(
                "{\n  eth(da=%s, type=0x0800),\n  ipv4(saddr=%s, daddr=%s, ttl=64, id=drnd()),\n"
                "  udp(sport=dinc(1024, 65535), dport=9),\n  fill(0x41, 18)\n}\n" % (dst_mac, src, daddr)
            )
    return path


def trafgen(cfg, seconds, rate=None, num=None):
    cmd = ["timeout", "-s", "INT", str(seconds), "ip", "netns", "exec", "%s-cl" % P,
           "taskset", "-c", "0", "trafgen", "--dev", "eth0", "--conf", cfg, "--cpus", "1", "-q"]
    if rate:
        cmd += ["-b", "%dpps" % rate]
    if num:
        cmd += ["-n", str(num)]
    subprocess.run(cmd, capture_output=True)


def measure(cfg):
    """One round: (CPU µs per delivered packet at RATE, delivered/offered
    at that rate), then (peak delivered pps, offered pps)."""
    out = {}
    for mode, rate in (("fixed", RATE), ("peak", None)):
        time.sleep(0.3)
        # The counters are read outside the CPU window: each read starts
        # processes (ip, nft) whose cost is not the path's.
        d0, t0 = delivered(), tx_packets("cl")
        c0 = cpu_times()
        trafgen(cfg, SECS, rate)
        time.sleep(0.2)
        c1 = cpu_times()
        d1, t1 = delivered(), tx_packets("cl")
        d, o = d1 - d0, t1 - t0
        per_cpu = busy_between(c0, c1)
        out[mode] = {
            "offered": o,
            "delivered": d,
            "cpu_us_per_pkt": sum(per_cpu.values()) * 1e6 / d if d else None,
            "cpu_us_per_pkt_by_cpu": {c: b * 1e6 / d for c, b in per_cpu.items()} if d else None,
            "cpu_us_per_pkt_ticks": ticked_between(c0, c1) * 1e6 / d if d else None,
            "offered_pps": o / SECS,
            "delivered_pps": d / SECS,
            "loss": 1 - d / o if o else None,
        }
    return out


class Uvs:
    """uvs director in the director namespace, pinned to CPU1."""

    def __init__(self, ifaces, extra=(), cpus="1", bin_dir=BIN):
        self.sock = os.path.join(TMP, "uvs.sock")
        self.offload = "--offload" in extra
        args = ["ip", "netns", "exec", "%s-dir" % P, "taskset", "-c", cpus,
                os.path.join(bin_dir, "uvs"), "director", "--socket", self.sock]
        for i in ifaces:
            args += ["-i", i]
        args += list(extra)
        self.log = open(os.path.join(TMP, "uvs.log"), "a")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        procs.append(self.p)
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        time.sleep(0.3)

    def adm(self, line):
        run([os.path.join(BIN, "uvsadm"), "--socket", self.sock] + line.split())

    def status(self):
        o = run([os.path.join(BIN, "uvs"), "status", "--socket", self.sock])
        return {l.split()[0]: int(l.split()[1]) for l in o.splitlines() if len(l.split()) == 2 and l.split()[1].isdigit()}

    def rss_kib(self):
        # The director is the child of `ip netns exec` + taskset (exec'd).
        with open("/proc/%d/status" % self.p.pid) as f:
            for l in f:
                if l.startswith("VmRSS:"):
                    return int(l.split()[1])
        return 0

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def forwarding(on):
    v = "1" if on else "0"
    sh("dir", "sysctl -qw net.ipv4.ip_forward=%s net.ipv4.conf.all.send_redirects=0 "
              "net.ipv4.conf.eth0.send_redirects=0 net.ipv4.conf.eth0.forwarding=%s "
              "net.ipv4.conf.eth1.forwarding=%s" % (v, v, v))


def rows():
    dmac = mac("dir")
    table = [
        ("direct", "client to the real server, no director", lambda: (None, trafgen_cfg(mac("rs1"), RS[0]))),
        ("kernel", "kernel IP forwarding through the director", lambda: kernel(dmac)),
        ("nft-dnat", "nftables DNAT, numgen over 2 real servers", lambda: nft(dmac)),
    ]

    def u(name, what, *args, **kw):
        # A uvs row; its setup takes the build to run (BENCH_BEFORE's twin).
        return (name, what, lambda b=BIN: uvs_row(b, dmac, *args, **kw))

    uvs = [
        u("uvs-dr", "uvs DR, AF_PACKET, 2 real servers", "-g", RS, "packet"),
        u("uvs-tun", "uvs TUN (IP-in-IP), AF_PACKET", "-i", RS, "packet"),
        u("uvs-nat", "uvs NAT (two-armed), AF_PACKET", "-m", NAT_RS, "packet"),
        u("uvs-dr-off", "uvs DR, AF_PACKET, --offload (tc program)", "-g", RS, "packet", offload=True),
        u("uvs-dr-off-e", "the same, --offload-egress (bpf_redirect)", "-g", RS, "packet", offload="egress"),
        u("ring-dr", "uvs DR, AF_PACKET with a TPACKET_V3 ring", "-g", RS, "packet-ring"),
        u("uvs-dr-w2", "uvs DR, AF_PACKET, 2 workers on CPU0-1", "-g", RS, "packet", 2),
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
    return None, trafgen_cfg(dmac, RS[0])


def nft(dmac):
    forwarding(True)
    sh("dir", "nft add table ip lb && "
              "nft add chain ip lb pre '{ type nat hook prerouting priority -100; }' && "
              "nft add rule ip lb pre ip daddr %s udp dport 9 dnat to numgen inc mod 2 map "
              "'{ 0 : %s, 1 : %s }'" % (VIP, RS[0], RS[1]))
    return "nft", trafgen_cfg(dmac, VIP)


def uvs_row(bin_dir, dmac, method, servers, io, workers=1, offload=False, napi_thread=False):
    """workers > 1: the director's threads and its receive (RPS) may use
    both cores, the generator's included: the 2-core lab's only way to
    give two workers two cores. napi_thread: as BENCH_XDP_NAPI=thread for
    this row (the XDP program's work on CPU1, not the generator's core).
    offload: True for --offload, "egress" for --offload --offload-egress."""
    forwarding(False)
    ifaces = ["eth0", "eth1"] if method == "-m" else ["eth0"]
    cpus = "1" if workers == 1 else "0-1"
    for dev in ifaces:
        sh("dir", "echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus" % ("2" if workers == 1 else "3", dev))
    extra = ["--io", io, "--workers", str(workers)] + (["--offload"] if offload else [])
    if offload == "egress":
        extra.append("--offload-egress")
    if offload and io == "xdp":
        pass_program_on_switch_port()
    u = Uvs(ifaces, extra, cpus, bin_dir)
    if io == "xdp":
        xdp_napi_on_cpu1(ifaces, napi_thread)
        u.napi_thread = napi_thread
    u.adm("-A -u %s:9 -s rr" % VIP)
    for s in servers:
        u.adm("-a -u %s:9 -r %s:9 %s" % (VIP, s, method))
    time.sleep(0.3)
    return u, trafgen_cfg(dmac, VIP)


def xdp_napi_on_cpu1(ifaces, force=False):
    """A veth with an XDP program receives in its own NAPI, run in softirq
    on the CPU that sent the frame (the generator's): RPS, which holds the
    other rows' receive to CPU1, comes after XDP. So by default the XDP
    program's work (and the copy into the socket) runs on CPU0, counted in
    the all-CPU column but not held to CPU1. BENCH_XDP_NAPI=thread makes
    the veth's NAPI a thread pinned to CPU1 with uvs (the strict one-core
    figure; on this VM it loses frames at the fixed rate, see
    docs/performance.md)."""
    if not force and os.environ.get("BENCH_XDP_NAPI", "softirq") != "thread":
        return
    for i in ifaces:
        sh("dir", "echo 1 > /sys/class/net/%s/threaded" % i)
    time.sleep(0.2)
    for pid in run(["pgrep", "^napi/eth"], check=False).split():
        run(["taskset", "-p", "-c", "1", pid], check=False)


def pass_program_on_switch_port():
    """XDP_TX on a veth reaches its peer only if the peer runs an XDP
    program (the kernel flushes XDP_TX frames only to such a peer): a
    pass-everything one on the switch's port to the director, for the
    --offload row (docs/io.md)."""
    src, obj = os.path.join(TMP, "pass.c"), os.path.join(TMP, "pass.o")
    with open(src, "w") as f:
        f.write('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                'SEC("xdp") int pass(struct xdp_md *c) { return XDP_PASS; }\n'
                'char LICENSE[] SEC("license") = "GPL";\n')
    arch = os.uname().machine
    run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % arch, "-c", src, "-o", obj])
    sh("sw", "ip link set dev p-dir xdp obj %s sec xdp" % obj)


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
    forwarding(False)
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)


# The backends TCP goes through ("packet --offload": the tc program
# forwards the established connection, super-frames whole).
TCP_IOS = ("packet", "packet --offload", "packet-ring", "xdp")
TCP_ROUNDS = int(os.environ.get("BENCH_TCP_ROUNDS", "3"))


def tcp_figures():
    """iperf3 direct, through the kernel's forwarding and through uvs DR on
    each backend, and new TCP connections/s, in TCP_ROUNDS interleaved
    rounds: the medians, and each path's per-round ratio to direct."""
    forwarding(False)
    srv = subprocess.Popen(["ip", "netns", "exec", "%s-rs1" % P, os.path.join(BIN, "uvs-lab"), "server", "--name", "rs1", "--tcp", "80"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(srv)
    time.sleep(0.5)

    def iperf(target):
        nse("rs1", "iperf3", "-s", "-D", "-1")
        time.sleep(0.2)
        o = nse("cl", "iperf3", "-c", target, "-t", "5", "-J", check=False)
        try:
            return json.loads(o)["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError):
            return None

    def conns(target):
        o = nse("cl", os.path.join(BIN, "uvs-lab"), "conn-rate", "--target", target + ":80", "--seconds", "3")
        return json.loads(o)["per_second"]

    def direct():
        return iperf(RS[0]), conns(RS[0])

    def kernel_path():
        # The client reaches the real server through the director as its
        # router; the replies go straight back, as DR's do.
        forwarding(True)
        sh("cl", "ip route add %s/32 via 198.18.0.2" % RS[0])
        try:
            return iperf(RS[0]), conns(RS[0])
        finally:
            sh("cl", "ip route del %s/32 via 198.18.0.2" % RS[0])
            forwarding(False)

    def through(io):
        def go():
            u = Uvs(["eth0"], ["--io"] + io.split())
            if io == "xdp":
                xdp_napi_on_cpu1(["eth0"])
            for port in (5201, 80):
                u.adm("-A -t %s:%d -s rr" % (VIP, port))
                u.adm("-a -t %s:%d -r %s -g" % (VIP, port, RS[0]))
            time.sleep(0.3)
            try:
                return iperf(VIP), conns(VIP)
            finally:
                u.stop()
        return go

    paths = [("direct", direct), ("kernel", kernel_path)] + [("uvs_dr_" + io.replace(" --", "-"), through(io)) for io in TCP_IOS]
    got = {name: [] for name, _ in paths}
    for rnd in range(TCP_ROUNDS):
        for name, go in paths:
            got[name].append(go())
            print("bench: TCP round %d/%d %s done" % (rnd + 1, TCP_ROUNDS, name), file=sys.stderr)
    res = {"rounds": TCP_ROUNDS, "paths": list(got)}
    for name, rounds in got.items():
        res["iperf_%s_gbps" % name] = med([g for g, _ in rounds])
        res["conn_rate_%s" % name] = med([c for _, c in rounds])
        res["iperf_%s_vs_direct_rounds" % name] = [ratio(g, d) for (g, _), (d, _) in zip(rounds, got["direct"])]
        res["iperf_%s_vs_direct" % name] = med(res["iperf_%s_vs_direct_rounds" % name])
    return res


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
    trafgen(cfg, 600, rate=int(os.environ.get("BENCH_FLOW_RATE", "20000")), num=n)
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
    trafgen(cfg, SECS, RATE)
    rec.wait()
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--sort", "cpu,comm,dso,sym", "--percent-limit", "0.5"],
                         capture_output=True, text=True)
    with open(os.path.join(PERF, name + ".txt"), "w") as f:
        f.write(rep.stdout)


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def f2(v):
    return "-" if v is None else "%.2f" % v


def spread(m, xs):
    """A median ratio with the lowest and highest round's."""
    xs = [x for x in xs or [] if x is not None]
    if m is None or not xs:
        return "-"
    return "%.2fx [%.2f-%.2f]" % (m, min(xs), max(xs))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    for tool in ("trafgen", "iperf3", "nft", "taskset"):
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
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)
    results = {"rate_pps": RATE, "seconds": SECS, "rounds": ROUNDS, "rows": {}}
    table = rows()
    got = {name: [] for name, _, _ in table}
    # Rounds interleave the rows (round 1 of every row, then round 2...),
    # so a slow drift of this shared VM's speed falls on every row alike,
    # and each ratio to the kernel is taken within one round.
    for rnd in range(ROUNDS):
        for name, what, setup in table:
            h, cfg = setup()
            # Warm-up: every flow once (neighbours resolved, conntrack and
            # connection tables filled), so the round measures forwarding.
            trafgen(cfg, 2)
            if isinstance(h, Uvs) and h.offload:
                # A flow is handed over once uvs has seen two of its
                # frames, and unthrottled uvs sees a fraction of them:
                # every flow three more times, at a rate uvs keeps up with.
                trafgen(cfg, 5, 40000)
            quiet()
            s0 = h.status() if isinstance(h, Uvs) else None
            got[name].append(measure(cfg))
            if s0 is not None:
                # What reached uvs itself (the rest the offload forwarded).
                s1 = h.status()
                got[name][-1]["uvs"] = {k: s1.get(k, 0) - s0.get(k, 0)
                                        for k in ("rx_frames", "offloads", "offload_forwarded")}
            if PERF and rnd == 0:
                profile(name, cfg)
            cleanup_row(h)
            print("bench: round %d/%d %-14s done" % (rnd + 1, ROUNDS, name), file=sys.stderr)
    dr = got["direct"]
    for name, what, _ in table:
        rounds = got[name]
        fixed = lambda k: med([r["fixed"][k] for r in rounds])
        peak = lambda k: med([r["peak"][k] for r in rounds])
        by_cpu = lambda c: med([(r["fixed"]["cpu_us_per_pkt_by_cpu"] or {}).get(c) for r in rounds])
        # The director's own cost: the row's all-CPU time less the direct
        # path's (the generator and the sink) in the same round.
        minus = [None if None in (r["fixed"]["cpu_us_per_pkt"], d["fixed"]["cpu_us_per_pkt"])
                 else r["fixed"]["cpu_us_per_pkt"] - d["fixed"]["cpu_us_per_pkt"] for r, d in zip(rounds, dr)]
        row = {
            "what": what,
            "cpu_us_per_pkt": fixed("cpu_us_per_pkt"),
            "cpu_us_per_pkt_ticks": fixed("cpu_us_per_pkt_ticks"),
            "cpu0_us_per_pkt": by_cpu(0),
            "cpu1_us_per_pkt": by_cpu(1),
            "minus_direct_us_per_pkt_rounds": minus,
            "minus_direct_us_per_pkt": med(minus),
            "fixed_loss": fixed("loss"),
            "fixed_delivered_pps": fixed("delivered_pps"),
            "peak_offered_pps": peak("offered_pps"),
            "peak_delivered_pps": peak("delivered_pps"),
            "peak_loss": peak("loss"),
            "rounds": rounds,
            "uvs_rx_frames": med([r["uvs"]["rx_frames"] for r in rounds if "uvs" in r]),
            "offload_forwarded": med([r["uvs"]["offload_forwarded"] for r in rounds if "uvs" in r]),
        }
        results["rows"][name] = row
    rows_ = results["rows"]
    k = rows_.get("kernel")
    if k:
        for r in rows_.values():
            # Paired: this row's round i against the kernel's round i.
            r["director_vs_kernel_rounds"] = [ratio(a, b) for a, b in zip(
                r["minus_direct_us_per_pkt_rounds"], k["minus_direct_us_per_pkt_rounds"])]
            r["cost_vs_kernel_rounds"] = [ratio(a["fixed"]["cpu_us_per_pkt"], b["fixed"]["cpu_us_per_pkt"])
                                          for a, b in zip(r["rounds"], k["rounds"])]
            r["peak_vs_kernel_rounds"] = [ratio(a["peak"]["delivered_pps"], b["peak"]["delivered_pps"])
                                          for a, b in zip(r["rounds"], k["rounds"])]
            for key in ("director_vs_kernel", "cost_vs_kernel", "peak_vs_kernel"):
                r[key] = med(r[key + "_rounds"])
    print()
    print("Forwarding, 60-byte UDP, 64 Ki flows; director side on CPU1, generator on CPU0;")
    print("medians of %d interleaved rounds of %.0f s; vs kernel: median of the per-round ratios [lowest-highest]" % (ROUNDS, SECS))
    hdr = "%-14s %-44s %8s %6s %6s %8s %17s %17s %7s %9s %9s %5s %17s"
    print(hdr % ("path", "", "all-CPU", "CPU0", "CPU1", "director", "director", "all-CPU",
                 "loss", "peak", "peak", "peak", "peak"))
    print(hdr % ("", "", "us/pkt", "gen.", "dir.", "us/pkt", "vs kernel", "vs kernel",
                 "@%dk" % (RATE // 1000), "offered", "delivered", "loss", "vs kernel"))
    for name, r in rows_.items():
        print("%-14s %-44s %8s %6s %6s %8s %17s %17s %6.1f%% %9.0f %9.0f %4.0f%% %17s" % (
            name, r["what"], f2(r["cpu_us_per_pkt"]), f2(r["cpu0_us_per_pkt"]), f2(r["cpu1_us_per_pkt"]),
            f2(r["minus_direct_us_per_pkt"]),
            spread(r.get("director_vs_kernel"), r.get("director_vs_kernel_rounds")),
            spread(r.get("cost_vs_kernel"), r.get("cost_vs_kernel_rounds")),
            100 * (r["fixed_loss"] or 0),
            r["peak_offered_pps"], r["peak_delivered_pps"], 100 * (r["peak_loss"] or 0),
            spread(r.get("peak_vs_kernel"), r.get("peak_vs_kernel_rounds"))))
    print("all-CPU: busy time of both cores per delivered packet at %d pps (exact: wall time less" % RATE)
    print("idle, see cpu_times); CPU0 holds the generator, CPU1 the director's side; director: all-CPU")
    print("less the direct path's in the same round (the generator's and the sink's cost).")
    print("By the tick-sampled busy fields alone (what /proc/stat's user..softirq say): %s" % ", ".join(
        "%s %s" % (n, f2(r["cpu_us_per_pkt_ticks"])) for n, r in rows_.items()))
    off = [(n, r) for n, r in rows_.items() if r["offload_forwarded"]]
    if off:
        print("Offload rows, frames per round's measure (fixed rate and peak) that uvs received / the program forwarded: %s" % ", ".join(
            "%s %d / %d" % (n, r["uvs_rx_frames"], r["offload_forwarded"]) for n, r in off))
    w1, w2 = rows_.get("uvs-dr"), rows_.get("uvs-dr-w2")
    if w1 and w2:
        w = [ratio(b["peak"]["delivered_pps"], a["peak"]["delivered_pps"])
             for a, b in zip(w1["rounds"], w2["rounds"])]
        results["workers2_vs_1_peak"] = med(w)
        print("two workers vs one (AF_PACKET DR) peak: %s (the second worker shares CPU0 with the generator)"
              % spread(med(w), w))
    print("(xdp rows: the XDP program runs in the veth's NAPI on the sending CPU unless BENCH_XDP_NAPI=thread)")
    if not ROWS or "tcp" in ROWS:
        results["tcp"] = t = tcp_figures()
        print()
        print("TCP (iperf3, 5 s, client offloads on; new connections/s from one client thread),")
        print("medians of %d interleaved rounds; vs direct: median of the per-round ratios [lowest-highest]" % t["rounds"])
        for name in t["paths"]:
            g, c = t["iperf_%s_gbps" % name], t["conn_rate_%s" % name]
            print("  %-26s %6s Gbit/s %17s   %8s conn/s (%s)" % (
                name, f2(g), spread(t["iperf_%s_vs_direct" % name], t["iperf_%s_vs_direct_rounds" % name]),
                "-" if c is None else "%.0f" % c,
                "-" if c is None or not t["conn_rate_direct"] else "%.2fx" % (c / t["conn_rate_direct"])))
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

    def stop(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run([os.path.join(ROOT, "testbed", "lab.sh"), "down", P], capture_output=True)
        subprocess.run(["rm", "-rf", TMP])

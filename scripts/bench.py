#!/usr/bin/env python3
"""The side-by-side forwarding benchmark (docs/performance.md).

One lab, one generator (trafgen, 60-byte UDP frames, 64 Ki flows), one
sink (an nftables counter-and-drop rule in each real server's prerouting
hook), and every path in the same run:

  direct        client -> real server, no director (the generator's cost)
  kernel        IP forwarding through the director namespace (uvs stopped)
  nft-dnat      nftables DNAT with numgen over two real servers
  uvs-dr/tun/nat  uvs on batched AF_PACKET, one data-plane thread
  xdp-dr/tun/nat  uvs on AF_XDP (the XDP program steers VIP traffic)

The director's side is held to CPU1 for every row (RPS on its receive
queues; uvs pinned with taskset), the generator to CPU0. For each row:
the director's CPU per delivered packet at a fixed rate below saturation
(all-CPU busy time from /proc/stat per delivered packet, minus the same on
the direct path), then the peak delivered rate with the generator
unthrottled. Medians of BENCH_ROUNDS rounds. Then TCP throughput through
DR against direct (iperf3), new TCP connections per second through DR,
and uvs's memory per connection with BENCH_FLOWS live UDP flows.

Environment: BENCH_BIN (the binaries, default target/release),
BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_RATE (15000 pps),
BENCH_FLOWS (1000000; 0 skips), BENCH_JSON (where to write the figures,
default target/bench.json), BENCH_ROWS (comma-separated subset),
BENCH_XDP_NAPI (softirq, the default, or thread: see xdp_napi_on_cpu1).
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = float(os.environ.get("BENCH_SECONDS", "8"))
RATE = int(os.environ.get("BENCH_RATE", "15000"))
FLOWS = int(os.environ.get("BENCH_FLOWS", "1000000"))
OUT = os.environ.get("BENCH_JSON", os.path.join(ROOT, "target", "bench.json"))
ROWS = [r for r in os.environ.get("BENCH_ROWS", "").split(",") if r]
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


def busy():
    """All-CPU busy and total jiffies."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle


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
        d0, t0, b0, w0 = delivered(), tx_packets("cl"), busy(), time.time()
        trafgen(cfg, SECS, rate)
        time.sleep(0.2)
        d1, t1, b1, w1 = delivered(), tx_packets("cl"), busy(), time.time()
        d, o, el = d1 - d0, t1 - t0, w1 - w0
        out[mode] = {
            "offered": o,
            "delivered": d,
            "cpu_us_per_pkt": (b1 - b0) * 1e6 / HZ / d if d else None,
            "offered_pps": o / SECS,
            "delivered_pps": d / SECS,
            "loss": 1 - d / o if o else None,
        }
    return out


class Uvs:
    """uvs director in the director namespace, pinned to CPU1."""

    def __init__(self, ifaces, extra=(), cpus="1"):
        self.sock = os.path.join(TMP, "uvs.sock")
        args = ["ip", "netns", "exec", "%s-dir" % P, "taskset", "-c", cpus,
                os.path.join(BIN, "uvs"), "director", "--socket", self.sock]
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
        ("uvs-dr", "uvs DR, AF_PACKET, 2 real servers", lambda: uvs_row(dmac, "-g", RS, "packet")),
        ("uvs-tun", "uvs TUN (IP-in-IP), AF_PACKET", lambda: uvs_row(dmac, "-i", RS, "packet")),
        ("uvs-nat", "uvs NAT (two-armed), AF_PACKET", lambda: uvs_row(dmac, "-m", NAT_RS, "packet")),
        ("ring-dr", "uvs DR, AF_PACKET with a TPACKET_V3 ring", lambda: uvs_row(dmac, "-g", RS, "packet-ring")),
        ("uvs-dr-w2", "uvs DR, AF_PACKET, 2 workers on CPU0-1", lambda: uvs_row(dmac, "-g", RS, "packet", 2)),
        ("xdp-dr", "uvs DR, AF_XDP, 2 real servers", lambda: uvs_row(dmac, "-g", RS, "xdp")),
        ("xdp-dr-off", "uvs DR, AF_XDP, --offload (XDP_TX)", lambda: uvs_row(dmac, "-g", RS, "xdp", offload=True)),
        ("xdp-tun", "uvs TUN (IP-in-IP), AF_XDP", lambda: uvs_row(dmac, "-i", RS, "xdp")),
        ("xdp-nat", "uvs NAT (two-armed), AF_XDP", lambda: uvs_row(dmac, "-m", NAT_RS, "xdp")),
    ]
    return [r for r in table if not ROWS or r[0] in ROWS or r[0] == "direct"]


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


def uvs_row(dmac, method, servers, io, workers=1, offload=False):
    """workers > 1: the director's threads and its receive (RPS) may use
    both cores, the generator's included: the 2-core lab's only way to
    give two workers two cores."""
    forwarding(False)
    ifaces = ["eth0", "eth1"] if method == "-m" else ["eth0"]
    cpus = "1" if workers == 1 else "0-1"
    for dev in ifaces:
        sh("dir", "echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus" % ("2" if workers == 1 else "3", dev))
    extra = ["--io", io, "--workers", str(workers)] + (["--offload"] if offload else [])
    if offload:
        pass_program_on_switch_port()
    u = Uvs(ifaces, extra, cpus)
    if io == "xdp":
        xdp_napi_on_cpu1(ifaces)
    u.adm("-A -u %s:9 -s rr" % VIP)
    for s in servers:
        u.adm("-a -u %s:9 -r %s:9 %s" % (VIP, s, method))
    time.sleep(0.3)
    return u, trafgen_cfg(dmac, VIP)


def xdp_napi_on_cpu1(ifaces):
    """A veth with an XDP program receives in its own NAPI, run in softirq
    on the CPU that sent the frame (the generator's): RPS, which holds the
    other rows' receive to CPU1, comes after XDP. So by default the XDP
    program's work (and the copy into the socket) runs on CPU0, counted in
    the all-CPU column but not held to CPU1. BENCH_XDP_NAPI=thread makes
    the veth's NAPI a thread pinned to CPU1 with uvs (the strict one-core
    figure; on this VM it loses frames at the fixed rate, see
    docs/performance.md)."""
    if os.environ.get("BENCH_XDP_NAPI", "softirq") != "thread":
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
    if isinstance(h, Uvs):
        h.stop()
    elif h == "nft":
        sh("dir", "nft delete table ip lb", check=False)
    forwarding(False)
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)


def tcp_figures():
    """iperf3 through DR against direct, and new TCP connections/s."""
    res = {}
    forwarding(False)
    nse("rs1", "iperf3", "-s", "-D", "-1")
    srv = subprocess.Popen(["ip", "netns", "exec", "%s-rs1" % P, os.path.join(BIN, "uvs-lab"), "server", "--name", "rs1", "--tcp", "80"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(srv)
    time.sleep(0.5)

    def iperf(target):
        o = nse("cl", "iperf3", "-c", target, "-t", "5", "-J", check=False)
        try:
            return json.loads(o)["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError):
            return None

    def conns(target):
        o = nse("cl", os.path.join(BIN, "uvs-lab"), "conn-rate", "--target", target + ":80", "--seconds", "3")
        return json.loads(o)["per_second"]

    res["iperf_direct_gbps"] = iperf(RS[0])
    res["conn_rate_direct"] = conns(RS[0])
    for io in ("packet", "packet-ring", "xdp"):
        nse("rs1", "iperf3", "-s", "-D", "-1")
        u = Uvs(["eth0"], ["--io", io])
        if io == "xdp":
            xdp_napi_on_cpu1(["eth0"])
        u.adm("-A -t %s:5201 -s rr" % VIP)
        u.adm("-a -t %s:5201 -r %s -g" % (VIP, RS[0]))
        u.adm("-A -t %s:80 -s rr" % VIP)
        u.adm("-a -t %s:80 -r %s -g" % (VIP, RS[0]))
        time.sleep(0.3)
        res["iperf_uvs_dr_%s_gbps" % io] = iperf(VIP)
        res["conn_rate_uvs_dr_%s" % io] = conns(VIP)
        u.stop()
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


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    for tool in ("trafgen", "iperf3", "nft", "taskset"):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode:
            raise SystemExit("bench: %s is missing (scripts/bench.sh installs it)" % tool)
    run([os.path.join(ROOT, "testbed", "lab.sh"), "up", P, "2", "--nat"])
    sink_setup()
    # The director's receive on CPU1, for every row. (Steering the sinks'
    # receive to CPU1 as well was tried: it added loss on every path.)
    for dev in ("eth0", "eth1"):
        sh("dir", "echo 2 > /sys/class/net/%s/queues/rx-0/rps_cpus" % dev)
    results = {"rate_pps": RATE, "seconds": SECS, "rounds": ROUNDS, "rows": {}}
    for name, what, setup in rows():
        h, cfg = setup()
        # Warm-up: every flow once (neighbours resolved, conntrack and
        # connection tables filled), so the rounds measure forwarding.
        trafgen(cfg, 2)
        time.sleep(0.5)
        rounds = [measure(cfg) for _ in range(ROUNDS)]
        cleanup_row(h)
        results["rows"][name] = {
            "what": what,
            "cpu_us_per_pkt": med([r["fixed"]["cpu_us_per_pkt"] for r in rounds]),
            "fixed_loss": med([r["fixed"]["loss"] for r in rounds]),
            "fixed_delivered_pps": med([r["fixed"]["delivered_pps"] for r in rounds]),
            "peak_offered_pps": med([r["peak"]["offered_pps"] for r in rounds]),
            "peak_delivered_pps": med([r["peak"]["delivered_pps"] for r in rounds]),
            "peak_loss": med([r["peak"]["loss"] for r in rounds]),
            "rounds": rounds,
        }
        print("bench: %-9s done" % name, file=sys.stderr)
    rows_ = results["rows"]
    base = rows_["direct"]["cpu_us_per_pkt"] or 0
    for r in rows_.values():
        r["director_us_per_pkt"] = None if r["cpu_us_per_pkt"] is None else r["cpu_us_per_pkt"] - base
    rows_["direct"]["director_us_per_pkt"] = None
    k = rows_.get("kernel")
    print()
    print("Forwarding, 60-byte UDP, 64 Ki flows; director side on CPU1, generator on CPU0; medians of %d rounds of %.0f s" % (ROUNDS, SECS))
    print("%-9s %-44s %9s %12s %8s %8s %12s %12s %6s %8s" % (
        "path", "", "all-CPU", "director", "vs", "loss at", "peak", "peak", "peak", "peak vs"))
    print("%-9s %-44s %9s %12s %8s %8s %12s %12s %6s %8s" % (
        "", "", "us/pkt", "us/pkt@%dk" % (RATE // 1000), "kernel", "%dk" % (RATE // 1000), "offered pps", "delivered", "loss", "kernel"))
    for name, r in rows_.items():
        cost = r["director_us_per_pkt"]
        ratio = cost / k["director_us_per_pkt"] if k and cost is not None and k["director_us_per_pkt"] else None
        pk = r["peak_delivered_pps"] / k["peak_delivered_pps"] if k and k["peak_delivered_pps"] else None
        r["cost_vs_kernel"], r["peak_vs_kernel"] = ratio, pk
        print("%-9s %-44s %9s %12s %8s %7.1f%% %12.0f %12.0f %5.0f%% %8s" % (
            name, r["what"],
            "-" if r["cpu_us_per_pkt"] is None else "%.2f" % r["cpu_us_per_pkt"],
            "-" if cost is None else "%.2f" % cost,
            "-" if ratio is None else "%.2fx" % ratio,
            100 * (r["fixed_loss"] or 0),
            r["peak_offered_pps"], r["peak_delivered_pps"], 100 * (r["peak_loss"] or 0),
            "-" if pk is None else "%.2fx" % pk))
    print("all-CPU: busy time of both cores per delivered packet at %d pps; director: the same minus" % RATE)
    print("the direct path's (on this VM it can come out below zero for the kernel: the direct")
    print("path's cross-core receive costs as much; compare the all-CPU column then)")
    w1, w2 = rows_.get("uvs-dr"), rows_.get("uvs-dr-w2")
    if w1 and w2 and w1["peak_delivered_pps"]:
        results["workers2_vs_1_peak"] = w2["peak_delivered_pps"] / w1["peak_delivered_pps"]
        print("two workers vs one (AF_PACKET DR) peak: %.2fx (the second worker shares CPU0 with the generator)"
              % results["workers2_vs_1_peak"])
    print("(xdp rows: the XDP program runs in the veth's NAPI on the sending CPU unless BENCH_XDP_NAPI=thread)")
    if not ROWS or "tcp" in ROWS:
        results["tcp"] = t = tcp_figures()
        print()
        fmt = lambda v, f: "-" if v is None else f % v
        d = t["iperf_direct_gbps"]
        for io in ("packet", "packet-ring", "xdp"):
            g = t["iperf_uvs_dr_%s_gbps" % io]
            c = t["conn_rate_uvs_dr_%s" % io]
            print("TCP through DR, %-11s (iperf3, 5 s, client offloads on): direct %s Gbit/s, uvs %s Gbit/s (%s)" % (
                io, fmt(d, "%.2f"), fmt(g, "%.2f"), fmt((g or 0) / d if d else None, "%.2fx")))
            print("New TCP connections per second, %-11s (one client thread): direct %.0f, uvs DR %.0f (%.2fx)" % (
                io, t["conn_rate_direct"], c, c / t["conn_rate_direct"]))
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

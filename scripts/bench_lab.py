"""The benchmark's lab and its plumbing (scripts/bench.py): the namespaces'
commands, exact CPU time, the sinks, the generator and its workloads, the
uvs director, XDP objects built at bench time, and the medians and ratios."""

import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "target", "release"))
SECS = float(os.environ.get("BENCH_SECONDS", "8"))
RATE = int(os.environ.get("BENCH_RATE", "15000"))
P = "uvsb%d" % os.getpid()
VIP = "198.18.0.100"
RS = ["198.18.0.11", "198.18.0.12"]
NAT_RS = ["198.18.2.11", "198.18.2.12"]
HZ = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="uvsbench")
# Every process the bench starts: stopped on exit and on failure (bench.py's
# main guard), besides what each figure stops itself.
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


def start(node, cmd, log=subprocess.DEVNULL):
    """A long-running process in a node, remembered in `procs`."""
    p = subprocess.Popen(["ip", "netns", "exec", "%s-%s" % (P, node), *cmd], stdout=log, stderr=log)
    procs.append(p)
    return p


def stop(p, grace=5):
    """SIGTERM (a server's clean exit: nginx's master stops its workers),
    SIGKILL after `grace` seconds."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


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
    """Counts and drops by destination (UDP port 9, IP-in-IP), whatever
    the source: the new-flow workload's random clients are counted too.
    The long-lived flows (198.19.0.1, source ports 1024-1279) are counted
    apart first, for the mixed workload (delivered(long=True))."""
    for n in SINKS:
        sh(
            n,
            "nft add table ip sink && "
            "nft add chain ip sink pre '{ type filter hook prerouting priority -300; }' && "
            "nft add rule ip sink pre ip saddr 198.19.0.1 udp sport 1024-1279 udp dport 9 "
            "counter drop comment long && "
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


def delivered(long=False):
    """Frames the sinks counted; `long`: the long-lived flows' only."""
    total = 0
    for n in SINKS:
        j = json.loads(nse(n, "nft", "-j", "list", "table", "ip", "sink"))
        for e in j["nftables"]:
            rule = e.get("rule")
            if rule and (not long or rule.get("comment") == "long"):
                for x in rule["expr"]:
                    if "counter" in x:
                        total += x["counter"]["packets"]
    return total


# The trafgen rows' workloads (BENCH_WORKLOADS): what each row's frames are.
WORKLOADS = {
    "long": "256 long-lived UDP flows (source ports 1024-1279), every flow seen in the warm-up",
    "new": "every packet a new flow (random client in 198.19.0.0/16, random source port)",
    "many": "64 Ki UDP flows (source ports 1024-65535), the earlier figures' workload",
    "mixed": "the long workload's 256 flows and new flows (as in new), a frame of each in turn: "
             "the long flows' loss amid a new-flow flood, counted apart at the sink",
}


def trafgen_cfg(dst_mac, daddr, templates=1, ports=64512):
    """60-byte UDP frames to daddr:9 via dst_mac; source ports from 1024
    (`ports` of them, up to 65535) and `templates` source addresses:
    ports x templates flows."""
    path = os.path.join(TMP, "tg-%s-%s-%d-%d.cfg" % (dst_mac.replace(":", ""), daddr, templates, ports))
    with open(path, "w") as f:
        for t in range(templates):
            src = "198.19.%d.%d" % (t // 250, t % 250 + 1)
            f.write(
                "{\n  eth(da=%s, type=0x0800),\n  ipv4(saddr=%s, daddr=%s, ttl=64, id=drnd()),\n"
                "  udp(sport=dinc(1024, %d), dport=9),\n  fill(0x41, 18)\n}\n" % (dst_mac, src, daddr, 1023 + ports)
            )
    return path


def new_flows_cfg(dst_mac, daddr):
    """The same 60-byte frame with every packet a new flow: a random client
    in 198.19.0.0/16 and a random source port, written byte by byte (the
    header syntax has no per-packet random address); csumip redoes the
    IPv4 header checksum after the random bytes, UDP's is left 0 (none).
    The client sends from these addresses at L2 only (trafgen writes raw
    frames); the director's rp_filter is 0 for the kernel row (main)."""
    path = os.path.join(TMP, "tg-new-%s-%s.cfg" % (dst_mac.replace(":", ""), daddr))
    hexes = lambda m: ", ".join("0x" + b for b in m.split(":"))
    with open(path, "w") as f:
        f.write("{\n  %s,\n  %s,\n  c16(0x0800),\n" % (hexes(dst_mac), hexes(mac("cl"))))
        f.write("  0x45, 0x00, c16(46), drnd(2), 0x00, 0x00, 64, 17,\n  csumip(14, 33),\n")
        f.write("  198, 19, drnd(), drnd(),\n  %s,\n" % ", ".join(daddr.split(".")))
        f.write("  drnd(2), c16(9), c16(26), c16(0),\n  fill(0x41, 18)\n}\n")
    return path


def workload_cfg(workload, dst_mac, daddr):
    if workload == "new":
        return new_flows_cfg(dst_mac, daddr)
    if workload == "mixed":
        # trafgen sends a config's packets in turn: one long, one new.
        path = os.path.join(TMP, "tg-mixed-%s-%s.cfg" % (dst_mac.replace(":", ""), daddr))
        with open(path, "w") as f:
            for part in (trafgen_cfg(dst_mac, daddr, ports=256), new_flows_cfg(dst_mac, daddr)):
                with open(part) as p:
                    f.write(p.read())
        return path
    return trafgen_cfg(dst_mac, daddr, ports=256 if workload == "long" else 64512)


def trafgen(cfg, seconds, rate=None, num=None, burst=False):
    """trafgen from the client for `seconds`: unthrottled, or paced at
    most `rate` pps (`-t`, a gap after each frame). Its `-b` rate sends
    each second's frames in one burst at full speed and then waits (seen:
    15,000 frames within 150 ms, then none for 850 ms), so "15 kpps" was a
    1,000-frame backlog on the director's CPU overflowing on every path
    slower than the kernel's. The gap's sleep makes the paced rate lower
    than `rate` (about 9-10 kpps for 15,000 here): the bench prints the
    rate offered. `burst`: `-b` (the memory figure, which counts entries,
    not losses)."""
    cmd = ["timeout", "-s", "INT", str(seconds), "ip", "netns", "exec", "%s-cl" % P,
           "taskset", "-c", "0", "trafgen", "--dev", "eth0", "--conf", cfg, "--cpus", "1", "-q"]
    if rate and burst:
        cmd += ["-b", "%dpps" % rate]
    elif rate:
        cmd += ["-t", "%dus" % max(1, 1000000 // rate)]
    if num:
        cmd += ["-n", str(num)]
    subprocess.run(cmd, capture_output=True)


def measure(cfg, status=None, long=False):
    """One round: (CPU µs per delivered packet at RATE, delivered/offered
    at that rate), then (peak delivered pps, offered pps). `status`: a
    uvs row's counters (Uvs.status), whose moves over each phase are kept
    as its "uvs" (read outside the CPU window too). `long`: the mixed
    workload, whose long-lived flows' loss (half the frames offered) is
    kept as "long_loss"."""
    out = {}
    for mode, rate in (("fixed", RATE), ("peak", None)):
        time.sleep(0.3)
        s0 = status() if status else None
        l0 = delivered(long=True) if long else 0
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
        if long:
            half = o / 2
            out[mode]["long_loss"] = 1 - (delivered(long=True) - l0) / half if half else None
        if s0 is not None:
            s1 = status()
            out[mode]["uvs"] = {k: v - s0.get(k, 0) for k, v in s1.items() if v != s0.get(k, 0)}
    return out


class Uvs:
    """uvs director in the director namespace, pinned to CPU1. `extra`
    holds every flag the row runs with: UVS_IO and UVS_WORKERS in the
    bench's environment are dropped, so the default row gets the defaults."""

    def __init__(self, ifaces, extra=(), cpus="1", bin_dir=BIN):
        self.sock = os.path.join(TMP, "uvs.sock")
        self.offload = "--offload" in extra
        args = ["ip", "netns", "exec", "%s-dir" % P, "taskset", "-c", cpus,
                os.path.join(bin_dir, "uvs"), "director", "--socket", self.sock]
        for i in ifaces:
            args += ["-i", i]
        args += list(extra)
        path = os.path.join(TMP, "uvs.log")
        self.log = open(path, "a")
        self.log_from = (path, self.log.tell())
        env = {k: v for k, v in os.environ.items() if k not in ("UVS_IO", "UVS_WORKERS")}
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env)
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

    def io_chosen(self):
        """The start's "packet I/O: ..." log line: what the flags (or auto) chose."""
        path, at = self.log_from
        with open(path, errors="replace") as f:
            f.seek(at)
            for l in f:
                if "packet I/O:" in l:
                    return l[l.index("packet I/O:"):].strip()
        return None

    def rss_kib(self):
        # The director is the child of `ip netns exec` + taskset (exec'd).
        with open("/proc/%d/status" % self.p.pid) as f:
            for l in f:
                if l.startswith("VmRSS:"):
                    return int(l.split()[1])
        return 0

    def stop(self):
        stop(self.p)
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def forwarding(on):
    v = "1" if on else "0"
    sh("dir", "sysctl -qw net.ipv4.ip_forward=%s net.ipv4.conf.all.send_redirects=0 "
              "net.ipv4.conf.eth0.send_redirects=0 net.ipv4.conf.eth0.forwarding=%s "
              "net.ipv4.conf.eth1.forwarding=%s" % (v, v, v))


@contextlib.contextmanager
def kernel_route():
    """The client reaches the real server rs1 through the director as its
    router (the kernel's forwarding); the replies go straight back, as
    DR's do."""
    forwarding(True)
    sh("cl", "ip route add %s/32 via 198.18.0.2" % RS[0])
    try:
        yield RS[0]
    finally:
        sh("cl", "ip route del %s/32 via 198.18.0.2" % RS[0])
        forwarding(False)


@contextlib.contextmanager
def uvs_dr_to_rs1(extra, bin_dir=BIN):
    """uvs (with the flags `extra`: none for the defaults; the build in
    `bin_dir`) as a DR director of VIP TCP ports 5201 (iperf3) and 80 to
    rs1; yields the VIP."""
    u = Uvs(["eth0"], extra, bin_dir=bin_dir)
    if "--io" not in extra or "xdp" in extra:
        xdp_napi_on_cpu1(["eth0"])
    try:
        for port in (5201, 80):
            u.adm("-A -t %s:%d -s rr" % (VIP, port))
            u.adm("-a -t %s:%d -r %s -g" % (VIP, port, RS[0]))
        time.sleep(0.3)
        yield VIP
    finally:
        u.stop()


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


def xdp_object(name, body):
    """An XDP program (`body`: C after the includes, its section "xdp")
    built with clang into TMP/name.o, once per run."""
    src, obj = os.path.join(TMP, name + ".c"), os.path.join(TMP, name + ".o")
    if not os.path.exists(obj):
        with open(src, "w") as f:
            f.write('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n%s\n'
                    'char LICENSE[] SEC("license") = "GPL";\n' % body)
        arch = os.uname().machine
        run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % arch, "-c", src, "-o", obj])
    return obj


def pass_program_on_switch_port():
    """XDP_TX on a veth reaches its peer only if the peer runs an XDP
    program (the kernel flushes XDP_TX frames only to such a peer): a
    pass-everything one on the switch's port to the director, for the
    --offload and floor rows (docs/io.md)."""
    obj = xdp_object("pass", 'SEC("xdp") int pass(struct xdp_md *c) { return XDP_PASS; }')
    sh("sw", "ip link set dev p-dir xdp obj %s sec xdp" % obj)


def floor_program(to_mac, from_mac):
    """The least a forwarder can do: every frame's MACs set toward
    `to_mac` from `from_mac` (constants in the source) and sent back out
    of the link it came in on (XDP_TX); no lookup, no state."""
    sets = " ".join("d[%d] = 0x%s;" % (i, b) for i, b in enumerate((to_mac + ":" + from_mac).split(":")))
    name = "floor-" + (to_mac + from_mac).replace(":", "")
    return xdp_object(name, 'SEC("xdp") int floor_tx(struct xdp_md *c) {\n'
                            '  unsigned char *d = (void *)(long)c->data;\n'
                            '  if ((void *)(d + 12) > (void *)(long)c->data_end) return XDP_PASS;\n'
                            '  %s\n  return XDP_TX;\n}' % sets)


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

"""The benchmark's TCP figures (scripts/bench.py): iperf3 and new
connections per second, and real web clients (nginx and wrk), each direct
to real server rs1, through the kernel's forwarding and through uvs DR, in
interleaved rounds with every path's ratio to direct taken within a round."""

import contextlib
import json
import os
import re
import sys
import time

from bench_lab import (BIN, RS, TMP, forwarding, kernel_route, med, nse, ratio, sh, start, stop,
                       uvs_dr_to_rs1)

ROUNDS = int(os.environ.get("BENCH_TCP_ROUNDS", "3"))


@contextlib.contextmanager
def direct():
    yield RS[0]


def through(io, bin_dir=BIN):
    """uvs DR with `--io IO` (its words: "packet --offload"), or the
    default flags (no --io, no --offload) when io is None; the build in
    `bin_dir`."""
    return lambda: uvs_dr_to_rs1(["--io"] + io.split() if io else [], bin_dir)


# The paths TCP goes through: the default flags, then the backends ("packet
# --offload": the tc program forwards the established connection,
# super-frames whole).
TCP_IOS = (None, "packet", "packet --offload", "packet-ring", "xdp")


def path_name(io):
    return "uvs_dr_" + (io.replace(" --", "-") if io else "default")


def rounds(paths, measure, what):
    """`measure(target)` for every path (name, context giving the target
    address) in ROUNDS interleaved rounds: {name: [round's figures]}."""
    got = {name: [] for name, _ in paths}
    for rnd in range(ROUNDS):
        for name, path in paths:
            with path() as target:
                got[name].append(measure(target))
            print("bench: %s round %d/%d %s done" % (what, rnd + 1, ROUNDS, name), file=sys.stderr)
    return got


def tcp_figures():
    """iperf3 direct, through the kernel's forwarding and through uvs DR
    with the default flags and on each backend, and new TCP connections/s,
    in ROUNDS interleaved rounds: the medians, and each path's per-round
    ratio to direct."""
    forwarding(False)
    srv = start("rs1", [os.path.join(BIN, "uvs-lab"), "server", "--name", "rs1", "--tcp", "80"])
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

    paths = [("direct", direct), ("kernel", kernel_route)] + [(path_name(io), through(io)) for io in TCP_IOS]
    try:
        got = rounds(paths, lambda t: (iperf(t), conns(t)), "TCP")
    finally:
        stop(srv)
    res = {"rounds": ROUNDS, "paths": list(got)}
    for name, rs in got.items():
        res["iperf_%s_gbps" % name] = med([g for g, _ in rs])
        res["conn_rate_%s" % name] = med([c for _, c in rs])
        res["iperf_%s_vs_direct_rounds" % name] = [ratio(g, d) for (g, _), (d, _) in zip(rs, got["direct"])]
        res["iperf_%s_vs_direct" % name] = med(res["iperf_%s_vs_direct_rounds" % name])
    return res


WEB_FILE_BYTES = 612  # the size of nginx's own welcome page
WRK = ["wrk", "-t1", "-c32", "-d5s", "--latency"]
WEB_MODES = (("close", ["-H", "Connection: close"]), ("keepalive", []))


def nginx_on_rs1():
    """Debian's nginx in rs1 serving a small static file on port 80 (every
    address: rs1's own and the VIP on its lo), one worker, no access log;
    its files and pid in TMP, nothing of the system's configuration."""
    www = os.path.join(TMP, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n" + "x" * (WEB_FILE_BYTES - 17) + "\n")
    os.chmod(TMP, 0o755)  # the worker runs as nobody
    conf, err = os.path.join(TMP, "nginx.conf"), os.path.join(TMP, "nginx-error.log")
    with open(conf, "w") as f:
        f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s;\n"
                "events { worker_connections 1024; }\n"
                "http {\n  access_log off;\n  sendfile on;\n  client_body_temp_path %s/nginx-body;\n"
                "  server { listen 80; root %s; }\n}\n" % (TMP, err, TMP, www))
    p = start("rs1", ["nginx", "-e", err, "-p", TMP, "-c", conf])
    for _ in range(50):
        if nse("rs1", "ss", "-Hltn", "sport = :80").strip():
            return p
        if p.poll() is not None:
            break
        time.sleep(0.1)
    stop(p)
    with open(err, errors="replace") as f:
        raise SystemExit("bench: nginx did not start in rs1: %s" % f.read()[-2000:])


def client_reuses_ports():
    """One client namespace stands for many clients: it may reuse a local
    port whose connection is in TIME_WAIT (tcp_tw_reuse=1, safe with
    timestamps) from the whole port range. Without it, wrk's closing
    connections (which end in TIME_WAIT on the client half the time) held
    the 28,000 default ports for 60 s: by a round's third path every
    connect() scanned thousands of them (__inet_hash_connect, wrk at 100%
    CPU), and a path's figure fell with its place in the round, to 0.01x
    of direct."""
    sh("cl", "sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range='1024 65535'")


def seconds(v):
    """wrk's printed duration (12.34us, 1.20ms, 2.00s, 1.00m) in seconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v)
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)] if m else None


def wrk(target, flags):
    """wrk's requests/s, p99 latency (ms) and socket errors against target."""
    o = nse("cl", *WRK, *flags, "http://%s/index.html" % target, check=False)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", o, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", o, re.M)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", o)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
    p99s = seconds(p99.group(1)) if p99 else None
    return {
        "rps": float(rps.group(1)) if rps else None,
        "p99_ms": p99s * 1e3 if p99s is not None else None,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
        "non_2xx_3xx": int(bad.group(1)) if bad else 0,
    }


WEB_IOS = (None, "packet --offload")


def web_figures():
    """nginx on rs1 and wrk (-t1 -c32 -d5s) from the client, with
    `Connection: close` (a TCP connection per request) and keep-alive:
    direct, through the kernel's forwarding, through uvs DR with the
    default flags and with --io packet --offload, in ROUNDS interleaved
    rounds; requests/s and p99 as per-round ratios to the direct path's."""
    forwarding(False)
    client_reuses_ports()
    ngx = nginx_on_rs1()
    paths = [("direct", direct), ("kernel", kernel_route)] + [(path_name(io), through(io)) for io in WEB_IOS]
    old = os.environ.get("BENCH_BEFORE")
    if old:
        # The default flags on BENCH_BEFORE's build, in the same rounds.
        paths.append((path_name(None) + "@old", through(None, old)))
    try:
        got = rounds(paths, lambda t: {m: wrk(t, flags) for m, flags in WEB_MODES}, "web")
    finally:
        stop(ngx)
    res = {"rounds": ROUNDS, "file_bytes": WEB_FILE_BYTES, "wrk": " ".join(WRK), "paths": {}}
    for name, rs in got.items():
        res["paths"][name] = per_mode = {}
        for m, _ in WEB_MODES:
            fig = {"rounds": [r[m] for r in rs]}
            for k in ("rps", "p99_ms"):
                fig[k] = med([r[m][k] for r in rs])
                fig[k + "_vs_direct_rounds"] = [ratio(r[m][k], d[m][k]) for r, d in zip(rs, got["direct"])]
                fig[k + "_vs_direct"] = med(fig[k + "_vs_direct_rounds"])
            fig["errors"] = sum(r[m]["socket_errors"] + r[m]["non_2xx_3xx"] for r in rs)
            per_mode[m] = fig
    return res

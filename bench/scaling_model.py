#!/usr/bin/env python3
"""pstrain's scaling model (docs/SCALING.md): measured inputs in, projected throughput out.

  bench/scaling_model.py measure [--build build] [--out bench/scaling_inputs.json] [--runs 3]
      Measures on this machine, for every zoo model: the parameter bytes and variable count
      (pstrain inspect placement --dry-run), the time of one training step at batch 100 on one
      thread (single-process pstrain-worker runs, median over --runs runs alternated between
      models; VGG-16 once, at batch 2, scaled to 100), and the PS's request-handling cost
      (bench_transport: per byte from a 32 MB push+pull, per request from 1 MB in 256
      variables; with the job token, and again with TLS).
  bench/scaling_model.py table [--inputs bench/scaling_inputs.json] [--check RATE_MBIT=EPS ...]
      Prints the projection for 8..256 workers (markdown), and with --check compares the model
      with what tests/test_netns.sh measured under tc tbf limits (2 workers, softmax; the test
      prints "tbf 20mbit per worker link: N examples/s").

The model (all times per worker step, batch 100):
  PS mode, N workers, P PS, link L bytes/s each way per host, B parameter bytes, V variables:
    worker-bound   X_w   = N / (t_c + B/L)            (B pulled and B pushed per step, on the two
                                                       directions of a full-duplex link at once:
                                                       what the tc runs measured; 2B/L if one
                                                       followed the other)
    PS-link-bound  X_l   = P * L / B                  (each PS sends and receives B/P per step)
    PS-CPU-bound   X_cpu = P / (2B*c_byte + 2V*c_req) (one PS's handling cost per worker step)
    steps/s = min(X_w, X_l, X_cpu)   (an upper bound: no queueing, no stragglers)
  ring allreduce (synchronous): t = t_c + 2(N-1)/N * B/L + 2(N-1) * (alpha + c_req)
    steps/s = N / t
  efficiency = steps/s / (N / t_c): throughput against N perfectly independent workers.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

MODELS = ["softmax", "mlp", "lenet5", "cnn5", "simple_cnn", "vgg16"]
STEPS = {"softmax": 400, "mlp": 60, "lenet5": 30, "cnn5": 20, "simple_cnn": 20, "vgg16": 2}
BATCH = {"vgg16": 2}
WORKERS = [8, 16, 32, 64, 128, 256]
LINKS_GBIT = [10, 25]
ALPHA_S = 50e-6  # one-way network latency per ring message (a datacenter figure, not measured)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 1200), **kw)


def measure(args):
    build = args.build
    pstrain = os.path.join(build, "launcher", "pstrain")
    worker = os.path.join(build, "worker", "pstrain-worker")
    bench = os.path.join(build, "bench", "bench_transport")
    out = {"machine": os.uname().nodename, "cpus": os.cpu_count(),
           "load_average": os.getloadavg()[0], "models": {}}
    tmp = tempfile.mkdtemp(prefix="pst-scaling.")
    for m in MODELS:
        job = os.path.join(tmp, m + ".json")
        with open(job, "w") as f:
            json.dump({"name": "s", "cluster": {"ps": 1, "worker": 1}, "model": m,
                       "optimizer": "sgd"}, f)
        r = run([pstrain, "inspect", "placement", "--job", job, "--dry-run"])
        g = re.search(r"total: (\d+) variables, (\d+) bytes", r.stdout + r.stderr)
        if not g:
            sys.exit(f"scaling_model: pstrain inspect gave no total for {m}:\n{r.stdout}{r.stderr}")
        # global_step is a variable the worker reads but never pushes a gradient for.
        out["models"][m] = {"variables": int(g.group(1)), "param_bytes": int(g.group(2)),
                            "step_s_runs": []}
    for i in range(args.runs):
        for m in MODELS:
            if m == "vgg16" and i > 0:
                continue  # minutes per run on one thread: measured once
            b = BATCH.get(m, 100)
            r = run([worker, "--model", m, "--steps", str(STEPS[m]), "--batch", str(b),
                     "--threads", "1", "--quiet", "--validation", "0"], cwd=tmp,
                    env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
            g = re.search(r"trained (\d+) steps in ([0-9.]+) s \((\d+) examples/s\)",
                          r.stdout + r.stderr)
            if not g:
                sys.exit(f"scaling_model: pstrain-worker {m} printed no timing:\n{r.stdout}{r.stderr}")
            # examples/s is printed from the exact time (the seconds only to 0.1 s).
            eps = int(g.group(3))
            per_step = 100 / eps if eps > 0 else float(g.group(2)) / int(g.group(1)) * (100 / b)
            out["models"][m]["step_s_runs"].append(per_step)
            print(f"  {m}: {per_step * 1000:.1f} ms/step (batch 100)", file=sys.stderr)
    for m in MODELS:
        out["models"][m]["step_s"] = statistics.median(out["models"][m]["step_s_runs"])
        out["models"][m]["batch_measured"] = BATCH.get(m, 100)
    tls = os.path.join(tmp, "tls")
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run([os.path.join(src, "scripts", "tls_certs.sh"), tls, "t=127.0.0.1"])
    out["ps"] = {}
    for label, extra in (("token", []), ("tls", ["0", os.path.join(tls, "t")])):
        big = run([bench, "32", "8"] + extra)
        small = run([bench, "1", "256"] + extra)
        gb = re.search(r"pstrain gRPC\s*:\s*([0-9.]+) ms median", big.stdout)
        gs = re.search(r"pstrain gRPC\s*:\s*([0-9.]+) ms median", small.stdout)
        if not gb or not gs:
            sys.exit(f"scaling_model: bench_transport printed no median:\n{big.stdout}{small.stdout}")
        t_big = float(gb.group(1)) / 1000
        t_small = float(gs.group(1)) / 1000
        c_byte = t_big / (2 * 32 * 1024 * 1024)
        c_req = max(0.0, (t_small - 2 * 1024 * 1024 * c_byte) / (2 * 256))
        out["ps"][label] = {"c_byte_s": c_byte, "c_req_s": c_req,
                            "push_pull_32mb_ms": t_big * 1000, "push_pull_256x4k_ms": t_small * 1000}
        print(f"  PS ({label}): {1 / c_byte / 1e6:.0f} MB/s, {c_req * 1e6:.0f} us/request",
              file=sys.stderr)
    subprocess.run(["rm", "-rf", tmp])
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"scaling_model: wrote {args.out}", file=sys.stderr)


def ps_rate(m, ps, n, p, link, overlap=True):
    """Steps/s of N workers and P PS; overlap: pull and push share the step (each link
    direction carries B per step at the same time) instead of following one another."""
    t_c, b, v = m["step_s"], m["param_bytes"], m["variables"]
    x_w = n / (t_c + (1 if overlap else 2) * b / link)
    x_l = p * link / b
    x_cpu = p / (2 * b * ps["c_byte_s"] + 2 * v * ps["c_req_s"])
    return min(x_w, x_l, x_cpu)


def ring_rate(m, ps, n, link):
    t_c, b = m["step_s"], m["param_bytes"]
    t = t_c + 2 * (n - 1) / n * b / link + 2 * (n - 1) * (ALPHA_S + ps["c_req_s"])
    return n / t


def table(args):
    with open(args.inputs) as f:
        inp = json.load(f)
    ps = inp["ps"]["tls"]
    print("| model | params | step (1 thread) | link | N | PS P=4 | PS P=N/4 | ring allreduce |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        m = inp["models"][name]
        for gbit in LINKS_GBIT:
            link = gbit * 1e9 / 8
            for n in WORKERS:
                ideal = n / m["step_s"]
                cells = []
                for rate in (ps_rate(m, ps, n, 4, link), ps_rate(m, ps, n, max(1, n // 4), link),
                             ring_rate(m, ps, n, link)):
                    cells.append(f"{rate * 100:,.0f} ex/s ({rate / ideal:.0%})")
                print(f"| {name} | {m['param_bytes'] / 1e6:.2f} MB | {m['step_s'] * 1000:.1f} ms "
                      f"| {gbit} Gbit/s | {n} | " + " | ".join(cells) + " |")
    if args.step_times:
        # Efficiency as a function of the compute time of one step (GPU steps are 10-100x
        # shorter than these CPU ones): how long a step must compute to hide its traffic.
        print()
        print("| model | params | step compute | link | N | PS P=N/4 | ring allreduce |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in args.models.split(","):
            for t_c in (float(x) for x in args.step_times.split(",")):
                m = dict(inp["models"][name], step_s=t_c)
                link = 25e9 / 8
                for n in (64, 256):
                    ideal = n / t_c
                    a = ps_rate(m, ps, n, max(1, n // 4), link)
                    r = ring_rate(m, ps, n, link)
                    print(f"| {name} | {m['param_bytes'] / 1e6:.1f} MB | {t_c * 1000:g} ms "
                          f"| 25 Gbit/s | {n} | {a / ideal:.0%} | {r / ideal:.0%} |")
    if args.check:
        m = inp["models"]["softmax"]
        print()
        print("| tbf rate per worker link | measured ex/s (2 workers) | model: pull then push "
              "| measured / model | model: overlapped | measured / model |")
        print("|---:|---:|---:|---:|---:|---:|")
        for c in args.check:
            rate_s, eps_s = c.split("=")
            rate = float(rate_s.lower().replace("mbit", "")) * 1e6 / 8
            eps = float(eps_s)
            seq = ps_rate(m, ps, 2, 2, rate, overlap=False) * 100
            ovl = ps_rate(m, ps, 2, 2, rate, overlap=True) * 100
            print(f"| {rate_s} | {eps:,.0f} | {seq:,.0f} | {eps / seq:.2f} | {ovl:,.0f} "
                  f"| {eps / ovl:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("measure")
    a.add_argument("--build", default="build")
    a.add_argument("--out", default="bench/scaling_inputs.json")
    a.add_argument("--runs", type=int, default=3)
    t = sub.add_parser("table")
    t.add_argument("--inputs", default="bench/scaling_inputs.json")
    t.add_argument("--models", default="mlp,simple_cnn,vgg16")
    t.add_argument("--step-times", default="",
                   help="comma-separated step compute times in seconds for a what-if table")
    t.add_argument("--check", nargs="*", default=[])
    args = ap.parse_args()
    measure(args) if args.cmd == "measure" else table(args)


if __name__ == "__main__":
    main()

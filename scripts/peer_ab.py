#!/usr/bin/env python3
"""ONNX Runtime and rnncell, interleaved round by round on one `seq` shape.

This host's speed changes from minute to minute (other tenants), and not equally for every
program, so one run of each side can mislead either way. Each round times ORT (in this process,
the fastest of 15 calls) and then our bench (a fresh process, `--stat min` of 15 short
repetitions), and prints both and their ratio; the summary gives the minimum of each and the
median ratio. Needs the peers' virtualenv (../shared/peers/setup.sh):

    cargo build --release --example bench
    ~/.cache/rnncell-peers/venv/bin/python scripts/peer_ab.py --cell lstm --hidden 256 --batch 16
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "peers"))
import bench_peers as bp  # noqa: E402
import rnn_common as rc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "target", "release", "examples", "bench"))
    a = ap.parse_args()
    T, H, N = 100, a.hidden, a.batch
    rng = np.random.default_rng(1)
    ort = bp.OrtRunner("ort", a.cell, "seq", N, H, H, T, rc.random_torch_weights(a.cell, H, H, rng))
    ort.set_input(rng.standard_normal((T, N, H)).astype(np.float32))
    for _ in range(5):
        ort.call()
    cmd = [a.bench, "--sizes", str(H), "--cells", a.cell, "--modes", "seq", "--batches", str(N),
           "--reps", "15", "--rep-ms", "3", "--stat", "min"]
    o_all, u_all = [], []
    for k in range(a.rounds):
        ts = []
        for _ in range(15):
            t = time.perf_counter()
            ort.call()
            ts.append((time.perf_counter() - t) * 1e6 / T)
        o = min(ts)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        u = float(out.splitlines()[-1].split()[5])
        o_all.append(o)
        u_all.append(u)
        print(f"round {k}: ort {o:.1f} µs/step  rnncell {u:.1f}  ort/rnncell {o / u:.2f}", flush=True)
    ratio = statistics.median(o / u for o, u in zip(o_all, u_all))
    print(f"{a.cell} seq H={H} batch {N}: min ort {min(o_all):.1f}, rnncell {min(u_all):.1f}; "
          f"median ratio ort/rnncell {ratio:.2f} (> 1: rnncell faster)")


if __name__ == "__main__":
    main()

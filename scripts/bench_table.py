#!/usr/bin/env python3
"""Builds the README speed table from `cargo run --release --example bench -- --json` files
(run before and after the peers) and a ../shared/peers/bench_peers.py --out JSON.

    python3 scripts/bench_table.py bench/rnncell-*-a.json bench/rnncell-*-b.json bench/peers-*.json
"""
import json
import statistics
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
ours_files, peers_file = args[:-1], args[-1]
ours = {}
for f in ours_files:
    for r in json.load(open(f))["results"]:
        if r["isa"] == "scalar":
            continue
        ours.setdefault((r["cell"], r["mode"], r["batch"], r["hidden"]), []).append(r["us_per_step"])
peers = {}
for r in json.load(open(peers_file))["results"]:
    cell = r["cell"].split()[0]
    if r["cell"].startswith("gru") and "lbr=0" in r["cell"]:
        continue
    key = (cell, r["mode"], r["N"], r["H"])
    peers.setdefault(key, {})[r["family"]] = r["median"]

print("| cell | mode | batch | H = I | rnncell µs (2 runs) | oneDNN µs | ORT µs | best peer / rnncell |")
print("|---|---|---|---|---|---|---|---|")
for cell in ("lstm", "gru"):
    for mode, batch in (("step", 1), ("seq", 1), ("seq", 16), ("chunk", 1), ("streams", 16)):
        for h in (64, 128, 256, 512, 1024):
            o = ours.get((cell, mode, batch, h))
            if not o:
                continue
            p = peers.get((cell, mode, batch, h), {})
            if not p and "--with-peers" in sys.argv:
                continue
            mine = statistics.mean(o)
            best = min(p.values()) if p else None
            ratio = f"{best / mine:.2f}×" if best else "–"
            fmt = lambda v: "–" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")
            runs = " / ".join(fmt(v) for v in o)
            print(f"| {cell} | {mode} | {batch} | {h} | {runs} | {fmt(p.get('onednn'))} | "
                  f"{fmt(p.get('ort'))} | {ratio} |")

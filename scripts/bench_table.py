#!/usr/bin/env python3
"""Builds the README speed table from `cargo run --release --example bench -- --json` files
(run before and after the peers) and a ../shared/peers/bench_peers.py --out JSON.

    python3 scripts/bench_table.py [--with-peers] OURS_A OURS_B PEERS [-- OURS_A2 OURS_B2 PEERS2 ...]

Each group separated by `--` is one measuring session (ours, the peers, ours again). The first
group gives the µs columns; every group adds a "best peer / rnncell" ratio column, so that the
spread between sessions on this noisy host is visible. --with-peers keeps only rows that the
peers measured.
"""
import json
import statistics
import sys


def load(files):
    ours_files, peers_file = files[:-1], files[-1]
    ours = {}
    for f in ours_files:
        for r in json.load(open(f))["results"]:
            # f32 rows only (the peers' table is f32); rows without the
            # field come from benches before reduced precisions existed.
            if r["isa"] == "scalar" or r.get("precision", "f32") != "f32":
                continue
            key = (r["cell"], r["mode"], r["batch"], r["hidden"])
            ours.setdefault(key, []).append(r["us_per_step"])
    peers = {}
    for r in json.load(open(peers_file))["results"]:
        cell = r["cell"].split()[0]
        if r["cell"].startswith("gru") and "lbr=0" in r["cell"]:
            continue
        key = (cell, r["mode"], r["N"], r["H"])
        peers.setdefault(key, {})[r["family"]] = r["median"]
    return ours, peers


def ratio(ours, peers, key):
    o, p = ours.get(key), peers.get(key, {})
    if not o or not p:
        return None
    return min(p.values()) / statistics.mean(o)


args = [a for a in sys.argv[1:] if a != "--with-peers"]
groups, cur = [], []
for a in args:
    if a == "--":
        groups.append(cur)
        cur = []
    else:
        cur.append(a)
groups.append(cur)
sessions = [load(g) for g in groups]
ours, peers = sessions[0]


def fmt(v):
    return "–" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")


extra = "".join(f" best peer / rnncell, session {i + 1} |" for i in range(1, len(sessions)))
sep = "|---" * (8 + len(sessions) - 1) + "|"
print(f"| cell | mode | batch | H = I | rnncell µs (2 runs) | oneDNN µs | ORT µs | "
      f"best peer / rnncell |{extra}")
print(sep)
for cell in ("lstm", "gru"):
    for mode, batch in (("step", 1), ("seq", 1), ("seq", 16), ("chunk", 1), ("streams", 16)):
        for h in (64, 128, 256, 512, 1024):
            key = (cell, mode, batch, h)
            o = ours.get(key)
            if not o:
                continue
            p = peers.get(key, {})
            if not p and "--with-peers" in sys.argv:
                continue
            ratios = [ratio(so, sp, key) for so, sp in sessions]
            rs = " | ".join("–" if r is None else f"{r:.2f}×" for r in ratios)
            runs = " / ".join(fmt(v) for v in o)
            print(f"| {cell} | {mode} | {batch} | {h} | {runs} | {fmt(p.get('onednn'))} | "
                  f"{fmt(p.get('ort'))} | {rs} |")

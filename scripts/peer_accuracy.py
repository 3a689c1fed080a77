#!/usr/bin/env python3
"""How far the peers' quantized LSTM/GRU paths are from float64, on the models of
examples/precision_accuracy.rs.

Runs each reduced-precision peer of ../shared/peers/bench_peers.py (torch.qint8, torch.fp16,
ort.qlstm, ort.qlstm-pc, onednn.int8; onednn.bf16 if named; what each quantizes: that folder's README)
over

* the random models of the example, bit for bit the same weights and inputs (its xorshift
  generator, reproduced here): PyTorch's init U(+-1/sqrt(H)), I = H, inputs uniform in [-1, 1],
  T = 1000 steps, batch 1, zero initial state;
* the torch-trained models of tests/models/ on their held-out sequence (T = 1000);

and prints max |y - y64| over all steps and units (y64: float64 numpy reference on the f32
weights), max |h_T - h64| and |c_T - c64|, the drift ratio (max error over steps 900-1000 / over
100-200) and, for the trained models, the head's held-out MSE. `seq` mode is one call over the 1000
steps (torch and ORT then quantize all the inputs with one scale); `step` is one call per step.
Needs the peers' virtualenv (../shared/peers/setup.sh):

    ~/.cache/rnncell-peers/venv/bin/python scripts/peer_accuracy.py [--sizes 64,256,1024]
        [--peers torch.qint8,...] [--modes seq,step] [--steps 1000] [--json out.json]
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "peers"))
import bench_peers as bp  # noqa: E402
import rnn_common as rc  # noqa: E402

PEERS = ["torch.qint8", "torch.fp16", "ort.qlstm", "ort.qlstm-pc", "onednn.int8"]
M64 = (1 << 64) - 1


class XorShift:
    """examples/precision_accuracy.rs `rng_vec`: xorshift64, 24-bit uniform in [-1, 1), times a
    scale, rounded to f32 exactly as the Rust code does."""

    def __init__(self, seed):
        self.s = seed & M64

    def vec(self, n, scale):
        out = np.empty(n, np.float32)
        s = self.s
        for i in range(n):
            s ^= (s << 13) & M64
            s ^= s >> 7
            s ^= (s << 17) & M64
            out[i] = (s >> 40)
        self.s = s
        # (s >> 40) / 2^24 * 2 - 1 is exact in f32; then one f32 multiply by the scale.
        u = out / np.float32(1 << 24) * np.float32(2.0) - np.float32(1.0)
        return (u * np.float32(scale)).astype(np.float32)


def random_case(cell, h, steps):
    seed = 0x9E3779B97F4A7C15 ^ (h << 8) ^ len(cell)
    g = rc.n_gates(cell)
    k = np.float32(1.0) / np.sqrt(np.float32(h))
    r = XorShift(seed)
    w = r.vec(g * h * h, k).reshape(g * h, h)
    rr = r.vec(g * h * h, k).reshape(g * h, h)
    bw = r.vec(g * h, k)
    br = r.vec(g * h, k)
    x = r.vec(steps * h, 1.0).reshape(steps, 1, h)
    return dict(model="random", cell=cell, H=h, w=(w, rr, bw, br), x=x, head=None)


def trained_case(cell, models):
    from safetensors.numpy import load_file

    wt = load_file(os.path.join(models, f"torch_{cell}_trained.safetensors"))
    d = load_file(os.path.join(models, f"torch_{cell}_trained_heldout.safetensors"))
    w = tuple(wt[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    return dict(model="trained", cell=cell, H=w[1].shape[1], w=w, x=d["input"],
                head=(d["head.weight"], d["head.bias"], d["target"]))


def run_peer(exes, peer, cell, mode, x, w):
    H = w[1].shape[1]
    h0 = np.zeros((1, H), np.float32)
    c0 = np.zeros((1, H), np.float32)
    if bp.family(peer) in bp.EXTERNAL:
        return bp.run_external_check(exes, peer, cell, mode, x, h0, c0, w)
    return bp.run_inproc_check(peer, cell, mode, x, h0, c0, w)


def mse(head, y):
    hw, hb, target = head
    p = y.astype(np.float64) @ hw.T.astype(np.float64) + hb
    return float(np.mean((p[10:] - target[10:]) ** 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--modes", default="seq,step")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--no-trained", action="store_true")
    ap.add_argument("--models", default=os.path.join(HERE, "..", "tests", "models"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--build-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                        "rnncell-peers", "build"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    peers = a.peers.split(",")
    exes = {}
    if any(bp.family(p) == "onednn" for p in peers):
        exes["onednn"] = bp.onednn_binary(a.build_dir)
    cells = a.cells.split(",")
    cases = [random_case(c, int(h), a.steps) for c in cells for h in a.sizes.split(",")]
    if not a.no_trained:
        cases += [trained_case(c, a.models) for c in cells]
    rows = []
    print("| model | cell | H | T | peer | mode | y−y64 | hT−h64 | cT−c64 | drift | MSE |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with torch.inference_mode():
        for cs in cases:
            cell, x, w = cs["cell"], cs["x"], cs["w"]
            T, H = x.shape[0], cs["H"]
            ref = rc.ref_cell_seq(cell, x, np.zeros((1, H)), np.zeros((1, H)) if cell == "lstm"
                                  else None, *w)
            if cs["head"] is not None:
                m64 = mse(cs["head"], ref[0][:, 0])
                print(f"| {cs['model']} | {cell} | {H} | {T} | f64 reference | — | 0 | 0 | "
                      f"{'0' if cell == 'lstm' else '—'} | — | {m64:.6f} |")
            for peer in peers:
                for mode in a.modes.split(","):
                    try:
                        o = run_peer(exes, peer, cell, mode, x, w)
                    except Exception as e:  # report and go on with the other peers
                        print(f"| {cs['model']} | {cell} | {H} | {T} | {peer} | {mode} | "
                              f"error: {type(e).__name__} |", flush=True)
                        continue
                    if o is None:
                        continue
                    y = o[0].reshape(ref[0].shape)
                    err = np.abs(y.astype(np.float64) - ref[0]).reshape(T, -1).max(axis=1)
                    dh = float(np.max(np.abs(o[1].reshape(ref[1].shape) - ref[1])))
                    dc = (float(np.max(np.abs(o[2].reshape(ref[2].shape) - ref[2])))
                          if cell == "lstm" else None)
                    early, late = err[T // 10:T // 5].max(), err[T * 9 // 10:].max()
                    row = dict(model=cs["model"], cell=cell, H=H, T=T, peer=peer, mode=mode,
                               y=float(err.max()), hT=dh, cT=dc, early=float(early),
                               late=float(late),
                               mse=mse(cs["head"], y[:, 0]) if cs["head"] is not None else None)
                    rows.append(row)
                    print(f"| {row['model']} | {cell} | {H} | {T} | {peer} | {mode} | "
                          f"{row['y']:.1e} | {dh:.1e} | {'—' if dc is None else f'{dc:.1e}'} | "
                          f"{late / early if early > 0 else float('nan'):.2f} | "
                          f"{'—' if row['mse'] is None else format(row['mse'], '.6f')} |",
                          flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

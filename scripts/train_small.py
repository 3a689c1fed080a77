#!/usr/bin/env python3
"""Train the small LSTM and GRU of tests/models/ (issue 12: accuracy of the reduced precisions on
real trained weights).

Usage (from the repository root):

    ~/.cache/rnncell-peers/venv/bin/python scripts/train_small.py [--out tests/models] [--only lstm]

The task: 16 independent noisy channels, each a sum of two sines of random frequency, amplitude and
phase (drawn per sequence and channel), observed with Gaussian noise sigma = 0.1; the model reads
x_t (16 values, |x| <~ 1) and predicts the *clean* value of every channel HORIZON = 5 steps ahead,
s(t + 5), through a linear head on its output. Nothing but the recent history tells the model the
frequencies and phases, so a good prediction needs a trained recurrence: the held-out loss is
compared with predicting zeros (the signal's variance) and with persistence (x_t as the prediction).

Models: ``torch.nn.LSTM(16, 128)`` and ``torch.nn.GRU(16, 128)``, one layer, then
``nn.Linear(128, 16)``; Adam with a cosine learning-rate schedule, batches of 32 sequences of 50
steps (the first 10 steps of each are left out of the loss: no history yet), CPU, one thread, a
fixed number of iterations and fixed seeds, so a rerun on the same machine and versions should give
the same weights (not checked byte for byte; the metadata's ``seconds`` differs anyway). About 3-4
minutes per model on 2 shared cores. Gradient norms are clipped at 1.

Each cell writes two files (float32, little-endian, safetensors):

* ``torch_<cell>_trained.safetensors``: ``safetensors.torch.save_file(rnn.state_dict())`` of the
  bare ``nn.LSTM`` / ``nn.GRU``, so the names are PyTorch's own (``weight_ih_l0``, ``weight_hh_l0``,
  ``bias_ih_l0``, ``bias_hh_l0``); the metadata records the task, the losses and the versions.
* ``torch_<cell>_trained_heldout.safetensors``: a held-out sequence (its own seed) and what torch
  computes on it:
  ``input`` [T = 1000, 1, 16]; ``target`` [1000, 16] (the clean signal 5 steps ahead);
  ``head.weight`` [16, 128] and ``head.bias`` [16] (the prediction head);
  ``output_every10`` [100, 1, 128] = torch's LSTM/GRU output at steps 9, 19, ..., 999 (all 1000
  steps would be 512 KB); ``h_n`` [1, 1, 128] and, for the LSTM, ``c_n`` [1, 1, 128], the final
  state after the 1000 steps from a zero state.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

I, H = 16, 128
HORIZON = 5
NOISE = 0.1
TRAIN_T, BATCH, SKIP = 50, 32, 10
HELDOUT_T = 1000
ITERS = {"lstm": 800, "gru": 800}
LR = 5e-3
SEED = {"lstm": 1201, "gru": 1202}
HELDOUT_SEED = 4242


def signals(rng, batch, steps):
    """Noisy inputs [T, B, I] and clean targets s(t + HORIZON) [T, B, I], float32."""
    t = np.arange(steps + HORIZON, dtype=np.float64)[:, None, None]
    s = np.zeros((steps + HORIZON, batch, I))
    for _ in range(2):
        w = rng.uniform(0.05, 0.5, (1, batch, I))
        a = rng.uniform(0.15, 0.45, (1, batch, I))
        ph = rng.uniform(0, 2 * np.pi, (1, batch, I))
        s += a * np.sin(w * t + ph)
    x = s[:steps] + rng.normal(0, NOISE, (steps, batch, I))
    y = s[HORIZON:]
    return x.astype(np.float32), y.astype(np.float32)


def build(torch, cell):
    nn = torch.nn
    rnn = nn.LSTM(I, H) if cell == "lstm" else nn.GRU(I, H)
    return rnn, nn.Linear(H, I)


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def train(torch, cell, iters, log):
    torch.manual_seed(SEED[cell])
    rng = np.random.default_rng(SEED[cell])
    rnn, head = build(torch, cell)
    init = {k: v.detach().clone() for k, v in rnn.state_dict().items()}
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    t0 = time.time()
    first = None
    for it in range(iters):
        x, y = signals(rng, BATCH, TRAIN_T)
        out, _ = rnn(torch.from_numpy(x))
        loss = torch.mean((head(out[SKIP:]) - torch.from_numpy(y[SKIP:])) ** 2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if first is None:
            first = loss.item()
        if it % 100 == 0 or it == iters - 1:
            log(f"  {cell} iter {it:5d}  train MSE {loss.item():.5f}  ({time.time() - t0:.0f} s)")
    rel = {k: float(torch.linalg.norm(v - init[k]) / torch.linalg.norm(init[k]))
           for k, v in rnn.state_dict().items()}
    return rnn.eval(), head.eval(), first, loss.item(), time.time() - t0, rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "models"))
    ap.add_argument("--only", default="")
    ap.add_argument("--iters", type=int, default=0, help="override the iteration count (tests)")
    args = ap.parse_args()
    outdir = os.path.normpath(args.out)
    os.makedirs(outdir, exist_ok=True)

    import safetensors
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    versions = (f"python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}"
                f", safetensors {safetensors.__version__}")
    print(versions)
    for cell in ("lstm", "gru"):
        if args.only not in cell:
            continue
        iters = args.iters or ITERS[cell]
        rnn, head, first, last, secs, rel = train(torch, cell, iters, print)

        x, y = signals(np.random.default_rng(HELDOUT_SEED), 1, HELDOUT_T)
        with torch.no_grad():
            res = rnn(torch.from_numpy(x))
            out, state = res
            pred = head(out[:, 0]).numpy()
        out = out.numpy()
        hn, cn = (state[0].numpy(), state[1].numpy()) if cell == "lstm" else (state.numpy(), None)
        held = mse(pred[SKIP:], y[SKIP:, 0])
        zero = mse(0.0, y[SKIP:, 0])
        persist = mse(x[SKIP:, 0], y[SKIP:, 0])
        print(f"{cell}: {iters} iterations in {secs:.0f} s; train MSE {first:.4f} -> {last:.4f}; "
              f"held-out MSE {held:.5f} (zeros {zero:.5f}, persistence {persist:.5f}); "
              f"|W - W_init| / |W_init|: " + ", ".join(f"{k} {v:.2f}" for k, v in rel.items()))

        meta = {
            "task": f"predict the clean value {HORIZON} steps ahead of 16 noisy (sigma {NOISE}) "
                    "sums of two sines; scripts/train_small.py",
            "iterations": str(iters), "seconds": f"{secs:.0f}",
            "train_mse_first": f"{first:.6f}", "train_mse_last": f"{last:.6f}",
            "heldout_mse": f"{held:.6f}", "heldout_mse_zeros": f"{zero:.6f}",
            "heldout_mse_persistence": f"{persist:.6f}",
            "versions": versions,
        }
        name = f"torch_{cell}_trained"
        sd = {k: v.detach().to(torch.float32).contiguous() for k, v in rnn.state_dict().items()}
        save_file(sd, os.path.join(outdir, f"{name}.safetensors"), metadata=meta)
        data = {
            "input": torch.from_numpy(np.ascontiguousarray(x)),
            "target": torch.from_numpy(np.ascontiguousarray(y[:, 0])),
            "head.weight": head.weight.detach().contiguous(),
            "head.bias": head.bias.detach().contiguous(),
            "output_every10": torch.from_numpy(np.ascontiguousarray(out[9::10])),
            "h_n": torch.from_numpy(hn),
        }
        if cn is not None:
            data["c_n"] = torch.from_numpy(cn)
        save_file(data, os.path.join(outdir, f"{name}_heldout.safetensors"), metadata=meta)
        for f in (f"{name}.safetensors", f"{name}_heldout.safetensors"):
            print(f"  {f}: {os.path.getsize(os.path.join(outdir, f))} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate reference test vectors for the `rnncell` crate.

Usage (from the repository root):

    ~/.cache/rnncell-peers/venv/bin/python scripts/gen_vectors.py [--out tests/vectors]

Every case is fully deterministic: weights, inputs and initial states are drawn from
``numpy.random.default_rng(<fixed per-case seed>)`` (weights uniform(-0.6, 0.6),
inputs and initial states uniform(-1, 1)), everything is float32, torch runs on the
CPU with one thread, onnxruntime uses the CPUExecutionProvider with one thread.

Each case is computed by the framework (PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` or a
one-node ONNX model run by onnxruntime) and cross-checked against an independent
float64 numpy implementation written below (assert max |diff| < 1e-5).  The framework
output is what gets written as the expected value.

Floats are written as the Python ``repr`` of the float64 that equals the float32
value exactly, so parsing them as f64 and casting to f32 reproduces the bits.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

TOL = 1e-5
W_SCALE = 0.6

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ONNX activation functions in float64, with ONNX Runtime's defaults for a missing
# alpha/beta (LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1.0, every other 0) and
# ONNX's consumption order (alpha/beta values go, in order, to the functions that
# take them).
ACT_PARAMS = {  # name: (takes alpha, takes beta, default alpha, default beta)
    "sigmoid": (False, False, 0, 0), "tanh": (False, False, 0, 0),
    "relu": (False, False, 0, 0), "hardsigmoid": (True, True, 0.2, 0.5),
    "leakyrelu": (True, False, 0.01, 0), "thresholdedrelu": (True, False, 0.0, 0),
    "scaledtanh": (True, True, 0.0, 0.0), "affine": (True, True, 0.0, 0.0),
    "elu": (True, False, 1.0, 0), "softsign": (False, False, 0, 0),
    "softplus": (False, False, 0, 0),
}


def act_fn(name, a, b):
    n = name.lower()
    return {
        "sigmoid": sigmoid,
        "tanh": np.tanh,
        "relu": lambda x: np.maximum(x, 0.0),
        "hardsigmoid": lambda x: np.clip(a * x + b, 0.0, 1.0),
        "leakyrelu": lambda x: np.where(x >= 0, x, a * x),
        "thresholdedrelu": lambda x: np.where(x > a, x, 0.0),
        "scaledtanh": lambda x: a * np.tanh(b * x),
        "affine": lambda x: a * x + b,
        "elu": lambda x: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0.0))),
        "softsign": lambda x: x / (1.0 + np.abs(x)),
        "softplus": lambda x: np.logaddexp(0.0, x),
    }[n]


def onnx_acts(names, alphas, betas, per, D, spec_defaults=False):
    """[[f, g, h] per direction] as numpy functions (None: the defaults)."""
    if not names:
        return None
    alphas, betas = list(alphas or []), list(betas or [])
    fns = []
    for n in names:
        ta, tb, da, db = ACT_PARAMS[n.lower()]
        if spec_defaults and n.lower() == "thresholdedrelu":
            da = 1.0  # the operator spec's default
        a = alphas.pop(0) if ta and alphas else da
        b = betas.pop(0) if tb and betas else db
        fns.append(act_fn(n, a, b))
    assert len(fns) == per * D
    return [fns[d * per:(d + 1) * per] for d in range(D)]


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def tjson(a):
    """Tensor -> {"shape", "data"} with exact float32 values."""
    if a is None:
        return None
    a = f32(a)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def maxdiff(a, b):
    if a is None and b is None:
        return 0.0
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def write_case(outdir, case):
    """Write one JSON file: one top-level key per line, arrays compact."""
    path = os.path.join(outdir, case["name"] + ".json")
    lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
             for k, v in case.items()]
    with open(path, "w") as fh:
        fh.write("{\n" + ",\n".join(lines) + "\n}\n")
    # round-trip check of the float encoding
    with open(path) as fh:
        back = json.load(fh)
    for key in ("output", "h_n"):
        arr = np.asarray(back[key]["data"], np.float64).astype(np.float32)
        assert np.array_equal(arr, f32(case[key]["data"])), key
    return path, os.path.getsize(path)


# --------------------------------------------------------------------------
# float64 numpy reference: PyTorch semantics
# --------------------------------------------------------------------------


def torch_gates(cell):
    return {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}[cell]


def ref_torch(cell, sd, x, h0, c0, *, hidden_size, proj_size, num_layers,
              bidirectional, batch_first):
    """Multi-layer PyTorch RNN in float64.  sd: state_dict as numpy arrays.

    x: [T,B,I] (or [B,T,I] if batch_first).  h0/c0 may be None (zeros).
    Returns output, h_n, c_n (c_n None unless lstm) in PyTorch layouts.
    """
    D = 2 if bidirectional else 1
    H = hidden_size
    Hout = proj_size if proj_size else H
    inp = np.asarray(x, np.float64)
    if batch_first:
        inp = inp.transpose(1, 0, 2)
    T, B, _ = inp.shape
    h0 = np.zeros((num_layers * D, B, Hout)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)

    def get(name):
        return np.asarray(sd[name], np.float64) if name in sd else None

    hn, cn = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = get(f"weight_ih_{sfx}"), get(f"weight_hh_{sfx}")
            b_ih, b_hh = get(f"bias_ih_{sfx}"), get(f"bias_hh_{sfx}")
            if b_ih is None:
                b_ih = np.zeros(w_ih.shape[0])
                b_hh = np.zeros(w_hh.shape[0])
            w_hr = get(f"weight_hr_{sfx}")
            h = h0[layer * D + d].copy()
            c = c0[layer * D + d].copy()
            ys = [None] * T
            order = range(T - 1, -1, -1) if d else range(T)
            for t in order:
                gi = inp[t] @ w_ih.T + b_ih
                gh = h @ w_hh.T + b_hh
                if cell == "lstm":
                    g = gi + gh
                    i = sigmoid(g[:, 0:H])
                    f = sigmoid(g[:, H:2 * H])
                    gg = np.tanh(g[:, 2 * H:3 * H])
                    o = sigmoid(g[:, 3 * H:4 * H])
                    c = f * c + i * gg
                    h = o * np.tanh(c)
                    if w_hr is not None:
                        h = h @ w_hr.T
                elif cell == "gru":
                    r = sigmoid(gi[:, 0:H] + gh[:, 0:H])
                    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
                    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                    h = (1.0 - z) * n + z * h
                elif cell == "rnn_tanh":
                    h = np.tanh(gi + gh)
                elif cell == "rnn_relu":
                    h = np.maximum(gi + gh, 0.0)
                else:
                    raise ValueError(cell)
                ys[t] = h
            outs.append(np.stack(ys))
            hn.append(h)
            cn.append(c)
        inp = np.concatenate(outs, axis=2)
    out = inp.transpose(1, 0, 2) if batch_first else inp
    return out, np.stack(hn), (np.stack(cn) if cell == "lstm" else None)


# --------------------------------------------------------------------------
# float64 numpy reference: ONNX LSTM / GRU / RNN semantics (layout = 0)
# --------------------------------------------------------------------------


def ref_onnx(cell, X, W, R, B, P, seq_lens, h0, c0, *, hidden_size, direction,
             clip=None, input_forget=0, linear_before_reset=0,
             clip_cell_before_h=False, reverse_from_end=False, acts=None):
    """ONNX operator semantics with default activations.

    cell: "lstm" (gates i,o,f,c; P = [pi, po, pf]), "gru" (gates z,r,h),
    "rnn_tanh".  clip bounds every activation input to [-clip, clip] (after bias and
    peephole terms are added).  input_forget=1 couples f = 1 - i.
    sequence_lens: Y[t >= len] = 0; Y_h/Y_c = state after the last valid step; the
    reverse direction starts at t = len-1 of each batch entry.
    clip_cell_before_h: variant switch (also clip C_t before h(C_t)), used only to
    probe what onnxruntime does.
    reverse_from_end: variant switch (reverse direction starts at t = T-1 for every
    batch entry, i.e. sequence_lens ignored by the reverse pass), probe only.
    acts: [[f, g, h] per direction] (onnx_acts), or None for the defaults.
    Returns Y [T,D,B,H], Y_h [D,B,H], Y_c [D,B,H] or None.
    """
    H = hidden_size
    X = np.asarray(X, np.float64)
    T, Bn, _ = X.shape
    D = 2 if direction == "bidirectional" else 1
    G = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[cell]
    W = np.asarray(W, np.float64)
    R = np.asarray(R, np.float64)
    B = np.zeros((D, 2 * G * H)) if B is None else np.asarray(B, np.float64)
    P = np.zeros((D, 3 * H)) if P is None else np.asarray(P, np.float64)
    h0 = np.zeros((D, Bn, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((D, Bn, H)) if c0 is None else np.asarray(c0, np.float64)
    sl = np.full(Bn, T) if seq_lens is None else np.asarray(seq_lens)

    def cl(v):
        return v if clip is None else np.clip(v, -clip, clip)

    Y = np.zeros((T, D, Bn, H))
    Yh = np.zeros((D, Bn, H))
    Yc = np.zeros((D, Bn, H))
    for d in range(D):
        rev = direction == "reverse" or d == 1
        fa, ga, ha = (sigmoid, np.tanh, np.tanh) if acts is None else (
            tuple(acts[d]) + (np.tanh,) * (3 - len(acts[d])))
        if cell == "rnn_tanh" and acts is None:
            fa = np.tanh
        Wd, Rd = W[d], R[d]
        Wb, Rb = B[d, :G * H], B[d, G * H:]
        for b in range(Bn):
            h = h0[d, b].copy()
            c = c0[d, b].copy()
            n_steps = int(sl[b])
            order = range(n_steps - 1, -1, -1) if rev else range(n_steps)
            if rev and reverse_from_end:
                order = range(T - 1, -1, -1)
            for t in order:
                x = X[t, b]
                if cell == "lstm":
                    g = Wd @ x + Wb + Rd @ h + Rb
                    gi, go, gf, gc = (g[k * H:(k + 1) * H] for k in range(4))
                    pi, po, pf = P[d, 0:H], P[d, H:2 * H], P[d, 2 * H:3 * H]
                    i = fa(cl(gi + pi * c))
                    f = 1.0 - i if input_forget else fa(cl(gf + pf * c))
                    c = f * c + i * ga(cl(gc))
                    o = fa(cl(go + po * c))
                    h = o * ha(cl(c) if clip_cell_before_h else c)
                elif cell == "gru":
                    gx = Wd @ x + Wb
                    z = fa(cl(gx[0:H] + Rd[0:H] @ h + Rb[0:H]))
                    r = fa(cl(gx[H:2 * H] + Rd[H:2 * H] @ h + Rb[H:2 * H]))
                    if linear_before_reset:
                        hh = ga(cl(gx[2 * H:] + r * (Rd[2 * H:] @ h + Rb[2 * H:])))
                    else:
                        hh = ga(cl(gx[2 * H:] + Rd[2 * H:] @ (r * h) + Rb[2 * H:]))
                    h = (1.0 - z) * hh + z * h
                elif cell == "rnn_tanh":
                    h = fa(cl(Wd @ x + Wb + Rd @ h + Rb))
                else:
                    raise ValueError(cell)
                Y[t, d, b] = h
            Yh[d, b] = h
            Yc[d, b] = c
    return Y, Yh, (Yc if cell == "lstm" else None)


# --------------------------------------------------------------------------
# PyTorch cases
# --------------------------------------------------------------------------

TORCH_CASES = [
    # name, seed, cell, I, H, P, L, bidir, batch_first, T, B, init_state, bias
    dict(name="torch_lstm_1l", seed=101, cell="lstm", I=5, H=7, P=0, L=1,
         bi=False, bf=False, T=6, B=3, init=True),
    dict(name="torch_lstm_2l_bi", seed=102, cell="lstm", I=5, H=4, P=0, L=2,
         bi=True, bf=False, T=4, B=3, init=True),
    dict(name="torch_lstm_proj", seed=103, cell="lstm", I=5, H=7, P=3, L=2,
         bi=False, bf=False, T=6, B=3, init=True),
    dict(name="torch_lstm_proj_bi_bf", seed=104, cell="lstm", I=3, H=7, P=3, L=2,
         bi=True, bf=True, T=4, B=3, init=False),
    dict(name="torch_lstm_batch_first", seed=105, cell="lstm", I=5, H=4, P=0, L=1,
         bi=False, bf=True, T=6, B=3, init=True),
    dict(name="torch_gru_1l", seed=106, cell="gru", I=5, H=7, P=0, L=1,
         bi=False, bf=False, T=6, B=1, init=False),
    dict(name="torch_gru_2l_bi", seed=107, cell="gru", I=3, H=4, P=0, L=2,
         bi=True, bf=False, T=4, B=3, init=True),
    dict(name="torch_gru_batch_first", seed=108, cell="gru", I=5, H=4, P=0, L=1,
         bi=False, bf=True, T=6, B=3, init=True),
    dict(name="torch_rnn_tanh_2l", seed=109, cell="rnn_tanh", I=3, H=7, P=0, L=2,
         bi=False, bf=False, T=6, B=3, init=True),
    dict(name="torch_rnn_relu_bi", seed=110, cell="rnn_relu", I=5, H=4, P=0, L=1,
         bi=True, bf=False, T=4, B=3, init=False),
    dict(name="torch_lstm_nobias", seed=111, cell="lstm", I=3, H=4, P=0, L=2,
         bi=False, bf=False, T=4, B=3, init=True, bias=False),
]


def run_torch_case(torch, spec):
    nn = torch.nn
    cell = spec["cell"]
    I, H, P, L = spec["I"], spec["H"], spec["P"], spec["L"]
    bi, bf, T, Bn = spec["bi"], spec["bf"], spec["T"], spec["B"]
    bias = spec.get("bias", True)
    D = 2 if bi else 1
    Hout = P if P else H
    rng = np.random.default_rng(spec["seed"])

    common = dict(input_size=I, hidden_size=H, num_layers=L, bias=bias,
                  batch_first=bf, bidirectional=bi)
    if cell == "lstm":
        mod = nn.LSTM(proj_size=P, **common)
    elif cell == "gru":
        mod = nn.GRU(**common)
    else:
        mod = nn.RNN(nonlinearity="tanh" if cell == "rnn_tanh" else "relu", **common)
    mod = mod.to(torch.float32).eval()

    # random weights, drawn in state_dict order
    sd = {}
    for k, v in mod.state_dict().items():
        sd[k] = rng.uniform(-W_SCALE, W_SCALE, size=tuple(v.shape)).astype(np.float32)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    for k, v in mod.state_dict().items():  # loaded exactly
        assert np.array_equal(v.numpy(), sd[k]), k

    xshape = (Bn, T, I) if bf else (T, Bn, I)
    x = rng.uniform(-1, 1, size=xshape).astype(np.float32)
    h0 = c0 = None
    if spec["init"]:
        h0 = rng.uniform(-1, 1, size=(L * D, Bn, Hout)).astype(np.float32)
        if cell == "lstm":
            c0 = rng.uniform(-1, 1, size=(L * D, Bn, H)).astype(np.float32)

    with torch.inference_mode():
        xt = torch.from_numpy(x)
        if cell == "lstm":
            if h0 is None:
                out, (hn, cn) = mod(xt)
            else:
                out, (hn, cn) = mod(xt, (torch.from_numpy(h0), torch.from_numpy(c0)))
            cn = cn.numpy().copy()
        else:
            out, hn = mod(xt) if h0 is None else mod(xt, torch.from_numpy(h0))
            cn = None
        out, hn = out.numpy().copy(), hn.numpy().copy()
    assert out.dtype == np.float32 and hn.dtype == np.float32

    r_out, r_hn, r_cn = ref_torch(cell, sd, x, h0, c0, hidden_size=H, proj_size=P,
                                  num_layers=L, bidirectional=bi, batch_first=bf)
    diff = max(maxdiff(out, r_out), maxdiff(hn, r_hn), maxdiff(cn, r_cn))
    assert diff < TOL, (spec["name"], diff)

    case = {
        "name": spec["name"],
        "framework": "pytorch",
        "cell": cell,
        "input_size": I, "hidden_size": H, "proj_size": P,
        "num_layers": L, "bidirectional": bi, "reverse": False,
        "batch_first": bf,
        "linear_before_reset": 1 if cell == "gru" else 0,
        "bias": bias,
        "clip": None, "input_forget": 0,
        "steps": T, "batch": Bn,
        "tensors": {k: tjson(v) for k, v in sd.items()},
        "input": tjson(x),
        "seq_lens": None,
        "h0": tjson(h0), "c0": tjson(c0),
        "output": tjson(out),
        "h_n": tjson(hn), "c_n": tjson(cn),
    }
    return case, diff, {}


# --------------------------------------------------------------------------
# ONNX cases
# --------------------------------------------------------------------------

OPSET = 14
IR_VERSION = 8

ONNX_CASES = [
    dict(name="onnx_lstm_peephole", seed=201, cell="lstm", I=5, H=7, T=6, B=3,
         direction="forward", peephole=True, init=False),
    dict(name="onnx_lstm_peephole_bi", seed=202, cell="lstm", I=3, H=4, T=4, B=3,
         direction="bidirectional", peephole=True, init=True),
    dict(name="onnx_lstm_reverse", seed=203, cell="lstm", I=5, H=4, T=6, B=3,
         direction="reverse", init=True),
    dict(name="onnx_lstm_seqlens", seed=204, cell="lstm", I=3, H=4, T=6, B=3,
         direction="bidirectional", init=True, seq_lens=[6, 4, 1]),
    dict(name="onnx_lstm_clip", seed=205, cell="lstm", I=5, H=4, T=6, B=3,
         direction="forward", init=True, clip=0.7),
    dict(name="onnx_lstm_input_forget", seed=206, cell="lstm", I=3, H=4, T=4, B=3,
         direction="forward", init=True, input_forget=1),
    dict(name="onnx_gru_lbr0", seed=207, cell="gru", I=5, H=7, T=6, B=3,
         direction="forward", init=True, lbr=0),
    dict(name="onnx_gru_lbr1", seed=208, cell="gru", I=5, H=7, T=6, B=3,
         direction="forward", init=False, lbr=1),
    dict(name="onnx_gru_lbr0_bi_seqlens", seed=209, cell="gru", I=3, H=4, T=6, B=3,
         direction="bidirectional", init=True, lbr=0, seq_lens=[6, 4, 1]),
    dict(name="onnx_gru_lbr1_reverse", seed=210, cell="gru", I=3, H=4, T=4, B=3,
         direction="reverse", init=True, lbr=1),
    dict(name="onnx_gru_clip", seed=211, cell="gru", I=5, H=4, T=6, B=3,
         direction="forward", init=True, lbr=0, clip=0.5),
    dict(name="onnx_rnn_tanh_bi", seed=212, cell="rnn_tanh", I=3, H=7, T=4, B=3,
         direction="bidirectional", init=True),
]

# Every ONNX activation in every cell (small: I 3, H 4, T 3, B 2), with explicit
# alpha/beta where a function takes them, and a few with ONNX Runtime's defaults.
_ACT_ALPHA = {"HardSigmoid": ([0.3], [0.45]), "LeakyRelu": ([0.07], []),
              "ThresholdedRelu": ([0.15], []), "ScaledTanh": ([0.8], [1.4]),
              "Affine": ([0.7], [0.1]), "Elu": ([0.6], [])}
_ACTS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
         "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]


def _act_case(k, cell, name, names, alphas, betas, **kw):
    d = dict(name=name, seed=300 + k, cell=cell, I=3, H=4, T=3, B=2,
             direction="forward", init=True, acts=names, alphas=alphas, betas=betas)
    d.update(kw)
    return d


ACT_CASES = []
for _k, _a in enumerate(_ACTS):
    _al, _be = _ACT_ALPHA.get(_a, ([], []))
    _n = _a.lower()
    # LSTM: the function as f, g and h at once (its alpha/beta three times).
    ACT_CASES.append(_act_case(3 * _k, "lstm", f"onnx_act_lstm_{_n}", [_a] * 3,
                               _al * 3, _be * 3))
    ACT_CASES.append(_act_case(3 * _k + 1, "gru", f"onnx_act_gru_{_n}", [_a] * 2,
                               _al * 2, _be * 2, lbr=_k % 2))
    ACT_CASES.append(_act_case(3 * _k + 2, "rnn_tanh", f"onnx_act_rnn_{_n}", [_a],
                               _al, _be))
ACT_CASES += [
    # ONNX Runtime's defaults for a missing alpha/beta.
    _act_case(40, "lstm", "onnx_act_lstm_defaults",
              ["HardSigmoid", "LeakyRelu", "Elu"], [], []),
    _act_case(41, "gru", "onnx_act_gru_thresholdedrelu_default",
              ["Sigmoid", "ThresholdedRelu"], [], [], lbr=1),
    # Per-direction lists; alpha/beta consumed across both directions in order.
    _act_case(42, "lstm", "onnx_act_lstm_bi",
              ["HardSigmoid", "Softsign", "Elu", "Sigmoid", "ScaledTanh", "Softplus"],
              [0.25, 0.9, 0.6], [0.55, 1.2], direction="bidirectional"),
    _act_case(43, "gru", "onnx_act_gru_bi_clip",
              ["Softsign", "Affine", "HardSigmoid", "Tanh"], [0.5, 0.3], [0.2, 0.4],
              direction="bidirectional", lbr=0, clip=0.8),
    _act_case(44, "rnn_tanh", "onnx_act_rnn_bi", ["Relu", "LeakyRelu"], [0.2], [],
              direction="bidirectional"),
]


def build_onnx_model(spec, inits, has_seq, has_h0, has_c0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cell, H, T, Bn, I = spec["cell"], spec["H"], spec["T"], spec["B"], spec["I"]
    D = 2 if spec["direction"] == "bidirectional" else 1
    op = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN"}[cell]
    F = TensorProto.FLOAT

    graph_inputs = [helper.make_tensor_value_info("X", F, [T, Bn, I])]
    if has_seq:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens",
                                                          TensorProto.INT32, [Bn]))
    if has_h0:
        graph_inputs.append(helper.make_tensor_value_info("initial_h", F, [D, Bn, H]))
    if has_c0:
        graph_inputs.append(helper.make_tensor_value_info("initial_c", F, [D, Bn, H]))

    initializers = [numpy_helper.from_array(v, name=k) for k, v in inits.items()]

    node_inputs = ["X", "W", "R", "B",
                   "sequence_lens" if has_seq else "",
                   "initial_h" if has_h0 else ""]
    if cell == "lstm":
        node_inputs += ["initial_c" if has_c0 else "", "P" if "P" in inits else ""]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()

    attrs = dict(hidden_size=H, direction=spec["direction"], layout=0)
    if spec.get("clip") is not None:
        attrs["clip"] = float(spec["clip"])
    if cell == "lstm":
        attrs["input_forget"] = int(spec.get("input_forget", 0))
    if cell == "gru":
        attrs["linear_before_reset"] = int(spec.get("lbr", 0))
    if spec.get("acts"):
        attrs["activations"] = list(spec["acts"])
        if spec.get("alphas"):
            attrs["activation_alpha"] = [float(v) for v in spec["alphas"]]
        if spec.get("betas"):
            attrs["activation_beta"] = [float(v) for v in spec["betas"]]
    elif cell == "rnn_tanh":
        attrs["activations"] = ["Tanh"] * D

    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    node = helper.make_node(op, node_inputs, outputs, name=op.lower(), **attrs)
    graph_outputs = [helper.make_tensor_value_info("Y", F, [T, D, Bn, H]),
                     helper.make_tensor_value_info("Y_h", F, [D, Bn, H])]
    if cell == "lstm":
        graph_outputs.append(helper.make_tensor_value_info("Y_c", F, [D, Bn, H]))
    graph = helper.make_graph([node], spec["name"], graph_inputs, graph_outputs,
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnncell-gen_vectors")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx_case(ort, spec):
    cell, I, H, T, Bn = spec["cell"], spec["I"], spec["H"], spec["T"], spec["B"]
    direction = spec["direction"]
    D = 2 if direction == "bidirectional" else 1
    G = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[cell]
    rng = np.random.default_rng(spec["seed"])
    u = lambda *s: rng.uniform(-W_SCALE, W_SCALE, size=s).astype(np.float32)  # noqa: E731

    inits = {"W": u(D, G * H, I), "R": u(D, G * H, H), "B": u(D, 2 * G * H)}
    if spec.get("peephole"):
        inits["P"] = u(D, 3 * H)
    x = rng.uniform(-1, 1, size=(T, Bn, I)).astype(np.float32)
    h0 = c0 = None
    if spec["init"]:
        h0 = rng.uniform(-1, 1, size=(D, Bn, H)).astype(np.float32)
        if cell == "lstm":
            c0 = rng.uniform(-1, 1, size=(D, Bn, H)).astype(np.float32)
    seq = spec.get("seq_lens")
    seq_np = None if seq is None else np.asarray(seq, np.int32)

    model = build_onnx_model(spec, inits, seq is not None, h0 is not None,
                             c0 is not None)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feeds = {"X": x}
    if seq_np is not None:
        feeds["sequence_lens"] = seq_np
    if h0 is not None:
        feeds["initial_h"] = h0
    if c0 is not None:
        feeds["initial_c"] = c0
    res = sess.run(None, feeds)
    Y, Yh = res[0], res[1]
    Yc = res[2] if cell == "lstm" else None
    assert Y.dtype == np.float32

    per = {"lstm": 3, "gru": 2, "rnn_tanh": 1}[cell]
    acts = onnx_acts(spec.get("acts"), spec.get("alphas"), spec.get("betas"), per, D)
    kw = dict(hidden_size=H, direction=direction, clip=spec.get("clip"),
              input_forget=spec.get("input_forget", 0),
              linear_before_reset=spec.get("lbr", 0), acts=acts)
    args = (cell, x, inits["W"], inits["R"], inits["B"], inits.get("P"), seq_np, h0, c0)
    rY, rYh, rYc = ref_onnx(*args, **kw)
    diff = max(maxdiff(Y, rY), maxdiff(Yh, rYh), maxdiff(Yc, rYc))

    # Probes of alternative semantics (informational, printed + used in README).
    notes = {}

    def alt_diff(**over):
        k2 = dict(kw)
        extra = {}
        for k, v in over.items():
            if k in k2:
                k2[k] = v
            else:
                extra[k] = v
        aY, aYh, aYc = ref_onnx(*args, **k2, **extra)
        return max(maxdiff(Y, aY), maxdiff(Yh, aYh), maxdiff(Yc, aYc))

    if spec.get("clip") is not None:
        notes["vs_no_clip"] = alt_diff(clip=None)
        if cell == "lstm":
            notes["vs_clip_also_cell_before_h"] = alt_diff(clip_cell_before_h=True)
    if spec.get("input_forget"):
        notes["vs_input_forget_ignored"] = alt_diff(input_forget=0)
    if seq is not None:
        # alternative: reverse direction starting at T-1 for every entry
        notes["vs_reverse_from_T-1"] = alt_diff(reverse_from_end=True)
        notes["seq_lens_pad_rows_all_zero"] = bool(
            all(np.all(Y[t, :, b] == 0) for b in range(Bn) for t in range(seq[b], T)))

    spec_output = None
    if spec.get("acts") and any(n.lower() == "thresholdedrelu" for n in spec["acts"]) \
            and not spec.get("alphas"):
        # ThresholdedRelu without alpha: ONNX Runtime thresholds at 0, the operator
        # spec at 1.0. Also write what the spec's default gives.
        sa = onnx_acts(spec["acts"], None, None, per, D, spec_defaults=True)
        sY, sYh, sYc = ref_onnx(*args, **dict(kw, acts=sa))
        spec_output = sY
        notes["vs_spec_default_alpha_1"] = max(maxdiff(Y, sY), maxdiff(Yh, sYh),
                                               maxdiff(Yc, sYc))

    assert diff < TOL, (spec["name"], diff, notes)

    case = {
        "name": spec["name"],
        "framework": "onnx",
        "cell": cell,
        "input_size": I, "hidden_size": H, "proj_size": 0,
        "num_layers": 1, "bidirectional": direction == "bidirectional",
        "reverse": direction == "reverse",
        "batch_first": False,
        "linear_before_reset": int(spec.get("lbr", 0)) if cell == "gru" else 0,
        "bias": True,
        "clip": spec.get("clip"),
        "input_forget": int(spec.get("input_forget", 0)),
        "steps": T, "batch": Bn,
        "tensors": {k: tjson(v) for k, v in inits.items()},
        "input": tjson(x),
        "seq_lens": None if seq is None else [int(s) for s in seq],
        "h0": tjson(h0), "c0": tjson(c0),
        "output": tjson(Y),
        "h_n": tjson(Yh), "c_n": tjson(Yc),
    }
    if spec.get("acts"):
        case["activations"] = list(spec["acts"])
        case["activation_alpha"] = [float(v) for v in spec.get("alphas") or []]
        case["activation_beta"] = [float(v) for v in spec.get("betas") or []]
    if spec_output is not None:
        # [T, D, B, H], the ONNX layout of "output", with alpha = 1.0.
        case["spec_default_output"] = tjson(spec_output)
    return case, diff, notes


# --------------------------------------------------------------------------


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "vectors"))
    ap.add_argument("--only", default=None, help="substring filter on case names")
    args = ap.parse_args()
    outdir = os.path.normpath(args.out)
    os.makedirs(outdir, exist_ok=True)

    import torch
    import onnx
    import onnxruntime as ort

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    print(f"numpy {np.__version__} | torch {torch.__version__} | onnx {onnx.__version__}"
          f" | onnxruntime {ort.__version__} | python {sys.version.split()[0]}")

    total = 0
    for spec in TORCH_CASES + ONNX_CASES + ACT_CASES:
        if args.only and args.only not in spec["name"]:
            continue
        if spec["name"].startswith("torch_"):
            case, diff, notes = run_torch_case(torch, spec)
        else:
            case, diff, notes = run_onnx_case(ort, spec)
        path, size = write_case(outdir, case)
        total += size
        extra = "".join(f"  {k}={v:.3g}" if isinstance(v, float) else f"  {k}={v}"
                        for k, v in notes.items())
        print(f"{case['name']:28s} max|diff| vs float64 numpy = {diff:.3e}"
              f"  ({size / 1024:.1f} KiB){extra}")
    print(f"wrote vectors to {outdir} ({total / 1024:.1f} KiB total)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate the safetensors test files in tests/safetensors/ for `rnncell`'s loader.

Usage (from the repository root):

    ~/.cache/rnncell-peers/venv/bin/python scripts/gen_safetensors.py [--out tests/safetensors] [--only SUBSTR]

Each case writes two files:

* ``<name>.safetensors`` -- weights saved with ``safetensors.torch.save_file`` (PyTorch cases: the
  module's ``state_dict()``, possibly inside a bigger state_dict) or ``safetensors.numpy.save_file``
  (Keras cases: ``{w.path: w.numpy() for w in model.weights}``, exactly what a Keras 3 user exporting
  their weights gets);
* ``<name>.json`` -- how to load it (format, cell, prefix, ...), the spec the loader must infer, a
  fixed input and the framework's outputs on it.

PyTorch cases are run by ``torch.nn.LSTM/GRU/RNN`` (CPU, one thread).  For the f16 and bf16 files the
expected output is computed by PyTorch in float32 from the *widened* weights (``w.half().float()``),
so it is what an exact f16/bf16 -> f32 loader must reproduce.

Keras cases are run by Keras 3 itself on its torch backend (``KERAS_BACKEND=torch``, CPU).  Keras is
not in the peers venv; install it next to it without touching that venv's packages:

    ~/.cache/rnncell-peers/venv/bin/pip install --no-deps --target ~/.cache/rnncell-keras/site \\
        keras==3.15.1 absl-py rich namex h5py optree markdown-it-py mdurl pygments

(or ``pip install keras`` into any venv that has torch); this script adds that folder to sys.path.

Everything is deterministic: weights uniform(-0.6, 0.6) and inputs uniform(-1, 1) from
``numpy.random.default_rng(seed)`` with a fixed seed per case; floats in the JSON are the Python
repr of the float64 equal to each float32, so parsing as f64 and casting to f32 is exact.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

W_SCALE = 0.6
KERAS_SITE = os.path.expanduser("~/.cache/rnncell-keras/site")


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def flat(a):
    if a is None:
        return None
    return [float(v) for v in f32(a).reshape(-1)]


def write_case(outdir, name, meta, save):
    st_path = os.path.join(outdir, f"{name}.safetensors")
    save(st_path)
    meta = {"name": name, "file": f"{name}.safetensors", **meta}
    with open(os.path.join(outdir, f"{name}.json"), "w") as f:
        f.write("{\n")
        items = list(meta.items())
        for i, (k, v) in enumerate(items):
            sep = "," if i + 1 < len(items) else ""
            f.write(f"  {json.dumps(k)}: {json.dumps(v)}{sep}\n")
        f.write("}\n")
    return os.path.getsize(st_path)


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------

TORCH_CASES = [
    # name, cell, I, H, P, layers, bidirectional, bias, dtype, seed
    dict(name="torch_lstm_1l", cell="lstm", I=3, H=5, P=0, L=1, bi=False, seed=101),
    dict(name="torch_lstm_proj_2l_bi", cell="lstm", I=4, H=6, P=3, L=2, bi=True, seed=102),
    dict(name="torch_lstm_proj_1l", cell="lstm", I=5, H=7, P=2, L=1, bi=False, seed=103),
    dict(name="torch_lstm_2l_f16", cell="lstm", I=3, H=5, P=0, L=2, bi=False, dtype="f16", seed=104),
    dict(name="torch_gru_2l_bi", cell="gru", I=3, H=5, P=0, L=2, bi=True, seed=105),
    dict(name="torch_gru_1l_bf16", cell="gru", I=6, H=5, P=0, L=1, bi=False, dtype="bf16", seed=106),
    dict(name="torch_gru_nobias", cell="gru", I=3, H=4, P=0, L=2, bi=False, bias=False, seed=107),
    dict(name="torch_rnn_tanh_2l", cell="rnn_tanh", I=4, H=7, P=0, L=2, bi=False, seed=108),
    dict(name="torch_rnn_relu_bi", cell="rnn_relu", I=3, H=6, P=0, L=1, bi=True, seed=109),
    # inside a bigger state_dict, under the prefix "encoder.rnn."
    dict(name="torch_lstm_prefixed", cell="lstm", I=4, H=5, P=0, L=2, bi=True, seed=110,
         prefix="encoder.rnn."),
]


def torch_module(torch, c):
    nn = torch.nn
    kw = dict(input_size=c["I"], hidden_size=c["H"], num_layers=c["L"],
              bidirectional=c["bi"], bias=c.get("bias", True))
    if c["cell"] == "lstm":
        return nn.LSTM(proj_size=c["P"], **kw)
    if c["cell"] == "gru":
        return nn.GRU(**kw)
    return nn.RNN(nonlinearity=c["cell"].split("_")[1], **kw)


def run_torch_case(torch, c, outdir):
    from safetensors.torch import save_file

    rng = np.random.default_rng(c["seed"])
    m = torch_module(torch, c).eval()
    sd = m.state_dict()
    # draw f32 weights, then round them to the stored dtype; the module runs in f32 on the
    # widened values, which is exactly what the loader must reconstruct.
    dtype = c.get("dtype", "f32")
    tdt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    stored = {}
    for k, v in sd.items():
        w = torch.from_numpy(f32(rng.uniform(-W_SCALE, W_SCALE, tuple(v.shape))))
        stored[k] = w.to(tdt).contiguous()
        sd[k] = stored[k].to(torch.float32)
    m.load_state_dict(sd)

    T, B = 6, 2
    x = f32(rng.uniform(-1, 1, (T, B, c["I"])))
    with torch.no_grad():
        res = m(torch.from_numpy(x))
    if c["cell"] == "lstm":
        y, (hn, cn) = res
        cn = cn.numpy()
    else:
        y, hn = res
        cn = None
    y, hn = y.numpy(), hn.numpy()

    prefix = c.get("prefix", "")
    tensors = {prefix + k: v for k, v in stored.items()}
    if prefix:
        # A realistic bigger state_dict: an embedding before, a batch norm (with its int64
        # counter) and a decoder after; and a sibling whose name starts like the prefix
        # without its dot.
        tensors["encoder.embed.weight"] = torch.from_numpy(f32(rng.uniform(-1, 1, (7, c["I"]))))
        tensors["encoder.norm.running_mean"] = torch.zeros(c["H"] * 2)
        tensors["encoder.norm.num_batches_tracked"] = torch.tensor(12, dtype=torch.int64)
        tensors["encoder.rnn_out.weight"] = torch.from_numpy(f32(rng.uniform(-1, 1, (2, 3))))
        tensors["decoder.weight"] = torch.from_numpy(f32(rng.uniform(-1, 1, (3, 2 * c["H"]))))

    out_size = (2 if c["bi"] else 1) * (c["P"] or c["H"])
    meta = dict(
        format="pytorch", cell=c["cell"], prefix=prefix, keras_layers=[], merge="concat",
        dtype=dtype,
        spec=dict(input_size=c["I"], hidden_size=c["H"], proj_size=c["P"], num_layers=c["L"],
                  bidirectional=c["bi"], linear_before_reset=True, output_size=out_size),
        steps=T, batch=B, batch_major=False,
        input=flat(x), output=flat(y), h_n=flat(hn), c_n=flat(cn),
    )
    return write_case(outdir, c["name"], meta, lambda p: save_file(tensors, p))


# --------------------------------------------------------------------------
# PyTorch cell modules (nn.LSTMCell, nn.GRUCell, nn.RNNCell)
# --------------------------------------------------------------------------

# state_dict names without the `_l{k}` suffix (weight_ih, weight_hh, bias_ih, bias_hh), as
# silero-vad ships; one layer, one direction. The module is stepped T times by hand and each
# step's h is the expected output [T, B, H]; h_n / c_n are the last step's h / c as [1, B, H].
CELL_CASES = [
    dict(name="torch_lstmcell", cell="lstm", I=3, H=5, seed=121),
    # inside a bigger state_dict, under "decoder.rnn." (the module's parameters only)
    dict(name="torch_grucell_prefixed", cell="gru", I=4, H=3, seed=122, prefix="decoder.rnn."),
    dict(name="torch_rnncell_relu_nobias", cell="rnn_relu", I=3, H=4, bias=False, seed=123),
]


def run_cell_case(torch, c, outdir):
    from safetensors.torch import save_file

    nn = torch.nn
    rng = np.random.default_rng(c["seed"])
    kw = dict(input_size=c["I"], hidden_size=c["H"], bias=c.get("bias", True))
    if c["cell"] == "lstm":
        m = nn.LSTMCell(**kw)
    elif c["cell"] == "gru":
        m = nn.GRUCell(**kw)
    else:
        m = nn.RNNCell(nonlinearity=c["cell"].split("_")[1], **kw)
    m = m.eval()
    sd = m.state_dict()
    assert all("_l0" not in k for k in sd), sorted(sd)
    stored = {}
    for k, v in sd.items():
        stored[k] = torch.from_numpy(f32(rng.uniform(-W_SCALE, W_SCALE, tuple(v.shape))))
        sd[k] = stored[k]
    m.load_state_dict(sd)

    T, B = 6, 2
    x = f32(rng.uniform(-1, 1, (T, B, c["I"])))
    h = torch.zeros(B, c["H"])
    cs = torch.zeros(B, c["H"])
    ys = []
    with torch.no_grad():
        for t in range(T):
            xt = torch.from_numpy(x[t])
            if c["cell"] == "lstm":
                h, cs = m(xt, (h, cs))
            else:
                h = m(xt, h)
            ys.append(h.numpy().copy())
    y = np.stack(ys)
    hn = y[-1][None]
    cn = cs.numpy()[None] if c["cell"] == "lstm" else None

    prefix = c.get("prefix", "")
    tensors = {prefix + k: v for k, v in stored.items()}
    if prefix:
        # siblings of the cell in a bigger model, outside the prefix
        tensors["decoder.embed.weight"] = torch.from_numpy(f32(rng.uniform(-1, 1, (5, c["I"]))))
        tensors["decoder.out.weight"] = torch.from_numpy(f32(rng.uniform(-1, 1, (2, c["H"]))))
        tensors["decoder.out.bias"] = torch.from_numpy(f32(rng.uniform(-1, 1, (2,))))

    meta = dict(
        format="pytorch", cell=c["cell"], prefix=prefix, keras_layers=[], merge="concat",
        dtype="f32", module=type(m).__name__,
        spec=dict(input_size=c["I"], hidden_size=c["H"], proj_size=0, num_layers=1,
                  bidirectional=False, linear_before_reset=True, output_size=c["H"]),
        steps=T, batch=B, batch_major=False,
        input=flat(x), output=flat(y), h_n=flat(hn), c_n=flat(cn),
    )
    return write_case(outdir, c["name"], meta, lambda p: save_file(tensors, p))


# --------------------------------------------------------------------------
# Keras 3
# --------------------------------------------------------------------------

KERAS_CASES = [
    dict(name="keras_lstm_1l", cell="lstm", I=3, H=5, layers=["lstm"], seed=201),
    dict(name="keras_gru_2l", cell="gru", I=4, H=5, layers=["gru", "gru"], seed=202),
    dict(name="keras_gru_reset_before", cell="gru", I=3, H=6, layers=["gru"], reset_after=False,
         seed=203),
    dict(name="keras_lstm_bi_2l", cell="lstm", I=3, H=4, layers=["lstm", "lstm"], bi=True,
         seed=204),
    dict(name="keras_rnn_relu_bi_sum", cell="rnn_relu", I=5, H=3, layers=["rnn"], bi=True,
         merge="sum", seed=205),
    dict(name="keras_gru_bi_bf16", cell="gru", I=3, H=5, layers=["gru"], bi=True, dtype="bf16",
         seed=206),
    # two LSTMs followed by a Dense head: the loader is told which layers to take
    dict(name="keras_lstm_2l_dense", cell="lstm", I=4, H=3, layers=["lstm", "lstm"], dense=2,
         seed=207),
]


def keras_import():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.path.isdir(KERAS_SITE) and KERAS_SITE not in sys.path:
        sys.path.append(KERAS_SITE)
    import keras  # noqa: E402

    assert keras.backend.backend() == "torch", keras.backend.backend()
    return keras


def run_keras_case(keras, c, outdir):
    from safetensors.numpy import save_file

    keras.backend.clear_session()  # deterministic auto names: lstm, lstm_1, ...
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(c["seed"])
    L = keras.layers
    T, B = 6, 2
    bi = c.get("bi", False)
    merge = c.get("merge", "concat")
    layers = [keras.Input((T, c["I"]))]
    for _ in c["layers"]:
        if c["cell"] == "lstm":
            rnn = L.LSTM(c["H"], return_sequences=True)
        elif c["cell"] == "gru":
            rnn = L.GRU(c["H"], return_sequences=True, reset_after=c.get("reset_after", True))
        else:
            rnn = L.SimpleRNN(c["H"], return_sequences=True, activation=c["cell"].split("_")[1])
        layers.append(L.Bidirectional(rnn, merge_mode=merge) if bi else rnn)
    if c.get("dense"):
        layers.append(L.Dense(c["dense"]))
    model = keras.Sequential(layers)

    dtype = c.get("dtype", "f32")
    npdt = {"f32": np.float32, "f16": np.float16}.get(dtype)
    stored = {}
    for w in model.weights:
        v = f32(rng.uniform(-W_SCALE, W_SCALE, tuple(w.shape)))
        if dtype == "bf16":
            import ml_dtypes

            s = v.astype(ml_dtypes.bfloat16)
        else:
            s = v.astype(npdt)
        stored[w.path] = np.ascontiguousarray(s)
        w.assign(s.astype(np.float32))

    x = f32(rng.uniform(-1, 1, (B, T, c["I"])))
    # the output of the last recurrent layer (the Dense head, if any, is not loaded)
    last_rnn = model.layers[len(c["layers"]) - 1]
    feat = keras.Model(model.inputs[0], last_rnn.output)
    y = keras.ops.convert_to_numpy(feat(x))

    # layer paths under "sequential/" of the recurrent layers, in stacking order
    rnn_names = sorted({p.split("/")[1] for p in stored if "dense" not in p},
                       key=lambda s: (len(s), s))
    gates = {"lstm": 4, "gru": 3}.get(c["cell"], 1)
    out_size = (2 if bi and merge == "concat" else 1) * c["H"]
    meta = dict(
        format="keras", cell=c["cell"], prefix="sequential/",
        keras_layers=rnn_names if c.get("dense") else [],
        merge=merge, dtype=dtype,
        spec=dict(input_size=c["I"], hidden_size=c["H"], proj_size=0,
                  num_layers=len(c["layers"]), bidirectional=bi,
                  linear_before_reset=c.get("reset_after", True) if c["cell"] == "gru" else True,
                  output_size=out_size),
        steps=T, batch=B, batch_major=True,
        input=flat(x), output=flat(y), h_n=None, c_n=None,
        tensor_names=sorted(stored),
    )
    assert gates * c["H"] == stored[sorted(k for k in stored if k.endswith("recurrent_kernel"))[0]].shape[1]

    def save(p):
        if dtype == "bf16":
            # safetensors.numpy has no bfloat16; go through torch for the bytes.
            import torch
            from safetensors.torch import save_file as tsave

            tsave({k: torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16)
                   for k, v in stored.items()}, p)
        else:
            save_file(stored, p)

    return write_case(outdir, c["name"], meta, save)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "safetensors"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    outdir = os.path.normpath(args.out)
    os.makedirs(outdir, exist_ok=True)

    import torch
    import safetensors

    torch.set_num_threads(1)
    # Keras only when a Keras case is selected (it is not in the peers venv).
    keras_cases = [c for c in KERAS_CASES if args.only in c["name"]]
    keras = keras_import() if keras_cases else None
    kv = f"{keras.__version__} ({keras.backend.backend()})" if keras else "not used"
    print(f"numpy {np.__version__} | torch {torch.__version__} | safetensors "
          f"{safetensors.__version__} | keras {kv} | python {sys.version.split()[0]}")
    total = 0
    for c in TORCH_CASES:
        if args.only in c["name"]:
            n = run_torch_case(torch, c, outdir)
            total += n
            print(f"{c['name']:28s} {n:6d} bytes")
    for c in CELL_CASES:
        if args.only in c["name"]:
            n = run_cell_case(torch, c, outdir)
            total += n
            print(f"{c['name']:28s} {n:6d} bytes")
    for c in keras_cases:
        if args.only in c["name"]:
            n = run_keras_case(keras, c, outdir)
            total += n
            print(f"{c['name']:28s} {n:6d} bytes")
    print(f"wrote {outdir} ({total} bytes of safetensors)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates the ONNX test data under tests/onnx/ (read by tests/onnx.rs).

Run with the peers' venv (torch, onnx, onnxruntime, numpy):
    ~/.cache/rnncell-peers/venv/bin/python scripts/onnx_vectors.py

Every case is a directory holding `model.onnx` and TensorProto files (`*.pb`, the
format of ONNX's backend tests): the runtime inputs the test feeds (`X.pb`, and
where used `initial_h.pb`, `initial_c.pb`, `sequence_lens.pb`) and the outputs
ONNX Runtime computed (`Y.pb`, `Y_h.pb`, `Y_c.pb`). Layouts are ONNX's
(`Y` [T, D, B, H], states [D, B, H]; layout = 1: [B, T, D, H] and [B, D, H]).

- torch/<case>: `torch.onnx.export` (TorchScript exporter) of nn.LSTM / nn.GRU /
  nn.RNN (1-2 layers, bidirectional, with and without bias); Y is the PyTorch
  module's output [T, B, D*H] computed by ONNX Runtime from the file.
- node/<case>: ONNX's own backend node tests for LSTM, GRU and RNN
  (onnx.backend.test.case.node), with W, R, B, P moved from graph inputs into
  initializers (the loader reads weights, not runtime inputs).
- silero/<case>: a synthetic graph with silero-vad's pattern: the LSTM inside an
  `If` branch, W/R/B folded from Constant -> Slice/Split -> Concat -> Unsqueeze,
  zero initial state from Shape -> Gather -> Concat -> Expand. Two variants: opset
  11 (axes/split as attributes) and opset 17 (as inputs).
- f16/: LSTM with float16 W/R (typed int32_data) and bfloat16 B (raw_data).
- errors/: files each loader error test reads.
"""

import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "onnx")
RNG = np.random.default_rng(20261201)


def fresh(path):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def save_pb(d, name, arr):
    t = numpy_helper.from_array(np.ascontiguousarray(arr), name)
    with open(os.path.join(d, name + ".pb"), "wb") as f:
        f.write(t.SerializeToString())


def run_ort(model_bytes, feeds):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


# ---------------------------------------------------------------------------
# torch.onnx.export

I, H, T, B = 5, 7, 6, 2

TORCH_CASES = [
    ("lstm_1l", lambda: torch.nn.LSTM(I, H)),
    ("lstm_2l_bi", lambda: torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)),
    ("lstm_nobias", lambda: torch.nn.LSTM(I, H, bias=False)),
    ("gru_2l", lambda: torch.nn.GRU(I, H, num_layers=2)),
    ("gru_bi_nobias", lambda: torch.nn.GRU(I, H, bidirectional=True, bias=False)),
    ("rnn_2l_bi", lambda: torch.nn.RNN(I, H, num_layers=2, bidirectional=True)),
    ("rnn_relu", lambda: torch.nn.RNN(I, H, nonlinearity="relu")),
]


class Wrap(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        y, _ = self.rnn(x)
        return y


def torch_cases():
    torch.manual_seed(7)
    for name, make in TORCH_CASES:
        d = fresh(os.path.join(ROOT, "torch", name))
        m = Wrap(make()).eval()
        x = torch.from_numpy(RNG.standard_normal((T, B, I)).astype(np.float32))
        path = os.path.join(d, "model.onnx")
        torch.onnx.export(m, (x,), path, input_names=["X"], output_names=["Y"],
                          opset_version=17, dynamo=False,
                          keep_initializers_as_inputs=(name == "lstm_1l"))
        model = onnx.load(path)
        y = run_ort(model.SerializeToString(), {"X": x.numpy()})["Y"]
        with torch.no_grad():
            want = m(x).numpy()
        assert np.allclose(y, want, atol=1e-5), name
        save_pb(d, "X", x.numpy())
        save_pb(d, "Y", y)


# ---------------------------------------------------------------------------
# ONNX backend node tests

def node_cases():
    from onnx.backend.test.case.node import collect_testcases

    out = fresh(os.path.join(ROOT, "node"))
    # One call: the case modules are imported (and their cases made) once.
    for case in collect_testcases(None):
        if True:
            if not case.name.startswith(("test_lstm", "test_gru", "test_rnn", "test_simple_rnn")):
                continue
            model = case.model
            g = model.graph
            inputs, outputs = case.data_sets[0]
            node = g.node[0]
            weight_names = set()
            for idx in (1, 2, 3, 7):  # W, R, B, P
                if idx < len(node.input) and node.input[idx]:
                    weight_names.add(node.input[idx])
            d = os.path.join(out, case.name)
            os.makedirs(d)
            keep, feeds = [], {}
            for vi, value in zip(list(g.input), inputs):
                if vi.name in weight_names:
                    g.initializer.append(numpy_helper.from_array(value, vi.name))
                else:
                    keep.append(vi)
                    feeds[vi.name] = value
                    save_pb(d, vi.name, value)
            del g.input[:]
            g.input.extend(keep)
            for vi, value in zip(g.output, outputs):
                save_pb(d, vi.name, value)
            onnx.checker.check_model(model)
            with open(os.path.join(d, "model.onnx"), "wb") as f:
                f.write(model.SerializeToString())
            # ORT agrees with the reference outputs (so the stored ones are both),
            # except for layout = 1, which ORT's CPU kernels do not support.
            if any(a.name == "layout" and a.i == 1 for a in node.attribute):
                continue
            got = run_ort(model.SerializeToString(), feeds)
            for vi, value in zip(g.output, outputs):
                assert np.allclose(got[vi.name], value, atol=1e-5), (case.name, vi.name)


# ---------------------------------------------------------------------------
# silero-vad's pattern

def c(name, arr):
    return helper.make_node("Constant", [], [name], name=name + "_const",
                            value=numpy_helper.from_array(np.asarray(arr), name + "_v"))


def silero(opset):
    """An LSTM (input 5, hidden 7) in the then-branch of an If, its weights from
    PyTorch-ordered (i, f, g, o) constants reordered to ONNX's (i, o, f, c) by
    slicing and concatenation; a GRU in the else-branch."""
    h = H
    w_pt = RNG.standard_normal((4 * h, I)).astype(np.float32) * 0.3
    r_pt = RNG.standard_normal((4 * h, h)).astype(np.float32) * 0.3
    b_pt = RNG.standard_normal((8 * h,)).astype(np.float32) * 0.3
    nodes = []

    def reorder(src, prefix, parts_axis0):
        """ONNX gate order from PyTorch's along axis 0 of `src`: i f g o -> i o f g."""
        if opset >= 13:
            # Slice with inputs (opset >= 10), four slices.
            names = []
            for k, gate in enumerate("ifgo"):
                s = f"{prefix}_{gate}"
                nodes.append(c(s + "_st", np.array([k * parts_axis0], np.int64)))
                nodes.append(c(s + "_en", np.array([(k + 1) * parts_axis0], np.int64)))
                nodes.append(c(s + "_ax", np.array([0], np.int64)))
                nodes.append(helper.make_node("Slice", [src, s + "_st", s + "_en", s + "_ax"], [s], name=s + "_slice"))
                names.append(s)
        else:
            # Split with the `split` attribute (opset < 13).
            names = [f"{prefix}_{gate}" for gate in "ifgo"]
            nodes.append(helper.make_node("Split", [src], names, name=prefix + "_split", axis=0,
                                          split=[parts_axis0] * 4))
        i_, f_, g_, o_ = names
        cat = prefix + "_cat"
        nodes.append(helper.make_node("Concat", [i_, o_, f_, g_], [cat], name=cat, axis=0))
        return cat

    def unsq(src, out):
        if opset >= 13:
            nodes.append(c(out + "_axes", np.array([0], np.int64)))
            nodes.append(helper.make_node("Unsqueeze", [src, out + "_axes"], [out], name=out))
        else:
            nodes.append(helper.make_node("Unsqueeze", [src], [out], name=out, axes=[0]))

    # W: a float16 constant cast to float, through Identity.
    nodes.append(c("w_pt16", w_pt.astype(np.float16)))
    nodes.append(helper.make_node("Cast", ["w_pt16"], ["w_pt"], name="w_cast", to=TensorProto.FLOAT))
    unsq(reorder("w_pt", "w", 4 * h // 4 * 1 if False else h), "W")
    # R: stored transposed, Transpose back, then Reshape [4h, h] -> [4h*h] -> [4h, h].
    nodes.append(c("r_t", np.ascontiguousarray(r_pt.T)))
    nodes.append(helper.make_node("Transpose", ["r_t"], ["r_pt0"], name="r_transpose", perm=[1, 0]))
    nodes.append(c("r_flat_shape", np.array([-1], np.int64)))
    nodes.append(helper.make_node("Reshape", ["r_pt0", "r_flat_shape"], ["r_flat"], name="r_flat"))
    nodes.append(c("r_shape", np.array([4 * h, 0], np.int64) if False else np.array([4 * h, h], np.int64)))
    nodes.append(helper.make_node("Reshape", ["r_flat", "r_shape"], ["r_pt"], name="r_reshape"))
    unsq(reorder("r_pt", "r", h), "R")
    # B: bias_ih ++ bias_hh as one constant [2, 4h]; Gather each row, reorder each, Concat.
    nodes.append(c("b_pt", b_pt.reshape(2, 4 * h)))
    nodes.append(c("b_row0", np.array(0, np.int64)))
    nodes.append(c("b_row1", np.array(1, np.int64)))
    nodes.append(helper.make_node("Gather", ["b_pt", "b_row0"], ["b_ih"], name="b_gather0", axis=0))
    nodes.append(helper.make_node("Gather", ["b_pt", "b_row1"], ["b_hh"], name="b_gather1", axis=0))
    bi = reorder("b_ih", "bi", h)
    bh = reorder("b_hh", "bh", h)
    nodes.append(helper.make_node("Concat", [bi, bh], ["b_cat"], name="b_cat", axis=0))
    unsq("b_cat", "B")
    # Zero initial state: Shape(X) -> Gather(1) -> Concat([1], batch, [h]) -> Expand(0).
    nodes.append(helper.make_node("Shape", ["X"], ["x_shape"], name="x_shape"))
    nodes.append(c("one_idx", np.array([1], np.int64)))
    nodes.append(helper.make_node("Gather", ["x_shape", "one_idx"], ["batch"], name="batch", axis=0))
    nodes.append(c("d1", np.array([1], np.int64)))
    nodes.append(c("hh", np.array([h], np.int64)))
    nodes.append(helper.make_node("Concat", ["d1", "batch", "hh"], ["state_shape"], name="state_shape", axis=0))
    nodes.append(c("zero", np.array(0.0, np.float32)))
    nodes.append(helper.make_node("Expand", ["zero", "state_shape"], ["h0"], name="h0"))
    nodes.append(helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "h0"], ["Y4", "", ""],
                                  name="encoder_lstm", hidden_size=h))
    if opset >= 13:
        nodes.append(c("sq_axes", np.array([1], np.int64)))
        nodes.append(helper.make_node("Squeeze", ["Y4", "sq_axes"], ["then_y"], name="then_squeeze"))
    else:
        nodes.append(helper.make_node("Squeeze", ["Y4"], ["then_y"], name="then_squeeze", axes=[1]))
    then_g = helper.make_graph(nodes, "then_branch", [], [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [None, None, None])])

    # else: a GRU on outer-scope initializers (visible inside the branch).
    else_nodes = [
        helper.make_node("GRU", ["X", "gw", "gr"], ["GY", ""], name="", hidden_size=h),
    ]
    if opset >= 13:
        else_nodes.append(c("gsq_axes", np.array([1], np.int64)))
        else_nodes.append(helper.make_node("Squeeze", ["GY", "gsq_axes"], ["else_y"], name="else_squeeze"))
    else:
        else_nodes.append(helper.make_node("Squeeze", ["GY"], ["else_y"], name="else_squeeze", axes=[1]))
    else_g = helper.make_graph(else_nodes, "else_branch", [], [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [None, None, None])])
    gw = RNG.standard_normal((1, 3 * h, I)).astype(np.float32) * 0.3
    gr = RNG.standard_normal((1, 3 * h, h)).astype(np.float32) * 0.3
    main = helper.make_graph(
        [helper.make_node("If", ["use_lstm"], ["Y"], name="branch", then_branch=then_g, else_branch=else_g)],
        "silero_like",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I]),
         helper.make_tensor_value_info("use_lstm", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None, None])],
        initializer=[numpy_helper.from_array(gw, "gw"), numpy_helper.from_array(gr, "gr")],
    )
    model = helper.make_model(main, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    d = fresh(os.path.join(ROOT, "silero", f"opset{opset}"))
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    x = RNG.standard_normal((T, B, I)).astype(np.float32)
    save_pb(d, "X", x)
    for flag, out in [(True, "Y_lstm"), (False, "Y_gru")]:
        y = run_ort(model.SerializeToString(), {"X": x, "use_lstm": np.array(flag)})["Y"]
        save_pb(d, out, y)
    # The LSTM against torch with the original (PyTorch-ordered) weights.
    lstm = torch.nn.LSTM(I, h)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(w_pt.astype(np.float16).astype(np.float32)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(r_pt))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b_pt[: 4 * h]))
        lstm.bias_hh_l0.copy_(torch.from_numpy(b_pt[4 * h:]))
        want = lstm(torch.from_numpy(x))[0].numpy()
    y = run_ort(model.SerializeToString(), {"X": x, "use_lstm": np.array(True)})["Y"]
    assert np.allclose(y, want, atol=1e-5)


# ---------------------------------------------------------------------------
# f16 / bf16 weights

def f16():
    h = 4
    w = (RNG.standard_normal((1, 4 * h, 3)) * 0.4).astype(np.float16)
    r = (RNG.standard_normal((1, 4 * h, h)) * 0.4).astype(np.float16)
    b = (RNG.standard_normal((1, 8 * h)) * 0.4).astype(np.float32)
    b16 = b.view(np.uint32) >> 16  # truncated to bfloat16 bits
    b_rounded = (b16.astype(np.uint32) << 16).view(np.float32)
    init = [
        # typed fields: int32_data with the float16 bit patterns
        # (make_tensor converts float values to float16 bit patterns itself)
        helper.make_tensor("W", TensorProto.FLOAT16, w.shape, w.astype(np.float32).flatten().tolist(),
                           raw=False),
        helper.make_tensor("R", TensorProto.FLOAT16, r.shape, r.tobytes(), raw=True),
        helper.make_tensor("B", TensorProto.BFLOAT16, b.shape, b16.astype(np.uint16).tobytes(), raw=True),
    ]
    g = helper.make_graph(
        [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm16", hidden_size=h)],
        "f16", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    assert len(model.graph.initializer[0].int32_data) == w.size
    assert np.array_equal(numpy_helper.to_array(model.graph.initializer[0]), w)
    d = fresh(os.path.join(ROOT, "f16"))
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    save_pb(d, "W32", w.astype(np.float32))
    save_pb(d, "R32", r.astype(np.float32))
    save_pb(d, "B32", b_rounded.reshape(1, 8 * h))


# ---------------------------------------------------------------------------
# error cases

def lstm_graph(name, init, inputs=None, node_inputs=("X", "W", "R"), nodes=None, **attrs):
    inputs = inputs or [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)]
    nodes = nodes or [helper.make_node("LSTM", list(node_inputs), ["Y"], name="lstm", hidden_size=2, **attrs)]
    g = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                          initializer=init)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def errors():
    d = fresh(os.path.join(ROOT, "errors"))
    w = numpy_helper.from_array(np.zeros((1, 8, 3), np.float32), "W")
    r = numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "R")

    def save(name, model):
        with open(os.path.join(d, name + ".onnx"), "wb") as f:
            f.write(model.SerializeToString())

    ext = onnx.TensorProto()
    ext.CopyFrom(w)
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    e = ext.external_data.add()
    e.key, e.value = "location", "weights.bin"
    save("external", lstm_graph("external", [ext, r]))

    m = lstm_graph("sparse", [r])
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1, np.float32), "W"),
                                   numpy_helper.from_array(np.array([0], np.int64), "W_idx"), [1, 8, 3])
    m.graph.sparse_initializer.append(sp)
    save("sparse", m)

    save("graph_input", lstm_graph("graph_input", [r], inputs=[
        helper.make_tensor_value_info("X", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("W_in", TensorProto.FLOAT, None)],
        nodes=[helper.make_node("Identity", ["W_in"], ["W"], name="w_identity"),
               helper.make_node("LSTM", ["X", "W", "R"], ["Y"], name="lstm", hidden_size=2)]))

    # An activation ONNX does not define (every ONNX one loads).
    save("activation", lstm_graph("activation", [w, r], activations=["Gelu", "Tanh", "Tanh"]))

    g_nodes = [helper.make_node("LSTM", ["X", "W", "R"], ["Y1"], name="first", hidden_size=2),
               helper.make_node("LSTM", ["X", "W", "R"], ["Y"], name="second", hidden_size=2)]
    save("two_chains", lstm_graph("two_chains", [w, r], nodes=g_nodes))

    # Two layers chained through Squeeze: loads as one stacked model.
    w2 = numpy_helper.from_array(RNG.standard_normal((1, 8, 2)).astype(np.float32), "W2")
    r2 = numpy_helper.from_array(RNG.standard_normal((1, 8, 2)).astype(np.float32), "R2")
    w1 = numpy_helper.from_array(RNG.standard_normal((1, 8, 3)).astype(np.float32), "W")
    r1 = numpy_helper.from_array(RNG.standard_normal((1, 8, 2)).astype(np.float32), "R")
    chain = [helper.make_node("LSTM", ["X", "W", "R"], ["Y1"], name="l0", hidden_size=2),
             helper.make_node("Squeeze", ["Y1", "ax"], ["X1"], name="sq"),
             helper.make_node("LSTM", ["X1", "W2", "R2"], ["Y"], name="l1", hidden_size=2),
             # A third LSTM reading X too: not part of the chain.
             helper.make_node("LSTM", ["X", "W", "R"], ["Y3"], name="other", hidden_size=2)]
    ax = numpy_helper.from_array(np.array([1], np.int64), "ax")
    m = lstm_graph("chain", [w1, r1, w2, r2, ax], nodes=chain)
    m.graph.output.append(helper.make_tensor_value_info("Y3", TensorProto.FLOAT, None))
    save("chain", m)
    x = RNG.standard_normal((4, 1, 3)).astype(np.float32)
    save_pb(d, "chain_X", x)
    got = run_ort(m.SerializeToString(), {"X": x})
    save_pb(d, "chain_Y", got["Y"])
    save_pb(d, "other_Y", got["Y3"])

    # A weight of the wrong shape (a truncated W).
    wt = numpy_helper.from_array(np.zeros((1, 7, 3), np.float32), "W")
    save("bad_shape", lstm_graph("bad_shape", [wt, r]))


def acts():
    """A bidirectional GRU with a different activation list per direction
    (alpha/beta consumed across both), its Y made [T, B, 2H] by Transpose +
    Reshape; the expected Y is ONNX Runtime's. Its own generator, so the
    other cases are unchanged."""
    rng = np.random.default_rng(7)
    t, b, i, h = 5, 2, 3, 4
    w = (rng.uniform(-0.6, 0.6, (2, 3 * h, i))).astype(np.float32)
    r = (rng.uniform(-0.6, 0.6, (2, 3 * h, h))).astype(np.float32)
    bias = (rng.uniform(-0.6, 0.6, (2, 6 * h))).astype(np.float32)
    x = rng.uniform(-1, 1, (t, b, i)).astype(np.float32)
    init = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
            numpy_helper.from_array(bias, "B"),
            numpy_helper.from_array(np.array([t, b, 2 * h], np.int64), "shape")]
    nodes = [
        helper.make_node("GRU", ["X", "W", "R", "B"], ["Y4"], name="gru_acts", hidden_size=h,
                         direction="bidirectional", linear_before_reset=1,
                         activations=["HardSigmoid", "Softsign", "Sigmoid", "Elu"],
                         activation_alpha=[0.3, 0.8], activation_beta=[0.45]),
        helper.make_node("Transpose", ["Y4"], ["Yt"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Yt", "shape"], ["Y"]),
    ]
    g = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    d = fresh(os.path.join(ROOT, "acts"))
    mb = model.SerializeToString()
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(mb)
    save_pb(d, "X", x)
    save_pb(d, "Y", run_ort(mb, {"X": x})["Y"])


if __name__ == "__main__":
    torch_cases()
    node_cases()
    silero(11)
    silero(17)
    f16()
    errors()
    acts()
    total = 0
    for dp, _, fs in os.walk(ROOT):
        for f in fs:
            total += os.path.getsize(os.path.join(dp, f))
    print(f"wrote tests/onnx ({total} bytes)")

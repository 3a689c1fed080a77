//! Loading the recurrent nodes (`LSTM`, `GRU`, `RNN`) of an ONNX model file.
//!
//! The file is decoded with prost (`proto.rs`: the messages of `onnx.proto`
//! this loader reads, declared by hand), every graph and subgraph is indexed
//! (`If` branches, `Loop`/`Scan` bodies; outer-scope names are visible
//! inside), the recurrent nodes are found, and their weight inputs W, R, B,
//! P are folded to constants (`fold.rs`: initializers and `Constant` nodes
//! through Identity, Cast, Slice, Concat, Split, Squeeze, Unsqueeze,
//! Reshape, Transpose and Gather). The node attributes become a
//! [`ModelSpec`] and the tensors go to [`Model::from_onnx_with_isa`]
//! (`cell/frameworks/onnx.rs`), which
//! owns the ONNX gate orders. One node is a model; nodes that chain (one
//! node's `Y` feeding the next one's `X`, through `Squeeze`, `Reshape` or a
//! `Transpose` with `perm = [0, 2, 1, 3]` only, as PyTorch's exporter
//! writes between layers) load as one stacked model.
//!
//! Layout: this file holds the public API and the stacking of nodes into
//! one model; `proto.rs` the prost messages; `fold.rs` the graph scopes, the
//! constant evaluator and initializer decoding (`fold/ops.rs` its
//! operators); `node.rs` a node's attributes, cell and weights; `chain.rs`
//! which nodes feed which and the selection.
//!
//! Nodes are named by their `name`; a node without one is `OP#i` (`LSTM#3`:
//! its op type and its index in its graph's node list). A node inside a
//! subgraph also has a qualified name: the path of its graph, each level
//! `<node>.<attribute>`, joined with `::`, then `::` and its name
//! (`If_0.then_branch::lstm`). Either form selects it
//! ([`OnnxOptions::nodes`]); a plain name that is not unique must be
//! qualified.

mod chain;
mod fold;
mod node;
mod proto;

use std::path::Path;

use prost::Message;

use crate::cell::frameworks::onnx::OnnxTensors;
use crate::cell::model::Model;
use crate::cell::spec::{CellKind, Direction, MergeMode, ModelSpec, WeightPrecision};
use crate::error::{Error, Result};
use crate::isa::Isa;
use chain::{next_of, select};
use fold::{Folder, Stored};
use node::{Op, attrs, floats, parse, recurrent, stored};
use proto::ModelProto;

/// The largest ONNX file the loader decodes: 2 GiB - 1, protobuf's own
/// limit for one message. Checked before anything is decoded.
pub const MAX_ONNX_BYTES: usize = (1 << 31) - 1;

/// What [`load_onnx`] needs besides the file.
///
/// ```
/// use rnncell::*;
/// let o = OnnxOptions::new().node("encoder/lstm").isa(Isa::Scalar).stored_precision();
/// assert_eq!(o.nodes, ["encoder/lstm"]);
/// assert_eq!(o.precision, None);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxOptions {
    /// The recurrent nodes to load, first layer first: one node, or nodes
    /// that chain (each one's `Y` is the next one's `X`), loaded as one
    /// stacked model. Each entry is a node name or a qualified name (see the
    /// module documentation). Empty: the model's recurrent nodes, if they
    /// form exactly one chain (otherwise an error lists them).
    pub nodes: Vec<String>,
    /// The instruction set to build for; `None`: [`Isa::detect`].
    pub isa: Option<Isa>,
    /// The precision of the weight matrices. `Some(p)` (default
    /// `Some(WeightPrecision::F32)`) builds in `p`. `None` keeps the stored
    /// precision: every W and R float16 gives [`WeightPrecision::F16`],
    /// bfloat16 [`WeightPrecision::Bf16`], float32 [`WeightPrecision::F32`];
    /// mixed types are an [`Error::Format`] naming two tensors. A weight
    /// folded through `Cast(to=FLOAT16)` counts as float16. Biases and
    /// peepholes may have any of the three types and are widened to f32.
    pub precision: Option<WeightPrecision>,
}

impl Default for OnnxOptions {
    fn default() -> OnnxOptions {
        OnnxOptions::new()
    }
}

impl OnnxOptions {
    /// No node selected, ISA detected, f32 weights.
    ///
    /// ```
    /// assert!(rnncell::OnnxOptions::new().nodes.is_empty());
    /// ```
    pub fn new() -> OnnxOptions {
        OnnxOptions {
            nodes: Vec::new(),
            isa: None,
            precision: Some(WeightPrecision::F32),
        }
    }

    /// Selects one node (replaces [`OnnxOptions::nodes`]).
    ///
    /// ```
    /// assert_eq!(rnncell::OnnxOptions::new().node("lstm").nodes, ["lstm"]);
    /// ```
    pub fn node(mut self, name: impl Into<String>) -> OnnxOptions {
        self.nodes = vec![name.into()];
        self
    }

    /// Selects a chain of nodes, first layer first (replaces
    /// [`OnnxOptions::nodes`]).
    ///
    /// ```
    /// let o = rnncell::OnnxOptions::new().nodes(["/rnn/LSTM", "/rnn/LSTM_1"]);
    /// assert_eq!(o.nodes.len(), 2);
    /// ```
    pub fn nodes<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> OnnxOptions {
        self.nodes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`OnnxOptions::isa`].
    ///
    /// ```
    /// use rnncell::*;
    /// assert_eq!(OnnxOptions::new().isa(Isa::Scalar).isa, Some(Isa::Scalar));
    /// ```
    pub fn isa(mut self, isa: Isa) -> OnnxOptions {
        self.isa = Some(isa);
        self
    }

    /// Builds in `precision`.
    ///
    /// ```
    /// use rnncell::*;
    /// let o = OnnxOptions::new().precision(WeightPrecision::Bf16);
    /// assert_eq!(o.precision, Some(WeightPrecision::Bf16));
    /// ```
    pub fn precision(mut self, precision: WeightPrecision) -> OnnxOptions {
        self.precision = Some(precision);
        self
    }

    /// Keeps the stored precision (sets [`OnnxOptions::precision`] to
    /// `None`).
    ///
    /// ```
    /// assert_eq!(rnncell::OnnxOptions::new().stored_precision().precision, None);
    /// ```
    pub fn stored_precision(mut self) -> OnnxOptions {
        self.precision = None;
        self
    }
}

/// One recurrent node of an ONNX model, as [`onnx_nodes`] lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxNodeInfo {
    /// Its name (or `OP#i` when it has none).
    pub name: String,
    /// The path of the graph it sits in: "" for the main graph, else
    /// `<node>.<attribute>` levels joined with `::` (`If_0.then_branch`).
    pub graph: String,
    /// `"LSTM"`, `"GRU"` or `"RNN"`.
    pub op_type: String,
    /// Its `direction` attribute.
    pub direction: Direction,
    /// `hidden_size` (from the attribute, else from R's shape; 0 if neither
    /// is known).
    pub hidden_size: usize,
    /// The input size (W's last dimension; 0 if W cannot be folded).
    pub input_size: usize,
    /// Its `layout` attribute: 0 (`X` [T, B, I], `Y` [T, D, B, H]) or 1
    /// (`X` [B, T, I], `Y` [B, T, D, H]). It changes only how ONNX lays out
    /// the node's inputs and outputs, not the weights or the model.
    pub layout: u32,
    /// Whether it has a bias B.
    pub has_bias: bool,
    /// Whether it has peepholes P (LSTM).
    pub has_peephole: bool,
    /// The recurrent nodes its `Y` feeds as their `X` (through `Squeeze`,
    /// `Reshape`, `Transpose` only), by name, in the same graph.
    pub next: Vec<String>,
    /// `None` if the node loads; else why it does not (the message
    /// [`load_onnx`] would return).
    pub error: Option<String>,
}

impl OnnxNodeInfo {
    /// The name that selects this node wherever it sits: `graph::name`
    /// (just `name` in the main graph).
    ///
    /// ```
    /// let nodes = rnncell::onnx_nodes(&[]).unwrap_or_default();
    /// assert!(nodes.iter().all(|n| n.qualified_name().ends_with(&n.name)));
    /// ```
    pub fn qualified_name(&self) -> String {
        qualify(&self.graph, &self.name)
    }
}

fn qualify(graph: &str, name: &str) -> String {
    if graph.is_empty() {
        name.to_owned()
    } else {
        format!("{graph}::{name}")
    }
}

fn format_err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

/// Prefixes the message of a format error.
fn context(e: Error, prefix: &str) -> Error {
    match e {
        Error::Format(m) => Error::Format(format!("{prefix}{m}")),
        e => e,
    }
}

/// Decodes the file (after bounding its size).
fn decode(bytes: &[u8]) -> Result<ModelProto> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(format_err(format!(
            "the file has {} bytes; ONNX files (protobuf messages) are at most {MAX_ONNX_BYTES}",
            bytes.len()
        )));
    }
    let bad = |e: String| format_err(format!("not a valid ONNX model (protobuf: {e})"));
    // prost allocates per message: bound what the decoded tree can take
    // before decoding (see `proto::decoded_size`).
    let need = proto::decoded_size(bytes).map_err(bad)?;
    let cap = bytes.len().saturating_mul(4).saturating_add(64 << 20);
    if need > cap {
        return Err(format_err(format!(
            "decoding this {}-byte file would take up to {need} bytes of memory, more than the \
             loader allows ({cap}: 4 per file byte + 64 MiB); a real model needs about its own \
             size (this file has very many small or empty messages)",
            bytes.len()
        )));
    }
    ModelProto::decode(bytes).map_err(|e| bad(e.to_string()))
}

/// Lists the recurrent nodes of an ONNX model (all graphs, subgraphs
/// included), each with its sizes, the nodes it chains to, and whether it
/// loads. An error only if the file itself cannot be decoded.
///
/// ```
/// let err = rnncell::onnx_nodes(b"\xff\xff").unwrap_err();
/// assert!(matches!(err, rnncell::Error::Format(_)));
/// ```
pub fn onnx_nodes(bytes: &[u8]) -> Result<Vec<OnnxNodeInfo>> {
    let model = decode(bytes)?;
    let scopes = fold::scopes(&model)?;
    let recs = recurrent(&scopes);
    let mut folder = Folder::new(&scopes, bytes.len());
    let mut out = Vec::new();
    out.try_reserve_exact(recs.len())
        .map_err(|_| crate::loader::out_of_memory(recs.len(), "the node list"))?;
    for (i, rec) in recs.iter().enumerate() {
        let next = next_of(&scopes, &recs, i)
            .into_iter()
            .map(|j| recs[j].name.clone())
            .collect();
        let input = |k: usize| rec.node.input.get(k).is_some_and(|n| !n.is_empty());
        let mut info = OnnxNodeInfo {
            name: rec.name.clone(),
            graph: scopes[rec.scope].path.clone(),
            op_type: rec.op.name().to_owned(),
            direction: Direction::Forward,
            hidden_size: 0,
            input_size: 0,
            layout: 0,
            has_bias: input(3),
            has_peephole: rec.op == Op::Lstm && input(7),
            next,
            error: None,
        };
        if let Ok(a) = attrs(rec) {
            info.direction = a.direction;
            info.layout = a.layout;
            info.hidden_size = a.hidden.unwrap_or(0);
        }
        match parse(&mut folder, rec) {
            Ok(p) => {
                info.hidden_size = p.hidden;
                info.input_size = p.input;
            }
            Err(e) => info.error = Some(e.to_string()),
        }
        out.push(info);
    }
    Ok(out)
}

/// Loads recurrent nodes of an ONNX model from a file (see [`OnnxOptions`]
/// and the module documentation): reads it (a regular file of at most
/// [`MAX_ONNX_BYTES`]) and does what [`load_onnx_bytes`] does.
///
/// ```no_run
/// use rnncell::*;
/// // torch.onnx.export(nn.LSTM(...), ...) of a two-layer LSTM:
/// let opts = OnnxOptions::new().nodes(["/rnn/LSTM", "/rnn/LSTM_1"]);
/// let model = load_onnx("lstm.onnx", &opts)?;
/// assert_eq!(model.spec().num_layers, 2);
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn load_onnx(path: impl AsRef<Path>, opts: &OnnxOptions) -> Result<Model> {
    let path = path.as_ref();
    crate::loader::read_whole_file(path, MAX_ONNX_BYTES as u64)
        .and_then(|bytes| load_onnx_bytes(&bytes, opts))
        .map_err(|e| context(e, &format!("{}: ", path.display())))
}

/// Loads recurrent nodes of an ONNX model from its bytes (see
/// [`load_onnx`]).
///
/// Errors: [`Error::Format`] for a file that cannot be decoded, a weight
/// that is not a constant (the message names the node, the input and the
/// value that stops the folding), external or sparse data, shapes that
/// disagree with the attributes; [`Error::Unsupported`] for an activation
/// other than the defaults (and RNN `Relu`); [`Error::InvalidArgument`]
/// for a selection that names no node, nodes that do not chain, or no
/// selection when the model has more than one chain (the message lists
/// them).
///
/// ```
/// use rnncell::*;
/// let err = load_onnx_bytes(b"not onnx", &OnnxOptions::new()).unwrap_err();
/// assert!(matches!(err, Error::Format(_)));
/// ```
pub fn load_onnx_bytes(bytes: &[u8], opts: &OnnxOptions) -> Result<Model> {
    let model = decode(bytes)?;
    let scopes = fold::scopes(&model)?;
    let recs = recurrent(&scopes);
    let chosen = select(&scopes, &recs, &opts.nodes)?;
    let mut folder = Folder::new(&scopes, bytes.len());
    let mut parsed = Vec::new();
    for &i in &chosen {
        parsed.push(parse(&mut folder, &recs[i])?);
    }
    let first = &parsed[0];
    let first_rec = &recs[chosen[0]];
    let d = first.direction.count();
    for (k, (p, &i)) in parsed.iter().zip(&chosen).enumerate().skip(1) {
        let (a, b) = (&first_rec.qualified, &recs[i].qualified);
        let differ = |what: &str| {
            Error::InvalidArgument(format!(
                "nodes {a:?} and {b:?} differ in {what}, so they cannot be one stacked model"
            ))
        };
        if p.op != first.op {
            return Err(differ("op type"));
        }
        if p.direction != first.direction {
            return Err(differ("direction"));
        }
        if p.hidden != first.hidden {
            return Err(differ("hidden_size"));
        }
        let mut c = p.cell;
        if let (CellKind::Lstm(x), CellKind::Lstm(y)) = (&mut c, &first.cell) {
            x.peephole = y.peephole;
        }
        if c != first.cell {
            return Err(differ(
                "cell options (clip, activations, linear_before_reset, input_forget)",
            ));
        }
        if p.cell != first.cell {
            return Err(differ("peepholes (one has P, the other not)"));
        }
        if p.activations != first.activations {
            return Err(differ("activations"));
        }
        if p.b.is_some() != first.b.is_some() {
            return Err(differ("bias (one has B, the other not)"));
        }
        if p.input != d * first.hidden {
            return Err(format_err(format!(
                "node {b:?} (layer {k}) has input size {}, but node {:?} outputs {} per step",
                p.input,
                recs[chosen[k - 1]].qualified,
                d * first.hidden
            )));
        }
    }
    let precision = match opts.precision {
        Some(p) => p,
        None => {
            let mut all = parsed
                .iter()
                .flat_map(|p| [(&p.w, &p.w_name), (&p.r, &p.r_name)]);
            let (v0, n0) = all.next().ok_or_else(|| format_err("no weights"))?;
            let s0 = stored(v0);
            if let Some((v, n)) = all.find(|(v, _)| stored(v) != s0) {
                return Err(format_err(format!(
                    "tensor {n0:?} is {} but {n:?} is {}: keeping the stored precision needs \
                     every W and R in one type (or ask for a precision: f32, f16, bf16, i8w, i8)",
                    s0.name(),
                    stored(v).name()
                )));
            }
            match s0 {
                Stored::F32 => WeightPrecision::F32,
                Stored::F16 => WeightPrecision::F16,
                Stored::Bf16 => WeightPrecision::Bf16,
            }
        }
    };
    let mut spec = ModelSpec::new(first.cell, first.input, first.hidden)
        .layers(parsed.len())
        .direction(first.direction)
        .merge(MergeMode::Concat);
    spec.activations = first.activations;
    spec.validate().map_err(|e| {
        context(
            match e {
                Error::InvalidArgument(m) => Error::Format(m),
                e => e,
            },
            &format!(
                "node {:?}: the attributes and sizes are not valid: ",
                first_rec.qualified
            ),
        )
    })?;
    let spec = spec.precision(precision);
    let tensors: Vec<OnnxTensors<'_>> = parsed
        .iter()
        .map(|p| OnnxTensors {
            w: floats(&p.w),
            r: floats(&p.r),
            b: p.b.as_deref().map(floats),
            p: p.p.as_deref().map(floats),
        })
        .collect();
    let isa = opts.isa.unwrap_or_else(Isa::detect);
    Model::from_onnx_with_isa(spec, &tensors, isa)
}

impl Model {
    /// Same as [`load_onnx`].
    ///
    /// ```no_run
    /// let m = rnncell::Model::from_onnx_file("gru.onnx", &rnncell::OnnxOptions::new())?;
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    pub fn from_onnx_file(path: impl AsRef<Path>, opts: &OnnxOptions) -> Result<Model> {
        load_onnx(path, opts)
    }

    /// Same as [`load_onnx_bytes`].
    ///
    /// ```
    /// let err = rnncell::Model::from_onnx_bytes(&[0x08], &rnncell::OnnxOptions::new());
    /// assert!(err.is_err());
    /// ```
    pub fn from_onnx_bytes(bytes: &[u8], opts: &OnnxOptions) -> Result<Model> {
        load_onnx_bytes(bytes, opts)
    }
}

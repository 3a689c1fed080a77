//! Loading the recurrent nodes (`LSTM`, `GRU`, `RNN`) of an ONNX model file.
//!
//! The file is decoded with prost (`proto.rs`: the messages of `onnx.proto`
//! this loader reads, declared by hand), every graph and subgraph is indexed
//! (`If` branches, `Loop`/`Scan` bodies; outer-scope names are visible
//! inside), the recurrent nodes are found, and their weight inputs W, R, B,
//! P are folded to constants (`fold.rs`: initializers and `Constant` nodes
//! through Identity, Cast, Slice, Concat, Split, Squeeze, Unsqueeze,
//! Reshape, Transpose and Gather). The node attributes become a
//! [`ModelSpec`] and the tensors go to [`Model::from_onnx_with_isa`], which
//! owns the ONNX gate orders. One node is a model; nodes that chain (one
//! node's `Y` feeding the next one's `X`, through `Squeeze`, `Reshape` or a
//! `Transpose` with `perm = [0, 2, 1, 3]` only, as PyTorch's exporter
//! writes between layers) load as one stacked model.
//!
//! Nodes are named by their `name`; a node without one is `OP#i` (`LSTM#3`:
//! its op type and its index in its graph's node list). A node inside a
//! subgraph also has a qualified name: the path of its graph, each level
//! `<node>.<attribute>`, joined with `::`, then `::` and its name
//! (`If_0.then_branch::lstm`). Either form selects it
//! ([`OnnxOptions::nodes`]); a plain name that is not unique must be
//! qualified.

mod fold;
mod proto;

use std::path::Path;
use std::rc::Rc;

use prost::Message;

use crate::cell::model::{Model, OnnxTensors};
use crate::cell::spec::{
    CellKind, Coupling, Direction, GruOptions, LstmOptions, MergeMode, ModelSpec, RnnActivation,
    RnnOptions, WeightPrecision,
};
use crate::error::{Error, Result};
use crate::isa::Isa;
use fold::{Data, Folder, Scope, Stored, Value, node_name};
use proto::{ModelProto, NodeProto, attribute_type};

/// The largest ONNX file the loader decodes: 2 GiB − 1, protobuf's own
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
    ModelProto::decode(bytes)
        .map_err(|e| format_err(format!("not a valid ONNX model (protobuf: {e})")))
}

/// The recurrent op types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lstm,
    Gru,
    Rnn,
}

impl Op {
    fn of(node: &NodeProto) -> Option<Op> {
        if !matches!(node.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            return None;
        }
        match node.op_type.as_deref() {
            Some("LSTM") => Some(Op::Lstm),
            Some("GRU") => Some(Op::Gru),
            Some("RNN") => Some(Op::Rnn),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Op::Lstm => "LSTM",
            Op::Gru => "GRU",
            Op::Rnn => "RNN",
        }
    }
    fn gates(self) -> usize {
        match self {
            Op::Lstm => 4,
            Op::Gru => 3,
            Op::Rnn => 1,
        }
    }
    /// Inputs the op takes (X W R B sequence_lens initial_h [initial_c P]).
    fn max_inputs(self) -> usize {
        if self == Op::Lstm { 8 } else { 6 }
    }
}

/// A recurrent node found in the model.
struct Rec<'m> {
    scope: usize,
    node: &'m NodeProto,
    name: String,
    qualified: String,
    op: Op,
}

/// Every recurrent node, graphs in `scopes` order, nodes in graph order.
fn recurrent<'m>(scopes: &[Scope<'m>]) -> Vec<Rec<'m>> {
    let mut out = Vec::new();
    for (s, scope) in scopes.iter().enumerate() {
        for (i, node) in scope.graph.node.iter().enumerate() {
            if let Some(op) = Op::of(node) {
                let name = node_name(node, i);
                out.push(Rec {
                    scope: s,
                    node,
                    qualified: qualify(&scope.path, &name),
                    name,
                    op,
                });
            }
        }
    }
    out
}

/// The indices (into `recs`) of the recurrent nodes `recs[r]`'s Y feeds.
fn next_of(scopes: &[Scope<'_>], recs: &[Rec<'_>], r: usize) -> Vec<usize> {
    let rec = &recs[r];
    let scope = &scopes[rec.scope];
    let mut out = Vec::new();
    let Some(y) = rec.node.output.first().filter(|y| !y.is_empty()) else {
        return out;
    };
    let mut todo: Vec<&str> = vec![y.as_str()];
    let mut seen = 0usize;
    while let Some(v) = todo.pop() {
        seen += 1;
        if seen > scope.graph.node.len() + 1 {
            break; // a cycle in an invalid graph
        }
        for &(k, j) in scope.consumers.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            let node = &scope.graph.node[k];
            if j != 0 {
                continue;
            }
            if Op::of(node).is_some() {
                if let Some(t) = recs
                    .iter()
                    .position(|x| x.scope == rec.scope && std::ptr::eq(x.node, node))
                    && !out.contains(&t)
                {
                    out.push(t);
                }
                continue;
            }
            let pass = match node.op_type.as_deref() {
                Some("Squeeze" | "Reshape") => true,
                Some("Transpose") => node
                    .attribute
                    .iter()
                    .any(|a| a.name.as_deref() == Some("perm") && a.ints == [0, 2, 1, 3]),
                _ => false,
            };
            if pass && let Some(o) = node.output.first().filter(|o| !o.is_empty()) {
                todo.push(o);
            }
        }
    }
    out
}

/// A recurrent node's attributes and folded weights.
struct Parsed {
    op: Op,
    direction: Direction,
    hidden: usize,
    input: usize,
    cell: CellKind,
    w: Rc<Value>,
    r: Rc<Value>,
    b: Option<Rc<Value>>,
    p: Option<Rc<Value>>,
    /// Tensor names, for messages: W, R.
    w_name: String,
    r_name: String,
}

/// The attributes of a recurrent node, raw.
struct Attrs {
    hidden: Option<usize>,
    direction: Direction,
    layout: u32,
    clip: Option<f32>,
    activations: Vec<String>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    linear_before_reset: bool,
    input_forget: bool,
}

fn attrs(rec: &Rec<'_>) -> Result<Attrs> {
    let who = || format!("{} node {:?}", rec.op.name(), rec.qualified);
    let mut a = Attrs {
        hidden: None,
        direction: Direction::Forward,
        layout: 0,
        clip: None,
        activations: Vec::new(),
        alpha: Vec::new(),
        beta: Vec::new(),
        linear_before_reset: false,
        input_forget: false,
    };
    let flag = |name: &str, v: Option<i64>| match v {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        v => Err(format_err(format!(
            "{}: attribute {name} is {v:?}, not 0 or 1",
            who()
        ))),
    };
    for at in &rec.node.attribute {
        let name = at.name.as_deref().unwrap_or("");
        if at.ref_attr_name.is_some() {
            return Err(format_err(format!(
                "{}: attribute {name} refers to a function attribute (not supported)",
                who()
            )));
        }
        let ty = at.r#type.unwrap_or(0);
        let want = |t: i32, tn: &str| {
            if ty != 0 && ty != t {
                Err(format_err(format!(
                    "{}: attribute {name} is not {tn}",
                    who()
                )))
            } else {
                Ok(())
            }
        };
        match name {
            "hidden_size" => {
                want(attribute_type::INT, "an int")?;
                let h = at.i.unwrap_or(0);
                a.hidden = Some(usize::try_from(h).ok().filter(|&h| h > 0).ok_or_else(|| {
                    format_err(format!("{}: hidden_size {h} is not positive", who()))
                })?);
            }
            "direction" => {
                want(attribute_type::STRING, "a string")?;
                a.direction = match at.s.as_deref().unwrap_or(b"") {
                    b"forward" => Direction::Forward,
                    b"reverse" => Direction::Reverse,
                    b"bidirectional" => Direction::Bidirectional,
                    other => {
                        return Err(format_err(format!(
                            "{}: direction {:?} is not forward, reverse or bidirectional",
                            who(),
                            String::from_utf8_lossy(other)
                        )));
                    }
                };
            }
            "layout" => {
                want(attribute_type::INT, "an int")?;
                a.layout = u32::from(flag(name, at.i)?);
            }
            "clip" => {
                want(attribute_type::FLOAT, "a float")?;
                a.clip = Some(at.f.unwrap_or(0.0));
            }
            "activations" => {
                want(attribute_type::STRINGS, "a list of strings")?;
                a.activations = at
                    .strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
            }
            "activation_alpha" => {
                want(attribute_type::FLOATS, "a list of floats")?;
                a.alpha = at.floats.clone();
            }
            "activation_beta" => {
                want(attribute_type::FLOATS, "a list of floats")?;
                a.beta = at.floats.clone();
            }
            "linear_before_reset" if rec.op == Op::Gru => {
                want(attribute_type::INT, "an int")?;
                a.linear_before_reset = flag(name, at.i)?;
            }
            "input_forget" if rec.op == Op::Lstm => {
                want(attribute_type::INT, "an int")?;
                a.input_forget = flag(name, at.i)?;
            }
            other => {
                return Err(format_err(format!(
                    "{}: {other:?} is not an attribute of {}",
                    who(),
                    rec.op.name()
                )));
            }
        }
    }
    Ok(a)
}

/// The cell of a node from its op and attributes: the one place that maps
/// ONNX activations to rnncell's cells. `activations` lists f, g, h (LSTM),
/// f, g (GRU) or f (RNN), once per direction; the lists of a bidirectional
/// node must agree (one cell per model).
fn cell_kind(who: &str, op: Op, a: &Attrs) -> Result<CellKind> {
    let d = a.direction.count();
    let per = match op {
        Op::Lstm => 3,
        Op::Gru => 2,
        Op::Rnn => 1,
    };
    let defaults: &[&str] = match op {
        Op::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        Op::Gru => &["Sigmoid", "Tanh"],
        Op::Rnn => &["Tanh"],
    };
    let acts: Vec<&str> = if a.activations.is_empty() {
        defaults.to_vec()
    } else {
        if a.activations.len() != per * d {
            return Err(format_err(format!(
                "{who}: activations {:?} has {} entries, expected {} ({per} per direction)",
                a.activations,
                a.activations.len(),
                per * d
            )));
        }
        if d == 2 && a.activations[..per] != a.activations[per..] {
            return Err(Error::Unsupported(format!(
                "{who}: activations {:?} differ between the two directions (a model has one \
                 cell for both)",
                a.activations
            )));
        }
        a.activations[..per].iter().map(String::as_str).collect()
    };
    // Sigmoid, Tanh and Relu take no alpha/beta, so any given are unused.
    let is = |got: &str, want: &str| got.eq_ignore_ascii_case(want);
    let unsupported = |i: usize| {
        Error::Unsupported(format!(
            "{who}: activation {:?} (position {i} of {}) is not supported; this version \
             supports {}",
            acts[i],
            op.name(),
            match op {
                Op::Lstm => "f = Sigmoid, g = Tanh, h = Tanh",
                Op::Gru => "f = Sigmoid, g = Tanh",
                Op::Rnn => "f = Tanh or Relu",
            }
        ))
    };
    for (i, (got, want)) in acts.iter().zip(defaults).enumerate() {
        if !(is(got, want) || op == Op::Rnn && is(got, "Relu")) {
            return Err(unsupported(i));
        }
    }
    Ok(match op {
        Op::Lstm => CellKind::Lstm(LstmOptions {
            clip: a.clip,
            coupling: if a.input_forget {
                Coupling::ForgetFromInput
            } else {
                Coupling::None
            },
            ..LstmOptions::default()
        }),
        Op::Gru => CellKind::Gru(GruOptions {
            linear_before_reset: a.linear_before_reset,
            clip: a.clip,
        }),
        Op::Rnn => CellKind::Rnn(RnnOptions {
            activation: if is(acts[0], "Relu") {
                RnnActivation::Relu
            } else {
                RnnActivation::Tanh
            },
            clip: a.clip,
        }),
    })
}

/// Folds input `i` of the node; `None` if absent.
fn weight(
    folder: &mut Folder<'_, '_>,
    rec: &Rec<'_>,
    i: usize,
    role: &str,
) -> Result<Option<(Rc<Value>, String)>> {
    let Some(name) = rec.node.input.get(i).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let v = folder.eval(rec.scope, name).map_err(|e| {
        context(
            e,
            &format!(
                "{} node {:?}: input {role} ({name:?}) is not a constant: ",
                rec.op.name(),
                rec.qualified
            ),
        )
    })?;
    if !matches!(v.data, Data::F32(..)) {
        return Err(format_err(format!(
            "{} node {:?}: input {role} ({name:?}) is an integer tensor, not a float one",
            rec.op.name(),
            rec.qualified
        )));
    }
    Ok(Some((v, name.clone())))
}

fn parse(folder: &mut Folder<'_, '_>, rec: &Rec<'_>) -> Result<Parsed> {
    let who = format!("{} node {:?}", rec.op.name(), rec.qualified);
    let a = attrs(rec)?;
    if rec.node.input.len() > rec.op.max_inputs() {
        return Err(format_err(format!(
            "{who} has {} inputs; {} takes at most {}",
            rec.node.input.len(),
            rec.op.name(),
            rec.op.max_inputs()
        )));
    }
    let missing = |role: &str| format_err(format!("{who} has no input {role}"));
    let (w, w_name) = weight(folder, rec, 1, "W")?.ok_or_else(|| missing("W"))?;
    let (r, r_name) = weight(folder, rec, 2, "R")?.ok_or_else(|| missing("R"))?;
    let b = weight(folder, rec, 3, "B")?;
    let p = if rec.op == Op::Lstm {
        weight(folder, rec, 7, "P")?
    } else {
        None
    };
    let d = a.direction.count();
    let g = rec.op.gates();
    let shape_err = |role: &str, name: &str, got: &[usize], want: String| {
        format_err(format!(
            "{who}: input {role} ({name:?}) has shape {got:?}, expected {want}"
        ))
    };
    // R [D, G·H, H] gives H when the attribute does not.
    let hidden = match (a.hidden, r.dims.as_slice()) {
        (Some(h), _) => h,
        (None, &[_, _, h]) if h > 0 => h,
        (None, dims) => {
            return Err(shape_err("R", &r_name, dims, format!("[{d}, {g}·H, H]")));
        }
    };
    let gh = g
        .checked_mul(hidden)
        .ok_or_else(|| format_err(format!("{who}: hidden_size overflows")))?;
    let input = match *w.dims.as_slice() {
        [dd, rows, i] if dd == d && rows == gh && i > 0 => i,
        ref dims => {
            return Err(shape_err(
                "W",
                &w_name,
                dims,
                format!("[{d}, {gh}, input_size]"),
            ));
        }
    };
    if r.dims != [d, gh, hidden] {
        return Err(shape_err(
            "R",
            &r_name,
            &r.dims,
            format!("{:?}", [d, gh, hidden]),
        ));
    }
    if let Some((b, n)) = &b
        && b.dims != [d, 2 * gh]
    {
        return Err(shape_err("B", n, &b.dims, format!("{:?}", [d, 2 * gh])));
    }
    if let Some((p, n)) = &p
        && p.dims != [d, 3 * hidden]
    {
        return Err(shape_err("P", n, &p.dims, format!("{:?}", [d, 3 * hidden])));
    }
    let mut cell = cell_kind(&who, rec.op, &a)?;
    if p.is_some()
        && let CellKind::Lstm(o) = &mut cell
    {
        o.peephole = true;
    }
    Ok(Parsed {
        op: rec.op,
        direction: a.direction,
        hidden,
        input,
        cell,
        w,
        r,
        b: b.map(|x| x.0),
        p: p.map(|x| x.0),
        w_name,
        r_name,
    })
}

/// The f32 values of a folded float tensor.
fn floats(v: &Value) -> &[f32] {
    match &v.data {
        Data::F32(x, _) => x,
        Data::I64(_) => &[],
    }
}

fn stored(v: &Value) -> Stored {
    match &v.data {
        Data::F32(_, s) => *s,
        Data::I64(_) => Stored::F32,
    }
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

/// The chains of recurrent nodes (indices into `recs`), each followed while
/// a node feeds exactly one recurrent node that no other feeds.
fn chains(nexts: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = nexts.len();
    let mut preds = vec![0usize; n];
    for ns in nexts {
        for &j in ns {
            preds[j] += 1;
        }
    }
    let mut used = vec![false; n];
    let mut out = Vec::new();
    for start in 0..n {
        if preds[start] != 0 || used[start] {
            continue;
        }
        let mut c = vec![start];
        used[start] = true;
        let mut at = start;
        while let [j] = nexts[at][..] {
            if preds[j] != 1 || used[j] {
                break;
            }
            used[j] = true;
            c.push(j);
            at = j;
        }
        out.push(c);
    }
    // Nodes on cycles or after a fork: one chain each.
    for (i, u) in used.iter().enumerate() {
        if !u {
            out.push(vec![i]);
        }
    }
    out
}

fn select(scopes: &[Scope<'_>], recs: &[Rec<'_>], names: &[String]) -> Result<Vec<usize>> {
    let nexts: Vec<Vec<usize>> = (0..recs.len()).map(|i| next_of(scopes, recs, i)).collect();
    let listing = || {
        chains(&nexts)
            .iter()
            .map(|c| {
                let names: Vec<&str> = c.iter().map(|&i| recs[i].qualified.as_str()).collect();
                format!("[{}]", names.join(" → "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if recs.is_empty() {
        return Err(format_err("the model has no LSTM, GRU or RNN node"));
    }
    if names.is_empty() {
        let cs = chains(&nexts);
        if let [c] = &cs[..] {
            return Ok(c.clone());
        }
        return Err(Error::InvalidArgument(format!(
            "the model's {} recurrent nodes form {} chains: {}; choose one with \
             OnnxOptions::nodes (C: RnncellOnnxOptions.nodes)",
            recs.len(),
            cs.len(),
            listing()
        )));
    }
    let mut chosen: Vec<usize> = Vec::new();
    for name in names {
        let hits: Vec<usize> = (0..recs.len())
            .filter(|&i| recs[i].qualified == *name)
            .collect();
        let hits = if hits.is_empty() {
            (0..recs.len()).filter(|&i| recs[i].name == *name).collect()
        } else {
            hits
        };
        match hits[..] {
            [i] => {
                if chosen.contains(&i) {
                    return Err(Error::InvalidArgument(format!(
                        "node {name:?} is selected twice"
                    )));
                }
                chosen.push(i);
            }
            [] => {
                return Err(Error::InvalidArgument(format!(
                    "the model has no LSTM, GRU or RNN node named {name:?}; its recurrent nodes: \
                     {}",
                    listing()
                )));
            }
            _ => {
                let qs: Vec<&str> = hits.iter().map(|&i| recs[i].qualified.as_str()).collect();
                return Err(Error::InvalidArgument(format!(
                    "{} nodes are named {name:?}; select one by its qualified name: {}",
                    hits.len(),
                    qs.join(", ")
                )));
            }
        }
    }
    for pair in chosen.windows(2) {
        if !nexts[pair[0]].contains(&pair[1]) {
            return Err(Error::InvalidArgument(format!(
                "node {:?} does not take the output Y of node {:?} as its input X (directly or \
                 through Squeeze, Reshape or Transpose(perm = [0, 2, 1, 3]) only), so they do not \
                 stack; chains: {}",
                recs[pair[1]].qualified,
                recs[pair[0]].qualified,
                listing()
            )));
        }
    }
    Ok(chosen)
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
    let spec = ModelSpec::new(first.cell, first.input, first.hidden)
        .layers(parsed.len())
        .direction(first.direction)
        .merge(MergeMode::Concat);
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

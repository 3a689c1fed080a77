//! Constant folding of the operator chains exporters put in front of the
//! recurrent nodes' weights, and the scopes (graph, subgraphs) names are
//! resolved in.
//!
//! Only what a weight input needs is evaluated: [`Folder::eval`] walks
//! backwards from a name to initializers and `Constant` nodes through the
//! operators listed in [`Folder::apply`]; anything else (a graph input, a
//! `Shape` of runtime data, an operator not listed) is an error saying which
//! value stopped the walk. Values are f32 (with the narrowest float type they
//! came from, for "keep the stored precision") or i64 tensors. Every
//! element produced is counted against a budget set from the input size
//! before it is allocated, every buffer is reserved fallibly, and the walk
//! is at most [`MAX_DEPTH`] operators deep (a cycle in an invalid graph ends
//! there too).

mod ops;

use std::collections::HashMap;
use std::rc::Rc;

use super::proto::{
    DATA_LOCATION_EXTERNAL, GraphProto, ModelProto, NodeProto, TensorProto, data_type,
};
use crate::error::{Error, Result};
use crate::kernels::elem::{bf16_to_f32, f16_to_f32};
use crate::loader::out_of_memory;

/// The longest chain of operators folded in front of one value.
pub(super) const MAX_DEPTH: usize = 256;
/// The largest rank of a folded tensor.
const MAX_RANK: usize = 16;

fn err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

/// The float type a folded f32 value was stored in (for
/// `OnnxOptions::precision = None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stored {
    F32,
    F16,
    Bf16,
}

impl Stored {
    pub(super) fn name(self) -> &'static str {
        match self {
            Stored::F32 => "float32",
            Stored::F16 => "float16",
            Stored::Bf16 => "bfloat16",
        }
    }
}

/// Elements of a folded value.
#[derive(Debug)]
pub(super) enum Data {
    F32(Vec<f32>, Stored),
    I64(Vec<i64>),
}

/// A folded tensor.
#[derive(Debug)]
pub(super) struct Value {
    pub(super) dims: Vec<usize>,
    pub(super) data: Data,
}

impl Value {
    fn len(&self) -> usize {
        match &self.data {
            Data::F32(v, _) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as i64 (indices, axes, shapes), else an error naming `what`.
    fn ints(&self, what: &dyn Fn() -> String) -> Result<&[i64]> {
        match &self.data {
            Data::I64(v) => Ok(v),
            Data::F32(..) => Err(err(format!("{} must be an integer tensor", what()))),
        }
    }
}

/// Where a name's value comes from in one graph.
#[derive(Clone, Copy)]
enum Producer<'m> {
    Init(&'m TensorProto),
    Sparse,
    /// Output `k` of a node.
    Node(&'m NodeProto, usize),
    /// A graph input (runtime data): of the main graph, or of a subgraph
    /// (a `Loop`/`Scan` body's iteration inputs).
    Input,
}

/// One graph of the model (the main graph or a subgraph).
pub(super) struct Scope<'m> {
    pub(super) graph: &'m GraphProto,
    /// "" for the main graph; `<node>.<attribute>` segments joined by `::`
    /// for subgraphs (`branch.then_branch`).
    pub(super) path: String,
    /// The enclosing graph (outer-scope names are visible inside).
    pub(super) parent: Option<usize>,
    names: HashMap<&'m str, Producer<'m>>,
    /// For each value name, the nodes of this graph that read it (node
    /// index, input index).
    pub(super) consumers: HashMap<&'m str, Vec<(usize, usize)>>,
}

/// The name a node is known by: its own, or `op_type#index` (its index in
/// its graph's node list) when it has none.
pub(super) fn node_name(node: &NodeProto, index: usize) -> String {
    match node.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => format!("{}#{index}", node.op_type.as_deref().unwrap_or("")),
    }
}

/// Every graph of the model, parents before children.
pub(super) fn scopes(model: &ModelProto) -> Result<Vec<Scope<'_>>> {
    let Some(main) = model.graph.as_ref() else {
        return Err(err("the model has no graph"));
    };
    let mut out: Vec<Scope<'_>> = Vec::new();
    let mut todo: Vec<(&GraphProto, String, Option<usize>)> = vec![(main, String::new(), None)];
    while let Some((graph, path, parent)) = todo.pop() {
        let me = out.len();
        let mut names: HashMap<&str, Producer<'_>> = HashMap::new();
        let mut consumers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for i in &graph.input {
            names.insert(i.name.as_deref().unwrap_or(""), Producer::Input);
        }
        // An initializer that is also a graph input is the input's default
        // value (IR ≥ 4; PyTorch's `keep_initializers_as_inputs=True`): its
        // stored value is used.
        for t in &graph.initializer {
            names.insert(t.name.as_deref().unwrap_or(""), Producer::Init(t));
        }
        for s in &graph.sparse_initializer {
            let name = s
                .values
                .as_ref()
                .and_then(|v| v.name.as_deref())
                .unwrap_or("");
            names.insert(name, Producer::Sparse);
        }
        for (k, node) in graph.node.iter().enumerate() {
            for (j, o) in node.output.iter().enumerate() {
                if !o.is_empty() {
                    names.insert(o, Producer::Node(node, j));
                }
            }
            for (j, i) in node.input.iter().enumerate() {
                if !i.is_empty() {
                    consumers.entry(i).or_default().push((k, j));
                }
            }
            for a in &node.attribute {
                let sub = a.g.as_deref().into_iter().chain(a.graphs.iter());
                for g in sub {
                    let seg = format!("{}.{}", node_name(node, k), a.name.as_deref().unwrap_or(""));
                    let p = if path.is_empty() {
                        seg
                    } else {
                        format!("{path}::{seg}")
                    };
                    todo.push((g, p, Some(me)));
                }
            }
        }
        out.push(Scope {
            graph,
            path,
            parent,
            names,
            consumers,
        });
    }
    Ok(out)
}

/// Evaluates constant values, memoised per (graph, name).
pub(super) struct Folder<'s, 'm> {
    scopes: &'s [Scope<'m>],
    memo: HashMap<(usize, &'m str), Rc<Value>>,
    /// Elements that may still be produced.
    budget: usize,
    depth: usize,
}

/// `n` elements of `T`, reserved fallibly.
fn vec_with<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory(n.saturating_mul(std::mem::size_of::<T>()), what))?;
    Ok(v)
}

/// Product of dims, checked.
fn count(dims: &[usize], what: &dyn Fn() -> String) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("{}: the shape {dims:?} overflows", what())))
}

impl<'s, 'm> Folder<'s, 'm> {
    /// A folder over `scopes`, allowed to produce 4 elements per input byte
    /// plus 1 Mi: a float32 weight of n elements takes 4n bytes, so every
    /// weight may be copied 4 times (16 times if float16) along its chain,
    /// more than exporters' chains need (silero-vad's: Constant → Slice →
    /// Concat → Unsqueeze, 3 copies).
    pub(super) fn new(scopes: &'s [Scope<'m>], input_bytes: usize) -> Folder<'s, 'm> {
        Folder {
            scopes,
            memo: HashMap::new(),
            budget: input_bytes.saturating_mul(4).saturating_add(1 << 20),
            depth: 0,
        }
    }

    /// The graph and producer of `name` as seen from graph `g` (inner scopes
    /// first), or None if no graph defines it.
    fn lookup(&self, mut g: usize, name: &str) -> Option<(usize, Producer<'m>)> {
        loop {
            let s = &self.scopes[g];
            if let Some(p) = s.names.get(name) {
                return Some((g, *p));
            }
            g = s.parent?;
        }
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<()> {
        if n > self.budget {
            return Err(err(format!(
                "{}: folding needs more than {} more elements (the loader's bound for this \
                 input size)",
                what(),
                self.budget
            )));
        }
        self.budget -= n;
        Ok(())
    }

    /// The constant value of `name` as seen from graph `g`.
    pub(super) fn eval(&mut self, g: usize, name: &str) -> Result<Rc<Value>> {
        let Some((gd, p)) = self.lookup(g, name) else {
            return Err(err(format!("{name:?} is not defined in the graph")));
        };
        let key_name: &'m str = match p {
            Producer::Init(t) => t.name.as_deref().unwrap_or(""),
            Producer::Sparse => {
                return Err(err(format!(
                    "{name:?} is a sparse initializer (not supported: store it dense)"
                )));
            }
            Producer::Node(n, k) => n.output[k].as_str(),
            Producer::Input => {
                let path = &self.scopes[gd].path;
                let where_ = if path.is_empty() {
                    "the graph".to_owned()
                } else {
                    format!("the subgraph {path}")
                };
                return Err(err(format!(
                    "{name:?} is an input of {where_} (runtime data, not a constant)"
                )));
            }
        };
        if let Some(v) = self.memo.get(&(gd, key_name)) {
            return Ok(Rc::clone(v));
        }
        if self.depth >= MAX_DEPTH {
            return Err(err(format!(
                "{name:?}: more than {MAX_DEPTH} operators deep (or a cycle)"
            )));
        }
        self.depth += 1;
        let r = match p {
            Producer::Init(t) => self
                .tensor(t, &|| format!("initializer {name:?}"))
                .map(Rc::new),
            Producer::Node(n, k) => self.apply(gd, n, k),
            _ => unreachable_value(),
        };
        self.depth -= 1;
        let v = r?;
        self.memo.insert((gd, key_name), Rc::clone(&v));
        Ok(v)
    }

    /// A TensorProto's values.
    pub(super) fn tensor(&mut self, t: &TensorProto, what: &dyn Fn() -> String) -> Result<Value> {
        if t.data_location == Some(DATA_LOCATION_EXTERNAL) || !t.external_data.is_empty() {
            let loc = t
                .external_data
                .iter()
                .find(|e| e.key.as_deref() == Some("location"))
                .and_then(|e| e.value.as_deref())
                .unwrap_or("?");
            return Err(err(format!(
                "{} is stored in the external data file {loc:?} (not supported: save the \
                 model with its weights inside, e.g. onnx.save(model, path, \
                 save_as_external_data=False))",
                what()
            )));
        }
        if t.segment.is_some() {
            return Err(err(format!("{} is segmented (not supported)", what())));
        }
        if t.dims.len() > MAX_RANK {
            return Err(err(format!("{} has {} dimensions", what(), t.dims.len())));
        }
        let mut dims = Vec::new();
        for &d in &t.dims {
            dims.push(usize::try_from(d).map_err(|_| {
                err(format!(
                    "{} has a negative dimension ({:?})",
                    what(),
                    t.dims
                ))
            })?);
        }
        let n = count(&dims, what)?;
        let raw = t.raw_data.as_deref();
        let dt = t.data_type.unwrap_or(0);
        let width = match dt {
            data_type::FLOAT | data_type::INT32 => 4,
            data_type::FLOAT16 | data_type::BFLOAT16 => 2,
            data_type::DOUBLE | data_type::INT64 => 8,
            other => {
                return Err(err(format!(
                    "{} has data type {} ({}); only float32, float16, bfloat16, double, int32 \
                     and int64 tensors are folded",
                    what(),
                    other,
                    dtype_name(other)
                )));
            }
        };
        let typed_len = match dt {
            data_type::FLOAT => t.float_data.len(),
            data_type::INT32 | data_type::FLOAT16 | data_type::BFLOAT16 => t.int32_data.len(),
            data_type::DOUBLE => t.double_data.len(),
            _ => t.int64_data.len(),
        };
        if let Some(raw) = raw {
            if Some(raw.len()) != n.checked_mul(width) {
                return Err(err(format!(
                    "{} has shape {dims:?} ({n} elements of {width} bytes) but {} bytes of \
                     raw_data",
                    what(),
                    raw.len()
                )));
            }
        } else if typed_len != n {
            return Err(err(format!(
                "{} has shape {dims:?} ({n} elements) but {typed_len} values",
                what()
            )));
        }
        self.take(n, what)?;
        let name = what();
        let data = match dt {
            data_type::FLOAT | data_type::FLOAT16 | data_type::BFLOAT16 | data_type::DOUBLE => {
                let mut v: Vec<f32> = vec_with(n, &name)?;
                let bits16 = |w: u16| {
                    if dt == data_type::FLOAT16 {
                        f16_to_f32(w)
                    } else {
                        bf16_to_f32(w)
                    }
                };
                match (raw, dt) {
                    (Some(r), data_type::FLOAT) => v.extend(
                        r.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    ),
                    (Some(r), data_type::DOUBLE) => v.extend(r.chunks_exact(8).map(|b| {
                        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                    })),
                    (Some(r), _) => v.extend(
                        r.chunks_exact(2)
                            .map(|b| bits16(u16::from_le_bytes([b[0], b[1]]))),
                    ),
                    (None, data_type::FLOAT) => v.extend_from_slice(&t.float_data),
                    (None, data_type::DOUBLE) => v.extend(t.double_data.iter().map(|&x| x as f32)),
                    (None, _) => {
                        for &x in &t.int32_data {
                            let w = u16::try_from(x).map_err(|_| {
                                err(format!(
                                    "{}: int32_data holds {x}, not a 16-bit pattern",
                                    name
                                ))
                            })?;
                            v.push(bits16(w));
                        }
                    }
                }
                let stored = match dt {
                    data_type::FLOAT16 => Stored::F16,
                    data_type::BFLOAT16 => Stored::Bf16,
                    _ => Stored::F32,
                };
                Data::F32(v, stored)
            }
            _ => {
                let mut v: Vec<i64> = vec_with(n, &name)?;
                match (raw, dt) {
                    (Some(r), data_type::INT64) => v.extend(r.chunks_exact(8).map(|b| {
                        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    })),
                    (Some(r), _) => v.extend(
                        r.chunks_exact(4)
                            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                    ),
                    (None, data_type::INT64) => v.extend_from_slice(&t.int64_data),
                    (None, _) => v.extend(t.int32_data.iter().map(|&x| i64::from(x))),
                }
                Data::I64(v)
            }
        };
        Ok(Value { dims, data })
    }
}

fn unreachable_value() -> Result<Rc<Value>> {
    Err(err("internal: unexpected producer"))
}

/// An ONNX data type's name, for messages.
pub(super) fn dtype_name(t: i32) -> &'static str {
    match t {
        data_type::FLOAT => "float32",
        data_type::UINT8 => "uint8",
        data_type::INT8 => "int8",
        data_type::UINT16 => "uint16",
        data_type::INT16 => "int16",
        data_type::INT32 => "int32",
        data_type::INT64 => "int64",
        data_type::STRING => "string",
        data_type::BOOL => "bool",
        data_type::FLOAT16 => "float16",
        data_type::DOUBLE => "double",
        data_type::UINT32 => "uint32",
        data_type::UINT64 => "uint64",
        data_type::BFLOAT16 => "bfloat16",
        0 => "undefined",
        _ => "another type",
    }
}

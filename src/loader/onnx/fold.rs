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

use std::collections::HashMap;
use std::rc::Rc;

use super::proto::{
    AttributeProto, DATA_LOCATION_EXTERNAL, GraphProto, ModelProto, NodeProto, TensorProto,
    attribute_type, data_type,
};
use crate::error::{Error, Result};
use crate::kernels::elem::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
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

/// A graph attribute of a node, or an attribute by name.
fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).and_then(|a| a.i)
}

fn attr_ints<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(node, name).map(|a| a.ints.as_slice())
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

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(dims[i + 1]);
    }
    s
}

/// Normalises an axis in `-rank..rank`.
fn axis(a: i64, rank: usize, what: &dyn Fn() -> String) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a.checked_add(r) } else { Some(a) };
    match v {
        Some(v) if (0..r).contains(&v) => Ok(v as usize),
        _ => Err(err(format!(
            "{}: axis {a} is out of range for rank {rank}",
            what()
        ))),
    }
}

impl<'s, 'm> Folder<'s, 'm> {
    /// A folder over `scopes`, allowed to produce 4 elements per input byte
    /// plus 16 Mi (a few copies of every weight, as exporters' chains make).
    pub(super) fn new(scopes: &'s [Scope<'m>], input_bytes: usize) -> Folder<'s, 'm> {
        Folder {
            scopes,
            memo: HashMap::new(),
            budget: input_bytes.saturating_mul(4).saturating_add(16 << 20),
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

    /// A new value of `dims` whose element `i` is element `src[i]` of `v`.
    fn pick(
        &mut self,
        v: &Value,
        dims: Vec<usize>,
        src: &[usize],
        what: &dyn Fn() -> String,
    ) -> Result<Value> {
        let name = what();
        let data = match &v.data {
            Data::F32(x, s) => {
                let mut o = vec_with(src.len(), &name)?;
                o.extend(src.iter().map(|&i| x[i]));
                Data::F32(o, *s)
            }
            Data::I64(x) => {
                let mut o = vec_with(src.len(), &name)?;
                o.extend(src.iter().map(|&i| x[i]));
                Data::I64(o)
            }
        };
        Ok(Value { dims, data })
    }

    /// The source indices of a strided box of `v`: per axis a start, a step
    /// (may be negative) and a count.
    fn boxed(
        &mut self,
        v: &Value,
        ranges: &[(i64, i64, usize)],
        what: &dyn Fn() -> String,
    ) -> Result<Value> {
        let dims: Vec<usize> = ranges.iter().map(|r| r.2).collect();
        let n = count(&dims, what)?;
        self.take(n, what)?;
        let st = strides(&v.dims);
        let mut src: Vec<usize> = vec_with(n, &what())?;
        let mut idx = vec![0usize; dims.len()];
        for _ in 0..n {
            let mut off = 0i64;
            for (a, r) in ranges.iter().enumerate() {
                off += (r.0 + r.1 * idx[a] as i64) * st[a] as i64;
            }
            src.push(off as usize);
            for a in (0..dims.len()).rev() {
                idx[a] += 1;
                if idx[a] < dims[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        self.pick(v, dims, &src, what)
    }

    /// Input `i` of `node` (in graph `g`), folded; `None` if absent.
    fn input(&mut self, g: usize, node: &NodeProto, i: usize) -> Result<Option<Rc<Value>>> {
        match node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.eval(g, name).map(Some),
        }
    }

    /// Output `k` of `node` (in graph `g`).
    fn apply(&mut self, g: usize, node: &'m NodeProto, k: usize) -> Result<Rc<Value>> {
        let op = node.op_type.as_deref().unwrap_or("");
        let index = self.scopes[g]
            .graph
            .node
            .iter()
            .position(|n| std::ptr::eq(n, node))
            .unwrap_or(0);
        let nname = node_name(node, index);
        let what = || format!("{op} node {nname:?}");
        let what = &what;
        if !matches!(node.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            return Err(err(format!(
                "{} (domain {:?}) is not a constant operator",
                what(),
                node.domain
            )));
        }
        let need = |v: Option<Rc<Value>>, i: usize| {
            v.ok_or_else(|| err(format!("{}: input {i} is missing", what())))
        };
        let out = match op {
            "Identity" => return need(self.input(g, node, 0)?, 0),
            "Constant" => self.constant(node, what)?,
            "Cast" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let to = attr_int(node, "to").unwrap_or(0) as i32;
                self.cast(&x, to, what)?
            }
            "Reshape" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let shape: Vec<i64> = match self.input(g, node, 1)? {
                    Some(s) => s.ints(&|| format!("{}: shape", what()))?.to_vec(),
                    None => attr_ints(node, "shape")
                        .ok_or_else(|| err(format!("{}: no shape", what())))?
                        .to_vec(),
                };
                let allowzero = attr_int(node, "allowzero").unwrap_or(0) != 0;
                let dims = reshape_dims(&x.dims, &shape, allowzero, what)?;
                self.copy_as(&x, dims, what)?
            }
            "Squeeze" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let axes = self.axes(g, node, 1, what)?;
                let r = x.dims.len();
                let mut drop = vec![false; r];
                match axes {
                    Some(ax) => {
                        for a in ax {
                            let a = axis(a, r, what)?;
                            if x.dims[a] != 1 {
                                return Err(err(format!(
                                    "{}: axis {a} has size {}, not 1",
                                    what(),
                                    x.dims[a]
                                )));
                            }
                            drop[a] = true;
                        }
                    }
                    None => drop.iter_mut().zip(&x.dims).for_each(|(d, &s)| *d = s == 1),
                }
                let dims = x
                    .dims
                    .iter()
                    .zip(&drop)
                    .filter(|p| !*p.1)
                    .map(|p| *p.0)
                    .collect();
                self.copy_as(&x, dims, what)?
            }
            "Unsqueeze" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let axes = self
                    .axes(g, node, 1, what)?
                    .ok_or_else(|| err(format!("{}: no axes", what())))?;
                let r = x.dims.len() + axes.len();
                if r > MAX_RANK {
                    return Err(err(format!("{}: rank {r} is too large", what())));
                }
                let mut ones = vec![false; r];
                for a in axes {
                    let a = axis(a, r, what)?;
                    if std::mem::replace(&mut ones[a], true) {
                        return Err(err(format!("{}: axis {a} given twice", what())));
                    }
                }
                let mut it = x.dims.iter();
                let dims = ones
                    .iter()
                    .map(|&o| if o { 1 } else { *it.next().unwrap_or(&1) })
                    .collect();
                self.copy_as(&x, dims, what)?
            }
            "Transpose" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let r = x.dims.len();
                let perm: Vec<usize> = match attr_ints(node, "perm") {
                    Some(p) => {
                        let mut seen = vec![false; r];
                        let mut out = Vec::new();
                        if p.len() != r {
                            return Err(err(format!("{}: perm {p:?} for rank {r}", what())));
                        }
                        for &a in p {
                            let a = axis(a, r, what)?;
                            if std::mem::replace(&mut seen[a], true) {
                                return Err(err(format!(
                                    "{}: perm {p:?} is not a permutation",
                                    what()
                                )));
                            }
                            out.push(a);
                        }
                        out
                    }
                    None => (0..r).rev().collect(),
                };
                let st = strides(&x.dims);
                let dims: Vec<usize> = perm.iter().map(|&a| x.dims[a]).collect();
                let n = count(&dims, what)?;
                self.take(n, what)?;
                let mut src: Vec<usize> = vec_with(n, &what())?;
                let mut idx = vec![0usize; r];
                for _ in 0..n {
                    src.push(idx.iter().zip(&perm).map(|(&i, &a)| i * st[a]).sum());
                    for a in (0..r).rev() {
                        idx[a] += 1;
                        if idx[a] < dims[a] {
                            break;
                        }
                        idx[a] = 0;
                    }
                }
                self.pick(&x, dims, &src, what)?
            }
            "Concat" => {
                let mut parts = Vec::new();
                for i in 0..node.input.len() {
                    if let Some(v) = self.input(g, node, i)? {
                        parts.push(v);
                    }
                }
                let first = parts
                    .first()
                    .ok_or_else(|| err(format!("{}: no inputs", what())))?;
                let r = first.dims.len();
                let a = axis(
                    attr_int(node, "axis").ok_or_else(|| err(format!("{}: no axis", what())))?,
                    r,
                    what,
                )?;
                let mut dims = first.dims.clone();
                dims[a] = 0;
                for p in &parts {
                    let same = p.dims.len() == r
                        && p.dims
                            .iter()
                            .zip(&first.dims)
                            .enumerate()
                            .all(|(j, (x, y))| j == a || x == y);
                    if !same {
                        return Err(err(format!(
                            "{}: shapes {:?} and {:?} cannot be joined on axis {a}",
                            what(),
                            first.dims,
                            p.dims
                        )));
                    }
                    dims[a] = dims[a]
                        .checked_add(p.dims[a])
                        .ok_or_else(|| err(format!("{}: size overflows", what())))?;
                }
                let n = count(&dims, what)?;
                self.take(n, what)?;
                let outer: usize = first.dims[..a].iter().product();
                let inner: usize = first.dims[a + 1..].iter().product();
                let name = what();
                match &first.data {
                    Data::F32(_, s0) => {
                        let mut stored = *s0;
                        let mut o: Vec<f32> = vec_with(n, &name)?;
                        for i in 0..outer {
                            for p in &parts {
                                let Data::F32(x, s) = &p.data else {
                                    return Err(err(format!(
                                        "{}: mixes float and integer inputs",
                                        what()
                                    )));
                                };
                                if *s != stored {
                                    stored = Stored::F32;
                                }
                                let w = p.dims[a] * inner;
                                o.extend_from_slice(&x[i * w..(i + 1) * w]);
                            }
                        }
                        Value {
                            dims,
                            data: Data::F32(o, stored),
                        }
                    }
                    Data::I64(_) => {
                        let mut o: Vec<i64> = vec_with(n, &name)?;
                        for i in 0..outer {
                            for p in &parts {
                                let Data::I64(x) = &p.data else {
                                    return Err(err(format!(
                                        "{}: mixes float and integer inputs",
                                        what()
                                    )));
                                };
                                let w = p.dims[a] * inner;
                                o.extend_from_slice(&x[i * w..(i + 1) * w]);
                            }
                        }
                        Value {
                            dims,
                            data: Data::I64(o),
                        }
                    }
                }
            }
            "Split" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let r = x.dims.len();
                let a = axis(attr_int(node, "axis").unwrap_or(0), r, what)?;
                let parts = node.output.len();
                let sizes: Vec<i64> = match self.input(g, node, 1)? {
                    Some(s) => s.ints(&|| format!("{}: split", what()))?.to_vec(),
                    None => match attr_ints(node, "split") {
                        Some(s) if !s.is_empty() => s.to_vec(),
                        _ => {
                            let n = attr_int(node, "num_outputs")
                                .map_or(parts, |n| usize::try_from(n).unwrap_or(0));
                            if n == 0 {
                                return Err(err(format!("{}: no outputs", what())));
                            }
                            // Equal parts; the last smaller (opset 18's rule).
                            let each = x.dims[a].div_ceil(n);
                            (0..n)
                                .map(|i| each.min(x.dims[a].saturating_sub(i * each)) as i64)
                                .collect()
                        }
                    },
                };
                if sizes.len() != parts
                    || sizes.iter().any(|&s| s < 0)
                    || sizes.iter().try_fold(0i64, |acc, &s| acc.checked_add(s))
                        != Some(x.dims[a] as i64)
                {
                    return Err(err(format!(
                        "{}: split {sizes:?} into {parts} outputs does not tile axis {a} of size {}",
                        what(),
                        x.dims[a]
                    )));
                }
                let start: i64 = sizes[..k].iter().sum();
                let ranges: Vec<(i64, i64, usize)> = (0..r)
                    .map(|j| {
                        if j == a {
                            (start, 1, sizes[k] as usize)
                        } else {
                            (0, 1, x.dims[j])
                        }
                    })
                    .collect();
                self.boxed(&x, &ranges, what)?
            }
            "Slice" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let r = x.dims.len();
                let get =
                    |this: &mut Self, i: usize, attr_name: &str| -> Result<Option<Vec<i64>>> {
                        if node.input.len() > 1 {
                            match this.input(g, node, i)? {
                                Some(v) => {
                                    Ok(Some(v.ints(&|| format!("{}: input {i}", what()))?.to_vec()))
                                }
                                None => Ok(None),
                            }
                        } else {
                            Ok(attr_ints(node, attr_name).map(<[i64]>::to_vec))
                        }
                    };
                let starts =
                    get(self, 1, "starts")?.ok_or_else(|| err(format!("{}: no starts", what())))?;
                let ends =
                    get(self, 2, "ends")?.ok_or_else(|| err(format!("{}: no ends", what())))?;
                let axes =
                    get(self, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = if node.input.len() > 1 {
                    get(self, 4, "")?
                } else {
                    None
                }
                .unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err(err(format!(
                        "{}: starts, ends, axes and steps differ in length",
                        what()
                    )));
                }
                let mut ranges: Vec<(i64, i64, usize)> =
                    x.dims.iter().map(|&d| (0, 1, d)).collect();
                let mut seen = vec![false; r];
                for j in 0..starts.len() {
                    let a = axis(axes[j], r, what)?;
                    if std::mem::replace(&mut seen[a], true) {
                        return Err(err(format!("{}: axis {a} given twice", what())));
                    }
                    ranges[a] = slice_range(x.dims[a] as i64, starts[j], ends[j], steps[j])
                        .ok_or_else(|| err(format!("{}: step 0", what())))?;
                }
                self.boxed(&x, &ranges, what)?
            }
            "Gather" => {
                let x = need(self.input(g, node, 0)?, 0)?;
                let ind = need(self.input(g, node, 1)?, 1)?;
                let ind_v = ind.ints(&|| format!("{}: indices", what()))?;
                let r = x.dims.len();
                if r == 0 {
                    return Err(err(format!("{}: a scalar cannot be gathered from", what())));
                }
                let a = axis(attr_int(node, "axis").unwrap_or(0), r, what)?;
                let mut dims: Vec<usize> = x.dims[..a].to_vec();
                dims.extend_from_slice(&ind.dims);
                dims.extend_from_slice(&x.dims[a + 1..]);
                if dims.len() > MAX_RANK {
                    return Err(err(format!("{}: rank {} is too large", what(), dims.len())));
                }
                let n = count(&dims, what)?;
                self.take(n, what)?;
                let outer: usize = x.dims[..a].iter().product();
                let inner: usize = x.dims[a + 1..].iter().product();
                let da = x.dims[a];
                let mut src: Vec<usize> = vec_with(n, &what())?;
                for o in 0..outer {
                    for &i in ind_v {
                        let i = axis(i, da, &|| format!("{}: index", what()))?;
                        let base = (o * da + i) * inner;
                        src.extend(base..base + inner);
                    }
                }
                self.pick(&x, dims, &src, what)?
            }
            _ => {
                return Err(err(format!(
                    "{} is not one of the constant operators the loader folds (Constant, \
                     Identity, Cast, Slice, Concat, Split, Squeeze, Unsqueeze, Reshape, \
                     Transpose, Gather)",
                    what()
                )));
            }
        };
        if k > 0 && !matches!(op, "Split") {
            return Err(err(format!("{}: output {k} is not folded", what())));
        }
        Ok(Rc::new(out))
    }

    /// The `axes` of Squeeze/Unsqueeze: input `i` (opset ≥ 13) or the
    /// attribute (before).
    fn axes(
        &mut self,
        g: usize,
        node: &NodeProto,
        i: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Option<Vec<i64>>> {
        match self.input(g, node, i)? {
            Some(v) => Ok(Some(v.ints(&|| format!("{}: axes", what()))?.to_vec())),
            None => Ok(attr_ints(node, "axes").map(<[i64]>::to_vec)),
        }
    }

    /// `x`'s elements under new dims (same count).
    fn copy_as(&mut self, x: &Value, dims: Vec<usize>, what: &dyn Fn() -> String) -> Result<Value> {
        let n = count(&dims, what)?;
        if n != x.len() {
            return Err(err(format!(
                "{}: {} elements cannot take the shape {dims:?}",
                what(),
                x.len()
            )));
        }
        self.take(n, what)?;
        let name = what();
        let data = match &x.data {
            Data::F32(v, s) => {
                let mut o = vec_with(n, &name)?;
                o.extend_from_slice(v);
                Data::F32(o, *s)
            }
            Data::I64(v) => {
                let mut o = vec_with(n, &name)?;
                o.extend_from_slice(v);
                Data::I64(o)
            }
        };
        Ok(Value { dims, data })
    }

    fn constant(&mut self, node: &NodeProto, what: &dyn Fn() -> String) -> Result<Value> {
        let Some(a) = node.attribute.first() else {
            return Err(err(format!("{}: no value", what())));
        };
        let aname = a.name.as_deref().unwrap_or("");
        let ty = a.r#type.unwrap_or(0);
        match (aname, ty) {
            ("value", _) if a.t.is_some() => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| err(format!("{}: no value", what())))?;
                self.tensor(t, &|| format!("{} (its value)", what()))
            }
            ("value_float", _) => {
                self.take(1, what)?;
                Ok(Value {
                    dims: vec![],
                    data: Data::F32(vec![a.f.unwrap_or(0.0)], Stored::F32),
                })
            }
            ("value_floats", _) => {
                self.take(a.floats.len(), what)?;
                Ok(Value {
                    dims: vec![a.floats.len()],
                    data: Data::F32(a.floats.clone(), Stored::F32),
                })
            }
            ("value_int", _) => {
                self.take(1, what)?;
                Ok(Value {
                    dims: vec![],
                    data: Data::I64(vec![a.i.unwrap_or(0)]),
                })
            }
            ("value_ints", _) => {
                self.take(a.ints.len(), what)?;
                Ok(Value {
                    dims: vec![a.ints.len()],
                    data: Data::I64(a.ints.clone()),
                })
            }
            ("sparse_value", _) => Err(err(format!(
                "{}: a sparse constant (not supported: store it dense)",
                what()
            ))),
            _ if ty == attribute_type::SPARSE_TENSOR => {
                Err(err(format!("{}: sparse value", what())))
            }
            _ => Err(err(format!(
                "{}: attribute {aname:?} is not a value this loader reads",
                what()
            ))),
        }
    }

    fn cast(&mut self, x: &Value, to: i32, what: &dyn Fn() -> String) -> Result<Value> {
        let n = x.len();
        self.take(n, what)?;
        let name = what();
        let data = match (to, &x.data) {
            (data_type::FLOAT | data_type::DOUBLE, Data::F32(v, s)) => {
                let mut o = vec_with(n, &name)?;
                o.extend_from_slice(v);
                Data::F32(
                    o,
                    if to == data_type::FLOAT {
                        *s
                    } else {
                        Stored::F32
                    },
                )
            }
            (data_type::FLOAT16 | data_type::BFLOAT16, Data::F32(v, _)) => {
                let mut o = vec_with(n, &name)?;
                for &f in v {
                    let r = if to == data_type::FLOAT16 {
                        f32_to_f16(f).map(|h| f16_to_f32(h.0))
                    } else {
                        f32_to_bf16(f).map(|h| bf16_to_f32(h.0))
                    };
                    o.push(r.ok_or_else(|| {
                        err(format!("{}: {f} overflows {}", what(), dtype_name(to)))
                    })?);
                }
                Data::F32(
                    o,
                    if to == data_type::FLOAT16 {
                        Stored::F16
                    } else {
                        Stored::Bf16
                    },
                )
            }
            (
                data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16,
                Data::I64(v),
            ) => {
                let mut o = vec_with(n, &name)?;
                o.extend(v.iter().map(|&i| i as f32));
                Data::F32(o, Stored::F32)
            }
            (data_type::INT64 | data_type::INT32, Data::I64(v)) => {
                let mut o = vec_with(n, &name)?;
                o.extend_from_slice(v);
                Data::I64(o)
            }
            (data_type::INT64 | data_type::INT32, Data::F32(v, _)) => {
                let mut o = vec_with(n, &name)?;
                for &f in v {
                    if !f.is_finite() {
                        return Err(err(format!("{}: {f} has no integer value", what())));
                    }
                    o.push(f as i64);
                }
                Data::I64(o)
            }
            _ => {
                return Err(err(format!(
                    "{}: a cast to {} ({to}) is not folded",
                    what(),
                    dtype_name(to)
                )));
            }
        };
        Ok(Value {
            dims: x.dims.clone(),
            data,
        })
    }
}

fn unreachable_value() -> Result<Rc<Value>> {
    Err(err("internal: unexpected producer"))
}

/// ONNX Slice's clamping: the (start, step, count) of one axis of size `d`.
fn slice_range(d: i64, start: i64, end: i64, step: i64) -> Option<(i64, i64, usize)> {
    if step == 0 {
        return None;
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (norm(start), norm(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(-1, d - 1), e.clamp(-1, d - 1))
    };
    let n = if step > 0 {
        if e > s { (e - s - 1) / step + 1 } else { 0 }
    } else if s > e {
        (s - e - 1) / (-step) + 1
    } else {
        0
    };
    Some((if n == 0 { 0 } else { s }, step, n as usize))
}

/// Reshape's target dims (0 copies the input's dimension unless
/// `allowzero`, -1 is inferred).
fn reshape_dims(
    from: &[usize],
    shape: &[i64],
    allowzero: bool,
    what: &dyn Fn() -> String,
) -> Result<Vec<usize>> {
    if shape.len() > MAX_RANK {
        return Err(err(format!(
            "{}: rank {} is too large",
            what(),
            shape.len()
        )));
    }
    let total: usize = from.iter().product();
    let mut dims = Vec::new();
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allowzero => dims.push(*from.get(i).ok_or_else(|| {
                err(format!(
                    "{}: shape {shape:?} copies a dimension the input lacks",
                    what()
                ))
            })?),
            s if s >= 0 => dims
                .push(usize::try_from(s).map_err(|_| err(format!("{}: shape {shape:?}", what())))?),
            _ => return Err(err(format!("{}: shape {shape:?} is not valid", what()))),
        }
    }
    if let Some(i) = infer {
        let known = count(&dims, what)?;
        if known == 0 || !total.is_multiple_of(known) {
            return Err(err(format!(
                "{}: {total} elements cannot take the shape {shape:?}",
                what()
            )));
        }
        dims[i] = total / known;
    }
    Ok(dims)
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

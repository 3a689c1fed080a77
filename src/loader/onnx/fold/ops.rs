//! The operators [`Folder::eval`] folds (Constant, Identity, Cast, Slice,
//! Concat, Split, Squeeze, Unsqueeze, Reshape, Transpose, Gather), in their
//! opset-dependent forms: axes, `split`, `starts`/`ends`, `shape` as an
//! input (newer opsets) or as an attribute (older ones), whichever the node
//! has. Every output's size is checked against the budget before it is
//! allocated.

use std::rc::Rc;

use super::{Data, Folder, MAX_RANK, Stored, Value, count, dtype_name, err, node_name, vec_with};
use crate::error::Result;
use crate::kernels::elem::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use crate::loader::onnx::proto::{AttributeProto, NodeProto, attribute_type, data_type};

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
    pub(super) fn apply(&mut self, g: usize, node: &'m NodeProto, k: usize) -> Result<Rc<Value>> {
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

//! One recurrent node: its op, its attributes, the one function mapping
//! them (activations included) to a [`CellKind`], and its folded weights
//! with their shapes checked.

use std::rc::Rc;

use super::fold::{Data, Folder, Scope, Stored, Value, node_name};
use super::proto::{NodeProto, attribute_type};
use super::{context, format_err, qualify};
use crate::cell::activation::{Activation, Activations};
use crate::cell::spec::{
    CellKind, Coupling, Direction, GruOptions, LstmOptions, RnnActivation, RnnOptions,
};
use crate::error::{Error, Result};

/// The recurrent op types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Lstm,
    Gru,
    Rnn,
}

impl Op {
    pub(super) fn of(node: &NodeProto) -> Option<Op> {
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
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Lstm => "LSTM",
            Op::Gru => "GRU",
            Op::Rnn => "RNN",
        }
    }
    pub(super) fn gates(self) -> usize {
        match self {
            Op::Lstm => 4,
            Op::Gru => 3,
            Op::Rnn => 1,
        }
    }
    /// Inputs the op takes (X W R B sequence_lens initial_h [initial_c P]).
    pub(super) fn max_inputs(self) -> usize {
        if self == Op::Lstm { 8 } else { 6 }
    }
}

/// A recurrent node found in the model.
pub(super) struct Rec<'m> {
    pub(super) scope: usize,
    pub(super) node: &'m NodeProto,
    pub(super) name: String,
    pub(super) qualified: String,
    pub(super) op: Op,
}

/// Every recurrent node, graphs in `scopes` order, nodes in graph order.
pub(super) fn recurrent<'m>(scopes: &[Scope<'m>]) -> Vec<Rec<'m>> {
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

/// A recurrent node's attributes and folded weights.
pub(super) struct Parsed {
    pub(super) op: Op,
    pub(super) direction: Direction,
    pub(super) hidden: usize,
    pub(super) input: usize,
    pub(super) cell: CellKind,
    /// Non-standard activations (see [`cell_kind`]).
    pub(super) activations: Option<[Activations; 2]>,
    pub(super) w: Rc<Value>,
    pub(super) r: Rc<Value>,
    pub(super) b: Option<Rc<Value>>,
    pub(super) p: Option<Rc<Value>>,
    /// Tensor names, for messages: W, R.
    pub(super) w_name: String,
    pub(super) r_name: String,
}

/// The attributes of a recurrent node, raw.
pub(super) struct Attrs {
    pub(super) hidden: Option<usize>,
    pub(super) direction: Direction,
    pub(super) layout: u32,
    pub(super) clip: Option<f32>,
    pub(super) activations: Vec<String>,
    pub(super) alpha: Vec<f32>,
    pub(super) beta: Vec<f32>,
    pub(super) linear_before_reset: bool,
    pub(super) input_forget: bool,
}

pub(super) fn attrs(rec: &Rec<'_>) -> Result<Attrs> {
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

/// The cell of a node from its op and attributes, and its activations:
/// the one place that maps ONNX attributes to rnncell's cells.
/// `activations` lists f, g, h (LSTM), f, g (GRU) or f (RNN) once per
/// direction, with `activation_alpha`/`activation_beta` consumed as ONNX
/// Runtime does ([`Activations::from_onnx`]); `None` for the standard set
/// (the RNN's Tanh or Relu is its `RnnOptions::activation`).
pub(super) fn cell_kind(
    who: &str,
    op: Op,
    a: &Attrs,
) -> Result<(CellKind, Option<[Activations; 2]>)> {
    let d = a.direction.count();
    let cell = match op {
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
            activation: RnnActivation::Tanh,
            clip: a.clip,
        }),
    };
    let names: Vec<&str> = a.activations.iter().map(String::as_str).collect();
    let acts = Activations::from_onnx(&cell, d, &names, &a.alpha, &a.beta).map_err(|e| {
        let m = match e {
            Error::InvalidArgument(m) => return Error::Format(format!("{who}: {m}")),
            Error::Unsupported(m) => m,
            e => e.to_string(),
        };
        Error::Unsupported(format!("{who}: {m}"))
    })?;
    // The standard set stays `None` (the kernels' inlined path); a tanh or
    // relu RNN is its RnnOptions.
    let standard = |x: &Activations| match cell {
        CellKind::Rnn(_) => x.f == Activation::Tanh,
        _ => *x == Activations::STANDARD,
    };
    if let CellKind::Rnn(mut o) = cell
        && acts[..d].iter().all(|x| x.f == Activation::Relu)
    {
        o.activation = RnnActivation::Relu;
        return Ok((CellKind::Rnn(o), None));
    }
    if acts[..d].iter().all(standard) {
        return Ok((cell, None));
    }
    Ok((cell, Some(acts)))
}

/// Folds input `i` of the node; `None` if absent.
pub(super) fn weight(
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

pub(super) fn parse(folder: &mut Folder<'_, '_>, rec: &Rec<'_>) -> Result<Parsed> {
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
    let (mut cell, activations) = cell_kind(&who, rec.op, &a)?;
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
        activations,
        w,
        r,
        b: b.map(|x| x.0),
        p: p.map(|x| x.0),
        w_name,
        r_name,
    })
}

/// The f32 values of a folded float tensor.
pub(super) fn floats(v: &Value) -> &[f32] {
    match &v.data {
        Data::F32(x, _) => x,
        Data::I64(_) => &[],
    }
}

pub(super) fn stored(v: &Value) -> Stored {
    match &v.data {
        Data::F32(_, s) => *s,
        Data::I64(_) => Stored::F32,
    }
}

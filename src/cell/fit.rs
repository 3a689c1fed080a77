//! When weight tensors do not fit the spec: which one spec field, changed,
//! makes every tensor fit, for the error message (issue 13, item 4). A
//! missing projection size then reads "weight_hh: expected 1600 elements,
//! got 560; 560 = 4 gates · 400 hidden_size · 140 proj_size: set
//! proj_size = 140?" rather than only the counts.
//!
//! Only element counts are used (no tensor is read), so the C builders can
//! ask before reading any float. A field is suggested only when the whole
//! spec with that one change fits every tensor given, so a truncated tensor
//! gets no (wrong) suggestion.

use super::frameworks::{keras, onnx, pytorch};
use super::spec::{CellKind, Direction, GruOptions, LstmOptions, ModelSpec, RnnOptions};
use super::weights::Layout;

/// The element counts of the tensors of one entry: one layer and direction
/// (PyTorch, Keras) or one layer with all its directions (an ONNX node).
/// `None`: absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// PyTorch `weight_ih`, ONNX `W`, Keras `kernel`.
    pub w: usize,
    /// PyTorch `weight_hh`, ONNX `R`, Keras `recurrent_kernel`.
    pub r: usize,
    /// PyTorch `bias_ih`, ONNX `B`, Keras `bias`.
    pub b_w: Option<usize>,
    /// PyTorch `bias_hh` (absent in the other layouts).
    pub b_r: Option<usize>,
    /// PyTorch `weight_hr`.
    pub proj: Option<usize>,
    /// PyTorch peepholes, ONNX `P`.
    pub peephole: Option<usize>,
}

/// Which API's names the message uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `ModelSpec` fields, `LstmOptions::proj_size`, `Direction::Forward`.
    Rust,
    /// `RnncellSpec` fields, `spec.lstm_proj_size`, `RNNCELL_DIRECTION_FORWARD`.
    C,
}

/// One tensor of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    W,
    R,
    BW,
    BR,
    Proj,
    Peephole,
}

/// One factor of an expected count, with what it is.
pub(crate) type Factor = (usize, &'static str);

/// What one tensor may be under a spec (each framework module's `allowed`
/// states its own layout).
pub(crate) enum Allowed {
    Required(Vec<Factor>),
    Optional(Vec<Factor>),
    /// Either count (a Keras GRU bias: [G·H] or [2, G·H]); optional.
    OneOf(Vec<Factor>, Vec<Factor>),
    Forbidden,
}

fn product(f: &[Factor]) -> Option<usize> {
    f.iter().try_fold(1usize, |a, &(v, _)| a.checked_mul(v))
}

/// The number of entries a spec takes in a layout.
fn entries_of(layout: Layout, spec: &ModelSpec) -> usize {
    match layout {
        Layout::PyTorch => pytorch::entries(spec),
        Layout::Onnx => onnx::entries(spec),
        Layout::Keras => keras::entries(spec),
    }
}

/// What tensor `which` of entry `i` may be, in the framework's own terms.
fn allowed(layout: Layout, spec: &ModelSpec, i: usize, which: Which) -> Allowed {
    match layout {
        Layout::PyTorch => pytorch::allowed(spec, i, which),
        Layout::Onnx => onnx::allowed(spec, i, which),
        Layout::Keras => keras::allowed(spec, i, which),
    }
}

/// The factors every layout's counts are made of, for one layer.
pub(crate) struct Dims {
    /// Gates.
    pub g: Factor,
    /// Hidden size.
    pub h: Factor,
    /// The layer's input size.
    pub input: Factor,
    /// The state size (P with a projection, else H).
    pub hr: Factor,
    /// LSTM peepholes on.
    pub peephole: bool,
    /// LSTM projection size (0: none).
    pub proj_size: usize,
}

/// [`Dims`] of layer `layer` of `spec`.
pub(crate) fn dims(spec: &ModelSpec, layer: usize) -> Dims {
    let input = if layer == 0 {
        (spec.input_size, "input_size")
    } else {
        (
            spec.layer_input_size(layer),
            "layer input (directions · state size)",
        )
    };
    let hr = match spec.proj_size() {
        0 => (spec.hidden_size, "hidden_size"),
        p => (p, "proj_size"),
    };
    let (peephole, proj_size) = match spec.cell {
        CellKind::Lstm(o) => (o.peephole, o.proj_size),
        _ => (false, 0),
    };
    Dims {
        g: (spec.cell.gates(), "gates"),
        h: (spec.hidden_size, "hidden_size"),
        input,
        hr,
        peephole,
        proj_size,
    }
}

fn count(c: &Counts, which: Which) -> Option<usize> {
    match which {
        Which::W => Some(c.w),
        Which::R => Some(c.r),
        Which::BW => c.b_w,
        Which::BR => c.b_r,
        Which::Proj => c.proj,
        Which::Peephole => c.peephole,
    }
}

const ALL: [Which; 6] = [
    Which::W,
    Which::R,
    Which::BW,
    Which::BR,
    Which::Proj,
    Which::Peephole,
];

/// The factors of the count `n` of tensor `which` of entry `i` under
/// `spec`, if it fits (`None` if it does not).
fn fit_one(
    layout: Layout,
    spec: &ModelSpec,
    i: usize,
    which: Which,
    n: Option<usize>,
) -> Option<Vec<Factor>> {
    match (allowed(layout, spec, i, which), n) {
        (Allowed::Required(f), Some(n)) | (Allowed::Optional(f), Some(n)) => {
            (product(&f) == Some(n)).then_some(f)
        }
        (Allowed::OneOf(a, b), Some(n)) => [a, b].into_iter().find(|f| product(f) == Some(n)),
        (Allowed::Required(_), None) => None,
        (Allowed::Forbidden, Some(_)) => None,
        (_, None) => Some(Vec::new()),
    }
}

/// Whether every entry fits `spec` (which must be valid).
fn fits(layout: Layout, spec: &ModelSpec, entries: &[Counts]) -> bool {
    spec.validate().is_ok()
        && entries.len() == entries_of(layout, spec)
        && entries.iter().enumerate().all(|(i, c)| {
            ALL.into_iter()
                .all(|w| fit_one(layout, spec, i, w, count(c, w)).is_some())
        })
}

/// A spec field to change, and its new value (for the message).
struct Change {
    field: &'static str,
    value: String,
    spec: ModelSpec,
}

fn with_proj(spec: &ModelSpec, p: usize) -> Option<ModelSpec> {
    match spec.cell {
        CellKind::Lstm(o) => Some(ModelSpec {
            cell: CellKind::Lstm(LstmOptions { proj_size: p, ..o }),
            ..*spec
        }),
        _ => None,
    }
}

fn direction_name(d: Direction, api: Api) -> &'static str {
    match (d, api) {
        (Direction::Forward, Api::Rust) => "Direction::Forward",
        (Direction::Reverse, Api::Rust) => "Direction::Reverse",
        (Direction::Bidirectional, Api::Rust) => "Direction::Bidirectional",
        (Direction::Forward, Api::C) => "RNNCELL_DIRECTION_FORWARD",
        (Direction::Reverse, Api::C) => "RNNCELL_DIRECTION_REVERSE",
        (Direction::Bidirectional, Api::C) => "RNNCELL_DIRECTION_BIDIRECTIONAL",
    }
}

/// The candidate changes of one field each, read from the counts.
fn candidates(layout: Layout, spec: &ModelSpec, entries: &[Counts], api: Api) -> Vec<Change> {
    let c = |rust: &'static str, capi: &'static str| if api == Api::C { capi } else { rust };
    let mut out = Vec::new();
    // Sizes beyond what any valid spec has: no suggestion (and every
    // product below stays far from overflowing).
    const MAX: usize = 1 << 20;
    if spec.input_size > MAX || spec.hidden_size > MAX || spec.proj_size() > MAX {
        return out;
    }
    let g = spec.cell.gates();
    let h = spec.hidden_size;
    let dn = spec.directions();
    let d_onnx = if layout == Layout::Onnx { dn } else { 1 };
    let div = |a: usize, b: usize| {
        (b > 0 && a.is_multiple_of(b))
            .then(|| a / b)
            .filter(|&v| v > 0)
    };
    if let Some(e) = entries.first() {
        if let Some(i) = div(e.w, d_onnx * g * h).filter(|&v| v != spec.input_size) {
            out.push(Change {
                field: c("input_size", "spec.input_size"),
                value: i.to_string(),
                spec: ModelSpec {
                    input_size: i,
                    ..*spec
                },
            });
        }
        if layout == Layout::PyTorch
            && let Some(x) = div(e.r, g * h).filter(|&x| x <= h)
        {
            let p = if x == h { 0 } else { x };
            if let Some(s) = with_proj(spec, p).filter(|_| p != spec.proj_size()) {
                out.push(Change {
                    field: c("LstmOptions::proj_size", "spec.lstm_proj_size"),
                    value: p.to_string(),
                    spec: s,
                });
            }
        }
        // Hidden size: from R (G·H·H, or G·H·P with a projection), or from
        // a bias (G·H).
        let mut hs = Vec::new();
        if spec.proj_size() == 0 {
            if let Some(hh) = div(e.r, d_onnx * g) {
                let r = hh.isqrt();
                if r * r == hh {
                    hs.push(r);
                }
            }
        } else if let Some(v) = div(e.r, g * spec.proj_size()) {
            hs.push(v);
        }
        if let Some(b) = e.b_w {
            let k = if layout == Layout::Onnx { 2 * dn } else { 1 };
            hs.extend(div(b, k * g));
        }
        hs.sort_unstable();
        hs.dedup();
        for nh in hs.into_iter().filter(|&v| v != h) {
            out.push(Change {
                field: c("hidden_size", "spec.hidden_size"),
                value: nh.to_string(),
                spec: ModelSpec {
                    hidden_size: nh,
                    ..*spec
                },
            });
        }
        // The cell kind: another gate count.
        for (gates, cell, rust, capi) in [
            (
                4,
                CellKind::Lstm(LstmOptions::default()),
                "CellKind::Lstm",
                "RNNCELL_CELL_LSTM",
            ),
            (
                3,
                CellKind::Gru(GruOptions::default()),
                "CellKind::Gru",
                "RNNCELL_CELL_GRU",
            ),
            (
                1,
                CellKind::Rnn(RnnOptions::default()),
                "CellKind::Rnn",
                "RNNCELL_CELL_RNN",
            ),
        ] {
            if gates != g && div(e.w, d_onnx * h) == Some(gates * spec.input_size) {
                out.push(Change {
                    field: c("cell", "spec.cell"),
                    value: c(rust, capi).to_string(),
                    spec: ModelSpec { cell, ..*spec },
                });
            }
        }
        if layout == Layout::Onnx {
            let other = if dn == 2 {
                Direction::Forward
            } else {
                Direction::Bidirectional
            };
            out.push(Change {
                field: c("direction", "spec.direction"),
                value: direction_name(other, api).to_string(),
                spec: ModelSpec {
                    direction: other,
                    ..*spec
                },
            });
        }
    }
    // Layers and directions from the number of entries.
    let n = entries.len();
    if n != entries_of(layout, spec) {
        for d in [Direction::Forward, Direction::Bidirectional] {
            let per = if layout == Layout::Onnx { 1 } else { d.count() };
            let Some(l) = div(n, per) else { continue };
            let same_dir = d.count() == dn;
            if layout == Layout::Onnx && !same_dir {
                continue;
            }
            let s = ModelSpec {
                num_layers: l,
                direction: if same_dir { spec.direction } else { d },
                ..*spec
            };
            let (field, value) = if same_dir {
                (c("num_layers", "spec.num_layers"), l.to_string())
            } else if l == spec.num_layers {
                (
                    c("direction", "spec.direction"),
                    direction_name(d, api).to_string(),
                )
            } else {
                (
                    c(
                        "num_layers and direction",
                        "spec.num_layers and spec.direction",
                    ),
                    format!("{l} and {}", direction_name(d, api)),
                )
            };
            out.push(Change {
                field,
                value,
                spec: s,
            });
        }
    }
    out
}

/// The first tensor that does not fit `spec`: entry and which.
fn first_misfit(layout: Layout, spec: &ModelSpec, entries: &[Counts]) -> Option<(usize, Which)> {
    entries.iter().enumerate().find_map(|(i, c)| {
        ALL.into_iter()
            .find(|&w| fit_one(layout, spec, i, w, count(c, w)).is_none())
            .map(|w| (i, w))
    })
}

fn show(f: &[Factor]) -> String {
    f.iter()
        .map(|&(v, what)| {
            if what.is_empty() || what.parse::<usize>().is_ok() {
                v.to_string()
            } else {
                format!("{v} {what}")
            }
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A hint for the error of `entries` under `spec`: the one-field changes
/// with which every tensor fits, with the factors of the first tensor that
/// does not fit now, e.g. "560 = 4 gates · 400 hidden_size · 140
/// proj_size: set LstmOptions::proj_size = 140?". `None` if no such change
/// exists (a tensor is simply wrong).
pub(crate) fn hint(
    layout: Layout,
    spec: &ModelSpec,
    entries: &[Counts],
    api: Api,
) -> Option<String> {
    if fits(layout, spec, entries) {
        return None;
    }
    let fitting: Vec<Change> = candidates(layout, spec, entries, api)
        .into_iter()
        .filter(|ch| fits(layout, &ch.spec, entries))
        .collect();
    let first = fitting.first()?;
    let sets = fitting
        .iter()
        .map(|ch| format!("{} = {}", ch.field, ch.value))
        .collect::<Vec<_>>()
        .join(" or ");
    let why = match first_misfit(layout, spec, entries) {
        Some((i, w)) => {
            let n = count(&entries[i], w);
            match (n, fit_one(layout, &first.spec, i, w, n)) {
                (Some(n), Some(f)) if !f.is_empty() => format!("{n} = {}: ", show(&f)),
                _ => String::new(),
            }
        }
        None => String::new(),
    };
    let also = if fitting.len() == 1 {
        "with it every tensor fits"
    } else {
        "with either every tensor fits"
    };
    Some(format!("{why}set {sets}? ({also})"))
}

/// The hint for a wrong number of entries when the entries themselves
/// cannot be read (the C builders read no struct past the count the spec
/// needs): the layer and direction counts that `n` entries make.
#[cfg_attr(not(feature = "capi"), allow(dead_code))] // used by src/ffi only
pub(crate) fn count_hint(layout: Layout, spec: &ModelSpec, n: usize, api: Api) -> Option<String> {
    let c = |rust: &'static str, capi: &'static str| if api == Api::C { capi } else { rust };
    let mut opts = Vec::new();
    match layout {
        Layout::Onnx => {
            if n > 0 {
                opts.push(format!("{} = {n}", c("num_layers", "spec.num_layers")));
            }
        }
        _ => {
            let dn = spec.directions();
            if n > 0 && n.is_multiple_of(dn) {
                opts.push(format!(
                    "{} = {}",
                    c("num_layers", "spec.num_layers"),
                    n / dn
                ));
            }
            let other = if dn == 2 {
                Direction::Forward
            } else {
                Direction::Bidirectional
            };
            let per = other.count();
            let dir = format!(
                "{} = {}",
                c("direction", "spec.direction"),
                direction_name(other, api)
            );
            if n > 0 && n.is_multiple_of(per) && n / per == spec.num_layers {
                opts.push(dir);
            } else if n > 0 && n.is_multiple_of(per) {
                opts.push(format!(
                    "{} = {} and {dir}",
                    c("num_layers", "spec.num_layers"),
                    n / per,
                ));
            }
        }
    }
    (!opts.is_empty()).then(|| format!("{n} entries make {}?", opts.join(", or ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lstm(p: usize) -> ModelSpec {
        ModelSpec::new(
            CellKind::Lstm(LstmOptions {
                proj_size: p,
                ..LstmOptions::default()
            }),
            40,
            400,
        )
    }

    #[test]
    fn a_missing_proj_size_is_named() {
        let c = Counts {
            w: 1600 * 40,
            r: 1600 * 140,
            b_w: Some(1600),
            b_r: Some(1600),
            proj: Some(140 * 400),
            peephole: None,
        };
        let h = hint(Layout::PyTorch, &lstm(0), &[c], Api::C).unwrap();
        assert_eq!(
            h,
            "224000 = 4 gates · 400 hidden_size · 140 proj_size: set spec.lstm_proj_size = 140? \
             (with it every tensor fits)"
        );
        assert!(hint(Layout::PyTorch, &lstm(140), &[c], Api::C).is_none());
        // A truncated tensor: no suggestion.
        let bad = Counts {
            r: 1600 * 140 - 1,
            ..c
        };
        assert!(hint(Layout::PyTorch, &lstm(0), &[bad], Api::Rust).is_none());
    }

    #[test]
    fn input_hidden_direction_layers() {
        let spec = ModelSpec::new(CellKind::gru(), 3, 5);
        let e = |i: usize, h: usize| Counts {
            w: 3 * h * i,
            r: 3 * h * h,
            ..Counts::default()
        };
        let m = hint(Layout::PyTorch, &spec, &[e(4, 5)], Api::Rust).unwrap();
        assert!(m.contains("set input_size = 4?"), "{m}");
        let m = hint(Layout::Keras, &spec, &[e(3, 6)], Api::C).unwrap();
        assert!(m.contains("set spec.hidden_size = 6?"), "{m}");
        // ONNX: both directions in one node.
        let bi = Counts {
            w: 2 * 15 * 3,
            r: 2 * 15 * 5,
            b_w: Some(2 * 30),
            ..Counts::default()
        };
        let m = hint(Layout::Onnx, &spec, &[bi], Api::C).unwrap();
        assert!(
            m.contains("spec.direction = RNNCELL_DIRECTION_BIDIRECTIONAL"),
            "{m}"
        );
        // Two PyTorch entries: two layers (layer 1 input 5) or two directions.
        let m = hint(Layout::PyTorch, &spec, &[e(3, 5), e(5, 5)], Api::Rust).unwrap();
        assert!(m.contains("set num_layers = 2?"), "{m}");
        let m = hint(Layout::PyTorch, &spec, &[e(3, 5), e(3, 5)], Api::Rust).unwrap();
        assert!(
            m.contains("set direction = Direction::Bidirectional?"),
            "{m}"
        );
        let four = [e(3, 5), e(3, 5), e(10, 5), e(10, 5)];
        let m = hint(Layout::PyTorch, &spec, &four, Api::Rust).unwrap();
        assert!(
            m.contains("num_layers and direction = 2 and Direction::Bidirectional"),
            "{m}"
        );
        // LSTM weights for a GRU spec.
        let l = Counts {
            w: 4 * 5 * 3,
            r: 4 * 5 * 5,
            ..Counts::default()
        };
        let m = hint(Layout::PyTorch, &spec, &[l], Api::C).unwrap();
        assert!(m.contains("spec.cell = RNNCELL_CELL_LSTM"), "{m}");
        assert_eq!(
            count_hint(Layout::PyTorch, &spec, 2, Api::C).unwrap(),
            "2 entries make spec.num_layers = 2, or spec.direction = \
             RNNCELL_DIRECTION_BIDIRECTIONAL?"
        );
    }
}

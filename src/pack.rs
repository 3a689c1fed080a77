//! Packing weights from the canonical layout into gate-interleaved,
//! column-interleaved, 64-byte aligned panels (DESIGN §3).
//!
//! A *multi-gate panel* covers `u` hidden units (u = 2 vectors of the ISA:
//! 32 on AVX-512, 16 on AVX2, 8 on NEON, 2 on the scalar path). For every
//! input column k it stores, contiguously, the `u` rows of gate 0, then
//! the `u` rows of gate 1, and so on: one broadcast of x_k then feeds
//! `gates × 2` vertical FMAs into `gates × 2` accumulators, and once all k
//! are done the accumulators hold every gate of those `u` units, ready for
//! the fused epilogue. A *single-gate panel* (RNN, the second phase of a
//! reset-before GRU, the LSTM projection) covers `u1` = 8 vectors of one
//! gate, so that there are again 8 independent FMA chains.
//!
//! Rows are padded with zeros to whole panels; columns are not padded (the
//! kernels loop over the true k), so the inner loop has no tail code.
//!
//! Every packed value (weights, summed biases, peepholes, projection and
//! its bias) goes through [`flush_f32`]: subnormal weights become signed
//! zeros, as the scalar reference assumes (`reference.rs`).

#![forbid(unsafe_code)]

use crate::cell::activation::{Activation, Activations};
use crate::cell::spec::{CellKind, ModelSpec, WeightPrecision};
use crate::cell::weights::LayerWeights;
use crate::error::{Error, Result};
use crate::kernels::buf::{
    ABuf, Buf, STATE_PAD, round_up, try_buf, try_copy, try_weights_buf, try_zeros,
};
use crate::kernels::elem::{Bf16, F16, f32_to_bf16, f32_to_f16};
use crate::kernels::panel::Stored;
pub(crate) use crate::kernels::panel::{Geom, LayerState, Nv, Op, PackedLayer, Panels, TILE};
use crate::kernels::simd::flush_f32;

fn checked(a: &[usize], what: &str) -> Result<usize> {
    a.iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or_else(|| Error::invalid(format!("{what}: size overflows")))
}

/// The int8 scale of a row whose largest |weight| is `max_abs` (finite,
/// ≥ 0): `max_abs / 127` rounded to nearest, or 0 (the row is all zeros)
/// when that is below `f32::MIN_POSITIVE` (max_abs = 0, or a scale that
/// would be subnormal).
pub(crate) fn i8_row_scale(max_abs: f32) -> f32 {
    let s = max_abs / 127.0;
    if s < f32::MIN_POSITIVE { 0.0 } else { s }
}

/// `v` quantized with row scale `s` (from [`i8_row_scale`]):
/// round-half-even(v / s) clamped to ±127 (the clamp never acts: |v| ≤
/// max_abs, so |v / s| ≤ 127 · (1 + 2^-23) rounds to at most 127); 0 when
/// `s` is 0.
pub(crate) fn i8_quantize(v: f32, s: f32) -> i8 {
    if s == 0.0 {
        return 0;
    }
    (v / s).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// Which canonical matrix a panel set is packed from, for error messages:
/// the tensor name and the canonical row of its gate 0.
#[derive(Clone, Copy)]
struct Named<'a> {
    layer: usize,
    /// Direction (1: the `_reverse` tensors).
    dir: usize,
    tensor: &'a str,
    /// Canonical row of (gate 0, row 0).
    row0: usize,
}

/// How one weight matrix is cut into panels.
#[derive(Clone, Copy)]
struct Cut {
    /// Gates in each panel.
    gates: usize,
    /// Rows of each gate.
    rows_per_gate: usize,
    /// Columns.
    k: usize,
    /// Rows of one gate per panel (`u` or `u1`).
    units: usize,
    lanes: usize,
    nv: Nv,
    /// Accumulator map of the panel's vectors (see [`Geom`]).
    split: usize,
    dst: usize,
}

/// Packs `cut.gates` gates of `cut.rows_per_gate` rows each, `cut.k`
/// columns, into panels of `cut.units` rows per gate, `src(gate, row,
/// col)`, every value flushed and then stored in `prec`: rounded to
/// nearest even (f16, bf16; a finite weight that rounds to ±∞ is an
/// error), or quantized per row (int8: one scale per row, see
/// [`i8_row_scale`]; a non-finite weight is an error).
fn pack_panels(
    prec: WeightPrecision,
    name: Named<'_>,
    cut: Cut,
    src: impl Fn(usize, usize, usize) -> f32,
) -> Result<Panels> {
    let Cut {
        gates,
        rows_per_gate,
        k,
        units: u,
        lanes,
        nv,
        split,
        dst,
    } = cut;
    debug_assert_eq!(gates * u, nv.n() * lanes);
    let panels = rows_per_gate.div_ceil(u);
    // i8: k-quads (K padded with zero weights to a multiple of 4).
    // bf16: k-pairs.
    let kg = match prec {
        WeightPrecision::Int8 => 4,
        WeightPrecision::Bf16 => 2,
        _ => 1,
    };
    let n = checked(
        &[panels, k.next_multiple_of(kg), gates, u],
        "packed weights",
    )?;
    let geom = Geom {
        panels,
        nv,
        lanes,
        k,
        kg,
        split,
        dst,
    };
    let val = |g: usize, row: usize, kk: usize| flush_f32(src(g, row, kk));
    // Named as `LayerWeights`' checks and `reference.rs` name it.
    let culprit = |g: usize, row: usize, kk: usize, v: f32, why: &str| {
        let shown = if v.abs() < 1e7 {
            format!("{v}")
        } else {
            format!("{v:e}")
        };
        Error::invalid(format!(
            "layer {} {}{}[{},{}]: {shown} {why}",
            name.layer,
            name.tensor,
            if name.dir == 1 { "_reverse" } else { "" },
            name.row0 + g * rows_per_gate + row,
            kk
        ))
    };
    // Every element in panel order: panel p, column kk, gate g, unit j;
    // with groups of kg columns (bf16 pairs, i8 quads), panel p, group kq,
    // gate g, unit j, then the kg columns kg·kq.. of that row (zeros past K
    // and past the last row).
    fn fill<T: Stored>(
        cut: &Cut,
        n: usize,
        kg: usize,
        mut f: impl FnMut(usize, usize, usize) -> Result<T>,
    ) -> Result<ABuf<T>> {
        let (k, u, rows) = (cut.k, cut.units, cut.rows_per_gate);
        let mut out = try_weights_buf::<T>(n)?;
        for p in 0..rows.div_ceil(u) {
            for kq in 0..k.div_ceil(kg) {
                for g in 0..cut.gates {
                    for j in 0..u {
                        let row = p * u + j;
                        for kk in kq * kg..(kq + 1) * kg {
                            out.push(if row < rows && kk < k {
                                f(g, row, kk)?
                            } else {
                                T::default()
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
    let (store, scale, qsum) = match prec {
        WeightPrecision::F32 => (
            f32::wrap(fill(&cut, n, kg, |g, r, kk| Ok(val(g, r, kk)))?),
            ABuf::new(64),
            ABuf::new(64),
        ),
        WeightPrecision::F16 => (
            F16::wrap(fill(&cut, n, kg, |g, r, kk| {
                let v = val(g, r, kk);
                f32_to_f16(v).ok_or_else(|| culprit(g, r, kk, v, "overflows f16"))
            })?),
            ABuf::new(64),
            ABuf::new(64),
        ),
        WeightPrecision::Bf16 => (
            Bf16::wrap(fill(&cut, n, kg, |g, r, kk| {
                let v = val(g, r, kk);
                f32_to_bf16(v).ok_or_else(|| culprit(g, r, kk, v, "overflows bf16"))
            })?),
            ABuf::new(64),
            ABuf::new(64),
        ),
        WeightPrecision::Int8Weights | WeightPrecision::Int8 => {
            // One scale per canonical row, then the same scales in packed
            // row order (panel p, gate g, unit j).
            let rows = checked(&[gates, rows_per_gate], "int8 scales")?;
            let mut rs = crate::kernels::buf::try_vec::<f32>(rows, "int8 scales")?;
            for g in 0..gates {
                for r in 0..rows_per_gate {
                    let mut m = 0.0f32;
                    for kk in 0..k {
                        let v = val(g, r, kk);
                        if !v.is_finite() {
                            return Err(culprit(
                                g,
                                r,
                                kk,
                                v,
                                "is not finite (int8 weights must be finite)",
                            ));
                        }
                        m = m.max(v.abs());
                    }
                    rs.push(i8_row_scale(m));
                }
            }
            let q = fill(&cut, n, kg, |g, r, kk| {
                Ok(i8_quantize(val(g, r, kk), rs[g * rows_per_gate + r]))
            })?;
            let mut scale = try_buf(panels * gates * u, "int8 scales")?;
            for p in 0..panels {
                for g in 0..gates {
                    for j in 0..u {
                        let row = p * u + j;
                        scale.push(if row < rows_per_gate {
                            rs[g * rows_per_gate + row]
                        } else {
                            0.0
                        });
                    }
                }
            }
            // i8: 128 · Σ_k q per packed row (|Σ| ≤ K · 127 · 128 fits i32
            // for K ≤ MAX_INT8_K), read back from the packed quads.
            let qsum = if prec == WeightPrecision::Int8 {
                let rows = panels * gates * u;
                let mut qs = crate::kernels::buf::try_weights_buf::<i32>(rows)?;
                qs.resize(rows, 0);
                let per_panel = q.len() / panels.max(1);
                for (p, pan) in q.chunks_exact(per_panel.max(1)).enumerate().take(panels) {
                    for quad in pan.chunks_exact(gates * u * 4) {
                        for (r, w4) in quad.chunks_exact(4).enumerate() {
                            let sum: i32 = w4.iter().map(|&w| i32::from(w)).sum();
                            qs[p * gates * u + r] += 128 * sum;
                        }
                    }
                }
                qs
            } else {
                ABuf::new(64)
            };
            (i8::wrap(q), scale, qsum)
        }
    };
    Ok(Panels::new(geom, store, scale, qsum))
}

/// The values of `v` (at most `len` of them) followed by zeros up to `len`.
fn padded(v: impl IntoIterator<Item = f32>, len: usize) -> Result<Buf> {
    let mut out = try_buf(len, "packed bias")?;
    for x in v.into_iter().take(len) {
        out.push(flush_f32(x));
    }
    out.resize(len, 0.0);
    Ok(out)
}

impl PackedLayer {
    /// Packs layer weights (already checked against the spec) for an ISA
    /// with `lanes` f32 lanes, in `spec.precision`; [`Error::Allocation`]
    /// if a buffer cannot be allocated, [`Error::InvalidArgument`] naming
    /// the weight if one cannot be stored in the precision. Allocates the
    /// packed buffers only (about the size of `lw` in the precision, rows
    /// padded to whole panels), never a temporary copy.
    pub(crate) fn new(
        spec: &ModelSpec,
        layer: usize,
        dir: usize,
        lw: &LayerWeights,
        lanes: usize,
    ) -> Result<PackedLayer> {
        let prec = spec.precision;
        let h = spec.hidden_size;
        let hr = spec.state_size();
        let input = spec.layer_input_size(layer);
        let u = 2 * lanes;
        let u1 = 8 * lanes;
        let hp = round_up(h, STATE_PAD);
        // canonical row index of gate g, unit j
        let wxa = |g: usize, j: usize, k: usize| lw.w[(g * h + j) * input + k];
        let wha = |g: usize, j: usize, k: usize| lw.r[(g * h + j) * hr + k];
        let bsum = |g: usize, j: usize| lw.b_w[g * h + j] + lw.b_r[g * h + j];
        let nx = |tensor, row0| Named {
            layer,
            dir,
            tensor,
            row0,
        };
        // Multi-gate panels of `gates` gates (u units, 2 vectors per gate),
        // and single-gate panels (u1 units, 8 vectors).
        let multi = |gates: usize, k: usize, split: usize, dst: usize| Cut {
            gates,
            rows_per_gate: h,
            k,
            units: u,
            lanes,
            nv: match gates {
                2 => Nv::V4,
                3 => Nv::V6,
                _ => Nv::V8,
            },
            split,
            dst,
        };
        let single = |rows: usize, k: usize| Cut {
            gates: 1,
            rows_per_gate: rows,
            k,
            units: u1,
            lanes,
            nv: Nv::V8,
            split: 8,
            dst: 8,
        };
        let empty = || ABuf::new(64);
        // bias sets per multi-gate panel: `sets` closures of (unit) -> f32
        let panel_bias = |sets: &[&dyn Fn(usize) -> f32]| -> Result<Buf> {
            let panels = h.div_ceil(u);
            let mut out = try_buf(panels * sets.len() * u, "packed bias")?;
            for p in 0..panels {
                for set in sets {
                    for j in 0..u {
                        let unit = p * u + j;
                        out.push(if unit < h { flush_f32(set(unit)) } else { 0.0 });
                    }
                }
            }
            Ok(out)
        };
        // The standard activations stay on the inlined path; anything
        // else goes through `Simd::act`.
        let a = spec.activations_of(dir);
        let standard = match spec.cell {
            CellKind::Rnn(_) => matches!(a.f, Activation::Tanh | Activation::Relu),
            _ => a == Activations::STANDARD,
        };
        let mut pl = PackedLayer {
            op: Op::Rnn {
                relu: false,
                clip: None,
            },
            acts: (!standard).then_some([a.f, a.g, a.h]),
            precision: prec,
            input,
            hr,
            u,
            u1,
            wx: Panels::empty(),
            wh: Panels::empty(),
            wh_n: Panels::empty(),
            proj: Panels::empty(),
            bias: empty(),
            bias_sets: 8,
            peep: empty(),
            proj_bias: empty(),
        };
        let (ih, hh) = (nx("weight_ih", 0), nx("weight_hh", 0));
        match spec.cell {
            CellKind::Lstm(o) => {
                pl.op = Op::Lstm {
                    peephole: o.peephole,
                    coupling: o.coupling,
                    clip: o.clip,
                    cell_clip: o.cell_clip,
                    proj: o.proj_size > 0,
                    proj_clip: o.proj_clip,
                };
                pl.wx = pack_panels(prec, ih, multi(4, input, 8, 8), wxa)?;
                pl.wh = pack_panels(prec, hh, multi(4, hr, 8, 8), wha)?;
                pl.bias = panel_bias(&[&|j| bsum(0, j), &|j| bsum(1, j), &|j| bsum(2, j), &|j| {
                    bsum(3, j)
                }])?;
                if o.peephole {
                    let mut v = try_buf(3 * hp, "packed peepholes")?;
                    for g in 0..3 {
                        for j in 0..hp {
                            v.push(if j < h {
                                flush_f32(lw.peephole[g * h + j])
                            } else {
                                0.0
                            });
                        }
                    }
                    pl.peep = v;
                }
                if o.proj_size > 0 {
                    let p = o.proj_size;
                    pl.proj = pack_panels(prec, nx("weight_hr", 0), single(p, h), |_, i, k| {
                        lw.proj[i * h + k]
                    })?;
                    pl.proj_bias = padded(
                        (0..p).map(|i| lw.proj_bias.get(i).copied().unwrap_or(0.0)),
                        round_up(p, STATE_PAD),
                    )?;
                }
            }
            CellKind::Gru(o) => {
                pl.wx = pack_panels(prec, ih, multi(3, input, 8, 8), wxa)?;
                if o.linear_before_reset {
                    pl.op = Op::GruLbr { clip: o.clip };
                    // n_h (h-panel vectors 4, 5) accumulates apart, in 6, 7.
                    pl.wh = pack_panels(prec, hh, multi(3, hr, 4, 6), wha)?;
                    pl.bias = panel_bias(&[
                        &|j| bsum(0, j),
                        &|j| bsum(1, j),
                        &|j| lw.b_w[2 * h + j],
                        &|j| lw.b_r[2 * h + j],
                    ])?;
                } else {
                    pl.op = Op::GruResetBefore { clip: o.clip };
                    pl.wh = pack_panels(prec, hh, multi(2, hr, 8, 8), wha)?;
                    pl.wh_n =
                        pack_panels(prec, nx("weight_hh", 2 * h), single(h, hr), |_, j, k| {
                            wha(2, j, k)
                        })?;
                    pl.bias = panel_bias(&[&|j| bsum(0, j), &|j| bsum(1, j), &|j| bsum(2, j)])?;
                    pl.bias_sets = 6;
                }
            }
            CellKind::Rnn(o) => {
                pl.op = Op::Rnn {
                    relu: a.f == Activation::Relu,
                    clip: o.clip,
                };
                pl.wx = pack_panels(prec, ih, single(h, input), |_, j, k| wxa(0, j, k))?;
                pl.wh = pack_panels(prec, hh, single(h, hr), |_, j, k| wha(0, j, k))?;
                pl.bias = padded((0..h).map(|j| bsum(0, j)), round_up(h, u1))?;
            }
        }
        Ok(pl)
    }
}

impl LayerState {
    fn sizes(spec: &ModelSpec) -> (usize, usize, usize, usize) {
        let hp = round_up(spec.hidden_size, STATE_PAD);
        let hrp = round_up(spec.state_size(), STATE_PAD);
        let (c, s0, s12) = match spec.cell {
            CellKind::Lstm(o) => (hp, if o.proj_size > 0 { hp } else { 0 }, 0),
            CellKind::Gru(o) if !o.linear_before_reset => (0, hp, hp),
            _ => (0, 0, 0),
        };
        (hrp, c, s0, s12)
    }

    /// A zero state for one layer of `spec`, or [`Error::Allocation`].
    pub(crate) fn new(spec: &ModelSpec) -> Result<LayerState> {
        let (hrp, c, s0, s12) = Self::sizes(spec);
        let what = "state";
        // i8: words of the quantized layer input (any layer's) and of h,
        // r⊙h or m (at most H elements).
        let (qx, qh) = if spec.precision == WeightPrecision::Int8 {
            let inputs = (0..spec.num_layers.min(2))
                .map(|l| spec.layer_input_size(l))
                .max()
                .unwrap_or(0);
            (
                round_up(inputs.div_ceil(4), 16),
                round_up(spec.hidden_size.div_ceil(4), 16),
            )
        } else {
            (0, 0)
        };
        Ok(LayerState {
            h: try_zeros(hrp, what)?,
            h_next: try_zeros(hrp, what)?,
            c: try_zeros(c, what)?,
            s0: try_zeros(s0, what)?,
            s1: try_zeros(s12, what)?,
            s2: try_zeros(s12, what)?,
            tile: try_zeros(2 * TILE, what)?,
            qx: try_zeros(qx, what)?,
            qh: try_zeros(qh, what)?,
            flip: false,
        })
    }

    /// A copy of this state, or [`Error::Allocation`].
    pub(crate) fn try_clone(&self) -> Result<LayerState> {
        let what = "state copy";
        Ok(LayerState {
            h: try_copy(&self.h, what)?,
            h_next: try_copy(&self.h_next, what)?,
            c: try_copy(&self.c, what)?,
            s0: try_copy(&self.s0, what)?,
            s1: try_copy(&self.s1, what)?,
            s2: try_copy(&self.s2, what)?,
            tile: try_copy(&self.tile, what)?,
            qx: try_copy(&self.qx, what)?,
            qh: try_copy(&self.qh, what)?,
            flip: self.flip,
        })
    }
}

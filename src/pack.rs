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

use aligned_vec::{AVec, ConstAlign};

use crate::cell::spec::{CellKind, Coupling, ModelSpec};
use crate::cell::weights::LayerWeights;
use crate::error::{Error, Result};
use crate::kernels::simd::flush_f32;

/// A 64-byte aligned f32 buffer.
pub(crate) type Buf = AVec<f32, ConstAlign<64>>;

/// Every state and scratch vector is padded to a multiple of this, which
/// covers the widest panel of every ISA (8 vectors of 16 lanes).
pub(crate) const STATE_PAD: usize = 128;

pub(crate) fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// An empty aligned buffer with room for exactly `n` floats, or
/// [`Error::Allocation`] naming `what`.
pub(crate) fn try_buf(n: usize, what: &str) -> Result<Buf> {
    let mut b = AVec::new(64);
    b.try_reserve_exact(n)
        .map_err(|_| Error::alloc(what, n, 4))?;
    Ok(b)
}

/// `n` aligned zeros, or [`Error::Allocation`] naming `what`.
pub(crate) fn try_zeros(n: usize, what: &str) -> Result<Buf> {
    let mut b = try_buf(n, what)?;
    b.resize(n, 0.0);
    Ok(b)
}

/// An aligned copy of `v`, or [`Error::Allocation`] naming `what`.
pub(crate) fn try_copy(v: &[f32], what: &str) -> Result<Buf> {
    let mut b = try_buf(v.len(), what)?;
    b.extend_from_slice(v);
    Ok(b)
}

/// An empty vector with room for exactly `n` values, or
/// [`Error::Allocation`] naming `what`.
pub(crate) fn try_vec<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::alloc(what, n, std::mem::size_of::<T>()))?;
    Ok(v)
}

fn checked(a: &[usize], what: &str) -> Result<usize> {
    a.iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or_else(|| Error::invalid(format!("{what}: size overflows")))
}

/// What the epilogue of a layer computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Op {
    Lstm {
        peephole: bool,
        coupling: Coupling,
        clip: Option<f32>,
        cell_clip: Option<f32>,
        proj: bool,
        proj_clip: Option<f32>,
    },
    GruLbr {
        clip: Option<f32>,
    },
    GruResetBefore {
        clip: Option<f32>,
    },
    Rnn {
        relu: bool,
        clip: Option<f32>,
    },
}

/// One layer and direction, packed for one ISA.
#[derive(Clone, Debug)]
pub(crate) struct PackedLayer {
    pub op: Op,
    /// Inputs to the layer.
    pub input: usize,
    /// Hidden units H.
    pub hidden: usize,
    /// Size of h (P or H).
    pub hr: usize,
    /// Units per multi-gate panel.
    pub u: usize,
    /// Units per single-gate panel.
    pub u1: usize,
    /// Input weights: multi-gate panels (single-gate for RNN).
    pub wx: Buf,
    /// Recurrent weights: multi-gate panels (single-gate for RNN; gates r, z
    /// only for a reset-before GRU).
    pub wh: Buf,
    /// Reset-before GRU: R_n as single-gate panels.
    pub wh_n: Buf,
    /// Biases per panel: `bias_sets × u` values per multi-gate panel, or a
    /// padded vector for single-gate layers.
    pub bias: Buf,
    /// Peepholes p_i, p_f, p_o, each padded to `STATE_PAD`.
    pub peep: Buf,
    /// Projection [P, H] as single-gate panels.
    pub proj: Buf,
    /// Projection bias, padded (zeros if none).
    pub proj_bias: Buf,
}

/// Packs `gates` gates of `rows_per_gate` rows each, `k` columns, into
/// multi-gate panels of `u` units; `src(gate, row, col)`.
fn pack_panels(
    gates: usize,
    rows_per_gate: usize,
    k: usize,
    u: usize,
    src: impl Fn(usize, usize, usize) -> f32,
) -> Result<Buf> {
    let panels = rows_per_gate.div_ceil(u);
    let n = checked(&[panels, k, gates, u], "packed weights")?;
    let mut out = crate::kernels::pages::try_weights_buf(n)?;
    for p in 0..panels {
        for kk in 0..k {
            for g in 0..gates {
                for j in 0..u {
                    let row = p * u + j;
                    out.push(if row < rows_per_gate {
                        flush_f32(src(g, row, kk))
                    } else {
                        0.0
                    });
                }
            }
        }
    }
    Ok(out)
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
    /// with `lanes` f32 lanes; [`Error::Allocation`] if a buffer cannot be
    /// allocated. Allocates the packed buffers only (about the size of
    /// `lw`, rows padded to whole panels), never a temporary copy.
    pub(crate) fn new(
        spec: &ModelSpec,
        layer: usize,
        lw: &LayerWeights,
        lanes: usize,
    ) -> Result<PackedLayer> {
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
        let empty = || AVec::new(64);
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
        let mut pl = PackedLayer {
            op: Op::Rnn {
                relu: false,
                clip: None,
            },
            input,
            hidden: h,
            hr,
            u,
            u1,
            wx: empty(),
            wh: empty(),
            wh_n: empty(),
            bias: empty(),
            peep: empty(),
            proj: empty(),
            proj_bias: empty(),
        };
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
                pl.wx = pack_panels(4, h, input, u, wxa)?;
                pl.wh = pack_panels(4, h, hr, u, wha)?;
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
                    pl.proj = pack_panels(1, p, h, u1, |_, i, k| lw.proj[i * h + k])?;
                    pl.proj_bias = padded(
                        (0..p).map(|i| lw.proj_bias.get(i).copied().unwrap_or(0.0)),
                        round_up(p, STATE_PAD),
                    )?;
                }
            }
            CellKind::Gru(o) => {
                pl.wx = pack_panels(3, h, input, u, wxa)?;
                if o.linear_before_reset {
                    pl.op = Op::GruLbr { clip: o.clip };
                    pl.wh = pack_panels(3, h, hr, u, wha)?;
                    pl.bias = panel_bias(&[
                        &|j| bsum(0, j),
                        &|j| bsum(1, j),
                        &|j| lw.b_w[2 * h + j],
                        &|j| lw.b_r[2 * h + j],
                    ])?;
                } else {
                    pl.op = Op::GruResetBefore { clip: o.clip };
                    pl.wh = pack_panels(2, h, hr, u, wha)?;
                    pl.wh_n = pack_panels(1, h, hr, u1, |_, j, k| wha(2, j, k))?;
                    pl.bias = panel_bias(&[&|j| bsum(0, j), &|j| bsum(1, j), &|j| bsum(2, j)])?;
                }
            }
            CellKind::Rnn(o) => {
                pl.op = Op::Rnn {
                    relu: o.activation == crate::cell::spec::RnnActivation::Relu,
                    clip: o.clip,
                };
                pl.wx = pack_panels(1, h, input, u1, |_, j, k| wxa(0, j, k))?;
                pl.wh = pack_panels(1, h, hr, u1, |_, j, k| wha(0, j, k))?;
                pl.bias = padded((0..h).map(|j| bsum(0, j)), round_up(h, u1))?;
            }
        }
        Ok(pl)
    }

    /// Bytes of packed weights (what one streaming step reads): every
    /// weight, bias, peephole and projection buffer.
    pub(crate) fn weight_bytes(&self) -> usize {
        4 * (self.wx.len()
            + self.wh.len()
            + self.wh_n.len()
            + self.bias.len()
            + self.peep.len()
            + self.proj.len()
            + self.proj_bias.len())
    }
}

/// Per-stream, per-layer state and scratch, every vector padded to
/// `STATE_PAD`.
#[derive(Clone, Debug)]
pub(crate) struct LayerState {
    /// h_{t-1} (size Hr).
    pub h: Buf,
    /// h_t being written (swapped with `h` after the step).
    pub h_next: Buf,
    /// c (LSTM), updated in place.
    pub c: Buf,
    /// Scratch: LSTM projection input m; GRU reset-before z.
    pub s0: Buf,
    /// Scratch: GRU reset-before partial n (bias + W_n x).
    pub s1: Buf,
    /// Scratch: GRU reset-before r⊙h.
    pub s2: Buf,
    /// One panel's gate accumulators, parked by the multi-column kernel.
    pub tile: Buf,
    /// Scan the panels backwards on the next step. The direction alternates
    /// every step so that the panels read last (still in cache) are read
    /// first; it never changes a result (panels are independent rows).
    pub flip: bool,
}

impl LayerState {
    /// A placeholder that owns no memory (fills unused slots of fixed
    /// arrays without allocating).
    pub(crate) fn empty() -> LayerState {
        LayerState {
            h: AVec::new(64),
            h_next: AVec::new(64),
            c: AVec::new(64),
            s0: AVec::new(64),
            s1: AVec::new(64),
            s2: AVec::new(64),
            tile: AVec::new(64),
            flip: false,
        }
    }

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
        Ok(LayerState {
            h: try_zeros(hrp, what)?,
            h_next: try_zeros(hrp, what)?,
            c: try_zeros(c, what)?,
            s0: try_zeros(s0, what)?,
            s1: try_zeros(s12, what)?,
            s2: try_zeros(s12, what)?,
            tile: try_zeros(STATE_PAD, what)?,
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
            flip: self.flip,
        })
    }
}

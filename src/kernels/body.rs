//! The kernel bodies, written once over [`Simd`] and instantiated per ISA
//! and per weight type.
//!
//! Summation order (DESIGN §2), per output row: the accumulator starts at
//! the bias, then one FMA per input column k of x in ascending k, then one
//! per column of h in ascending k. The panel layout (see `pack.rs`), the
//! blocking over columns (streams, batch rows, time steps) and the chunking
//! over k only decide which rows share a vector and when a running sum is
//! parked in memory; they never reorder a row's sum, so every ISA, the
//! scalar path, and the single- and multi-column kernels produce the same
//! bits.
//!
//! Weights are read only through [`Widen::load_w`], which widens the
//! stored element (f32, f16, bf16, int8) exactly to f32; everything else
//! (biases, states, tiles) is f32. With int8 weights ([`Stored::SCALED`])
//! each matrix has its own chain, started at +0 and scaled once per row at
//! its end: `P = fma(A_x, s_W, bias)`, then `a = fma(A_h, s_R, P)`
//! (`reference.rs` states the rule for every cell).
//!
//! The epilogues run on the gate accumulators of one panel right after its
//! GEMV (from registers in the one-column kernel, from an L1-resident tile
//! in the multi-column one): activations, c updated in place, and the new
//! h written to `h_next` (the old h stays intact until every panel has read
//! it).
//!
//! Instantiations: the bodies are inlined into one `#[target_feature]`
//! entry per (ISA, weight type) and operation; the multi-column
//! micro-kernel is one outlined function per (ISA, weight type)
//! ([`Micro`]), which takes exactly `1..=S::GEMM_COLS` columns.

#![forbid(unsafe_code)]

use super::elem::Widen;
use super::panel::{Geom, LayerState, Nv, Op, PackedLayer, Stored, TILE};
use super::simd::{Simd, clamp, relu, sigmoid, tanh};
use crate::cell::spec::Coupling;

/// Accumulators per panel: 8 independent FMA chains hide the FMA latency
/// while the weights stream from cache.
pub(crate) const NACC: usize = 8;
// PERF: no software prefetch in the streaming GEMV. With the weights on
// huge pages (kernels/buf.rs) the hardware prefetchers do better: a
// prefetch 2–8 KiB ahead cost 10–40 % at every H on a Zen 3 (LSTM step
// H = 1024 2.0 → 2.4–2.7 ms, H = 256 29 → 44 µs; best of 4 interleaved).
/// Vectors per gate in a multi-gate panel.
const M: usize = 2;
/// k-chunk of the multi-column kernel (the recurrence of batches and
/// streams). Each chunk loads and stores every column's accumulators once
/// per pair of row vectors, so short chunks cost those round trips; the
/// panel chunk (≤ 64 KiB with AVX2, 128 KiB with AVX-512) is re-read from
/// L2 by the later column groups, which keeps up as in the input
/// projection. PERF: 64 → 256 made batch-16 seq and 16 streams 2–5 %
/// faster on a Zen 2 (LSTM and GRU, H = 128…512, 3 interleaved rounds);
/// a Zen 3 had shown no difference between 64, 128 and 256.
const KC: usize = 256;
/// k-chunk of the input projection: there every column's tile lives in
/// the (large) pre-activation buffer, so fewer, longer chunks save its
/// traffic; the panel chunk (≤ 64 KiB with AVX2) is read from L2, which
/// keeps up since each weight vector feeds `GEMM_COLS` FMAs.
const KP: usize = 256;
// k-pair panels (bf16) are cut into chunks at even k.
const _: () = assert!(KC.is_multiple_of(2) && KP.is_multiple_of(2));
/// Most columns one multi-column call takes (callers split larger sets
/// with [`balanced`]).
pub(crate) const MAX_COLS: usize = 24;

// The single-gate panels (`Nv::V8`) fill all NACC accumulators, and two
// tile regions of NACC vectors of the widest ISA fit `LayerState::tile`.
const _: () = assert!(Nv::V8.n() == NACC && NACC * 16 <= TILE);

/// `0..n` split into the fewest ranges of at most `max` items, as equal as
/// possible (larger ones first): 13 by 6 is 5 + 4 + 4, not 6 + 6 + 1.
/// PERF: a group of one or two columns has too few FMA chains to hide the
/// FMA latency, and a lone column left over by 24-column calls would take
/// the GEMV path and stream every weight again for one stream; 13 streams
/// (LSTM H = 128) 79 → 71 µs, GRU H = 256 155 → 143 µs (min of 30–40
/// interleaved runs); no change where the split was already even (16).
pub(crate) fn balanced(n: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let groups = n.div_ceil(max.max(1));
    let mut start = 0;
    (0..groups).map(move |g| {
        let len = n / groups + usize::from(g < n % groups);
        start += len;
        start - len..start
    })
}

/// The input of one layer step: the layer input x, or the precomputed
/// pre-activations (bias + W·x, in tile layout) from [`input_proj`].
#[derive(Clone, Copy)]
pub(crate) enum In<'a> {
    X(&'a [f32]),
    Pre(&'a [f32]),
}

#[inline(always)]
fn opt_clamp<S: Simd>(s: S, x: S::V, k: Option<f32>) -> S::V {
    match k {
        Some(k) => clamp(s, x, k),
        None => x,
    }
}

/// Floats of the pre-activation tile of one column (all panels).
pub(crate) fn pre_len(pl: &PackedLayer, lanes: usize) -> usize {
    if pl.precision == crate::cell::spec::WeightPrecision::Int8 {
        return super::body_int::pre_len_q(pl, lanes);
    }
    pl.wx.geom.panels * NACC * lanes
}

/// acc[map(i)] += panel[k][i] · v[k] for every k, `NV` vectors per k.
#[inline(always)]
fn mac<S: Widen<W>, W: Stored, const NV: usize>(
    s: S,
    acc: &mut [S::V; NACC],
    (split, dst): (usize, usize),
    panel: &[W],
    v: &[f32],
) {
    let l = S::LANES;
    let map = |i: usize| if i < split { i } else { dst + i - split };
    // The run-time index map is applied outside the loop only: indexed by
    // it inside, the accumulators lived on the stack (a store-to-load
    // round trip per FMA; GRU's h part, nv = 6).
    let mut a: [S::V; NV] = core::array::from_fn(|i| acc[map(i)]);
    if W::KPAIR {
        // k-pairs: every accumulator takes k, then k + 1 (the order of
        // the row's sum is unchanged); an odd last k reads only the low
        // halves (the padding weight is never multiplied).
        let blk = 2 * NV * l;
        for (w, p) in panel.chunks_exact(blk).zip(v.chunks_exact(2)) {
            let (b0, b1) = (s.splat(p[0]), s.splat(p[1]));
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = s.fma(s.load_w_pair(&w[2 * i * l..], false), b0, *ai);
            }
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = s.fma(s.load_w_pair(&w[2 * i * l..], true), b1, *ai);
            }
        }
        if v.len() % 2 == 1 {
            let w = &panel[v.len() / 2 * blk..];
            let b = s.splat(v[v.len() - 1]);
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = s.fma(s.load_w_pair(&w[2 * i * l..], false), b, *ai);
            }
        }
    } else {
        for (blk, &vk) in panel.chunks_exact(NV * l).zip(v) {
            let b = s.splat(vk);
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = s.fma(s.load_w(&blk[i * l..]), b, *ai);
            }
        }
    }
    for (i, ai) in a.into_iter().enumerate() {
        acc[map(i)] = ai;
    }
}

/// [`mac`] for the row width of `g`; `map` is `(g.split, g.dst)`, or
/// [`IDENTITY`] for panels whose vectors feed accumulators 0.. in order (x
/// panels, single-gate panels): a constant map keeps the accumulators in
/// registers.
#[inline(always)]
fn mac_dyn<S: Widen<W>, W: Stored>(
    s: S,
    acc: &mut [S::V; NACC],
    g: &Geom,
    map: (usize, usize),
    panel: &[W],
    v: &[f32],
) {
    match g.nv {
        Nv::V8 => mac::<S, W, 8>(s, acc, map, panel, v),
        Nv::V6 => mac::<S, W, 6>(s, acc, map, panel, v),
        Nv::V4 => mac::<S, W, 4>(s, acc, map, panel, v),
    }
}

/// The accumulator map of x and single-gate panels.
const IDENTITY: (usize, usize) = (NACC, NACC);

/// The chain `acc` of a matrix whose panel vectors map through `g`,
/// started at +0 with int8 weights, joined to the running sum `into`:
/// `into[j] = fma(acc[j], scale[i], into[j])` for the accumulator j of each
/// of the panel's vectors i; the accumulators no vector feeds are left as
/// they are.
#[inline(always)]
fn join_scaled<S: Simd>(
    s: S,
    acc: &[S::V; NACC],
    g: &Geom,
    scale: &[f32],
    into: &mut [S::V; NACC],
) {
    let l = S::LANES;
    for i in 0..g.nv.n() {
        let j = g.acc(i);
        into[j] = s.fma(acc[j], s.load(&scale[i * l..]), into[j]);
    }
}

// ---------------------------------------------------------------- epilogues

/// The gate activation f: sigmoid, or the layer's own (out of line).
#[inline(always)]
fn act_f<S: Simd, const DYN: bool>(s: S, pl: &PackedLayer, x: S::V) -> S::V {
    if DYN && let Some(a) = &pl.acts {
        return s.act(&a[0], x);
    }
    sigmoid(s, x)
}

/// The candidate activation g: tanh, or the layer's own.
#[inline(always)]
fn act_g<S: Simd, const DYN: bool>(s: S, pl: &PackedLayer, x: S::V) -> S::V {
    if DYN && let Some(a) = &pl.acts {
        return s.act(&a[1], x);
    }
    tanh(s, x)
}

/// The LSTM output activation h: tanh, or the layer's own.
#[inline(always)]
fn act_h<S: Simd, const DYN: bool>(s: S, pl: &PackedLayer, x: S::V) -> S::V {
    if DYN && let Some(a) = &pl.acts {
        return s.act(&a[2], x);
    }
    tanh(s, x)
}

/// LSTM epilogue of panel `p`: gates → c (in place) → h (or m with a
/// projection).
#[inline(always)]
fn epi_lstm<S: Simd, const DYN: bool>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::Lstm {
        peephole,
        coupling,
        clip,
        cell_clip,
        proj,
        ..
    } = pl.op
    else {
        return;
    };
    let l = S::LANES;
    let one = s.splat(1.0);
    let hp = st.c.len();
    for v in 0..M {
        let off = p * pl.u + v * l;
        let c = s.load(&st.c[off..]);
        let (mut ai, mut af, ag, mut ao) = (acc[v], acc[M + v], acc[2 * M + v], acc[3 * M + v]);
        if peephole {
            ai = s.fma(s.load(&pl.peep[off..]), c, ai);
            af = s.fma(s.load(&pl.peep[hp + off..]), c, af);
        }
        let (i, f) = match coupling {
            Coupling::None => (
                act_f::<S, DYN>(s, pl, opt_clamp(s, ai, clip)),
                act_f::<S, DYN>(s, pl, opt_clamp(s, af, clip)),
            ),
            Coupling::InputFromForget => {
                let f = act_f::<S, DYN>(s, pl, opt_clamp(s, af, clip));
                (s.sub(one, f), f)
            }
            Coupling::ForgetFromInput => {
                let i = act_f::<S, DYN>(s, pl, opt_clamp(s, ai, clip));
                (i, s.sub(one, i))
            }
        };
        let g = act_g::<S, DYN>(s, pl, opt_clamp(s, ag, clip));
        // c' and h' (or m) flushed: no state value is ever subnormal.
        let c2 = s.flush(opt_clamp(s, s.fma(f, c, s.mul(i, g)), cell_clip));
        s.store(&mut st.c[off..], c2);
        if peephole {
            ao = s.fma(s.load(&pl.peep[2 * hp + off..]), c2, ao);
        }
        let o = act_f::<S, DYN>(s, pl, opt_clamp(s, ao, clip));
        let hv = s.flush(s.mul(o, act_h::<S, DYN>(s, pl, c2)));
        if proj {
            s.store(&mut st.s0[off..], hv);
        } else {
            s.store(&mut st.h_next[off..], hv);
        }
    }
}

/// Linear-before-reset GRU epilogue: acc = r, z, n_x, n_h.
#[inline(always)]
fn epi_gru_lbr<S: Simd, const DYN: bool>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::GruLbr { clip } = pl.op else { return };
    for v in 0..M {
        let off = p * pl.u + v * S::LANES;
        let r = act_f::<S, DYN>(s, pl, opt_clamp(s, acc[v], clip));
        let z = act_f::<S, DYN>(s, pl, opt_clamp(s, acc[M + v], clip));
        let n = act_g::<S, DYN>(
            s,
            pl,
            opt_clamp(s, s.fma(r, acc[3 * M + v], acc[2 * M + v]), clip),
        );
        let hold = s.load(&st.h[off..]);
        // h' = (1 − z)⊙n + z⊙h = n + z⊙(h − n)
        s.store(&mut st.h_next[off..], s.flush(s.fma(z, s.sub(hold, n), n)));
    }
}

/// Reset-before GRU, first epilogue: acc = r, z, n (bias + W_n x). Parks
/// z, the partial n and r⊙h for the second phase.
#[inline(always)]
fn epi_gru_rb1<S: Simd, const DYN: bool>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::GruResetBefore { clip } = pl.op else {
        return;
    };
    for v in 0..M {
        let off = p * pl.u + v * S::LANES;
        let r = act_f::<S, DYN>(s, pl, opt_clamp(s, acc[v], clip));
        let z = act_f::<S, DYN>(s, pl, opt_clamp(s, acc[M + v], clip));
        s.store(&mut st.s0[off..], z);
        s.store(&mut st.s1[off..], acc[2 * M + v]);
        // r⊙h feeds the R_n product: flushed like a state.
        let rh = s.flush(s.mul(r, s.load(&st.h[off..])));
        s.store(&mut st.s2[off..], rh);
    }
}

/// Reset-before GRU, second epilogue (single-gate panel `p`): acc = n.
#[inline(always)]
pub(crate) fn epi_gru_rb2<S: Simd>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    if pl.acts.is_some() {
        epi_gru_rb2_with::<S, true>(s, pl, p, acc, st)
    } else {
        epi_gru_rb2_with::<S, false>(s, pl, p, acc, st)
    }
}

#[inline(always)]
fn epi_gru_rb2_with<S: Simd, const DYN: bool>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::GruResetBefore { clip } = pl.op else {
        return;
    };
    for (i, a) in acc.iter().enumerate() {
        let off = p * pl.u1 + i * S::LANES;
        let n = act_g::<S, DYN>(s, pl, opt_clamp(s, *a, clip));
        let z = s.load(&st.s0[off..]);
        let hold = s.load(&st.h[off..]);
        s.store(&mut st.h_next[off..], s.flush(s.fma(z, s.sub(hold, n), n)));
    }
}

#[inline(always)]
fn epi_rnn<S: Simd, const DYN: bool>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::Rnn {
        relu: is_relu,
        clip,
    } = pl.op
    else {
        return;
    };
    for (i, a) in acc.iter().enumerate() {
        let a = opt_clamp(s, *a, clip);
        let hv = match &pl.acts {
            Some(f) if DYN => s.act(&f[0], a),
            _ if is_relu => relu(s, a),
            _ => tanh(s, a),
        };
        s.store(&mut st.h_next[p * pl.u1 + i * S::LANES..], s.flush(hv));
    }
}

#[inline(always)]
pub(crate) fn epi_proj<S: Simd>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    let Op::Lstm { proj_clip, .. } = pl.op else {
        return;
    };
    for (i, a) in acc.iter().enumerate() {
        s.store(
            &mut st.h_next[p * pl.u1 + i * S::LANES..],
            s.flush(opt_clamp(s, *a, proj_clip)),
        );
    }
}

#[inline(always)]
pub(crate) fn epi_main<S: Simd>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    acc: &[S::V; NACC],
    st: &mut LayerState,
) {
    // Two instantiations of each epilogue: the standard activations
    // inlined (no call, so no spills around one), or the layer's own.
    match (pl.op, pl.acts.is_some()) {
        (Op::Lstm { .. }, false) => epi_lstm::<S, false>(s, pl, p, acc, st),
        (Op::Lstm { .. }, true) => epi_lstm::<S, true>(s, pl, p, acc, st),
        (Op::GruLbr { .. }, false) => epi_gru_lbr::<S, false>(s, pl, p, acc, st),
        (Op::GruLbr { .. }, true) => epi_gru_lbr::<S, true>(s, pl, p, acc, st),
        (Op::GruResetBefore { .. }, false) => epi_gru_rb1::<S, false>(s, pl, p, acc, st),
        (Op::GruResetBefore { .. }, true) => epi_gru_rb1::<S, true>(s, pl, p, acc, st),
        (Op::Rnn { .. }, false) => epi_rnn::<S, false>(s, pl, p, acc, st),
        (Op::Rnn { .. }, true) => epi_rnn::<S, true>(s, pl, p, acc, st),
    }
}

// ---------------------------------------------------------------- one column

#[inline(always)]
pub(crate) fn load_acc<S: Simd>(s: S, src: &[f32]) -> [S::V; NACC] {
    let l = S::LANES;
    let mut acc = [s.splat(0.0); NACC];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = s.load(&src[i * l..]);
    }
    acc
}

#[inline(always)]
pub(crate) fn store_acc<S: Simd>(s: S, dst: &mut [f32], acc: &[S::V; NACC]) {
    let l = S::LANES;
    for (i, v) in acc.iter().enumerate() {
        s.store(&mut dst[i * l..], *v);
    }
}

/// The bias of panel `p`, as NACC vectors (unused ones zero).
#[inline(always)]
pub(crate) fn bias_acc<S: Simd>(s: S, pl: &PackedLayer, p: usize) -> [S::V; NACC] {
    let l = S::LANES;
    let sets = pl.bias_sets;
    let w = sets * l;
    let mut acc = [s.splat(0.0); NACC];
    for (i, a) in acc.iter_mut().take(sets).enumerate() {
        *a = s.load(&pl.bias[p * w + i * l..]);
    }
    acc
}

/// bias + W·x of panel `p` for one column, in the tile layout.
#[inline(always)]
fn x_part<S: Widen<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    panel: &[W],
    x: &[f32],
) -> [S::V; NACC] {
    let g = &pl.wx.geom;
    let mut acc = bias_acc(s, pl, p);
    if W::SCALED {
        let mut a = [s.splat(0.0); NACC];
        mac_dyn(s, &mut a, g, IDENTITY, panel, &x[..pl.input]);
        join_scaled(s, &a, g, pl.wx.scale(p), &mut acc);
    } else {
        mac_dyn(s, &mut acc, g, IDENTITY, panel, &x[..pl.input]);
    }
    acc
}

/// `acc` += R·h of panel `p` (scaled and joined with int8 weights).
#[inline(always)]
fn h_part<S: Widen<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    p: usize,
    panel: &[W],
    h: &[f32],
    acc: &mut [S::V; NACC],
) {
    let g = &pl.wh.geom;
    if W::SCALED {
        let mut a = [s.splat(0.0); NACC];
        mac_dyn(s, &mut a, g, (g.split, g.dst), panel, &h[..pl.hr]);
        join_scaled(s, &a, g, pl.wh.scale(p), acc);
    } else {
        mac_dyn(s, acc, g, (g.split, g.dst), panel, &h[..pl.hr]);
    }
}

/// One time step of one layer for one stream: reads the input and `st.h`,
/// updates `st.c` in place and writes `st.h_next`.
#[inline(always)]
pub(crate) fn layer_step<S: Widen<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    input: In<'_>,
    st: &mut LayerState,
) {
    debug_assert_eq!(pl.u, M * S::LANES);
    debug_assert_eq!(pl.precision, W::PRECISION);
    let l = S::LANES;
    let panels = pl.wx.geom.panels;
    // The panel slices are cut here, outside the per-panel calls (one
    // type check per call, not two per panel).
    let (wx, xw) = (pl.wx.all::<W>(), pl.wx.geom.panel_len());
    let (wh, hw) = (pl.wh.all::<W>(), pl.wh.geom.panel_len());
    let flip = st.flip;
    st.flip = !flip;
    for i in 0..panels {
        let p = if flip { panels - 1 - i } else { i };
        let mut acc = match input {
            In::X(x) => x_part::<S, W>(s, pl, p, &wx[p * xw..(p + 1) * xw], x),
            In::Pre(pre) => load_acc(s, &pre[p * NACC * l..]),
        };
        h_part::<S, W>(s, pl, p, &wh[p * hw..(p + 1) * hw], &st.h, &mut acc);
        epi_main(s, pl, p, &acc, st);
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate::<S, W>(s, pl, st, Phase2::Gru, flip),
        Op::Lstm { proj: true, .. } => single_gate::<S, W>(s, pl, st, Phase2::Proj, flip),
        _ => {}
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Phase2 {
    Gru,
    Proj,
}

/// The single-gate second pass of one column: GRU n += R_n (r⊙h), or the
/// LSTM projection h = b + W_proj m.
#[inline(always)]
fn single_gate<S: Widen<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    st: &mut LayerState,
    ph: Phase2,
    flip: bool,
) {
    let u1 = pl.u1;
    let w = match ph {
        Phase2::Gru => &pl.wh_n,
        Phase2::Proj => &pl.proj,
    };
    let (g, n) = (&w.geom, w.geom.panels);
    for i in 0..n {
        let p = if flip { n - 1 - i } else { i };
        let mut acc = match ph {
            Phase2::Gru => load_acc(s, &st.s1[p * u1..]),
            Phase2::Proj => load_acc(s, &pl.proj_bias[p * u1..]),
        };
        let v = match ph {
            Phase2::Gru => &st.s2[..g.k],
            Phase2::Proj => &st.s0[..g.k],
        };
        if W::SCALED {
            let mut a = [s.splat(0.0); NACC];
            mac::<S, W, 8>(s, &mut a, IDENTITY, w.panel::<W>(p), v);
            join_scaled(s, &a, g, w.scale(p), &mut acc);
        } else {
            mac::<S, W, 8>(s, &mut acc, IDENTITY, w.panel::<W>(p), v);
        }
        match ph {
            Phase2::Gru => epi_gru_rb2(s, pl, p, &acc, st),
            Phase2::Proj => epi_proj(s, pl, p, &acc, st),
        }
    }
}

// ---------------------------------------------------------------- many columns

/// One k-chunk of the multi-column GEMM for one panel: `tiles[c][map(i)]
/// += Σ_{k0 ≤ k < k1} panel[k][i] · inputs[c][k]` for every column c
/// (`map` from `split`, `dst` as in [`Geom`]). With `pf`, the first column
/// group prefetches the next chunk of the weights (the panel is contiguous
/// with the next one, so this runs ahead across panels too). PERF: without
/// it the first pass over each chunk waits on every cache line from
/// L3/DRAM (LSTM H = 1024, 16 columns: 63 % of the samples on the weight
/// load).
#[derive(Clone, Copy)]
pub(crate) struct Chunk<'a, W> {
    pub panel: &'a [W],
    pub nv: Nv,
    pub split: usize,
    pub dst: usize,
    pub k0: usize,
    pub k1: usize,
    pub pf: bool,
}

impl<'a, W> Chunk<'a, W> {
    /// The k-range `k0..k1` of `panel`, whose geometry is `g`.
    #[inline(always)]
    fn of(panel: &'a [W], g: &Geom, k0: usize, k1: usize, pf: bool) -> Chunk<'a, W> {
        Chunk {
            panel,
            nv: g.nv,
            split: g.split,
            dst: g.dst,
            k0,
            k1,
            pf,
        }
    }
}

/// The multi-column micro-kernel of one ISA and weight type: [`Chunk`]
/// over up to [`MAX_COLS`] columns, one outlined `#[target_feature]`
/// function per (ISA, weight type) (generated by `entries!` in
/// kernels/mod.rs, which dispatches each [`balanced`] group of
/// `1..=S::GEMM_COLS` columns to [`gemm_block`] for exactly its count).
pub(crate) trait Micro<W: Stored>: Widen<W> {
    fn gemm_chunk(self, c: Chunk<'_, W>, inputs: &[&[f32]], tiles: &mut [&mut [f32]]);
}

/// [`Chunk`] for exactly `NC` columns, `NV` vectors per k: with both
/// constant the micro-kernel needs no division and no bounds check per k.
#[inline(always)]
pub(crate) fn gemm_block<S: Widen<W>, W: Stored, const NV: usize, const NC: usize>(
    s: S,
    c: Chunk<'_, W>,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let Chunk {
        panel,
        split,
        dst,
        k0,
        k1,
        pf,
        ..
    } = c;
    debug_assert_eq!(c.nv.n(), NV);
    let l = S::LANES;
    let blk = NV * l;
    let n = k1 - k0;
    // k-pair panels: chunks start at even k (KC and KP are even); an odd
    // chunk end takes its whole last pair, whose high half is not read.
    debug_assert!(!W::KPAIR || k0 % 2 == 0);
    let end = if W::KPAIR { k1.next_multiple_of(2) } else { k1 };
    let pan = &panel[k0 * blk..end * blk];
    // Exactly NC columns, never a prefix of more.
    assert!(inputs.len() == NC && tiles.len() == NC);
    let mut xs: [&[f32]; NC] = [&[]; NC];
    for c in 0..NC {
        xs[c] = &inputs[c][k0..k1];
        assert_eq!(xs[c].len(), n);
    }
    let map = |i: usize| if i < split { i } else { dst + i - split };
    let mut vg = 0;
    while vg < NV {
        let (t0, t1) = (map(vg) * l, map(vg + 1) * l);
        let mut a0 = [s.splat(0.0); NC];
        let mut a1 = [s.splat(0.0); NC];
        for c in 0..NC {
            a0[c] = s.load(&tiles[c][t0..]);
            a1[c] = s.load(&tiles[c][t1..]);
        }
        if W::KPAIR {
            for (j, w) in pan.chunks_exact(2 * blk).enumerate() {
                if pf {
                    let p = w.as_ptr().wrapping_add(KC * blk + 2 * vg * l).cast::<u8>();
                    let mut d = 0;
                    while d < 4 * l * W::BYTES {
                        s.prefetch_l2(p.wrapping_add(d).cast());
                        d += 64;
                    }
                }
                for h in 0..2 {
                    let kk = 2 * j + h;
                    if kk >= n {
                        break;
                    }
                    let w0 = s.load_w_pair(&w[2 * vg * l..], h == 1);
                    let w1 = s.load_w_pair(&w[2 * (vg + 1) * l..], h == 1);
                    for c in 0..NC {
                        let b = s.splat(xs[c][kk]);
                        a0[c] = s.fma(w0, b, a0[c]);
                        a1[c] = s.fma(w1, b, a1[c]);
                    }
                }
            }
        } else {
            for (j, w) in pan.chunks_exact(blk).enumerate() {
                if pf {
                    // The same two vectors, one chunk ahead (a hint: never
                    // faults, even past the end of the weights).
                    let mut d = 0;
                    while d < 2 * l * W::BYTES {
                        let p = w.as_ptr().wrapping_add(KC * blk + vg * l).cast::<u8>();
                        s.prefetch_l2(p.wrapping_add(d).cast());
                        d += 64;
                    }
                }
                let w0 = s.load_w(&w[vg * l..]);
                let w1 = s.load_w(&w[(vg + 1) * l..]);
                for c in 0..NC {
                    let b = s.splat(xs[c][j]);
                    a0[c] = s.fma(w0, b, a0[c]);
                    a1[c] = s.fma(w1, b, a1[c]);
                }
            }
        }
        for c in 0..NC {
            s.store(&mut tiles[c][t0..], a0[c]);
            s.store(&mut tiles[c][t1..], a1[c]);
        }
        vg += 2;
    }
}

/// tiles[c][map(i)] += Σ_k panel[k][i] · inputs[c][k] for every column c,
/// k in chunks of `KC`; each row still sums its k in ascending order.
#[inline(always)]
fn gemm_cols<S: Micro<W>, W: Stored>(
    s: S,
    panel: &[W],
    g: &Geom,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let mut k0 = 0;
    while k0 < g.k {
        let k1 = (k0 + KC).min(g.k);
        s.gemm_chunk(Chunk::of(panel, g, k0, k1, true), inputs, tiles);
        k0 = k1;
    }
}

/// The running sums `init` of one tile joined, as [`join_scaled`], with
/// the int8 chain parked in `tile` at `chain_off` (NACC vectors).
#[inline(always)]
fn join_tiles<S: Simd>(
    s: S,
    tile: &[f32],
    chain_off: usize,
    init: &[S::V; NACC],
    g: &Geom,
    scale: &[f32],
) -> [S::V; NACC] {
    let chain = load_acc(s, &tile[chain_off..]);
    let mut into = *init;
    join_scaled(s, &chain, g, scale, &mut into);
    into
}

/// Pre-activations bias + W·x of every column, for every panel, in the
/// tile layout `layer_step` with [`In::Pre`] reads (`pre_len` floats per
/// column). This is the input-projection GEMM of sequences and chunks.
#[inline(always)]
pub(crate) fn input_proj<S: Micro<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    xs: &[&[f32]],
    out: &mut [&mut [f32]],
) {
    let l = S::LANES;
    let g = &pl.wx.geom;
    let tw = NACC * l;
    // Panel-major: each panel is read from memory once for all columns
    // (its current k-chunk stays in L1 while every column group uses it).
    for p in 0..g.panels {
        let b = bias_acc(s, pl, p);
        let init = if W::SCALED { [s.splat(0.0); NACC] } else { b };
        for o in out.iter_mut() {
            store_acc(s, &mut o[p * tw..], &init);
        }
        let panel = pl.wx.panel::<W>(p);
        let mut k0 = 0;
        while k0 < pl.input {
            let k1 = (k0 + KP).min(pl.input);
            for r in balanced(xs.len(), MAX_COLS) {
                let (c0, c1) = (r.start, r.end);
                let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
                for (t, o) in tiles.iter_mut().zip(out[c0..c1].iter_mut()) {
                    *t = &mut o[p * tw..(p + 1) * tw];
                }
                let c = Chunk::of(panel, g, k0, k1, c0 == 0);
                s.gemm_chunk(c, &xs[c0..c1], &mut tiles[..c1 - c0]);
            }
            k0 = k1;
        }
        if W::SCALED {
            for o in out.iter_mut() {
                let t = &mut o[p * tw..(p + 1) * tw];
                let v = join_tiles(s, t, 0, &b, g, pl.wx.scale(p));
                store_acc(s, t, &v);
            }
        }
    }
}

/// One step of one layer for up to `MAX_COLS` streams at once: every
/// weight panel is read once for all of them. Bit-identical to
/// [`layer_step`] on each stream alone. `inputs[c]` is stream c's input;
/// each state's `tile` holds its pre-activations (and, with int8 weights,
/// the recurrent chain in its second region).
#[inline(always)]
pub(crate) fn layer_step_cols<S: Micro<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    inputs: &[In<'_>],
    sts: &mut [&mut LayerState],
) {
    let l = S::LANES;
    let n = sts.len();
    assert!(n <= MAX_COLS && inputs.len() == n);
    debug_assert_eq!(pl.precision, W::PRECISION);
    let (gx, gh) = (&pl.wx.geom, &pl.wh.geom);
    let tw = NACC * l;
    let zero = [s.splat(0.0); NACC];
    // All columns of one call have the same kind of input.
    let has_x = matches!(inputs.first(), Some(In::X(_)));
    debug_assert!(inputs.iter().all(|i| matches!(i, In::X(_)) == has_x));
    for p in 0..gx.panels {
        // Initialise each tile: bias (x part added below; +0 for the
        // scaled x chain) or the precomputed pre-activations.
        let mut xs: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
        for (c, st) in sts.iter_mut().enumerate() {
            let init = match inputs[c] {
                In::X(x) => {
                    xs[c] = &x[..pl.input];
                    if W::SCALED { zero } else { bias_acc(s, pl, p) }
                }
                In::Pre(pre) => load_acc(s, &pre[p * tw..]),
            };
            store_acc(s, &mut st.tile, &init);
            if W::SCALED {
                store_acc(s, &mut st.tile[TILE..], &zero);
            }
        }
        if has_x {
            let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
            for (t, st) in tiles.iter_mut().zip(sts.iter_mut()) {
                *t = &mut st.tile[..tw];
            }
            gemm_cols(s, pl.wx.panel::<W>(p), gx, &xs[..n], &mut tiles[..n]);
            if W::SCALED {
                let b = bias_acc(s, pl, p);
                for st in sts.iter_mut() {
                    let v = join_tiles(s, &st.tile, 0, &b, gx, pl.wx.scale(p));
                    store_acc(s, &mut st.tile, &v);
                }
            }
        }
        {
            // The recurrent chain: into the running sums, or (int8) into
            // the second tile region, joined below.
            let off = if W::SCALED { TILE } else { 0 };
            let mut hs: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
            let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
            for (c, st) in sts.iter_mut().enumerate() {
                let LayerState { h, tile, .. } = &mut **st;
                hs[c] = &h[..pl.hr];
                tiles[c] = &mut tile[off..off + tw];
            }
            gemm_cols(s, pl.wh.panel::<W>(p), gh, &hs[..n], &mut tiles[..n]);
        }
        for st in sts.iter_mut() {
            let mut acc = load_acc(s, &st.tile);
            if W::SCALED {
                acc = join_tiles(s, &st.tile, TILE, &acc, gh, pl.wh.scale(p));
            }
            epi_main(s, pl, p, &acc, st);
        }
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate_cols::<S, W>(s, pl, sts, Phase2::Gru),
        Op::Lstm { proj: true, .. } => single_gate_cols::<S, W>(s, pl, sts, Phase2::Proj),
        _ => {}
    }
}

#[inline(always)]
fn single_gate_cols<S: Micro<W>, W: Stored>(
    s: S,
    pl: &PackedLayer,
    sts: &mut [&mut LayerState],
    ph: Phase2,
) {
    let u1 = pl.u1;
    let n = sts.len();
    let w = match ph {
        Phase2::Gru => &pl.wh_n,
        Phase2::Proj => &pl.proj,
    };
    let g = &w.geom;
    let k = g.k;
    let off = if W::SCALED { TILE } else { 0 };
    let zero = [s.splat(0.0); NACC];
    for p in 0..g.panels {
        let mut vs: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
        let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
        for (c, st) in sts.iter_mut().enumerate() {
            let LayerState {
                s0, s1, s2, tile, ..
            } = &mut **st;
            let init = match ph {
                Phase2::Gru => load_acc(s, &s1[p * u1..]),
                Phase2::Proj => load_acc(s, &pl.proj_bias[p * u1..]),
            };
            store_acc(s, tile, &init);
            if W::SCALED {
                store_acc(s, &mut tile[TILE..], &zero);
            }
            vs[c] = match ph {
                Phase2::Gru => &s2[..k],
                Phase2::Proj => &s0[..k],
            };
            tiles[c] = &mut tile[off..off + u1];
        }
        gemm_cols(s, w.panel::<W>(p), g, &vs[..n], &mut tiles[..n]);
        for st in sts.iter_mut() {
            let mut acc = load_acc(s, &st.tile);
            if W::SCALED {
                acc = join_tiles(s, &st.tile, TILE, &acc, g, w.scale(p));
            }
            match ph {
                Phase2::Gru => epi_gru_rb2(s, pl, p, &acc, st),
                Phase2::Proj => epi_proj(s, pl, p, &acc, st),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::balanced;

    #[test]
    fn balanced_splits_evenly_into_the_fewest_groups() {
        for max in 1..=9 {
            for n in 0..=60 {
                let rs: Vec<_> = balanced(n, max).collect();
                assert_eq!(rs.len(), n.div_ceil(max), "n {n} max {max}");
                let mut next = 0;
                for r in &rs {
                    assert_eq!(r.start, next);
                    assert!(!r.is_empty() && r.len() <= max, "n {n} max {max}: {rs:?}");
                    next = r.end;
                }
                assert_eq!(next, n);
                let (lo, hi) = (
                    rs.iter().map(|r| r.len()).min(),
                    rs.iter().map(|r| r.len()).max(),
                );
                assert!(
                    hi.unwrap_or(0) - lo.unwrap_or(0) <= 1,
                    "n {n} max {max}: {rs:?}"
                );
            }
        }
        let sizes: Vec<usize> = balanced(13, 6).map(|r| r.len()).collect();
        assert_eq!(sizes, [5, 4, 4]);
    }
}

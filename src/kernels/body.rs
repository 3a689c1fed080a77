//! The kernel bodies, written once over [`Simd`] and instantiated per ISA.
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
//! The epilogues run on the gate accumulators of one panel right after its
//! GEMV (from registers in the one-column kernel, from an L1-resident tile
//! in the multi-column one): activations, c updated in place, and the new
//! h written to `h_next` (the old h stays intact until every panel has read
//! it).

#![forbid(unsafe_code)]

use super::simd::{Simd, clamp, relu, sigmoid, tanh};
use crate::cell::spec::Coupling;
use crate::pack::{LayerState, Op, PackedLayer};

/// Accumulators per panel: 8 independent FMA chains hide the FMA latency
/// while the weights stream from cache.
pub(crate) const NACC: usize = 8;
// PERF: no software prefetch in the streaming GEMV. With the weights on
// huge pages (kernels/pages.rs) the hardware prefetchers do better: a
// prefetch 2–8 KiB ahead cost 10–40 % at every H on a Zen 3 (LSTM step
// H = 1024 2.0 → 2.4–2.7 ms, H = 256 29 → 44 µs; best of 4 interleaved).
/// Vectors per gate in a multi-gate panel.
const M: usize = 2;
/// k-chunk of the multi-column kernel: a chunk of a panel (≤ 16 KiB with
/// AVX2, 32 KiB with AVX-512) stays in L1 while every column group reuses it.
const KC: usize = 64;
/// k-chunk of the input projection: there every column's tile lives in
/// the (large) pre-activation buffer, so fewer, longer chunks save its
/// traffic; the panel chunk (≤ 64 KiB with AVX2) is read from L2, which
/// keeps up since each weight vector feeds `GEMM_COLS` FMAs.
const KP: usize = 256;
/// Most columns one multi-column call takes (callers split larger sets
/// with [`balanced`]).
pub(crate) const MAX_COLS: usize = 24;

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

/// Vectors per k of a panel: the only row widths the panels have (LSTM
/// and RNN 8, GRU 6, the reset-before GRU's r, z part 4), so every match
/// over it is exhaustive, with no default arm to fall into.
#[derive(Clone, Copy)]
enum Nv {
    V4 = 4,
    V6 = 6,
    V8 = 8,
}

impl Nv {
    #[inline(always)]
    const fn n(self) -> usize {
        self as usize
    }
}

// The single-gate panels (`Nv::V8` in `single_gate_cols`) fill all NACC
// accumulators.
const _: () = assert!(Nv::V8.n() == NACC);

/// Geometry of a layer's panels.
struct Geo {
    /// Vectors per k in the x panels.
    nv_x: Nv,
    /// Vectors per k in the h panels.
    nv_h: Nv,
    /// h-panel vectors `[split, nv_h)` accumulate into `[dst, ..)`.
    split: usize,
    dst: usize,
    /// Number of panels.
    panels: usize,
}

fn geo(pl: &PackedLayer) -> Geo {
    let (nv_x, nv_h, split, dst, units) = match pl.op {
        Op::Lstm { .. } => (Nv::V8, Nv::V8, 8, 8, pl.u),
        Op::GruLbr { .. } => (Nv::V6, Nv::V6, 4, 6, pl.u),
        Op::GruResetBefore { .. } => (Nv::V6, Nv::V4, 4, 4, pl.u),
        Op::Rnn { .. } => (Nv::V8, Nv::V8, 8, 8, pl.u1),
    };
    Geo {
        nv_x,
        nv_h,
        split,
        dst,
        panels: pl.hidden.div_ceil(units),
    }
}

/// Floats of the pre-activation tile of one column (all panels).
pub(crate) fn pre_len(pl: &PackedLayer, lanes: usize) -> usize {
    geo(pl).panels * NACC * lanes
}

/// acc[map(i)] += panel[k][i] · v[k] for every k, `NV` vectors per k.
#[inline(always)]
fn mac<S: Simd, const NV: usize>(
    s: S,
    acc: &mut [S::V; NACC],
    split: usize,
    dst: usize,
    panel: &[f32],
    v: &[f32],
) {
    let l = S::LANES;
    let map = |i: usize| if i < split { i } else { dst + i - split };
    // The run-time index map is applied outside the loop only: indexed by
    // it inside, the accumulators lived on the stack (a store-to-load
    // round trip per FMA; GRU's h part, nv = 6).
    let mut a: [S::V; NV] = core::array::from_fn(|i| acc[map(i)]);
    for (blk, &vk) in panel.chunks_exact(NV * l).zip(v) {
        let b = s.splat(vk);
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = s.fma(s.load(&blk[i * l..]), b, *ai);
        }
    }
    for (i, ai) in a.into_iter().enumerate() {
        acc[map(i)] = ai;
    }
}

#[inline(always)]
fn mac_dyn<S: Simd>(s: S, acc: &mut [S::V; NACC], g: &Geo, x: bool, panel: &[f32], v: &[f32]) {
    let (nv, split, dst) = if x {
        (g.nv_x, NACC, NACC)
    } else {
        (g.nv_h, g.split, g.dst)
    };
    match nv {
        Nv::V8 => mac::<S, 8>(s, acc, split, dst, panel, v),
        Nv::V6 => mac::<S, 6>(s, acc, split, dst, panel, v),
        Nv::V4 => mac::<S, 4>(s, acc, split, dst, panel, v),
    }
}

// ---------------------------------------------------------------- epilogues

/// LSTM epilogue of panel `p`: gates → c (in place) → h (or m with a
/// projection).
#[inline(always)]
fn epi_lstm<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
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
                sigmoid(s, opt_clamp(s, ai, clip)),
                sigmoid(s, opt_clamp(s, af, clip)),
            ),
            Coupling::InputFromForget => {
                let f = sigmoid(s, opt_clamp(s, af, clip));
                (s.sub(one, f), f)
            }
            Coupling::ForgetFromInput => {
                let i = sigmoid(s, opt_clamp(s, ai, clip));
                (i, s.sub(one, i))
            }
        };
        let g = tanh(s, opt_clamp(s, ag, clip));
        // c' and h' (or m) flushed: no state value is ever subnormal.
        let c2 = s.flush(opt_clamp(s, s.fma(f, c, s.mul(i, g)), cell_clip));
        s.store(&mut st.c[off..], c2);
        if peephole {
            ao = s.fma(s.load(&pl.peep[2 * hp + off..]), c2, ao);
        }
        let o = sigmoid(s, opt_clamp(s, ao, clip));
        let hv = s.flush(s.mul(o, tanh(s, c2)));
        if proj {
            s.store(&mut st.s0[off..], hv);
        } else {
            s.store(&mut st.h_next[off..], hv);
        }
    }
}

/// Linear-before-reset GRU epilogue: acc = r, z, n_x, n_h.
#[inline(always)]
fn epi_gru_lbr<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
    let Op::GruLbr { clip } = pl.op else { return };
    for v in 0..M {
        let off = p * pl.u + v * S::LANES;
        let r = sigmoid(s, opt_clamp(s, acc[v], clip));
        let z = sigmoid(s, opt_clamp(s, acc[M + v], clip));
        let n = tanh(
            s,
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
fn epi_gru_rb1<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
    let Op::GruResetBefore { clip } = pl.op else {
        return;
    };
    for v in 0..M {
        let off = p * pl.u + v * S::LANES;
        let r = sigmoid(s, opt_clamp(s, acc[v], clip));
        let z = sigmoid(s, opt_clamp(s, acc[M + v], clip));
        s.store(&mut st.s0[off..], z);
        s.store(&mut st.s1[off..], acc[2 * M + v]);
        // r⊙h feeds the R_n product: flushed like a state.
        let rh = s.flush(s.mul(r, s.load(&st.h[off..])));
        s.store(&mut st.s2[off..], rh);
    }
}

/// Reset-before GRU, second epilogue (single-gate panel `p`): acc = n.
#[inline(always)]
fn epi_gru_rb2<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
    let Op::GruResetBefore { clip } = pl.op else {
        return;
    };
    for (i, a) in acc.iter().enumerate() {
        let off = p * pl.u1 + i * S::LANES;
        let n = tanh(s, opt_clamp(s, *a, clip));
        let z = s.load(&st.s0[off..]);
        let hold = s.load(&st.h[off..]);
        s.store(&mut st.h_next[off..], s.flush(s.fma(z, s.sub(hold, n), n)));
    }
}

#[inline(always)]
fn epi_rnn<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
    let Op::Rnn {
        relu: is_relu,
        clip,
    } = pl.op
    else {
        return;
    };
    for (i, a) in acc.iter().enumerate() {
        let a = opt_clamp(s, *a, clip);
        let hv = if is_relu { relu(s, a) } else { tanh(s, a) };
        s.store(&mut st.h_next[p * pl.u1 + i * S::LANES..], s.flush(hv));
    }
}

#[inline(always)]
fn epi_proj<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
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
fn epi_main<S: Simd>(s: S, pl: &PackedLayer, p: usize, acc: &[S::V; NACC], st: &mut LayerState) {
    match pl.op {
        Op::Lstm { .. } => epi_lstm(s, pl, p, acc, st),
        Op::GruLbr { .. } => epi_gru_lbr(s, pl, p, acc, st),
        Op::GruResetBefore { .. } => epi_gru_rb1(s, pl, p, acc, st),
        Op::Rnn { .. } => epi_rnn(s, pl, p, acc, st),
    }
}

// ---------------------------------------------------------------- one column

#[inline(always)]
fn load_acc<S: Simd>(s: S, src: &[f32]) -> [S::V; NACC] {
    let l = S::LANES;
    let mut acc = [s.splat(0.0); NACC];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = s.load(&src[i * l..]);
    }
    acc
}

/// The bias of panel `p`, as NACC vectors (unused ones zero).
#[inline(always)]
fn bias_acc<S: Simd>(s: S, pl: &PackedLayer, g: &Geo, p: usize) -> [S::V; NACC] {
    let l = S::LANES;
    let sets = match pl.op {
        Op::GruResetBefore { .. } => 6,
        _ => NACC,
    };
    let w = sets * l;
    let mut acc = [s.splat(0.0); NACC];
    for (i, a) in acc.iter_mut().take(sets).enumerate() {
        *a = s.load(&pl.bias[p * w + i * l..]);
    }
    let _ = g;
    acc
}

/// One time step of one layer for one stream: reads the input and `st.h`,
/// updates `st.c` in place and writes `st.h_next`.
#[inline(always)]
pub(crate) fn layer_step<S: Simd>(s: S, pl: &PackedLayer, input: In<'_>, st: &mut LayerState) {
    debug_assert_eq!(pl.u, M * S::LANES);
    let l = S::LANES;
    let g = geo(pl);
    let (xw, hw) = (g.nv_x.n() * l * pl.input, g.nv_h.n() * l * pl.hr);
    let flip = st.flip;
    st.flip = !flip;
    for i in 0..g.panels {
        let p = if flip { g.panels - 1 - i } else { i };
        let mut acc = match input {
            In::X(x) => {
                let mut acc = bias_acc(s, pl, &g, p);
                mac_dyn(
                    s,
                    &mut acc,
                    &g,
                    true,
                    &pl.wx[p * xw..(p + 1) * xw],
                    &x[..pl.input],
                );
                acc
            }
            In::Pre(pre) => load_acc(s, &pre[p * NACC * l..]),
        };
        mac_dyn(
            s,
            &mut acc,
            &g,
            false,
            &pl.wh[p * hw..(p + 1) * hw],
            &st.h[..pl.hr],
        );
        epi_main(s, pl, p, &acc, st);
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate(s, pl, st, Phase2::Gru, flip),
        Op::Lstm { proj: true, .. } => single_gate(s, pl, st, Phase2::Proj, flip),
        _ => {}
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Phase2 {
    Gru,
    Proj,
}

/// The single-gate second pass of one column: GRU n += R_n (r⊙h), or the
/// LSTM projection h = b + W_proj m.
#[inline(always)]
fn single_gate<S: Simd>(s: S, pl: &PackedLayer, st: &mut LayerState, ph: Phase2, flip: bool) {
    let u1 = pl.u1;
    let (rows, k, w) = match ph {
        Phase2::Gru => (pl.hidden, pl.hr, &pl.wh_n),
        Phase2::Proj => (pl.hr, pl.hidden, &pl.proj),
    };
    let pw = k * u1;
    let n = rows.div_ceil(u1);
    for i in 0..n {
        let p = if flip { n - 1 - i } else { i };
        let mut acc = match ph {
            Phase2::Gru => load_acc(s, &st.s1[p * u1..]),
            Phase2::Proj => load_acc(s, &pl.proj_bias[p * u1..]),
        };
        let v = match ph {
            Phase2::Gru => &st.s2[..k],
            Phase2::Proj => &st.s0[..k],
        };
        mac::<S, 8>(s, &mut acc, NACC, NACC, &w[p * pw..(p + 1) * pw], v);
        match ph {
            Phase2::Gru => epi_gru_rb2(s, pl, p, &acc, st),
            Phase2::Proj => epi_proj(s, pl, p, &acc, st),
        }
    }
}

// ---------------------------------------------------------------- many columns

/// tiles[c][map(i)] += Σ_k panel[k][i] · inputs[c][k] for every column c,
/// `nv` vectors per k; each tile is one panel's NACC vectors. Columns are
/// taken in [`balanced`] groups of at most `S::GEMM_COLS`, vectors two at a
/// time, k in chunks of `KC`; each row still sums its k in ascending order.
#[inline(always)]
fn gemm_cols<S: Simd>(
    s: S,
    panel: &[f32],
    nv: Nv,
    split: usize,
    dst: usize,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let k_len = panel.len() / (nv.n() * S::LANES);
    let mut k0 = 0;
    while k0 < k_len {
        let k1 = (k0 + KC).min(k_len);
        gemm_chunk(s, panel, nv, split, dst, k0, k1, inputs, tiles, true);
        k0 = k1;
    }
}

/// [`gemm_cols`] over the k-chunk `k0..k1` only. With `pf`, the first
/// column group prefetches the next chunk of the weights (the panel is
/// contiguous with the next one, so this runs ahead across panels too).
/// PERF: without it the first pass over each chunk waits on every cache
/// line from L3/DRAM (LSTM H = 1024, 16 columns: 63 % of the samples on
/// the weight load).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_chunk<S: Simd>(
    s: S,
    panel: &[f32],
    nv: Nv,
    split: usize,
    dst: usize,
    k0: usize,
    k1: usize,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
    pf: bool,
) {
    let a = (panel, split, dst, k0, k1);
    match nv {
        Nv::V8 => gemm_chunk_nv::<S, 8>(s, a, inputs, tiles, pf),
        Nv::V6 => gemm_chunk_nv::<S, 6>(s, a, inputs, tiles, pf),
        Nv::V4 => gemm_chunk_nv::<S, 4>(s, a, inputs, tiles, pf),
    }
}

/// [`gemm_chunk`] for `NV` vectors per k: with the row width a constant the
/// micro-kernel needs no division and no bounds check per k.
#[inline(always)]
fn gemm_chunk_nv<S: Simd, const NV: usize>(
    s: S,
    a: BlockArgs<'_>,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
    pf: bool,
) {
    // The arms below take 1..=8 columns: an ISA with more GEMM columns
    // fails to compile here instead of silently dropping columns.
    const {
        assert!(
            S::GEMM_COLS >= 1 && S::GEMM_COLS <= 8,
            "gemm_group has arms for 1..=8 columns: add arms before raising GEMM_COLS"
        )
    };
    for r in balanced(inputs.len(), S::GEMM_COLS) {
        let c0 = r.start;
        let (ins, ts) = (&inputs[r.clone()], &mut tiles[r]);
        if pf && c0 == 0 {
            gemm_group::<S, NV, true>(s, a, ins, ts);
        } else {
            gemm_group::<S, NV, false>(s, a, ins, ts);
        }
    }
}

/// One [`balanced`] group of 1..=`S::GEMM_COLS` columns: the block kernel
/// instantiated for exactly its column count.
#[inline(always)]
fn gemm_group<S: Simd, const NV: usize, const PF: bool>(
    s: S,
    a: BlockArgs<'_>,
    ins: &[&[f32]],
    ts: &mut [&mut [f32]],
) {
    match ins.len() {
        1 => gemm_block::<S, NV, 1, PF>(s, a, ins, ts),
        2 => gemm_block::<S, NV, 2, PF>(s, a, ins, ts),
        3 => gemm_block::<S, NV, 3, PF>(s, a, ins, ts),
        4 => gemm_block::<S, NV, 4, PF>(s, a, ins, ts),
        5 => gemm_block::<S, NV, 5, PF>(s, a, ins, ts),
        6 => gemm_block::<S, NV, 6, PF>(s, a, ins, ts),
        7 => gemm_block::<S, NV, 7, PF>(s, a, ins, ts),
        8 => gemm_block::<S, NV, 8, PF>(s, a, ins, ts),
        // balanced(n, GEMM_COLS) yields non-empty ranges of at most
        // GEMM_COLS ≤ 8 (const-asserted in gemm_chunk_nv; the split is
        // tested in `balanced_splits_evenly_into_the_fewest_groups`).
        n => unreachable!("a column group of {n}: balanced() gives 1..=8"),
    }
}

/// (panel, split, dst, k0, k1) of one [`gemm_block`].
type BlockArgs<'a> = (&'a [f32], usize, usize, usize, usize);

#[inline(always)]
fn gemm_block<S: Simd, const NV: usize, const NC: usize, const PF: bool>(
    s: S,
    (panel, split, dst, k0, k1): BlockArgs<'_>,
    inputs: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let l = S::LANES;
    let blk = NV * l;
    let n = k1 - k0;
    let pan = &panel[k0 * blk..k1 * blk];
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
        for (j, w) in pan.chunks_exact(blk).enumerate() {
            if PF {
                // The same two vectors, one chunk ahead (a hint: never
                // faults, even past the end of the weights).
                let mut d = 0;
                while d < 2 * l {
                    s.prefetch_l2(w.as_ptr().wrapping_add(KC * blk + vg * l + d));
                    d += 16;
                }
            }
            let w0 = s.load(&w[vg * l..]);
            let w1 = s.load(&w[(vg + 1) * l..]);
            for c in 0..NC {
                let b = s.splat(xs[c][j]);
                a0[c] = s.fma(w0, b, a0[c]);
                a1[c] = s.fma(w1, b, a1[c]);
            }
        }
        for c in 0..NC {
            s.store(&mut tiles[c][t0..], a0[c]);
            s.store(&mut tiles[c][t1..], a1[c]);
        }
        vg += 2;
    }
}

/// Pre-activations bias + W·x of every column, for every panel, in the
/// tile layout `layer_step` with [`In::Pre`] reads (`pre_len` floats per
/// column). This is the input-projection GEMM of sequences and chunks.
#[inline(always)]
pub(crate) fn input_proj<S: Simd>(s: S, pl: &PackedLayer, xs: &[&[f32]], out: &mut [&mut [f32]]) {
    let l = S::LANES;
    let g = geo(pl);
    let xw = g.nv_x.n() * l * pl.input;
    let tw = NACC * l;
    // Panel-major: each panel is read from memory once for all columns
    // (its current k-chunk stays in L1 while every column group uses it).
    for p in 0..g.panels {
        let b = bias_acc(s, pl, &g, p);
        for o in out.iter_mut() {
            for (i, v) in b.iter().enumerate() {
                s.store(&mut o[p * tw + i * l..], *v);
            }
        }
        let panel = &pl.wx[p * xw..(p + 1) * xw];
        let mut k0 = 0;
        while k0 < pl.input {
            let k1 = (k0 + KP).min(pl.input);
            for r in balanced(xs.len(), MAX_COLS) {
                let (c0, c1) = (r.start, r.end);
                let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
                for (t, o) in tiles.iter_mut().zip(out[c0..c1].iter_mut()) {
                    *t = &mut o[p * tw..(p + 1) * tw];
                }
                let ts = &mut tiles[..c1 - c0];
                gemm_chunk(
                    s,
                    panel,
                    g.nv_x,
                    NACC,
                    NACC,
                    k0,
                    k1,
                    &xs[c0..c1],
                    ts,
                    c0 == 0,
                );
            }
            k0 = k1;
        }
    }
}

/// One step of one layer for up to `MAX_COLS` streams at once: every
/// weight panel is read once for all of them. Bit-identical to
/// [`layer_step`] on each stream alone. `inputs[c]` is stream c's input;
/// each state's `tile` holds its pre-activations.
#[inline(always)]
pub(crate) fn layer_step_cols<S: Simd>(
    s: S,
    pl: &PackedLayer,
    inputs: &[In<'_>],
    sts: &mut [&mut LayerState],
) {
    let l = S::LANES;
    let g = geo(pl);
    let n = sts.len();
    assert!(n <= MAX_COLS && inputs.len() == n);
    let (xw, hw, tw) = (g.nv_x.n() * l * pl.input, g.nv_h.n() * l * pl.hr, NACC * l);
    // All columns of one call have the same kind of input.
    let has_x = matches!(inputs.first(), Some(In::X(_)));
    debug_assert!(inputs.iter().all(|i| matches!(i, In::X(_)) == has_x));
    for p in 0..g.panels {
        // Initialise each tile: bias (x part added below) or the precomputed
        // pre-activations.
        let mut xs: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
        for (c, st) in sts.iter_mut().enumerate() {
            let init = match inputs[c] {
                In::X(x) => {
                    xs[c] = &x[..pl.input];
                    bias_acc(s, pl, &g, p)
                }
                In::Pre(pre) => load_acc(s, &pre[p * tw..]),
            };
            for (i, v) in init.iter().enumerate() {
                s.store(&mut st.tile[i * l..], *v);
            }
        }
        if has_x {
            let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
            for (t, st) in tiles.iter_mut().zip(sts.iter_mut()) {
                *t = &mut st.tile[..tw];
            }
            let panel = &pl.wx[p * xw..(p + 1) * xw];
            gemm_cols(s, panel, g.nv_x, NACC, NACC, &xs[..n], &mut tiles[..n]);
        }
        {
            let mut hs: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
            let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
            for (c, st) in sts.iter_mut().enumerate() {
                let LayerState { h, tile, .. } = &mut **st;
                hs[c] = &h[..pl.hr];
                tiles[c] = &mut tile[..tw];
            }
            let panel = &pl.wh[p * hw..(p + 1) * hw];
            gemm_cols(s, panel, g.nv_h, g.split, g.dst, &hs[..n], &mut tiles[..n]);
        }
        for st in sts.iter_mut() {
            let acc = load_acc(s, &st.tile);
            epi_main(s, pl, p, &acc, st);
        }
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate_cols(s, pl, sts, Phase2::Gru),
        Op::Lstm { proj: true, .. } => single_gate_cols(s, pl, sts, Phase2::Proj),
        _ => {}
    }
}

#[inline(always)]
fn single_gate_cols<S: Simd>(s: S, pl: &PackedLayer, sts: &mut [&mut LayerState], ph: Phase2) {
    let l = S::LANES;
    let u1 = pl.u1;
    let n = sts.len();
    let (rows, k, w) = match ph {
        Phase2::Gru => (pl.hidden, pl.hr, &pl.wh_n),
        Phase2::Proj => (pl.hr, pl.hidden, &pl.proj),
    };
    let pw = k * u1;
    for p in 0..rows.div_ceil(u1) {
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
            for (i, v) in init.iter().enumerate() {
                s.store(&mut tile[i * l..], *v);
            }
            vs[c] = match ph {
                Phase2::Gru => &s2[..k],
                Phase2::Proj => &s0[..k],
            };
            tiles[c] = &mut tile[..u1];
        }
        gemm_cols(
            s,
            &w[p * pw..(p + 1) * pw],
            Nv::V8,
            NACC,
            NACC,
            &vs[..n],
            &mut tiles[..n],
        );
        for st in sts.iter_mut() {
            let acc = load_acc(s, &st.tile);
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

//! The kernel bodies of the `i8` precision (int8 weights and int8
//! activations), written once over [`IntDot`] and instantiated per ISA.
//!
//! The rule (stated in `reference.rs`, "Weight precisions"): each vector a
//! matrix multiplies (x of a step, h, r⊙h, the projection input m) is
//! quantized once per call and per stream by [`quantize`] to int8 with one
//! scale σ; each row's product is an exact integer dot `I = Σ q_w · q_v`
//! (wrapping i32, exact while K ≤ `MAX_INT8_K`) and one rescale
//! `fma(f32(I), s_row · σ, initial value)`. Integer sums do not depend on
//! their order, so the blocking over k and columns cannot change a bit; the
//! rescale, the joins and the epilogues are the f32 bodies' own, so every
//! ISA returns the same bits.
//!
//! Panels hold k-quads (see [`Geom::kg`]): for each group of 4 k, each
//! 32-bit lane holds the 4 weights of one row, in k order, which is the
//! layout `vpmaddubsw`/`vpmaddwd`, `vpdpbusd` and `sdot` read; K is padded
//! with zero weights, and the activation words with zero bytes.
//! Quantized activations are stored as words of 4 bytes (little-endian, k
//! ascending) in the bits of an f32 slice, so that the per-stream scratch
//! and the sequences' pre-activation buffers stay plain f32 buffers.

#![forbid(unsafe_code)]

use super::body::{
    In, MAX_COLS, NACC, Phase2, balanced, bias_acc, epi_gru_rb2, epi_main, epi_proj, load_acc,
    store_acc,
};
use super::panel::{Geom, LayerState, Nv, Op, PackedLayer, TILE};
use super::simd::Simd;
use crate::cell::spec::WeightPrecision;

/// Exact int8 dot products of one ISA: `LANES` rows × 4 k per step.
pub(crate) trait IntDot: Simd {
    /// `LANES` i32 accumulators.
    type I: Copy;
    /// One activation word (4 int8, k ascending) prepared for [`IntDot::dot4`].
    type Q: Copy;
    /// One weight vector: `LANES` rows × 4 k (`4 · LANES` bytes).
    type W: Copy;
    /// All lanes 0.
    fn izero(self) -> Self::I;
    /// `LANES` i32 parked as bits in the f32 slice `s` (a tile).
    fn iload(self, s: &[f32]) -> Self::I;
    /// Parks `v` as bits in the f32 slice `s`.
    fn istore(self, s: &mut [f32], v: Self::I);
    /// What [`quantize`] XORs into every activation word for these
    /// kernels: `0x8080_8080` for dots that take the activations as
    /// unsigned bytes q + 128 (`vpdpbusd`: q ^ 0x80 = q + 128, done once
    /// per vector instead of once per broadcast), 0 otherwise.
    const WORD_XOR: u32 = 0;
    /// Broadcasts one activation word (as [`quantize`] stored it).
    fn prep(self, word: u32) -> Self::Q;
    /// Loads `4 · LANES` weight bytes from the start of `w`.
    fn wload(self, w: &[i8]) -> Self::W;
    /// `acc[j] + Σ_{b<4} w[4j + b] · q[b]` for each lane j, exact (wrapping
    /// i32; weights in [−127, 127], activations in [−127, 127]).
    fn dot4(self, acc: Self::I, q: Self::Q, w: Self::W) -> Self::I;
    /// Each lane converted to f32, rounded to nearest even.
    fn to_f32(self, v: Self::I) -> Self::V;
    /// The exact dot from a finished chain: for dots that take the
    /// activations as unsigned bytes q + 128 (`vpdpbusd`), the chain holds
    /// Σ (q + 128) · w, and the row's `qsum = 128 · Σ w` is subtracted
    /// (wrapping: exact whenever the result fits, which K ≤ `MAX_INT8_K`
    /// ensures); otherwise the chain is the dot.
    #[inline(always)]
    fn finish(self, acc: Self::I, qsum: &[i32]) -> Self::I {
        let _ = qsum;
        acc
    }
    /// The multi-column chunk on a matrix unit (AMX tiles), when this dot
    /// has one and `ws.len()` columns pay for it: the same sums as
    /// [`gemm_block_q`]. Returns whether it ran (otherwise the caller runs
    /// the vector micro-kernel).
    #[inline(always)]
    fn tile_chunk(self, c: ChunkQ<'_>, ws: &[&[f32]], ts: &mut [&mut [f32]]) -> bool {
        let _ = (c, ws, ts);
        false
    }
    /// Whether [`IntDot::tile_chunk`] takes `cols` columns of a matrix of
    /// `quads` quads: then the matrix goes to it whole, not in k-chunks
    /// (the tiles keep their sums over the whole k).
    #[inline(always)]
    fn tiles_take(self, cols: usize, quads: usize) -> bool {
        let _ = (cols, quads);
        false
    }
    /// Runs `f` with this dot's matrix unit ready for [`IntDot::tile_chunk`]
    /// (AMX: the tiles configured for the call, released after).
    #[inline(always)]
    fn with_tiles<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// The int8 words of an activation vector of `k` elements.
#[inline(always)]
pub(crate) fn words(k: usize) -> usize {
    k.div_ceil(4)
}

/// Quantizes `v` by the i8 rule into `out` (the first `words(v.len())`
/// slots: 4 int8 per word, little-endian, k ascending, the last word
/// padded with zero bytes), each word stored XORed with `xor` (the
/// [`IntDot::WORD_XOR`] of the kernels that read it), and returns σ:
/// `mb = max (bits & 0x7fffffff)` as integers; an ∞ or NaN gives σ = NaN
/// and q = 0; `inv = 127 / m` not finite (m = 0 or tiny) gives σ = 0 and
/// q = 0; otherwise `q = round_ties_even(v · inv)` clamped to ±127 and
/// σ = m / 127.
///
/// How: `clamp(v · inv, ±127) + 1.5 · 2^23` rounds the clamped value to
/// the nearest integer, ties to even (the compute calls run in the
/// default rounding mode, `fpenv.rs`), and leaves its two's complement in
/// the low byte of the sum's bits; every step is an exact IEEE operation
/// (no NaN can reach them), so vectors of any width, and the scalar tail,
/// give the same bytes. Vectors of `S::LANES` (`LANES ≥ 4`) do the
/// arithmetic (PERF: LLVM turned the scalar loop into gathers or byte
/// inserts, 4–5 % of a 16-stream LSTM step), inlined into each ISA's
/// entry.
#[inline(always)]
pub(crate) fn quantize<S: Simd>(s: S, v: &[f32], out: &mut [f32], xor: u32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let out = &mut out[..words(v.len())];
    let mb = v.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff));
    if mb >= 0x7f80_0000 {
        out.fill(f32::from_bits(xor));
        return f32::NAN;
    }
    let m = f32::from_bits(mb);
    let inv = 127.0 / m;
    if !inv.is_finite() {
        out.fill(f32::from_bits(xor));
        return 0.0;
    }
    let qf = |x: f32| (x * inv).clamp(-127.0, 127.0) + MAGIC;
    let word = |u: &[f32]| {
        let b = [0, 1, 2, 3].map(|i| u.get(i).map_or(0, |x| x.to_bits() as u8));
        f32::from_bits(u32::from_le_bytes(b) ^ xor)
    };
    let l = S::LANES;
    let bl = if l >= 4 { l } else { 0 };
    let whole = v.len().checked_div(bl).map_or(0, |n| n * bl);
    let (blocks, rest) = v.split_at(whole);
    let (out_blocks, out_rest) = out.split_at_mut(whole / 4);
    if bl > 0 {
        let (vi, lo, hi, mg) = (
            s.splat(inv),
            s.splat(-127.0),
            s.splat(127.0),
            s.splat(MAGIC),
        );
        let mut u = [0.0f32; MAX_LANES];
        for (o, c) in out_blocks
            .chunks_exact_mut(bl / 4)
            .zip(blocks.chunks_exact(bl))
        {
            let y = s.add(s.min(hi, s.max(lo, s.mul(s.load(c), vi))), mg);
            s.store(&mut u[..l], y);
            for (oj, uj) in o.iter_mut().zip(u.chunks_exact(4)) {
                *oj = word(uj);
            }
        }
    }
    let mut u = [0.0f32; 4];
    for (o, c) in out_rest.iter_mut().zip(rest.chunks(4)) {
        for (ui, &x) in u.iter_mut().zip(c) {
            *ui = qf(x);
        }
        *o = word(&u[..c.len()]);
    }
    m / 127.0
}

/// The widest vector of any ISA, in f32 lanes (the quantizer's scratch).
const MAX_LANES: usize = 16;

/// The integer chains of one panel for one column: `NV` vectors of
/// `Σ_k panel · q`, converted to f32.
#[inline(always)]
fn imac<S: IntDot, const NV: usize>(s: S, panel: &[i8], q: &[f32], qsum: &[i32]) -> [S::V; NACC] {
    let l = S::LANES;
    let blk = NV * l * 4;
    let mut a = [s.izero(); NV];
    for (w, &word) in panel.chunks_exact(blk).zip(q) {
        let x = s.prep(word.to_bits());
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = s.dot4(*ai, x, s.wload(&w[i * l * 4..]));
        }
    }
    let mut out = [s.splat(0.0); NACC];
    for (i, (o, ai)) in out.iter_mut().zip(a).enumerate() {
        *o = s.to_f32(s.finish(ai, &qsum[i * l..]));
    }
    out
}

/// [`imac`] for the row width of `g`.
#[inline(always)]
fn imac_dyn<S: IntDot>(s: S, g: &Geom, panel: &[i8], q: &[f32], qsum: &[i32]) -> [S::V; NACC] {
    match g.nv {
        Nv::V8 => imac::<S, 8>(s, panel, q, qsum),
        Nv::V6 => imac::<S, 6>(s, panel, q, qsum),
        Nv::V4 => imac::<S, 4>(s, panel, q, qsum),
    }
}

/// Joins the chains `a` (vector i of the panel in `a[i]`) to the running
/// sums: `into[acc(i)] = fma(a[i], scale[i] · σ, into[acc(i)])`.
#[inline(always)]
fn join_q<S: Simd>(
    s: S,
    a: &[S::V; NACC],
    g: &Geom,
    scale: &[f32],
    sigma: f32,
    into: &mut [S::V; NACC],
) {
    let l = S::LANES;
    let sg = s.splat(sigma);
    for (i, ai) in a.iter().take(g.nv.n()).enumerate() {
        let j = g.acc(i);
        into[j] = s.fma(*ai, s.mul(s.load(&scale[i * l..]), sg), into[j]);
    }
}

/// The integer chains parked in a tile at the accumulator slots of `g`
/// (vector i at `acc(i)`), converted to f32 in panel vector order.
#[inline(always)]
fn parked<S: IntDot>(s: S, tile: &[f32], g: &Geom, qsum: &[i32]) -> [S::V; NACC] {
    let l = S::LANES;
    let mut out = [s.splat(0.0); NACC];
    for (i, o) in out.iter_mut().take(g.nv.n()).enumerate() {
        let a = s.iload(&tile[g.acc(i) * l..]);
        *o = s.to_f32(s.finish(a, &qsum[i * l..]));
    }
    out
}

/// One time step of one layer for one stream (see `body::layer_step`).
#[inline(always)]
pub(crate) fn layer_step_q<S: IntDot>(s: S, pl: &PackedLayer, input: In<'_>, st: &mut LayerState) {
    debug_assert_eq!(pl.precision, WeightPrecision::Int8);
    let l = S::LANES;
    let (gx, gh) = (&pl.wx.geom, &pl.wh.geom);
    let panels = gx.panels;
    let (wx, xw) = (pl.wx.all::<i8>(), gx.panel_len());
    let (wh, hw) = (pl.wh.all::<i8>(), gh.panel_len());
    let sx = match input {
        In::X(x) => quantize(s, &x[..pl.input], &mut st.qx, S::WORD_XOR),
        In::Pre(_) => 0.0,
    };
    let sh = quantize(s, &st.h[..pl.hr], &mut st.qh, S::WORD_XOR);
    let flip = st.flip;
    st.flip = !flip;
    for i in 0..panels {
        let p = if flip { panels - 1 - i } else { i };
        let mut acc = match input {
            In::X(_) => {
                let a = imac_dyn(s, gx, &wx[p * xw..(p + 1) * xw], &st.qx, pl.wx.qsum(p));
                let mut b = bias_acc(s, pl, p);
                join_q(s, &a, gx, pl.wx.scale(p), sx, &mut b);
                b
            }
            In::Pre(pre) => load_acc(s, &pre[p * NACC * l..]),
        };
        let a = imac_dyn(s, gh, &wh[p * hw..(p + 1) * hw], &st.qh, pl.wh.qsum(p));
        join_q(s, &a, gh, pl.wh.scale(p), sh, &mut acc);
        epi_main(s, pl, p, &acc, st);
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate_q(s, pl, st, Phase2::Gru, flip),
        Op::Lstm { proj: true, .. } => single_gate_q(s, pl, st, Phase2::Proj, flip),
        _ => {}
    }
}

/// The single-gate second pass of one column (GRU R_n (r⊙h), or the
/// LSTM projection).
#[inline(always)]
fn single_gate_q<S: IntDot>(s: S, pl: &PackedLayer, st: &mut LayerState, ph: Phase2, flip: bool) {
    let u1 = pl.u1;
    let w = match ph {
        Phase2::Gru => &pl.wh_n,
        Phase2::Proj => &pl.proj,
    };
    let (g, n) = (&w.geom, w.geom.panels);
    let sv = match ph {
        Phase2::Gru => quantize(s, &st.s2[..g.k], &mut st.qh, S::WORD_XOR),
        Phase2::Proj => quantize(s, &st.s0[..g.k], &mut st.qh, S::WORD_XOR),
    };
    for i in 0..n {
        let p = if flip { n - 1 - i } else { i };
        let mut acc = match ph {
            Phase2::Gru => load_acc(s, &st.s1[p * u1..]),
            Phase2::Proj => load_acc(s, &pl.proj_bias[p * u1..]),
        };
        let a = imac::<S, 8>(s, w.panel::<i8>(p), &st.qh, w.qsum(p));
        join_q(s, &a, g, w.scale(p), sv, &mut acc);
        match ph {
            Phase2::Gru => epi_gru_rb2(s, pl, p, &acc, st),
            Phase2::Proj => epi_proj(s, pl, p, &acc, st),
        }
    }
}

// ---------------------------------------------------------------- many columns

/// k-quads per chunk of the multi-column kernel (256 k: a chunk of an
/// LSTM panel is 16 KiB with AVX2, 32 KiB with AVX-512, as the f32 one).
pub(crate) const KQ: usize = 64;

/// One k-chunk (in quads) of the integer multi-column GEMM for one panel:
/// `tiles[c][map(i)] += Σ_{q0 ≤ j < q1} panel[j][i] · words[c][j]` (i32
/// parked in the tiles' bits).
#[derive(Clone, Copy)]
pub(crate) struct ChunkQ<'a> {
    pub panel: &'a [i8],
    pub nv: Nv,
    pub split: usize,
    pub dst: usize,
    pub q0: usize,
    pub q1: usize,
    /// Quads of the whole matrix (the chunk is a part of them).
    pub quads: usize,
}

/// The integer multi-column micro-kernel of one ISA (one outlined
/// `#[target_feature]` function, generated by `entries!` in kernels/mod.rs,
/// which dispatches each [`balanced`] group of `1..=S::GEMM_COLS` columns
/// to [`gemm_block_q`]).
pub(crate) trait MicroQ: IntDot {
    fn gemm_chunk_q(self, c: ChunkQ<'_>, words: &[&[f32]], tiles: &mut [&mut [f32]]);
}

/// [`ChunkQ`] for exactly `NC` columns, `NV` vectors per quad.
#[inline(always)]
pub(crate) fn gemm_block_q<S: IntDot, const NV: usize, const NC: usize>(
    s: S,
    c: ChunkQ<'_>,
    words: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let ChunkQ {
        panel,
        split,
        dst,
        q0,
        q1,
        ..
    } = c;
    debug_assert_eq!(c.nv.n(), NV);
    let l = S::LANES;
    let blk = NV * l * 4;
    let n = q1 - q0;
    let pan = &panel[q0 * blk..q1 * blk];
    assert!(words.len() == NC && tiles.len() == NC);
    let mut ws: [&[f32]; NC] = [&[]; NC];
    for c in 0..NC {
        ws[c] = &words[c][q0..q1];
        assert_eq!(ws[c].len(), n);
    }
    let map = |i: usize| if i < split { i } else { dst + i - split };
    let mut vg = 0;
    while vg < NV {
        let (t0, t1) = (map(vg) * l, map(vg + 1) * l);
        let mut a0 = [s.izero(); NC];
        let mut a1 = [s.izero(); NC];
        for c in 0..NC {
            a0[c] = s.iload(&tiles[c][t0..]);
            a1[c] = s.iload(&tiles[c][t1..]);
        }
        for (j, w) in pan.chunks_exact(blk).enumerate() {
            let w0 = s.wload(&w[vg * l * 4..]);
            let w1 = s.wload(&w[(vg + 1) * l * 4..]);
            for c in 0..NC {
                let x = s.prep(ws[c][j].to_bits());
                a0[c] = s.dot4(a0[c], x, w0);
                a1[c] = s.dot4(a1[c], x, w1);
            }
        }
        for c in 0..NC {
            s.istore(&mut tiles[c][t0..], a0[c]);
            s.istore(&mut tiles[c][t1..], a1[c]);
        }
        vg += 2;
    }
}

/// `tiles[c] += panel · words[c]` over every quad, in chunks of [`KQ`]
/// (or whole, on tiles: [`IntDot::tiles_take`]).
#[inline(always)]
fn gemm_cols_q<S: MicroQ>(
    s: S,
    panel: &[i8],
    g: &Geom,
    words: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    let nq = words_of(g);
    let step = if s.tiles_take(words.len(), nq) {
        nq
    } else {
        KQ
    };
    let mut q0 = 0;
    while q0 < nq {
        let q1 = (q0 + step).min(nq);
        let c = ChunkQ {
            panel,
            nv: g.nv,
            split: g.split,
            dst: g.dst,
            q0,
            q1,
            quads: nq,
        };
        s.gemm_chunk_q(c, words, tiles);
        q0 = q1;
    }
}

/// Quads (activation words) of a matrix's columns.
#[inline(always)]
fn words_of(g: &Geom) -> usize {
    words(g.k)
}

/// Floats of one column of the pre-activation buffer of an i8 layer: the
/// tile of every panel, then the column's quantized x (its words and σ),
/// which [`input_proj_q`] uses as scratch.
pub(crate) fn pre_len_q(pl: &PackedLayer, lanes: usize) -> usize {
    pl.wx.geom.panels * NACC * lanes + words(pl.input) + 1
}

/// Pre-activations bias + W·x of every column (see `body::input_proj`):
/// each column's x quantized into the tail of its buffer, then one
/// integer GEMM per panel, then the rescale into the tile.
#[inline(always)]
pub(crate) fn input_proj_q<S: MicroQ>(
    s: S,
    pl: &PackedLayer,
    xs: &[&[f32]],
    out: &mut [&mut [f32]],
) {
    let l = S::LANES;
    let g = &pl.wx.geom;
    let tw = NACC * l;
    let base = g.panels * tw;
    let nw = words(pl.input);
    let mut sig = [0.0f32; MAX_COLS];
    for r in balanced(xs.len(), MAX_COLS) {
        let (c0, c1) = (r.start, r.end);
        for (c, o) in (c0..c1).zip(out[c0..c1].iter_mut()) {
            let (_, tail) = o.split_at_mut(base);
            let sg = quantize(s, &xs[c][..pl.input], tail, S::WORD_XOR);
            tail[nw] = sg;
        }
        for p in 0..g.panels {
            let zero = [s.splat(0.0); NACC];
            let mut ws: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
            let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
            for ((c, o), (w, t)) in out[c0..c1]
                .iter_mut()
                .enumerate()
                .zip(ws.iter_mut().zip(tiles.iter_mut()))
            {
                let (head, tail) = o.split_at_mut(base);
                sig[c] = tail[nw];
                let tile = &mut head[p * tw..(p + 1) * tw];
                store_acc(s, tile, &zero);
                *t = tile;
                *w = &tail[..nw];
            }
            gemm_cols_q(
                s,
                pl.wx.panel::<i8>(p),
                g,
                &ws[..c1 - c0],
                &mut tiles[..c1 - c0],
            );
            let b = bias_acc(s, pl, p);
            for (c, t) in tiles[..c1 - c0].iter_mut().enumerate() {
                let a = parked(s, t, g, pl.wx.qsum(p));
                let mut v = b;
                join_q(s, &a, g, pl.wx.scale(p), sig[c], &mut v);
                store_acc(s, t, &v);
            }
        }
    }
}

/// One step of one layer for up to `MAX_COLS` streams at once (see
/// `body::layer_step_cols`). Each state's `tile` holds the running sums
/// in its first region and the parked integer chain in its second.
#[inline(always)]
pub(crate) fn layer_step_cols_q<S: MicroQ>(
    s: S,
    pl: &PackedLayer,
    inputs: &[In<'_>],
    sts: &mut [&mut LayerState],
) {
    let l = S::LANES;
    let n = sts.len();
    assert!(n <= MAX_COLS && inputs.len() == n);
    debug_assert_eq!(pl.precision, WeightPrecision::Int8);
    let (gx, gh) = (&pl.wx.geom, &pl.wh.geom);
    let tw = NACC * l;
    let zero = [s.splat(0.0); NACC];
    let has_x = matches!(inputs.first(), Some(In::X(_)));
    debug_assert!(inputs.iter().all(|i| matches!(i, In::X(_)) == has_x));
    let mut sx = [0.0f32; MAX_COLS];
    let mut sh = [0.0f32; MAX_COLS];
    for (c, st) in sts.iter_mut().enumerate() {
        if let In::X(x) = inputs[c] {
            sx[c] = quantize(s, &x[..pl.input], &mut st.qx, S::WORD_XOR);
        }
        let LayerState { h, qh, .. } = &mut **st;
        sh[c] = quantize(s, &h[..pl.hr], qh, S::WORD_XOR);
    }
    for p in 0..gx.panels {
        for (c, st) in sts.iter_mut().enumerate() {
            let init = match inputs[c] {
                In::X(_) => bias_acc(s, pl, p),
                In::Pre(pre) => load_acc(s, &pre[p * tw..]),
            };
            store_acc(s, &mut st.tile, &init);
            store_acc(s, &mut st.tile[TILE..], &zero);
        }
        if has_x {
            chain_cols(s, pl.wx.panel::<i8>(p), gx, sts, Q::X);
            for (c, st) in sts.iter_mut().enumerate() {
                let mut acc = load_acc(s, &st.tile);
                let a = parked(s, &st.tile[TILE..], gx, pl.wx.qsum(p));
                join_q(s, &a, gx, pl.wx.scale(p), sx[c], &mut acc);
                store_acc(s, &mut st.tile, &acc);
                store_acc(s, &mut st.tile[TILE..], &zero);
            }
        }
        chain_cols(s, pl.wh.panel::<i8>(p), gh, sts, Q::H);
        for (c, st) in sts.iter_mut().enumerate() {
            let mut acc = load_acc(s, &st.tile);
            let a = parked(s, &st.tile[TILE..], gh, pl.wh.qsum(p));
            join_q(s, &a, gh, pl.wh.scale(p), sh[c], &mut acc);
            epi_main(s, pl, p, &acc, st);
        }
    }
    match pl.op {
        Op::GruResetBefore { .. } => single_gate_cols_q(s, pl, sts, Phase2::Gru),
        Op::Lstm { proj: true, .. } => single_gate_cols_q(s, pl, sts, Phase2::Proj),
        _ => {}
    }
}

/// Which quantized vector of a state a chain reads.
#[derive(Clone, Copy)]
enum Q {
    /// `qx`: the layer input.
    X,
    /// `qh`: h, r⊙h or m.
    H,
}

/// The integer chain of one panel for every state, into the second
/// region of each state's tile.
#[inline(always)]
fn chain_cols<S: MicroQ>(s: S, panel: &[i8], g: &Geom, sts: &mut [&mut LayerState], which: Q) {
    let n = sts.len();
    let tw = NACC * S::LANES;
    let nw = words_of(g);
    let mut ws: [&[f32]; MAX_COLS] = [&[]; MAX_COLS];
    let mut tiles: [&mut [f32]; MAX_COLS] = Default::default();
    for (c, st) in sts.iter_mut().enumerate() {
        let LayerState { qx, qh, tile, .. } = &mut **st;
        ws[c] = match which {
            Q::X => &qx[..nw],
            Q::H => &qh[..nw],
        };
        tiles[c] = &mut tile[TILE..TILE + tw];
    }
    gemm_cols_q(s, panel, g, &ws[..n], &mut tiles[..n]);
}

#[inline(always)]
fn single_gate_cols_q<S: MicroQ>(s: S, pl: &PackedLayer, sts: &mut [&mut LayerState], ph: Phase2) {
    let u1 = pl.u1;
    let w = match ph {
        Phase2::Gru => &pl.wh_n,
        Phase2::Proj => &pl.proj,
    };
    let g = &w.geom;
    let zero = [s.splat(0.0); NACC];
    let mut sv = [0.0f32; MAX_COLS];
    for (c, st) in sts.iter_mut().enumerate() {
        let LayerState { s0, s2, qh, .. } = &mut **st;
        sv[c] = match ph {
            Phase2::Gru => quantize(s, &s2[..g.k], qh, S::WORD_XOR),
            Phase2::Proj => quantize(s, &s0[..g.k], qh, S::WORD_XOR),
        };
    }
    for p in 0..g.panels {
        for st in sts.iter_mut() {
            let init = match ph {
                Phase2::Gru => load_acc(s, &st.s1[p * u1..]),
                Phase2::Proj => load_acc(s, &pl.proj_bias[p * u1..]),
            };
            store_acc(s, &mut st.tile, &init);
            store_acc(s, &mut st.tile[TILE..], &zero);
        }
        chain_cols(s, w.panel::<i8>(p), g, sts, Q::H);
        for (c, st) in sts.iter_mut().enumerate() {
            let mut acc = load_acc(s, &st.tile);
            let a = parked(s, &st.tile[TILE..], g, w.qsum(p));
            join_q(s, &a, g, w.scale(p), sv[c], &mut acc);
            match ph {
                Phase2::Gru => epi_gru_rb2(s, pl, p, &acc, st),
                Phase2::Proj => epi_proj(s, pl, p, &acc, st),
            }
        }
    }
}

// ---------------------------------------------------------------- portable

use super::simd::{Scalar, Wide16};

/// `acc + Σ_b w[b] · q[b]` in wrapping i32 (the portable exact dot).
#[inline(always)]
fn dot4_lane(acc: i32, q: [i8; 4], w: &[i8]) -> i32 {
    let mut a = acc;
    for b in 0..4 {
        a = a.wrapping_add(i32::from(w[b]) * i32::from(q[b]));
    }
    a
}

impl IntDot for Scalar {
    type I = i32;
    type Q = [i8; 4];
    type W = [i8; 4];
    #[inline(always)]
    fn izero(self) -> i32 {
        0
    }
    #[inline(always)]
    fn iload(self, s: &[f32]) -> i32 {
        s[0].to_bits() as i32
    }
    #[inline(always)]
    fn istore(self, s: &mut [f32], v: i32) {
        s[0] = f32::from_bits(v as u32);
    }
    #[inline(always)]
    fn prep(self, word: u32) -> [i8; 4] {
        word.to_le_bytes().map(|b| b as i8)
    }
    #[inline(always)]
    fn wload(self, w: &[i8]) -> [i8; 4] {
        [w[0], w[1], w[2], w[3]]
    }
    #[inline(always)]
    fn dot4(self, acc: i32, q: [i8; 4], w: [i8; 4]) -> i32 {
        dot4_lane(acc, q, &w)
    }
    #[inline(always)]
    fn to_f32(self, v: i32) -> f32 {
        v as f32
    }
}

/// `vpdpbusd` lane by lane, as Intel defines it without saturation: the
/// four products of unsigned bytes `a` and signed bytes `w`, summed into
/// `acc` with wrapping i32 arithmetic.
#[inline(always)]
pub(crate) fn dpbusd_lane(acc: i32, a: [u8; 4], w: &[i8]) -> i32 {
    let mut s = acc;
    for b in 0..4 {
        s = s.wrapping_add(i32::from(a[b]) * i32::from(w[b]));
    }
    s
}

/// The 16-lane emulation is also the emulation of the AVX-512 VNNI
/// sequence's integer semantics: activations offset to unsigned bytes
/// (q ^ 0x80 = q + 128), `vpdpbusd` lane by lane, the offset removed by
/// [`IntDot::finish`] from the rows' `qsum`. So the tests check the
/// offset arithmetic and the qsum packing on every CPU.
// Not inlined, as Wide16's `Simd` operations (see the comment in simd.rs).
impl IntDot for Wide16 {
    type I = [i32; 16];
    type Q = [u8; 4];
    type W = [i8; 64];
    #[inline(never)]
    fn izero(self) -> [i32; 16] {
        [0; 16]
    }
    #[inline(never)]
    fn iload(self, s: &[f32]) -> [i32; 16] {
        let s = &s[..16];
        std::array::from_fn(|i| s[i].to_bits() as i32)
    }
    #[inline(never)]
    fn istore(self, s: &mut [f32], v: [i32; 16]) {
        for (d, x) in s[..16].iter_mut().zip(v) {
            *d = f32::from_bits(x as u32);
        }
    }
    const WORD_XOR: u32 = 0x8080_8080;
    #[inline(never)]
    fn prep(self, word: u32) -> [u8; 4] {
        word.to_le_bytes()
    }
    #[inline(never)]
    fn wload(self, w: &[i8]) -> [i8; 64] {
        let mut v = [0; 64];
        v.copy_from_slice(&w[..64]);
        v
    }
    #[inline(never)]
    fn dot4(self, acc: [i32; 16], a: [u8; 4], w: [i8; 64]) -> [i32; 16] {
        std::array::from_fn(|j| dpbusd_lane(acc[j], a, &w[4 * j..]))
    }
    #[inline(never)]
    fn to_f32(self, v: [i32; 16]) -> [f32; 16] {
        v.map(|x| x as f32)
    }
    #[inline(never)]
    fn finish(self, acc: [i32; 16], qsum: &[i32]) -> [i32; 16] {
        let q = &qsum[..16];
        std::array::from_fn(|j| acc[j].wrapping_sub(q[j]))
    }
}

#[cfg(test)]
mod tests {
    //! The integer path's exactness: the activation rule against the
    //! reference's, and every ISA's `dot4` against an i64 sum with extreme
    //! values (every weight and activation at ±127) over the largest K, so
    //! that no sequence saturates or overflows; and a negative control
    //! showing that a saturating form the kernels avoid does fail it.

    use super::*;
    use crate::reference::{int_dot, quantize_i8_activations};

    use crate::test_rng::Rng;

    fn unpack(w: &[f32], n: usize) -> Vec<i8> {
        w.iter()
            .flat_map(|x| x.to_bits().to_le_bytes())
            .take(n)
            .map(|b| b as i8)
            .collect()
    }

    #[test]
    fn quantize_is_the_reference_rule() {
        let mut rng = Rng(0x51ed);
        let tiny = f32::from_bits(1);
        let mut cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![0.0],
            vec![-0.0, 0.0, -0.0],
            vec![tiny, -tiny, 0.0, tiny],
            vec![1e-38, -2e-38],
            vec![f32::MIN_POSITIVE; 5],
            vec![f32::MAX, -f32::MAX, 1.0],
            vec![1.0, f32::NAN, 0.5],
            vec![f32::NEG_INFINITY, 0.5],
            vec![0.5, -1.0, 0.25, 1.0 / 254.0, 3.0 / 254.0, -1.0 / 254.0],
        ];
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 65, 129] {
            let scale = [1e-30, 1e-3, 1.0, 7.5, 1e30][n % 5];
            cases.push((0..n).map(|_| rng.sym() * scale).collect());
        }
        // Ties at every position of a vector: round half to even.
        cases.push(
            (0..=80)
                .map(|i| i as f32 * 0.5 - 20.0)
                .chain([127.0])
                .collect(),
        );
        cases.push(
            (0..37)
                .map(|i| if i % 2 == 0 { 2.5 } else { -3.5 })
                .chain([-127.0])
                .collect(),
        );
        check_quantize(Scalar, &cases);
        check_quantize(Wide16, &cases);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(t) = crate::kernels::x86::Avx2::new() {
                check_quantize(t, &cases);
            }
            if let Some(t) = crate::kernels::x86::Avx512::new() {
                check_quantize(t, &cases);
            }
        }
        #[cfg(target_arch = "aarch64")]
        check_quantize(crate::kernels::neon::Neon::new().expect("NEON"), &cases);
        // The edge rules, stated.
        assert_eq!(quantize_i8_activations(&[0.0, -0.0]).1, 0.0);
        assert_eq!(quantize_i8_activations(&[1e-38]).1, 0.0); // 127 / m overflows
        assert!(quantize_i8_activations(&[f32::INFINITY]).1.is_nan());
        let (q, s) = quantize_i8_activations(&[f32::MAX, -f32::MAX]);
        assert_eq!((q, s), (vec![127, -127], f32::MAX / 127.0));
        let (q, _) = quantize_i8_activations(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5]);
        assert_eq!(q, vec![127, 0, 2, 2, 0, -2]);
    }

    /// [`quantize`] with the vectors of `s` equals the reference rule on
    /// every case, with and without the VNNI XOR.
    fn check_quantize<S: Simd>(s: S, cases: &[Vec<f32>]) {
        for v in cases.iter().flat_map(|v| [(v, 0), (v, 0x8080_8080)]) {
            let (v, xor) = (v.0, v.1);
            let mut out = vec![f32::from_bits(0xdead_beef); words(v.len()) + 2];
            let sigma = quantize(s, v, &mut out, xor);
            // The XOR is on every word the call writes, and nowhere else.
            for o in &mut out[..words(v.len())] {
                *o = f32::from_bits(o.to_bits() ^ xor);
            }
            let (q, s) = quantize_i8_activations(v);
            assert_eq!(sigma.to_bits(), s.to_bits(), "{v:?}");
            assert_eq!(unpack(&out, v.len()), q, "{v:?}");
            // The padding bytes of the last word are zero, and nothing past
            // the words is written.
            let bytes: Vec<u8> = out[..words(v.len())]
                .iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect();
            assert!(bytes[v.len()..].iter().all(|&b| b == 0), "{v:?}");
            assert!(
                out[words(v.len())..]
                    .iter()
                    .all(|x| x.to_bits() == 0xdead_beef)
            );
            assert!(q.iter().all(|&x| x != -128));
        }
    }

    /// The weights and activations of the extreme cases, one quad each.
    fn extreme_quads(n: usize, rng: &mut Rng) -> (Vec<[i8; 4]>, Vec<u32>) {
        let pick = |r: u64, i: usize| -> i8 {
            match (r >> (2 * (i % 30))) & 3 {
                0 => 127,
                1 => -127,
                2 => {
                    if i.is_multiple_of(2) {
                        127
                    } else {
                        -127
                    }
                }
                _ => ((r >> (i % 56)) as u8 as i8).max(-127),
            }
        };
        let mode = rng.next();
        let w = (0..n)
            .map(|j| {
                let r = rng.next();
                std::array::from_fn(|b| match mode % 3 {
                    0 => 127,
                    1 => -127,
                    _ => pick(r, 4 * j + b),
                })
            })
            .collect();
        let x = (0..n)
            .map(|j| {
                let r = rng.next();
                let b: [i8; 4] = std::array::from_fn(|b| match (mode / 3) % 3 {
                    0 => 127,
                    1 => -127,
                    _ => pick(r, 4 * j + b + 1),
                });
                u32::from_le_bytes(b.map(|v| v as u8))
            })
            .collect();
        (w, x)
    }

    /// `dot4` chained over `MAX_INT8_K` (rounded down to quads) for each
    /// lane, every lane with its own weights, against `int_dot`.
    fn check_dot<S: IntDot>(s: S, name: &str, to_i32: impl Fn(S::I) -> Vec<i32>) {
        let l = S::LANES;
        let nq = crate::cell::spec::MAX_INT8_K / 4;
        let mut rng = Rng(0x1234_5678 ^ l as u64);
        for case in 0..9 {
            let lanes: Vec<(Vec<[i8; 4]>, Vec<u32>)> =
                (0..l).map(|_| extreme_quads(nq, &mut rng)).collect();
            // One activation stream shared by all lanes (a broadcast):
            // lane 0's; each lane its own weights.
            let x = &lanes[0].1;
            let mut w = vec![0i8; 4 * l];
            let mut acc = s.izero();
            for j in 0..nq {
                for (r, (wr, _)) in lanes.iter().enumerate() {
                    w[4 * r..4 * r + 4].copy_from_slice(&wr[j]);
                }
                acc = s.dot4(acc, s.prep(x[j] ^ S::WORD_XOR), s.wload(&w));
            }
            let qsum: Vec<i32> = lanes
                .iter()
                .map(|(wr, _)| 128 * wr.iter().flatten().map(|&v| v as i32).sum::<i32>())
                .collect();
            let got = to_i32(s.finish(acc, &qsum));
            let xs: Vec<i8> = x
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .map(|b| b as i8)
                .collect();
            for (r, (wr, _)) in lanes.iter().enumerate() {
                let ws: Vec<i8> = wr.iter().flatten().copied().collect();
                let e = int_dot(&ws, &xs);
                assert_eq!(got[r] as i64, e, "{name} case {case} lane {r}");
            }
        }
    }

    fn parked_lanes<S: IntDot>(s: S, v: S::I) -> Vec<i32> {
        let mut t = vec![0.0f32; S::LANES];
        s.istore(&mut t, v);
        let back = s.iload(&t);
        let mut t2 = vec![0.0f32; S::LANES];
        s.istore(&mut t2, back);
        assert_eq!(
            t.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            t2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        t.iter().map(|x| x.to_bits() as i32).collect()
    }

    #[test]
    fn every_dot_is_exact_at_the_extremes() {
        check_dot(Scalar, "scalar", |v| parked_lanes(Scalar, v));
        check_dot(Wide16, "wide16 (vpdpbusd semantics)", |v| {
            parked_lanes(Wide16, v)
        });
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(t) = crate::kernels::x86::Avx2::new() {
                check_dot(t, "avx2", |v| parked_lanes(t, v));
            }
            if let Some(t) = crate::kernels::x86::Avx512::new() {
                check_dot(t, "avx512bw", |v| parked_lanes(t, v));
            }
            if let Some(t) = crate::kernels::x86::AvxVnni::new() {
                check_dot(t, "avx-vnni", |v| parked_lanes(t, v));
            }
            if let Some(t) = crate::kernels::x86::Avx512Vnni::new() {
                check_dot(t, "avx512-vnni", |v| parked_lanes(t, v));
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if let Some(t) = crate::kernels::neon::Neon::new() {
                check_dot(t, "neon", |v| parked_lanes(t, v));
            }
            if let Some(t) = crate::kernels::neon::NeonDot::new() {
                check_dot(t, "neon-sdot", |v| parked_lanes(t, v));
            }
        }
    }

    #[test]
    fn to_f32_rounds_to_nearest_even_on_every_isa() {
        let vals: Vec<i32> = vec![
            0,
            1,
            -1,
            16_777_216,
            16_777_217,
            16_777_219,
            -16_777_217,
            2_147_463_447,
            -2_147_463_447,
            i32::MAX,
            i32::MIN,
            33_554_435,
            123_456_789,
        ];
        fn conv<S: IntDot>(s: S, vals: &[i32]) -> Vec<u32> {
            let l = S::LANES;
            let mut out = Vec::new();
            for c in vals.chunks(l) {
                let mut t = vec![0.0f32; l];
                for (d, &v) in t.iter_mut().zip(c) {
                    *d = f32::from_bits(v as u32);
                }
                let mut f = vec![0.0f32; l];
                s.store(&mut f, s.to_f32(s.iload(&t)));
                out.extend(f[..c.len()].iter().map(|x| x.to_bits()));
            }
            out
        }
        let want: Vec<u32> = vals.iter().map(|&v| (v as f32).to_bits()).collect();
        assert_eq!(conv(Scalar, &vals), want);
        assert_eq!(conv(Wide16, &vals), want);
        #[cfg(target_arch = "x86_64")]
        {
            let _fp = crate::kernels::fpenv::FpEnv::enter();
            if let Some(t) = crate::kernels::x86::Avx2::new() {
                assert_eq!(conv(t, &vals), want);
            }
            if let Some(t) = crate::kernels::x86::Avx512::new() {
                assert_eq!(conv(t, &vals), want);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let _fp = crate::kernels::fpenv::FpEnv::enter();
            if let Some(t) = crate::kernels::neon::Neon::new() {
                assert_eq!(conv(t, &vals), want);
            }
        }
    }

    /// `vpmaddubsw` as Intel defines it: u8 × i8 products, adjacent pairs
    /// summed with signed saturation to i16.
    fn maddubs(a: &[u8; 4], b: &[i8; 4]) -> [i16; 2] {
        std::array::from_fn(|p| {
            let s = a[2 * p] as i32 * b[2 * p] as i32 + a[2 * p + 1] as i32 * b[2 * p + 1] as i32;
            s.clamp(i16::MIN as i32, i16::MAX as i32) as i16
        })
    }

    /// The negative control: the sign trick through the saturating
    /// `maddubs` model is exact at every extreme, while the offset form
    /// (u8 = q + 128, as `vpdpbusd` takes it, then 128·Σw subtracted) fed
    /// to the same saturating instruction is not, so the extreme-value
    /// tests can tell a saturating sequence from an exact one.
    #[test]
    fn sign_trick_never_saturates_but_the_offset_form_would() {
        let mut offset_wrong = 0;
        for &w in &[
            [127i8; 4],
            [-127; 4],
            [127, -127, 127, -127],
            [127, 127, -127, -127],
        ] {
            for &x in &[
                [127i8; 4],
                [-127; 4],
                [127, -127, -127, 127],
                [-127, -127, 127, 127],
            ] {
                let exact: i32 = (0..4).map(|b| w[b] as i32 * x[b] as i32).sum();
                let ax = x.map(|v| v.unsigned_abs());
                let sw: [i8; 4] = std::array::from_fn(|b| if x[b] < 0 { -w[b] } else { w[b] });
                let t = maddubs(&ax, &sw);
                assert_eq!(t[0] as i32 + t[1] as i32, exact, "w {w:?} x {x:?}");
                let u = x.map(|v| (v as i16 + 128) as u8);
                let t = maddubs(&u, &w);
                let wsum: i32 = w.iter().map(|&v| v as i32).sum();
                if t[0] as i32 + t[1] as i32 - 128 * wsum != exact {
                    offset_wrong += 1;
                }
            }
        }
        assert!(
            offset_wrong > 0,
            "the saturating offset form was never caught"
        );
    }
}

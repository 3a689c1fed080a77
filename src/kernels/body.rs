//! The kernel bodies, written once over [`Simd`] and instantiated per ISA.
//!
//! Summation order (DESIGN §2), per output row: the accumulator starts at
//! the bias, then one FMA per input column k of x in ascending k, then one
//! per column of h in ascending k. The panel layout (see `pack.rs`) only
//! decides which rows share a vector; it never reorders a row's sum, so
//! every ISA, and the scalar path, produce the same bits.
//!
//! The epilogues run on the accumulators while they are still in registers:
//! gates, activations, c updated in place, and the new h written to
//! `h_next` (the old h stays intact until every panel has read it).

#![forbid(unsafe_code)]

use super::simd::{Simd, clamp, relu, sigmoid, tanh};
use crate::cell::spec::Coupling;
use crate::pack::{LayerState, Op, PackedLayer};

/// Accumulators per panel: 8 independent FMA chains hide the FMA latency
/// while the weights stream from cache.
const NACC: usize = 8;
/// Vectors per gate in a multi-gate panel.
const M: usize = 2;

#[inline(always)]
fn opt_clamp<S: Simd>(s: S, x: S::V, k: Option<f32>) -> S::V {
    match k {
        Some(k) => clamp(s, x, k),
        None => x,
    }
}

/// acc[i] += panel[k][i] · v[k] for every k, with `nv` vectors per k.
#[inline(always)]
fn mac<S: Simd, const NV: usize>(
    s: S,
    acc: &mut [S::V; NACC],
    first: usize,
    panel: &[f32],
    v: &[f32],
) {
    let l = S::LANES;
    for (blk, &vk) in panel.chunks_exact(NV * l).zip(v) {
        let b = s.splat(vk);
        for i in 0..NV {
            acc[first + i] = s.fma(s.load(&blk[i * l..]), b, acc[first + i]);
        }
    }
}

/// Like [`mac`], but gate vectors `[0, split)` go to acc `[0, split)` and
/// gate vectors `[split, NV)` go to acc `[dst, dst + NV - split)`.
#[inline(always)]
fn mac_split<S: Simd, const NV: usize>(
    s: S,
    acc: &mut [S::V; NACC],
    split: usize,
    dst: usize,
    panel: &[f32],
    v: &[f32],
) {
    let l = S::LANES;
    for (blk, &vk) in panel.chunks_exact(NV * l).zip(v) {
        let b = s.splat(vk);
        for i in 0..NV {
            let a = if i < split { i } else { dst + i - split };
            acc[a] = s.fma(s.load(&blk[i * l..]), b, acc[a]);
        }
    }
}

/// One time step of one layer for one stream: reads `x` and `st.h`,
/// updates `st.c` in place and writes `st.h_next`.
#[inline(always)]
pub(crate) fn layer_step<S: Simd>(s: S, pl: &PackedLayer, x: &[f32], st: &mut LayerState) {
    debug_assert_eq!(pl.u, M * S::LANES);
    let x = &x[..pl.input];
    match pl.op {
        Op::Lstm { .. } => lstm_step(s, pl, x, st),
        Op::GruLbr { clip } => gru_lbr_step(s, pl, x, st, clip),
        Op::GruResetBefore { clip } => gru_rb_step(s, pl, x, st, clip),
        Op::Rnn { relu, clip } => rnn_step(s, pl, x, st, relu, clip),
    }
}

#[inline(always)]
fn lstm_step<S: Simd>(s: S, pl: &PackedLayer, x: &[f32], st: &mut LayerState) {
    let Op::Lstm {
        peephole,
        coupling,
        clip,
        cell_clip,
        proj,
        proj_clip,
    } = pl.op
    else {
        unreachable!()
    };
    let l = S::LANES;
    let u = pl.u;
    let h_in = &st.h[..pl.hr];
    let panels = pl.hidden.div_ceil(u);
    let one = s.splat(1.0);
    let pw = 4 * u;
    for p in 0..panels {
        let mut acc = [s.splat(0.0); NACC];
        let bias = &pl.bias[p * pw..(p + 1) * pw];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = s.load(&bias[i * l..]);
        }
        mac::<S, 8>(
            s,
            &mut acc,
            0,
            &pl.wx[p * pl.input * pw..(p + 1) * pl.input * pw],
            x,
        );
        mac::<S, 8>(
            s,
            &mut acc,
            0,
            &pl.wh[p * pl.hr * pw..(p + 1) * pl.hr * pw],
            h_in,
        );
        for v in 0..M {
            let off = p * u + v * l;
            let c = s.load(&st.c[off..]);
            let (mut ai, mut af, ag, mut ao) = (acc[v], acc[M + v], acc[2 * M + v], acc[3 * M + v]);
            if peephole {
                let hp = st.c.len();
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
            let mut c2 = s.fma(f, c, s.mul(i, g));
            c2 = opt_clamp(s, c2, cell_clip);
            s.store(&mut st.c[off..], c2);
            if peephole {
                let hp = st.c.len();
                ao = s.fma(s.load(&pl.peep[2 * hp + off..]), c2, ao);
            }
            let o = sigmoid(s, opt_clamp(s, ao, clip));
            let hv = s.mul(o, tanh(s, c2));
            if proj {
                s.store(&mut st.s0[off..], hv);
            } else {
                s.store(&mut st.h_next[off..], hv);
            }
        }
    }
    if proj {
        project(s, pl, st, proj_clip);
    }
}

/// h_next = clip(b_proj + W_proj m), m = `st.s0`.
#[inline(always)]
fn project<S: Simd>(s: S, pl: &PackedLayer, st: &mut LayerState, proj_clip: Option<f32>) {
    let l = S::LANES;
    let u1 = pl.u1;
    let m = &st.s0[..pl.hidden];
    let panels = pl.hr.div_ceil(u1);
    let pw = pl.hidden * u1;
    for p in 0..panels {
        let mut acc = [s.splat(0.0); NACC];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = s.load(&pl.proj_bias[p * u1 + i * l..]);
        }
        mac::<S, 8>(s, &mut acc, 0, &pl.proj[p * pw..(p + 1) * pw], m);
        for (i, a) in acc.iter().enumerate() {
            let hv = opt_clamp(s, *a, proj_clip);
            s.store(&mut st.h_next[p * u1 + i * l..], hv);
        }
    }
}

#[inline(always)]
fn gru_lbr_step<S: Simd>(
    s: S,
    pl: &PackedLayer,
    x: &[f32],
    st: &mut LayerState,
    clip: Option<f32>,
) {
    let l = S::LANES;
    let u = pl.u;
    let h_in = &st.h[..pl.hr];
    let panels = pl.hidden.div_ceil(u);
    let (xw, hw, bw) = (3 * u, 3 * u, 4 * u);
    for p in 0..panels {
        // acc: r[0..M], z[M..2M], nx[2M..3M], nh[3M..4M]
        let mut acc = [s.splat(0.0); NACC];
        let bias = &pl.bias[p * bw..(p + 1) * bw];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = s.load(&bias[i * l..]);
        }
        mac::<S, 6>(
            s,
            &mut acc,
            0,
            &pl.wx[p * pl.input * xw..(p + 1) * pl.input * xw],
            x,
        );
        mac_split::<S, 6>(
            s,
            &mut acc,
            2 * M,
            3 * M,
            &pl.wh[p * pl.hr * hw..(p + 1) * pl.hr * hw],
            h_in,
        );
        for v in 0..M {
            let off = p * u + v * l;
            let r = sigmoid(s, opt_clamp(s, acc[v], clip));
            let z = sigmoid(s, opt_clamp(s, acc[M + v], clip));
            let n = tanh(
                s,
                opt_clamp(s, s.fma(r, acc[3 * M + v], acc[2 * M + v]), clip),
            );
            let hold = s.load(&st.h[off..]);
            // h' = (1 − z)⊙n + z⊙h = n + z⊙(h − n)
            let hv = s.fma(z, s.sub(hold, n), n);
            s.store(&mut st.h_next[off..], hv);
        }
    }
}

#[inline(always)]
fn gru_rb_step<S: Simd>(s: S, pl: &PackedLayer, x: &[f32], st: &mut LayerState, clip: Option<f32>) {
    let l = S::LANES;
    let u = pl.u;
    let panels = pl.hidden.div_ceil(u);
    let (xw, hw, bw) = (3 * u, 2 * u, 3 * u);
    // Phase 1: r, z and the x part of n.
    for p in 0..panels {
        // acc: r[0..M], z[M..2M], n[2M..3M]
        let mut acc = [s.splat(0.0); NACC];
        let bias = &pl.bias[p * bw..(p + 1) * bw];
        for (i, a) in acc.iter_mut().take(3 * M).enumerate() {
            *a = s.load(&bias[i * l..]);
        }
        mac::<S, 6>(
            s,
            &mut acc,
            0,
            &pl.wx[p * pl.input * xw..(p + 1) * pl.input * xw],
            x,
        );
        mac::<S, 4>(
            s,
            &mut acc,
            0,
            &pl.wh[p * pl.hr * hw..(p + 1) * pl.hr * hw],
            &st.h[..pl.hr],
        );
        for v in 0..M {
            let off = p * u + v * l;
            let r = sigmoid(s, opt_clamp(s, acc[v], clip));
            let z = sigmoid(s, opt_clamp(s, acc[M + v], clip));
            s.store(&mut st.s0[off..], z);
            s.store(&mut st.s1[off..], acc[2 * M + v]);
            let rh = s.mul(r, s.load(&st.h[off..]));
            s.store(&mut st.s2[off..], rh);
        }
    }
    // Phase 2: n += R_n (r⊙h), then h'.
    let u1 = pl.u1;
    let panels = pl.hidden.div_ceil(u1);
    let pw = pl.hr * u1;
    for p in 0..panels {
        let mut acc = [s.splat(0.0); NACC];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = s.load(&st.s1[p * u1 + i * l..]);
        }
        mac::<S, 8>(
            s,
            &mut acc,
            0,
            &pl.wh_n[p * pw..(p + 1) * pw],
            &st.s2[..pl.hr],
        );
        for (i, a) in acc.iter().enumerate() {
            let off = p * u1 + i * l;
            let n = tanh(s, opt_clamp(s, *a, clip));
            let z = s.load(&st.s0[off..]);
            let hold = s.load(&st.h[off..]);
            let hv = s.fma(z, s.sub(hold, n), n);
            s.store(&mut st.h_next[off..], hv);
        }
    }
}

#[inline(always)]
fn rnn_step<S: Simd>(
    s: S,
    pl: &PackedLayer,
    x: &[f32],
    st: &mut LayerState,
    is_relu: bool,
    clip: Option<f32>,
) {
    let l = S::LANES;
    let u1 = pl.u1;
    let panels = pl.hidden.div_ceil(u1);
    let (xw, hw) = (pl.input * u1, pl.hr * u1);
    for p in 0..panels {
        let mut acc = [s.splat(0.0); NACC];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = s.load(&pl.bias[p * u1 + i * l..]);
        }
        mac::<S, 8>(s, &mut acc, 0, &pl.wx[p * xw..(p + 1) * xw], x);
        mac::<S, 8>(s, &mut acc, 0, &pl.wh[p * hw..(p + 1) * hw], &st.h[..pl.hr]);
        for (i, a) in acc.iter().enumerate() {
            let a = opt_clamp(s, *a, clip);
            let hv = if is_relu { relu(s, a) } else { tanh(s, a) };
            s.store(&mut st.h_next[p * u1 + i * l..], hv);
        }
    }
}

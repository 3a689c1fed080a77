//! The kernels' data contract: what a packed layer holds (typed weight
//! panels that own their storage and their geometry) and the per-stream
//! state. `pack.rs` fills these from canonical weights; the bodies in
//! `body.rs` read them. Nothing here re-derives a panel's shape: every
//! panel set carries its [`Geom`].

#![forbid(unsafe_code)]

use super::buf::{ABuf, Buf};
use super::elem::{Bf16, F16, Weight};
use crate::cell::activation::Activation;
use crate::cell::spec::{Coupling, WeightPrecision};

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

/// Vectors per k of a panel: the only row widths the panels have (LSTM
/// and RNN 8, GRU 6, the reset-before GRU's r, z part 4), so every match
/// over it is exhaustive, with no default arm to fall into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nv {
    V4 = 4,
    V6 = 6,
    V8 = 8,
}

impl Nv {
    #[inline(always)]
    pub(crate) const fn n(self) -> usize {
        self as usize
    }
}

/// The shape of one matrix's panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Number of panels.
    pub panels: usize,
    /// Vectors per k in each panel.
    pub nv: Nv,
    /// f32 lanes per vector (the ISA's width).
    pub lanes: usize,
    /// Columns (the true K; not padded).
    pub k: usize,
    /// k per group: 1; 2 for the k-pairs of bf16 panels; 4 for the
    /// k-quads of the `i8` panels (each 32-bit lane holds 2 or 4
    /// consecutive k of one row; K padded with zero weights to a multiple
    /// of the group, which the kernels never multiply).
    pub kg: usize,
    /// Vector i of a panel accumulates into accumulator
    /// `i < split ? i : dst + i − split` (GRU-LBR's n_h lands in 6..7).
    pub split: usize,
    pub dst: usize,
}

impl Geom {
    /// Elements per panel.
    #[inline(always)]
    pub(crate) fn panel_len(&self) -> usize {
        self.nv.n() * self.lanes * self.k.next_multiple_of(self.kg)
    }
    /// The accumulator vector `i` feeds.
    #[inline(always)]
    pub(crate) fn acc(&self, i: usize) -> usize {
        if i < self.split {
            i
        } else {
            self.dst + i - self.split
        }
    }
}

/// Panel storage, one element type per precision.
#[derive(Clone, Debug)]
pub(crate) enum Store {
    F32(ABuf<f32>),
    F16(ABuf<F16>),
    Bf16(ABuf<Bf16>),
    I8(ABuf<i8>),
}

/// A weight element type that panels can store.
pub(crate) trait Stored: Weight {
    /// The precision whose panels hold `Self`.
    const PRECISION: WeightPrecision;
    /// Integer weights with row scales: each matrix's chain starts at 0
    /// and is scaled once at its end (the x chain, then the h chain;
    /// `reference.rs` states the rule); otherwise the chain runs from the
    /// bias through x and h.
    const SCALED: bool = false;
    /// Panels in k-pairs (`Geom::kg = 2`: each 32-bit lane holds k and
    /// k + 1 of one row), read with [`super::elem::Widen::load_w_pair`]:
    /// bf16, whose pair widens with one shift or one mask per vector.
    const KPAIR: bool = false;
    /// The elements, if `s` holds this type.
    fn of(s: &Store) -> Option<&[Self]>;
    /// `v` as a store of this type.
    fn wrap(v: ABuf<Self>) -> Store;
}

macro_rules! stored {
    ($t:ty, $v:ident, $p:ident, $scaled:expr, $kpair:expr) => {
        impl Stored for $t {
            const PRECISION: WeightPrecision = WeightPrecision::$p;
            const SCALED: bool = $scaled;
            const KPAIR: bool = $kpair;
            #[inline(always)]
            fn of(s: &Store) -> Option<&[$t]> {
                match s {
                    Store::$v(b) => Some(b),
                    _ => None,
                }
            }
            fn wrap(v: ABuf<$t>) -> Store {
                Store::$v(v)
            }
        }
    };
}
stored!(f32, F32, F32, false, false);
stored!(F16, F16, F16, false, false);
stored!(Bf16, Bf16, Bf16, false, true);
stored!(i8, I8, Int8Weights, true, false);

/// The packed panels of one weight matrix.
#[derive(Clone, Debug)]
pub(crate) struct Panels {
    pub geom: Geom,
    store: Store,
    /// int8 weights: the f32 scale of every packed row, `nv · lanes` per
    /// panel in the panel's vector order; empty otherwise.
    scale: Buf,
    /// `i8`: 128 · Σ_k q of every packed row (same order as `scale`), the
    /// correction of dot instructions that take the activations offset to
    /// unsigned bytes (`vpdpbusd` on q + 128); empty otherwise.
    qsum: ABuf<i32>,
}

impl Panels {
    pub(crate) fn new(geom: Geom, store: Store, scale: Buf, qsum: ABuf<i32>) -> Panels {
        Panels {
            geom,
            store,
            scale,
            qsum,
        }
    }

    /// No panels (a matrix the layer does not have).
    pub(crate) fn empty() -> Panels {
        Panels {
            geom: Geom {
                panels: 0,
                nv: Nv::V8,
                lanes: 1,
                k: 0,
                kg: 1,
                split: 8,
                dst: 8,
            },
            store: Store::F32(ABuf::new(64)),
            scale: ABuf::new(64),
            qsum: ABuf::new(64),
        }
    }

    /// Every panel's elements (panel p at `p · geom.panel_len()`).
    ///
    /// # Panics
    /// As [`Panels::panel`].
    #[inline(always)]
    pub(crate) fn all<W: Stored>(&self) -> &[W] {
        W::of(&self.store).expect("panels of another weight type")
    }

    /// Panel `p`'s elements.
    ///
    /// # Panics
    /// If the panels hold another type than `W` (never: the kernel table
    /// and the panels are chosen together, from the model's precision).
    #[inline(always)]
    pub(crate) fn panel<W: Stored>(&self, p: usize) -> &[W] {
        let all = W::of(&self.store).expect("panels of another weight type");
        let n = self.geom.panel_len();
        &all[p * n..(p + 1) * n]
    }

    /// Panel `p`'s row scales (int8 weights only).
    #[inline(always)]
    pub(crate) fn scale(&self, p: usize) -> &[f32] {
        let n = self.geom.nv.n() * self.geom.lanes;
        &self.scale[p * n..(p + 1) * n]
    }

    /// Panel `p`'s offset corrections (`i8` only).
    #[inline(always)]
    pub(crate) fn qsum(&self, p: usize) -> &[i32] {
        let n = self.geom.nv.n() * self.geom.lanes;
        &self.qsum[p * n..(p + 1) * n]
    }

    /// Bytes of weights, scales and offset corrections.
    pub(crate) fn bytes(&self) -> usize {
        let elems = match &self.store {
            Store::F32(b) => 4 * b.len(),
            Store::F16(b) => 2 * b.len(),
            Store::Bf16(b) => 2 * b.len(),
            Store::I8(b) => b.len(),
        };
        elems + 4 * self.scale.len() + 4 * self.qsum.len()
    }
}

/// One layer and direction, packed for one ISA and one precision.
#[derive(Clone, Debug)]
pub(crate) struct PackedLayer {
    pub op: Op,
    /// Non-standard activations f, g, h (kernels/act.rs), or `None`: the
    /// cell's own (sigmoid, tanh, tanh; the RNN's tanh or relu in `op`),
    /// inlined in the epilogues.
    pub acts: Option<[Activation; 3]>,
    /// How the weight panels are stored.
    pub precision: WeightPrecision,
    /// Inputs to the layer.
    pub input: usize,
    /// Size of h (P or H).
    pub hr: usize,
    /// Units per multi-gate panel.
    pub u: usize,
    /// Units per single-gate panel.
    pub u1: usize,
    /// Input weights: multi-gate panels (single-gate for RNN).
    pub wx: Panels,
    /// Recurrent weights: multi-gate panels (single-gate for RNN; gates r, z
    /// only for a reset-before GRU).
    pub wh: Panels,
    /// Reset-before GRU: R_n as single-gate panels.
    pub wh_n: Panels,
    /// Projection [P, H] as single-gate panels.
    pub proj: Panels,
    /// Biases per panel: `bias_sets × u` values per multi-gate panel, or a
    /// padded vector for single-gate layers.
    pub bias: Buf,
    /// Vectors of bias per panel (8; 6 for a reset-before GRU).
    pub bias_sets: usize,
    /// Peepholes p_i, p_f, p_o, each padded to `STATE_PAD`.
    pub peep: Buf,
    /// Projection bias, padded (zeros if none).
    pub proj_bias: Buf,
}

impl PackedLayer {
    /// Bytes of packed weights (what one streaming step reads): every
    /// weight panel with its scales, bias, peephole and projection buffer.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.wx.bytes()
            + self.wh.bytes()
            + self.wh_n.bytes()
            + self.proj.bytes()
            + 4 * (self.bias.len() + self.peep.len() + self.proj_bias.len())
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
    /// One panel's gate accumulators, parked by the multi-column kernel
    /// (`TILE` floats), then a second region of `TILE` for the recurrent
    /// chain of int8 weights, which is scaled separately.
    pub tile: Buf,
    /// `i8` models: the quantized layer input (int8 words in f32 bits,
    /// see `body_int.rs`); empty otherwise.
    pub qx: Buf,
    /// `i8` models: the quantized h (then r⊙h or m); empty otherwise.
    pub qh: Buf,
    /// Scan the panels backwards on the next step. The direction alternates
    /// every step so that the panels read last (still in cache) are read
    /// first; it never changes a result (panels are independent rows).
    pub flip: bool,
}

/// Floats of one tile region (8 vectors of the widest ISA).
pub(crate) const TILE: usize = super::buf::STATE_PAD;

impl LayerState {
    /// A placeholder that owns no memory (fills unused slots of fixed
    /// arrays without allocating).
    pub(crate) fn empty() -> LayerState {
        LayerState {
            h: ABuf::new(64),
            h_next: ABuf::new(64),
            c: ABuf::new(64),
            s0: ABuf::new(64),
            s1: ABuf::new(64),
            s2: ABuf::new(64),
            tile: ABuf::new(64),
            qx: ABuf::new(64),
            qh: ABuf::new(64),
            flip: false,
        }
    }
}

//! Shared helpers for the integration tests: the ISAs to test, a small
//! deterministic RNG, random weights and inputs, bit comparisons and
//! proptest strategies for model shapes.

#![allow(dead_code)]

use proptest::prelude::*;
use rnncell::*;

pub mod c_abi;
pub mod trace;
pub mod vector_spec;
#[allow(unused_imports)]
pub use trace::*;
#[allow(unused_imports)]
pub use vector_spec::spec_of;

/// Every ISA to test: [`Isa::available`] (lowered by `RNNCELL_ISA`). If
/// `RNNCELL_REQUIRE_ISA=name` is set, panics unless that ISA is in the
/// list, so a CI job fails instead of silently testing less.
pub fn isas() -> Vec<Isa> {
    let list = Isa::available();
    if let Ok(req) = std::env::var("RNNCELL_REQUIRE_ISA") {
        let req = req.trim();
        if !req.is_empty() {
            let isa = Isa::from_name(req)
                .unwrap_or_else(|| panic!("RNNCELL_REQUIRE_ISA={req}: unknown ISA name"));
            assert!(
                list.contains(&isa),
                "RNNCELL_REQUIRE_ISA={req}, but the ISAs available here are {list:?}"
            );
        }
    }
    list
}

/// One set of kernels to test: an ISA of [`isas`], or the portable 16-lane
/// emulation of the AVX-512 geometry (16 lanes, 8 columns per block), which
/// runs everywhere, so that geometry is checked on CPUs without AVX-512.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kern {
    Isa(Isa),
    Wide16,
    /// An ISA with one of its integer dot sequences (`i8` models).
    IntDot(Isa, &'static str),
}

impl Kern {
    pub fn model(self, spec: ModelSpec, weights: &[LayerWeights]) -> Result<Model> {
        match self {
            Kern::Isa(isa) => Model::with_isa(spec, weights, isa),
            Kern::Wide16 => bench_internals::model_with_wide16_emulation(spec, weights),
            Kern::IntDot(isa, dot) => bench_internals::model_with_int_dot(spec, weights, isa, dot),
        }
    }
}

impl std::fmt::Display for Kern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kern::Isa(isa) => write!(f, "{isa}"),
            Kern::Wide16 => f.write_str("wide16 (emulated AVX-512 geometry)"),
            Kern::IntDot(isa, dot) => write!(f, "{isa} {dot}"),
        }
    }
}

/// [`isas`] and the 16-lane emulation.
pub fn kernel_sets() -> Vec<Kern> {
    let mut v: Vec<Kern> = isas().into_iter().map(Kern::Isa).collect();
    v.push(Kern::Wide16);
    v
}

/// The kernel sets of `i8` models: every integer dot sequence of every ISA
/// of [`isas`] (`bench_internals::int_dots`), and the 16-lane emulation
/// (which models `vpdpbusd`). If `RNNCELL_REQUIRE_INT_DOT=a,b` is set,
/// panics unless each named sequence is among them, so that a CI job on a
/// CPU with VNNI fails rather than skips it.
pub fn int8_kernel_sets() -> Vec<Kern> {
    let mut v = Vec::new();
    for isa in isas() {
        for dot in bench_internals::int_dots(isa) {
            v.push(Kern::IntDot(isa, dot));
        }
    }
    if let Ok(req) = std::env::var("RNNCELL_REQUIRE_INT_DOT") {
        for name in req.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            assert!(
                v.iter()
                    .any(|k| matches!(k, Kern::IntDot(_, d) if *d == name)),
                "RNNCELL_REQUIRE_INT_DOT={name}, but the integer dots here are {v:?}"
            );
        }
    }
    v.push(Kern::Wide16);
    v
}

/// A proptest config with `default_cases` cases, unless `PROPTEST_CASES`
/// is set (the NEON run under qemu sets a small value). Failing cases are
/// saved to `regressions` (a path under `proptest-regressions/`, relative
/// to the package root, where `cargo test` runs) and replayed first on
/// every later run; commit those files.
pub fn proptest_config(default_cases: u32, regressions: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(regressions),
        )),
        ..ProptestConfig::default()
    }
}

/// SplitMix64: small, fast, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct DataRng(u64);

impl DataRng {
    pub fn new(seed: u64) -> DataRng {
        DataRng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-s, s).
    pub fn sym(&mut self, s: f32) -> f32 {
        ((self.unit() * 2.0 - 1.0) * s as f64) as f32
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    pub fn vec(&mut self, n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|_| self.sym(s)).collect()
    }
}

/// Random canonical weights for every layer and direction of `spec`:
/// every tensor uniform in ±1/√H (the PyTorch initialisation), including
/// peepholes, projection and projection bias when the spec has them.
pub fn random_weights(spec: &ModelSpec, seed: u64) -> Vec<LayerWeights> {
    random_weights_scaled(spec, seed, 1.0 / (spec.hidden_size as f32).sqrt())
}

/// Like [`random_weights`] with every tensor uniform in ±`s`.
pub fn random_weights_scaled(spec: &ModelSpec, seed: u64, s: f32) -> Vec<LayerWeights> {
    let mut rng = DataRng::new(seed);
    let g = spec.cell.gates();
    let h = spec.hidden_size;
    let hr = spec.state_size();
    let p = spec.proj_size();
    let (peep, pbias) = match spec.cell {
        CellKind::Lstm(o) => (o.peephole, o.proj_bias),
        _ => (false, false),
    };
    (0..spec.num_layers * spec.directions())
        .map(|i| {
            let input = spec.layer_input_size(i / spec.directions());
            LayerWeights {
                w: rng.vec(g * h * input, s),
                r: rng.vec(g * h * hr, s),
                b_w: rng.vec(g * h, s),
                b_r: rng.vec(g * h, s),
                peephole: if peep { rng.vec(3 * h, s) } else { vec![] },
                proj: rng.vec(p * h, s),
                proj_bias: if pbias { rng.vec(p, s) } else { vec![] },
            }
        })
        .collect()
}

/// Special values mixed into inputs by [`sprinkle_specials`].
pub const SPECIALS: [f32; 10] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    1e30,
    -1e30,
    -0.0,
    0.0,
    1e-40,
    -1e-42,
    f32::MAX,
];

/// Replaces about `1/every` of the values with special values.
pub fn sprinkle_specials(rng: &mut DataRng, v: &mut [f32], every: usize) {
    for x in v.iter_mut() {
        if rng.below(every) == 0 {
            *x = SPECIALS[rng.below(SPECIALS.len())];
        }
    }
}

/// Bit equality, except that any NaN equals any NaN (NaN payloads are not
/// part of the guarantee: x86 and the scalar `fmaf` may pick different
/// operands' payloads when two NaNs meet).
/// The bits of each value (for `assert_eq!` of whole vectors).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// `Err` describing the first element where `a` and `b` differ in bits
/// (see [`same_bits`]).
pub fn cmp_bits(what: &str, a: &[f32], b: &[f32]) -> std::result::Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{what}: lengths {} vs {}", a.len(), b.len()));
    }
    match a.iter().zip(b).position(|(x, y)| !same_bits(*x, *y)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: element {i} of {} differs: {:e} ({:#010x}) vs {:e} ({:#010x})",
            a.len(),
            a[i],
            a[i].to_bits(),
            b[i],
            b[i].to_bits()
        )),
    }
}

/// max |a − b| of two f32 slices of the same length (a NaN is skipped by
/// `f32::max`: compare bits where NaN matters).
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Max |a − b| (NaN anywhere gives NaN, which fails any `<=` bound).
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// The sizes the tests draw from: 1, primes, lane widths ± 1 (4, 8, 16
/// lanes, panels of 2 and 8 vectors), nothing too large.
pub const SIZES: [usize; 20] = [
    1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
];

/// Mostly a size from [`SIZES`], rarely (1 in 25) a large one up to 1024.
pub fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        24 => proptest::sample::select(&SIZES[..]),
        1 => prop_oneof![Just(255usize), Just(256), Just(257), Just(511), 130usize..=1024],
    ]
}

fn clip_strategy(lo: f32, hi: f32) -> impl Strategy<Value = Option<f32>> {
    prop_oneof![3 => Just(None), 1 => (lo..hi).prop_map(Some)]
}

/// Any cell variant with any combination of its options (an LSTM
/// projection, if picked, has a size from [`size_strategy`]).
pub fn cell_strategy() -> impl Strategy<Value = CellKind> {
    let coupling = prop_oneof![
        Just(Coupling::None),
        Just(Coupling::InputFromForget),
        Just(Coupling::ForgetFromInput)
    ];
    let lstm = (
        any::<bool>(),
        prop_oneof![2 => Just(0usize), 1 => size_strategy()],
        any::<bool>(),
        clip_strategy(0.05, 1.0),
        coupling,
        clip_strategy(0.3, 3.0),
        clip_strategy(0.2, 2.0),
    )
        .prop_map(|(peephole, proj_size, pb, pc, coupling, clip, cell_clip)| {
            CellKind::Lstm(LstmOptions {
                peephole,
                proj_size,
                proj_bias: proj_size > 0 && pb,
                proj_clip: if proj_size > 0 { pc } else { None },
                coupling,
                clip,
                cell_clip,
            })
        });
    let gru = (any::<bool>(), clip_strategy(0.3, 3.0)).prop_map(|(lbr, clip)| {
        CellKind::Gru(GruOptions {
            linear_before_reset: lbr,
            clip,
        })
    });
    let rnn = (any::<bool>(), clip_strategy(0.3, 3.0)).prop_map(|(relu, clip)| {
        CellKind::Rnn(RnnOptions {
            activation: if relu {
                RnnActivation::Relu
            } else {
                RnnActivation::Tanh
            },
            clip,
        })
    });
    prop_oneof![2 => lstm, 1 => gru, 1 => rnn]
}

/// Any model spec: every cell variant, 1–3 layers, every direction and
/// merge mode, sizes from [`size_strategy`]. A spec with a size above 129
/// gets a single layer, to keep the run time modest.
pub fn spec_strategy() -> impl Strategy<Value = ModelSpec> {
    (
        cell_strategy(),
        size_strategy(),
        size_strategy(),
        1usize..=3,
        prop_oneof![
            Just(Direction::Forward),
            Just(Direction::Reverse),
            Just(Direction::Bidirectional)
        ],
        prop_oneof![Just(MergeMode::Concat), Just(MergeMode::Sum)],
    )
        .prop_map(|(cell, input, hidden, layers, dir, merge)| {
            let mut spec = ModelSpec::new(fit_proj(cell, hidden), input, hidden)
                .layers(layers)
                .direction(dir)
                .merge(merge);
            if input.max(hidden).max(spec.proj_size()) > 129 {
                spec.num_layers = 1;
            }
            spec
        })
}

/// `cell` with its LSTM projection size (if any) cut to at most `hidden`
/// (a larger projection is invalid, as in PyTorch).
pub fn fit_proj(cell: CellKind, hidden: usize) -> CellKind {
    match cell {
        CellKind::Lstm(o) if o.proj_size > hidden => CellKind::Lstm(LstmOptions {
            proj_size: hidden,
            ..o
        }),
        c => c,
    }
}

/// Whether `spec` has a size above 129 (so a test should keep T and B
/// small).
pub fn is_large(spec: &ModelSpec) -> bool {
    spec.input_size.max(spec.hidden_size).max(spec.proj_size()) > 129
}

/// One named instance of every cell variant and option the crate offers
/// (LSTM variants with a projection use size `proj`).
pub fn all_variants(proj: usize) -> Vec<(&'static str, CellKind)> {
    let l = LstmOptions::default();
    let lstm = |o: LstmOptions| CellKind::Lstm(o);
    vec![
        ("lstm", lstm(l)),
        (
            "lstm peephole",
            lstm(LstmOptions {
                peephole: true,
                ..l
            }),
        ),
        (
            "lstm proj",
            lstm(LstmOptions {
                proj_size: proj,
                ..l
            }),
        ),
        (
            "lstm proj+bias+proj_clip",
            lstm(LstmOptions {
                proj_size: proj,
                proj_bias: true,
                proj_clip: Some(0.1),
                ..l
            }),
        ),
        (
            "lstm cifg tflite (i = 1-f) + peephole",
            lstm(LstmOptions {
                coupling: Coupling::InputFromForget,
                peephole: true,
                ..l
            }),
        ),
        (
            "lstm cifg onnx (f = 1-i)",
            lstm(LstmOptions {
                coupling: Coupling::ForgetFromInput,
                ..l
            }),
        ),
        (
            "lstm onnx clip",
            lstm(LstmOptions {
                clip: Some(0.4),
                ..l
            }),
        ),
        (
            "lstm cell_clip",
            lstm(LstmOptions {
                cell_clip: Some(0.3),
                ..l
            }),
        ),
        (
            "lstm everything",
            lstm(LstmOptions {
                peephole: true,
                proj_size: proj,
                proj_bias: true,
                proj_clip: Some(0.15),
                coupling: Coupling::None,
                clip: Some(0.6),
                cell_clip: Some(0.5),
            }),
        ),
        ("gru lbr", CellKind::gru()),
        ("gru reset-before", CellKind::gru_reset_before()),
        (
            "gru lbr clip",
            CellKind::Gru(GruOptions {
                linear_before_reset: true,
                clip: Some(0.4),
            }),
        ),
        (
            "gru reset-before clip",
            CellKind::Gru(GruOptions {
                linear_before_reset: false,
                clip: Some(0.4),
            }),
        ),
        ("rnn tanh", CellKind::rnn_tanh()),
        ("rnn relu", CellKind::rnn_relu()),
        (
            "rnn tanh clip",
            CellKind::Rnn(RnnOptions {
                activation: RnnActivation::Tanh,
                clip: Some(0.3),
            }),
        ),
        (
            "rnn relu clip",
            CellKind::Rnn(RnnOptions {
                activation: RnnActivation::Relu,
                clip: Some(0.3),
            }),
        ),
    ]
}

/// Runs `model` over `seq` and returns (output, h_n, c_n) (c_n empty for
/// cells without c).
pub fn run_model(model: &Model, seq: &Sequence<'_>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let spec = model.spec();
    let ld = spec.num_layers * spec.directions();
    let mut y = vec![f32::NAN; seq.steps * seq.batch * spec.output_size()];
    let mut hn = vec![f32::NAN; ld * seq.batch * spec.state_size()];
    let mut cn = vec![
        f32::NAN;
        if spec.has_cell_state() {
            ld * seq.batch * spec.hidden_size
        } else {
            0
        }
    ];
    let lstm = spec.has_cell_state();
    model
        .run(
            seq,
            &mut SequenceOutput {
                output: &mut y,
                h_n: Some(&mut hn),
                c_n: if lstm { Some(&mut cn) } else { None },
            },
        )
        .expect("run");
    (y, hn, cn)
}

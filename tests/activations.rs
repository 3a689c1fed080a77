//! Accuracy of the shared sigmoid/tanh approximation (`tanh_f32`,
//! `sigmoid_f32`, the exact arithmetic every ISA's kernels use) against f64.
//!
//! Bound tested: max |f32 approximation − f64 exact| ≤ 5e-7 absolute
//! (DESIGN §5), over a dense sweep of [−20, 20] (every STRIDE-th f32 bit
//! pattern, in value order, which also covers the tiny and denormal
//! values), plus ±0, denormals, huge values, ±inf and NaN. Also: outputs
//! stay in [−1, 1] and [0, 1], both functions are monotone non-decreasing
//! over the sweep up to rounding (a step back of at most `MONOTONE_SLACK`
//! between consecutive points; the count and size of such steps are
//! printed), and NaN in gives NaN out.

use rnncell::{Activation, sigmoid_f32, tanh_f32};

const BOUND: f64 = 5e-7;
/// Step between the f32 bit patterns visited: about 2.2e9 patterns lie in
/// [−20, 20], so this visits about 7.1e7 points per function (every 31st
/// f32, a prime stride so that no mantissa pattern is favoured).
/// `RNNCELL_SWEEP_STRIDE` overrides it (for example a larger prime under
/// an emulator, or 1 for the exhaustive sweep).
const STRIDE: u32 = 31;

fn stride() -> u32 {
    std::env::var("RNNCELL_SWEEP_STRIDE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&s: &u32| s >= 1)
        .unwrap_or(STRIDE)
}

/// The approximation is monotone only up to rounding: the rounded rational
/// function steps back by up to a few ulp of its value (mostly near
/// saturation). This is the largest step back allowed between consecutive
/// swept points.
///
/// Measured once over every f32 in [−20, 20] (`RNNCELL_SWEEP_STRIDE=1`,
/// 2.2e9 points, about 5 minutes): tanh max |err| 2.92e-7 (x = −5.126),
/// sigmoid 1.69e-7 (x = 8.003); largest step back 4.17e-7 (tanh, 1.5e7
/// step backs) and 2.38e-7 (sigmoid, 1.2e7).
const MONOTONE_SLACK: f64 = 5e-7;

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    points: u64,
    max_err: f64,
    at: f32,
    drops: u64,
    max_drop: f64,
    drop_at: f32,
}

impl Stats {
    fn add(&mut self, x: f32, err: f64) {
        self.points += 1;
        // NaN errors must register too, hence not `err > max_err`.
        if err.is_nan() || err > self.max_err {
            self.max_err = err;
            self.at = x;
        }
    }
    fn merge(self, o: Stats) -> Stats {
        let (max_err, at) = if o.max_err > self.max_err {
            (o.max_err, o.at)
        } else {
            (self.max_err, self.at)
        };
        let (max_drop, drop_at) = if o.max_drop > self.max_drop {
            (o.max_drop, o.drop_at)
        } else {
            (self.max_drop, self.drop_at)
        };
        Stats {
            points: self.points + o.points,
            max_err,
            at,
            drops: self.drops + o.drops,
            max_drop,
            drop_at,
        }
    }
}

/// Every STRIDE-th f32 in [−20, 20] in ascending value order, split in
/// `parts` contiguous chunks (for threads); each chunk is checked for
/// range, accuracy and monotonicity (chunk borders overlap by one point).
fn sweep(f: fn(f32) -> f32, exact: fn(f64) -> f64, lo: f32, hi: f32, parts: u32) -> Stats {
    let top = 20.0f32.to_bits();
    let stride = stride();
    // Index i in [0, 2n): i < n are negatives from −20 up to −0, then +0
    // up to 20.
    let n = top / stride + 1;
    let value = move |i: u32| -> f32 {
        if i < n {
            f32::from_bits(0x8000_0000 | (top - i * stride))
        } else {
            f32::from_bits((i - n) * stride)
        }
    };
    let total = 2 * n;
    let chunk = total.div_ceil(parts);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|p| {
                s.spawn(move || {
                    let mut st = Stats::default();
                    let start = p * chunk;
                    let end = ((p + 1) * chunk + 1).min(total);
                    let mut prev = f32::NEG_INFINITY;
                    for i in start..end {
                        let x = value(i);
                        let y = f(x);
                        assert!(
                            (lo..=hi).contains(&y),
                            "f({x:e}) = {y:e} outside [{lo}, {hi}]"
                        );
                        if y < prev {
                            st.drops += 1;
                            if (prev - y) as f64 > st.max_drop {
                                st.max_drop = (prev - y) as f64;
                                st.drop_at = x;
                            }
                        }
                        prev = y;
                        st.add(x, (y as f64 - exact(x as f64)).abs());
                    }
                    st
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(Stats::default(), Stats::merge)
    })
}

fn special_inputs() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::from_bits(0x007f_ffff),
        1e-30,
        -1e-30,
        1e-10,
        1e-5,
        7.998_811_7,
        8.0,
        -8.0,
        9.0,
        20.0,
        -20.0,
        50.0,
        88.8,
        -88.8,
        89.0,
        1e10,
        -1e10,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for e in -40..40 {
        v.push(1.5f32.powi(e));
        v.push(-(1.5f32.powi(e)));
    }
    v
}

fn threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u32)
}

#[test]
fn tanh_accuracy_sweep() {
    let t0 = std::time::Instant::now();
    let st = sweep(tanh_f32, f64::tanh, -1.0, 1.0, threads());
    println!(
        "tanh_f32: max |err| = {:.3e} at x = {:e} over {} points in [-20, 20] ({:.1?})",
        st.max_err,
        st.at,
        st.points,
        t0.elapsed()
    );
    println!(
        "  monotonicity: {} decreases between consecutive points, largest {:.3e} at x = {:e}",
        st.drops, st.max_drop, st.drop_at
    );
    assert!(st.points as f64 >= 2.0 * (20.0f32.to_bits() / stride()) as f64);
    assert!(st.max_drop <= MONOTONE_SLACK, "step back {:e}", st.max_drop);
    assert!(
        st.max_err <= BOUND,
        "tanh max error {:e} > {BOUND:e}",
        st.max_err
    );
}

#[test]
fn sigmoid_accuracy_sweep() {
    let t0 = std::time::Instant::now();
    let st = sweep(sigmoid_f32, sigmoid64, 0.0, 1.0, threads());
    println!(
        "sigmoid_f32: max |err| = {:.3e} at x = {:e} over {} points in [-20, 20] ({:.1?})",
        st.max_err,
        st.at,
        st.points,
        t0.elapsed()
    );
    println!(
        "  monotonicity: {} decreases between consecutive points, largest {:.3e} at x = {:e}",
        st.drops, st.max_drop, st.drop_at
    );
    assert!(st.points as f64 >= 2.0 * (20.0f32.to_bits() / stride()) as f64);
    assert!(st.max_drop <= MONOTONE_SLACK, "step back {:e}", st.max_drop);
    assert!(
        st.max_err <= BOUND,
        "sigmoid max error {:e} > {BOUND:e}",
        st.max_err
    );
}

#[test]
fn special_values() {
    let mut worst_t = Stats::default();
    let mut worst_s = Stats::default();
    for x in special_inputs() {
        let t = tanh_f32(x);
        let s = sigmoid_f32(x);
        assert!((-1.0..=1.0).contains(&t), "tanh({x:e}) = {t:e}");
        assert!((0.0..=1.0).contains(&s), "sigmoid({x:e}) = {s:e}");
        worst_t.add(x, (t as f64 - (x as f64).tanh()).abs());
        worst_s.add(x, (s as f64 - sigmoid64(x as f64)).abs());
        // Odd symmetry of tanh, exactly.
        assert_eq!(tanh_f32(-x).to_bits(), (-t).to_bits(), "tanh(-{x:e})");
    }
    println!(
        "special values: tanh max |err| = {:.3e} (x = {:e}), sigmoid max |err| = {:.3e} (x = {:e})",
        worst_t.max_err, worst_t.at, worst_s.max_err, worst_s.at
    );
    assert!(worst_t.max_err <= BOUND && worst_s.max_err <= BOUND);

    // Signed zeros and exact values.
    assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(sigmoid_f32(0.0), 0.5);
    assert_eq!(sigmoid_f32(-0.0), 0.5);
    // Saturation.
    for x in [f32::INFINITY, f32::MAX, 1e30, 100.0] {
        assert!((1.0 - tanh_f32(x)) as f64 <= BOUND);
        assert!((tanh_f32(-x) + 1.0) as f64 <= BOUND);
        assert!((1.0 - sigmoid_f32(x)) as f64 <= BOUND);
        assert!(sigmoid_f32(-x) as f64 <= BOUND);
    }
    // Denormal inputs give (nearly) zero-or-same-sign tiny outputs.
    for bits in [1u32, 2, 1000, 0x007f_ffff] {
        let x = f32::from_bits(bits);
        assert!(tanh_f32(x) >= 0.0 && tanh_f32(x) <= 2.0 * x);
        assert!(tanh_f32(-x) <= 0.0 && tanh_f32(-x) >= -2.0 * x);
    }
    // NaN in gives NaN out, whatever its sign or payload.
    for nan in [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ] {
        assert!(tanh_f32(nan).is_nan(), "tanh(NaN {:#x})", nan.to_bits());
        assert!(
            sigmoid_f32(nan).is_nan(),
            "sigmoid(NaN {:#x})",
            nan.to_bits()
        );
    }
}

// ---------------------------------------------------------------------------
// The other activation functions (`rnncell::Activation`, kernels/act.rs).

/// Each function with its tested bound: |eval(x) − eval_f64(x)| ≤ abs +
/// rel·|eval_f64(x)| over the sweep and the special values.
fn others() -> Vec<(Activation, f64, f64)> {
    const U: f64 = 1.0 / 16_777_216.0; // 2^-24, half an ulp relative
    const SUB: f64 = 7.1e-46; // half the spacing of subnormal f32
    vec![
        (Activation::Relu, 0.0, 0.0),
        (
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            6e-8,
            0.0,
        ),
        (
            Activation::HardSigmoid {
                alpha: -1.7,
                beta: 0.3,
            },
            6e-8,
            0.0,
        ),
        (Activation::LeakyRelu { alpha: 0.01 }, SUB, U),
        (Activation::LeakyRelu { alpha: -1.5 }, SUB, U),
        (Activation::ThresholdedRelu { alpha: 1.0 }, 0.0, 0.0),
        (Activation::ThresholdedRelu { alpha: -0.5 }, 0.0, 0.0),
        (
            Activation::ScaledTanh {
                alpha: 1.7,
                beta: 0.66,
            },
            1.7 * BOUND,
            2.0 * U,
        ),
        (
            Activation::Affine {
                alpha: 0.5,
                beta: -0.25,
            },
            SUB,
            U,
        ),
        (
            Activation::Affine {
                alpha: -3.0,
                beta: 2.0,
            },
            SUB,
            U,
        ),
        (Activation::Elu { alpha: 1.0 }, 3e-7, 0.0),
        (Activation::Elu { alpha: 0.3 }, 1.2e-7, 0.0),
        (Activation::Softsign, 0.0, 2.0 * U),
        (Activation::Softplus, 4e-7, 2.0 * U),
        (Activation::KerasHardSigmoid, 1.2e-7, 0.0),
    ]
}

/// Largest (|err| − rel·|exact|) over every STRIDE-th f32 in [−20, 20] and
/// the special values, with the x where it occurs.
fn worst_excess(a: Activation, rel: f64) -> (f64, f32, u64) {
    let top = 20.0f32.to_bits();
    // 15 functions: every 7·STRIDE-th f32 (about 1e7 points each).
    let stride = 7 * stride();
    let n = top / stride + 1;
    let value = move |i: u32| -> f32 {
        if i < n {
            f32::from_bits(0x8000_0000 | (top - i * stride))
        } else {
            f32::from_bits((i - n) * stride)
        }
    };
    let parts = threads();
    let total = 2 * n;
    let chunk = total.div_ceil(parts);
    let check = move |x: f32| -> f64 {
        let (y, e) = (a.eval(x) as f64, a.eval_f64(x as f64));
        if e.is_nan() {
            // NaN in, NaN out (ThresholdedRelu: 0).
            return if y.is_nan() { 0.0 } else { f64::INFINITY };
        }
        if e.abs() > f32::MAX as f64 {
            // Beyond f32 (or infinite): the f32 result overflows to ∞.
            return if y == e.signum() * f64::INFINITY {
                0.0
            } else {
                f64::INFINITY
            };
        }
        (y - e).abs() - rel * e.abs()
    };
    let mut res = std::thread::scope(|s| {
        let hs: Vec<_> = (0..parts)
            .map(|p| {
                s.spawn(move || {
                    let (mut w, mut at) = (f64::NEG_INFINITY, 0.0f32);
                    for i in p * chunk..((p + 1) * chunk).min(total) {
                        let x = value(i);
                        let d = check(x);
                        if d.is_nan() || d > w {
                            (w, at) = (d, x);
                        }
                    }
                    (w, at)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold(
            (f64::NEG_INFINITY, 0.0, 0),
            |acc, (w, at)| {
                if w > acc.0 { (w, at, 0) } else { acc }
            },
        )
    });
    res.2 = total as u64;
    for x in special_inputs().into_iter().chain([f32::NAN, -f32::NAN]) {
        let d = check(x);
        if d.is_nan() || d > res.0 {
            (res.0, res.1) = (d, x);
        }
    }
    res
}

#[test]
fn other_activations_within_their_bounds() {
    let mut bad = Vec::new();
    for (a, abs, rel) in others() {
        let (w, at, n) = worst_excess(a, rel);
        println!(
            "{a:?}: max |err| − {rel:.1e}·|f| = {w:.3e} at x = {at:e} over {n} points (bound {abs:.1e})"
        );
        if w.is_nan() || w > abs {
            bad.push(format!("{a:?}: {w:e} at x = {at:e} > {abs:e}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn standard_activations_are_the_kernels_own() {
    for x in special_inputs() {
        let s = |a: Activation| a.eval(x).to_bits();
        assert_eq!(s(Activation::Sigmoid), sigmoid_f32(x).to_bits());
        assert_eq!(s(Activation::Tanh), tanh_f32(x).to_bits());
    }
}

#[test]
fn activation_edges() {
    use Activation as A;
    let inf = f32::INFINITY;
    // Zeros come out +0 (the same on every ISA, whatever max/min do).
    for a in [
        A::Relu,
        A::LeakyRelu { alpha: 0.5 },
        A::ThresholdedRelu { alpha: -1.0 },
        A::Elu { alpha: 1.0 },
        A::HardSigmoid {
            alpha: 1.0,
            beta: 0.0,
        },
    ] {
        assert_eq!(a.eval(-0.0).to_bits(), 0, "{a:?}(-0)");
    }
    assert_eq!(A::Softplus.eval(inf), inf);
    assert_eq!(A::Softplus.eval(-inf), 0.0);
    assert_eq!(A::Softplus.eval(0.0), std::f32::consts::LN_2);
    assert!(A::Softplus.eval(-30.0) >= 0.0);
    assert_eq!(A::Elu { alpha: 2.0 }.eval(-inf), -2.0);
    assert_eq!(A::Elu { alpha: 2.0 }.eval(inf), inf);
    assert_eq!(A::Elu { alpha: 2.0 }.eval(0.0), 0.0);
    assert_eq!(A::KerasHardSigmoid.eval(-3.0), 0.0);
    assert_eq!(A::KerasHardSigmoid.eval(3.0), 1.0);
    assert_eq!(A::KerasHardSigmoid.eval(0.0), 0.5);
    assert_eq!(A::ThresholdedRelu { alpha: 1.0 }.eval(1.0), 0.0);
    assert_eq!(A::ThresholdedRelu { alpha: 1.0 }.eval(f32::NAN), 0.0);
    for a in [
        A::Softsign,
        A::Softplus,
        A::Elu { alpha: 1.0 },
        A::KerasHardSigmoid,
    ] {
        assert!(a.eval(f32::NAN).is_nan(), "{a:?}(NaN)");
    }
}

//! Every activation function of [`Activation`] as one fixed sequence of
//! IEEE operations over [`Simd`], so each returns the same bits on every
//! ISA. Sigmoid, tanh and relu are the epilogues' own (simd.rs); the others
//! are built from them and exact operations:
//!
//! * HardSigmoid `min(1, max(0, fma(α, x, β)))`, Affine `fma(α, x, β)`,
//!   ScaledTanh `α·tanh(β·x)`, Softsign `x / (1 + |x|)`, Keras 3's hard
//!   sigmoid `min(6, max(0, x + 3)) / 6`: exact up to their roundings (and
//!   tanh's error);
//! * LeakyRelu `fma(α, min(0, x), max(0, x))` (one rounding of α·x),
//!   ThresholdedRelu `x > α ? x : 0`;
//! * Elu `fma(α, expm1(min(0, x)), max(0, x))` with
//!   `expm1(m) = 2t / (1 − t)`, `t = tanh(m/2)` (no cancellation near 0;
//!   exactly 0 at 0);
//! * Softplus `max(0, x) + max(0, ln 2 − ln(1 + τ))`, `τ = tanh(|x|/2)`,
//!   since `1 + e^−|x| = 2 / (1 + τ)`; `ln(1 + τ) = 2·atanh(u)`,
//!   `u = τ / (2 + τ) ∈ [0, 1/3]`, by its series to u¹³ (truncation
//!   < 1e-8).
//!
//! Every result that can be a zero is `+ 0` (x86 and NEON `max`/`min` of
//! two zeros differ in sign; this makes it +0 everywhere). NaN in gives NaN
//! out, except ThresholdedRelu (NaN > α is false: 0, as ONNX Runtime).
//! Error bounds against f64: `tests/activations.rs`.

use super::simd::{Scalar, Simd, relu, sigmoid, tanh};
use crate::cell::activation::Activation;

/// 1, 1/3, 1/5, …, 1/13: ln(1 + τ) = 2u·Σ L[k]·u^{2k}.
#[allow(clippy::excessive_precision)]
const L: [f32; 7] = [
    1.0,
    0.333_333_333_333_333_3,
    0.2,
    0.142_857_142_857_142_85,
    0.111_111_111_111_111_1,
    0.090_909_090_909_090_91,
    0.076_923_076_923_076_92,
];

/// `a` of every lane of `x`.
#[inline(always)]
pub(crate) fn apply<S: Simd>(s: S, a: &Activation, x: S::V) -> S::V {
    let zero = s.splat(0.0);
    let one = s.splat(1.0);
    let half = s.splat(0.5);
    match *a {
        Activation::Sigmoid => sigmoid(s, x),
        Activation::Tanh => tanh(s, x),
        Activation::Relu => relu(s, x),
        Activation::HardSigmoid { alpha, beta } => {
            let y = s.fma(s.splat(alpha), x, s.splat(beta));
            s.add(s.min(one, s.max(zero, y)), zero)
        }
        Activation::LeakyRelu { alpha } => {
            let y = s.fma(s.splat(alpha), s.min(zero, x), s.max(zero, x));
            s.add(y, zero)
        }
        Activation::ThresholdedRelu { alpha } => {
            s.add(s.select_gt(x, s.splat(alpha), x, zero), zero)
        }
        Activation::ScaledTanh { alpha, beta } => {
            s.mul(s.splat(alpha), tanh(s, s.mul(s.splat(beta), x)))
        }
        Activation::Affine { alpha, beta } => s.fma(s.splat(alpha), x, s.splat(beta)),
        Activation::Elu { alpha } => {
            let t = tanh(s, s.mul(s.min(zero, x), half));
            let em1 = s.div(s.add(t, t), s.sub(one, t));
            s.add(s.fma(s.splat(alpha), em1, s.max(zero, x)), zero)
        }
        Activation::Softsign => s.div(x, s.add(one, s.abs(x))),
        Activation::Softplus => {
            let tau = tanh(s, s.mul(s.abs(x), half));
            let u = s.div(tau, s.add(s.splat(2.0), tau));
            let u2 = s.mul(u, u);
            let mut p = s.fma(u2, s.splat(L[6]), s.splat(L[5]));
            for &c in L[..5].iter().rev() {
                p = s.fma(u2, p, s.splat(c));
            }
            // ln 2 − ln(1 + τ) ≥ 0; its rounding may not be.
            let lg = s.sub(s.splat(std::f32::consts::LN_2), s.mul(s.add(u, u), p));
            s.add(s.max(zero, x), s.max(zero, lg))
        }
        Activation::KerasHardSigmoid => {
            let six = s.splat(6.0);
            let y = s.min(six, s.max(zero, s.add(x, s.splat(3.0))));
            s.add(s.div(y, six), zero)
        }
    }
}

/// [`apply`] on one value (the reference path, [`Activation::eval`]).
pub(crate) fn eval_f32(a: &Activation, x: f32) -> f32 {
    apply(Scalar, a, x)
}

/// [`Simd::act`] of a token, compiled with the token's features and kept
/// out of line (one call per vector; the standard activations are inlined
/// in the epilogues instead). `act_entry!(name, Token, [features])`.
#[allow(unused_macros)]
macro_rules! act_entry {
    ($name:ident, $tok:ty, [$($feat:literal),*]) => {
        $(#[target_feature(enable = $feat)])*
        #[inline(never)]
        fn $name(
            t: $tok,
            a: &crate::cell::activation::Activation,
            x: <$tok as Simd>::V,
        ) -> <$tok as Simd>::V {
            crate::kernels::act::apply(t, a, x)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::Wide16;

    /// Inputs: ±0, subnormals, ±∞, NaNs, huge values, and every 4099th f32
    /// bit pattern in [−20, 20] (both signs).
    fn inputs() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
            1e30,
            -1e30,
            1.0,
            -1.0,
            -3.0,
            3.0,
        ];
        let mut b = 0u32;
        while b < 20.0f32.to_bits() {
            v.push(f32::from_bits(b));
            v.push(-f32::from_bits(b));
            b += 4099;
        }
        v
    }

    fn every() -> Vec<Activation> {
        use Activation as A;
        vec![
            A::Sigmoid,
            A::Tanh,
            A::Relu,
            A::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            A::LeakyRelu { alpha: -0.3 },
            A::ThresholdedRelu { alpha: 0.7 },
            A::ScaledTanh {
                alpha: 1.5,
                beta: -0.5,
            },
            A::Affine {
                alpha: 2.0,
                beta: -1.0,
            },
            A::Elu { alpha: 0.8 },
            A::Softsign,
            A::Softplus,
            A::KerasHardSigmoid,
        ]
    }

    /// `s.act` over `xs`, LANES at a time (the tail padded with zeros).
    fn run<S: Simd>(s: S, a: &Activation, xs: &[f32]) -> Vec<u32> {
        let l = S::LANES;
        let mut out = Vec::new();
        for c in xs.chunks(l) {
            let mut t = vec![0.0f32; l];
            t[..c.len()].copy_from_slice(c);
            let mut y = vec![0.0f32; l];
            s.store(&mut y, s.act(a, s.load(&t)));
            out.extend(y[..c.len()].iter().map(|v| v.to_bits()));
        }
        out
    }

    /// Every ISA's out-of-line `act` == `eval_f32`, bit for bit (any NaN
    /// for NaN).
    #[test]
    fn every_isa_computes_the_same_bits() {
        let xs = inputs();
        let norm = |v: Vec<u32>| -> Vec<u32> {
            v.into_iter()
                .map(|b| {
                    if f32::from_bits(b).is_nan() {
                        0x7fc0_0000
                    } else {
                        b
                    }
                })
                .collect()
        };
        for a in every() {
            let want = norm(xs.iter().map(|&x| eval_f32(&a, x).to_bits()).collect());
            assert_eq!(norm(run(Scalar, &a, &xs)), want, "{a:?} scalar");
            assert_eq!(norm(run(Wide16, &a, &xs)), want, "{a:?} wide16");
            #[cfg(target_arch = "x86_64")]
            {
                let _fp = crate::kernels::fpenv::FpEnv::enter();
                if let Some(t) = crate::kernels::x86::Avx2::new() {
                    assert_eq!(norm(run(t, &a, &xs)), want, "{a:?} avx2");
                }
                if let Some(t) = crate::kernels::x86::Avx512::new() {
                    assert_eq!(norm(run(t, &a, &xs)), want, "{a:?} avx512");
                }
            }
            #[cfg(target_arch = "aarch64")]
            {
                let _fp = crate::kernels::fpenv::FpEnv::enter();
                if let Some(t) = crate::kernels::neon::Neon::new() {
                    assert_eq!(norm(run(t, &a, &xs)), want, "{a:?} neon");
                }
            }
        }
    }
}

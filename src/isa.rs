//! Instruction-set levels, detected once, with an environment override
//! that can only lower the choice.
//!
//! `Isa::detect()` reads the CPU once (cached) and applies `RNNCELL_ISA`.
//! Every [`crate::Model`] holds the kernel table of the ISA it was built
//! for, so tests can build one model per ISA side by side.
//!
//! `RNNCELL_ISA` (read once per process, case-insensitive, surrounding
//! blanks ignored): unset or empty means no override; `scalar`, `avx2`,
//! `avx512` or `neon` lowers the automatic choice to that level if the CPU
//! has it and it is lower (a higher or unavailable level is no override);
//! any other value is a mistake that must not go unnoticed, yet a library
//! should not print: [`Isa::detect`] then applies no override, and every
//! automatic choice ([`Isa::try_detect`], hence [`crate::Model::new`] and
//! the loaders without an explicit ISA) fails with
//! [`Error::InvalidArgument`] naming the value. An explicit ISA
//! ([`crate::Model::with_isa`]) ignores the variable.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// A SIMD instruction-set level that rnncell has kernels for.
///
/// The x86-64 levels are ordered: `Scalar < Avx2 < Avx512`. `Neon` is the
/// AArch64 level. Every level computes bit-identical results (see the crate
/// docs), so the choice only changes speed.
///
/// ```
/// use rnncell::Isa;
/// let best = Isa::detect();
/// assert!(Isa::available().contains(&best));
/// assert!(Isa::available().contains(&Isa::Scalar));
/// println!("running on {best}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Isa {
    /// Portable Rust, one lane; uses `f32::mul_add` for every FMA.
    Scalar = 0,
    /// x86-64 AVX2 with FMA and F16C, 8 lanes.
    Avx2 = 1,
    /// x86-64 AVX-512F and AVX-512BW (with the AVX2+FMA+F16C base), 16 lanes.
    Avx512 = 2,
    /// AArch64 Advanced SIMD (NEON), 4 lanes.
    Neon = 3,
}

impl Isa {
    /// Every level, in ascending order.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The lower-case name used by `RNNCELL_ISA` and printed by the
    /// examples: `scalar`, `avx2`, `avx512` or `neon`.
    ///
    /// ```
    /// assert_eq!(rnncell::Isa::Avx512.name(), "avx512");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name as accepted by `RNNCELL_ISA` (case-insensitive).
    ///
    /// ```
    /// use rnncell::Isa;
    /// assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
    /// assert_eq!(Isa::from_name("sse"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the level (ignores `RNNCELL_ISA`).
    ///
    /// ```
    /// assert!(rnncell::Isa::Scalar.is_supported());
    /// ```
    pub fn is_supported(self) -> bool {
        hardware().contains(&self)
    }

    /// The best level this CPU supports, lowered by `RNNCELL_ISA` if that
    /// is set to a lower level. Detected once and cached.
    ///
    /// ```
    /// let isa = rnncell::Isa::detect();
    /// assert!(isa.is_supported());
    /// ```
    pub fn detect() -> Isa {
        chosen().0
    }

    /// [`Isa::detect`], or [`Error::InvalidArgument`] if `RNNCELL_ISA`
    /// holds a value that is not an ISA name (see the module docs): the
    /// automatic choice of [`crate::Model::new`].
    ///
    /// ```
    /// // In a process without RNNCELL_ISA, or with a valid one:
    /// # if std::env::var("RNNCELL_ISA").map_or(true, |v| v.trim().is_empty()
    /// #     || rnncell::Isa::from_name(&v).is_some()) {
    /// assert_eq!(rnncell::Isa::try_detect()?, rnncell::Isa::detect());
    /// # }
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    pub fn try_detect() -> Result<Isa> {
        match chosen() {
            (isa, None) => Ok(*isa),
            (_, Some(bad)) => Err(Error::invalid(format!(
                "RNNCELL_ISA={bad:?}: expected scalar, avx2, avx512 or neon \
                 (or unset)"
            ))),
        }
    }

    /// Every level this CPU can run, scalar first, up to and including
    /// [`Isa::detect`] (so `RNNCELL_ISA` lowers this list too).
    ///
    /// ```
    /// let all = rnncell::Isa::available();
    /// assert_eq!(all[0], rnncell::Isa::Scalar);
    /// ```
    pub fn available() -> Vec<Isa> {
        let top = Isa::detect();
        hardware().iter().copied().filter(|&i| i <= top).collect()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The automatic choice and, if `RNNCELL_ISA` held an unknown value, that
/// value; computed once.
fn chosen() -> &'static (Isa, Option<String>) {
    static CHOSEN: OnceLock<(Isa, Option<String>)> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let best = *hardware().last().unwrap_or(&Isa::Scalar);
        let var = std::env::var_os("RNNCELL_ISA");
        let text = var.as_ref().map(|v| v.to_string_lossy());
        match text.as_deref().map(str::trim) {
            None | Some("") => (best, None),
            Some(name) => match Isa::from_name(name) {
                Some(req) if req.is_supported() && req <= best => (req, None),
                Some(_) => (best, None),
                None => (best, text.map(|t| t.into_owned())),
            },
        }
    })
}

/// What the hardware supports, ascending, detected once.
fn hardware() -> &'static [Isa] {
    static HW: OnceLock<Vec<Isa>> = OnceLock::new();
    HW.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            // The kernels' tokens check their feature lists (x86_features!).
            if crate::kernels::x86::Avx2::new().is_some() {
                v.push(Isa::Avx2);
                if crate::kernels::x86::Avx512::new().is_some() {
                    v.push(Isa::Avx512);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                v.push(Isa::Neon);
            }
        }
        v
    })
}

//! The floating-point environment of a compute call.
//!
//! Bit identity (DESIGN §2) holds for IEEE round-to-nearest-even with
//! subnormals computed in full. A caller may run with another rounding
//! mode (`fesetround(FE_UPWARD)`) or with flush-to-zero /
//! denormals-are-zero (audio hosts often set them), which would change the
//! results, and differently per ISA. Every public compute call (`Model::step`,
//! `step_many`, `step_chunk`, `run`: the entry of every path, the C ABI
//! included) therefore holds an [`FpEnv`] guard: it sets the default mode
//! for the duration of the call and puts the caller's mode back when it is
//! dropped, on return and on unwinding alike.
//!
//! * x86-64: MXCSR rounding control (bits 13–14), FTZ (bit 15) and DAZ
//!   (bit 6) are cleared. The exception masks (bits 7–12) are never
//!   touched, and the exception flags (bits 0–5) are left to accumulate as
//!   they would without the guard: only the three control fields are
//!   written back.
//! * AArch64: FPCR RMode (bits 22–23), FZ (bit 24), FZ16 (bit 19), and DN
//!   (bit 25, default NaN: it would replace NaN payloads), AHP (bit 26,
//!   alternative half precision: `fcvtl` would read f16 weights as another
//!   format), AH (bit 1) and
//!   FIZ (bit 0) (FEAT_AFP alternate handling and input flushing; RES0 and
//!   written as 0 where not implemented) are cleared; the trap enables are
//!   not touched.
//! * Other targets: nothing is changed; results are bit-identical there
//!   only in the default environment.
//!
//! The register is read once per call (`stmxcsr` / `mrs`, a few cycles)
//! and written only when it differs from the default, so a caller in the
//! default environment pays one read.
//!
//! Rust code must run in the default environment anyway (LLVM assumes it
//! when it folds constants); the guard restores exactly that inside the
//! call. The write happens through `asm!` without `nomem`, which the
//! compiler treats as a side effect with a memory clobber, and the
//! kernels are reached through function pointers after it, so no kernel
//! arithmetic is moved across the switch.

/// The caller's floating-point control register, saved when the guard had
/// to change it.
pub(crate) struct FpEnv {
    #[allow(dead_code)]
    saved: Option<Reg>,
}

#[cfg(target_arch = "x86_64")]
type Reg = u32;
#[cfg(target_arch = "aarch64")]
type Reg = u64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
type Reg = ();

/// The control bits the guard owns (set to 0 inside a call).
#[cfg(target_arch = "x86_64")]
const OWNED: Reg = (0b11 << 13) | (1 << 15) | (1 << 6);
#[cfg(target_arch = "aarch64")]
const OWNED: Reg = (0b11 << 22) | (1 << 24) | (1 << 19) | (1 << 25) | (1 << 26) | (1 << 1) | 1;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn read() -> Reg {
    let mut v: u32 = 0;
    // SAFETY: `stmxcsr m32` stores MXCSR (SSE, baseline on x86-64) to the
    // 4 bytes at the address, which is `v`: a live, aligned, writable u32.
    // It changes no other state (no flags, no stack).
    unsafe {
        core::arch::asm!(
            "stmxcsr [{p}]",
            p = in(reg) &mut v as *mut u32,
            options(nostack, preserves_flags)
        )
    };
    v
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn write(v: Reg) {
    // SAFETY: `ldmxcsr m32` loads MXCSR from the 4 bytes at the address,
    // which is `v`, live and aligned. It faults (#GP) only if a reserved
    // bit (16–31) is set; every value written here is a value `read`
    // returned with only bits of OWNED (6, 13–15, all defined) changed, so
    // none is. Changing the rounding/flush mode is this module's purpose
    // (see the module docs for why it does not disturb compiled code).
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{p}]",
            p = in(reg) &v as *const u32,
            options(nostack, preserves_flags, readonly)
        )
    };
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn read() -> Reg {
    let v: u64;
    // SAFETY: `mrs xN, fpcr` reads the FP control register (always
    // accessible at EL0 with FP enabled, which Rust's float code already
    // requires) into a general register; no memory, no flags.
    unsafe {
        core::arch::asm!("mrs {v}, fpcr", v = out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn write(v: Reg) {
    // SAFETY: `msr fpcr, xN` writes the FP control register, accessible at
    // EL0. Every value written is one `read` returned with only bits of
    // OWNED changed (RMode, FZ, FZ16, DN, AH, FIZ: architected control
    // bits, RES0 ones written as 0), so no reserved bit is set. Not
    // `nomem`: the compiler must not move memory accesses (or the calls
    // that compute) across the mode switch.
    unsafe { core::arch::asm!("msr fpcr, {v}", v = in(reg) v, options(nostack, preserves_flags)) };
}

impl FpEnv {
    /// Sets round-to-nearest without flush-to-zero for the current thread
    /// until the guard is dropped.
    #[inline]
    pub(crate) fn enter() -> FpEnv {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            let cur = read();
            if cur & OWNED != 0 {
                write(cur & !OWNED);
                return FpEnv { saved: Some(cur) };
            }
        }
        FpEnv { saved: None }
    }
}

impl Drop for FpEnv {
    #[inline]
    fn drop(&mut self) {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(saved) = self.saved {
            // Only the owned control bits go back; exception flags raised
            // during the call (x86 bits 0–5, sticky) stay raised.
            write((read() & !OWNED) | (saved & OWNED));
        }
    }
}

#[cfg(test)]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tests {
    use super::*;

    /// Round upward and flush to zero (plus DAZ on x86).
    #[cfg(target_arch = "x86_64")]
    const ODD: Reg = (0b10 << 13) | (1 << 15) | (1 << 6);
    #[cfg(target_arch = "aarch64")]
    const ODD: Reg = (0b01 << 22) | (1 << 24);

    #[test]
    fn default_inside_caller_mode_back_on_return_and_unwind() {
        let before = read();
        write((before & !OWNED) | ODD);
        let inside = {
            let _g = FpEnv::enter();
            read() & OWNED
        };
        let back = read();
        // resume_unwind: unwinds like a panic without calling the hook.
        let r = std::panic::catch_unwind(|| {
            let _g = FpEnv::enter();
            assert_eq!(read() & OWNED, 0);
            std::panic::resume_unwind(Box::new(()));
        });
        let after_unwind = read();
        // A caller already in the default mode: nothing saved or written.
        write(before & !OWNED);
        let g = FpEnv::enter();
        let untouched = g.saved.is_none();
        drop(g);
        write(before);
        assert_eq!(inside, 0);
        assert_eq!(back & OWNED, ODD);
        assert!(r.is_err());
        assert_eq!(after_unwind & OWNED, ODD);
        assert!(untouched);
    }
}

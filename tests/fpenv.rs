//! The floating-point environment (README, "Floating-point environment"):
//! a caller's rounding mode (`fesetround(FE_UPWARD)`, …) or flush-to-zero
//! / denormals-are-zero do not change any result, on any ISA, through any
//! compute call; and the caller's mode is exactly what it was after the
//! call.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;

use common::*;
use rnncell::*;

#[link(name = "m")]
unsafe extern "C" {
    fn fesetround(mode: i32) -> i32;
    fn fegetround() -> i32;
}

/// glibc's FE_* values.
#[cfg(target_arch = "x86_64")]
const ROUNDINGS: [(&str, i32); 4] = [
    ("nearest", 0),
    ("downward", 0x400),
    ("upward", 0x800),
    ("toward zero", 0xc00),
];
#[cfg(target_arch = "aarch64")]
const ROUNDINGS: [(&str, i32); 4] = [
    ("nearest", 0),
    ("upward", 0x40_0000),
    ("downward", 0x80_0000),
    ("toward zero", 0xc0_0000),
];

/// The control register (MXCSR / FPCR).
#[cfg(target_arch = "x86_64")]
fn ctl() -> u64 {
    let mut v: u32 = 0;
    // SAFETY: stmxcsr writes 4 bytes to `v`, a live aligned u32.
    unsafe { std::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut v as *mut u32, options(nostack)) };
    v as u64
}
#[cfg(target_arch = "x86_64")]
fn set_ctl(v: u64) {
    let v = v as u32;
    // SAFETY: ldmxcsr reads 4 bytes from `v`; callers pass a value `ctl`
    // returned with only the defined bits 6 and 13–15 changed (no reserved
    // bit, so no #GP).
    unsafe { std::arch::asm!("ldmxcsr [{p}]", p = in(reg) &v as *const u32, options(nostack)) };
}
/// FTZ | DAZ.
#[cfg(target_arch = "x86_64")]
const FLUSH: u64 = (1 << 15) | (1 << 6);

#[cfg(target_arch = "aarch64")]
fn ctl() -> u64 {
    let v: u64;
    // SAFETY: mrs of FPCR, readable at EL0; registers only.
    unsafe { std::arch::asm!("mrs {v}, fpcr", v = out(reg) v, options(nomem, nostack)) };
    v
}
#[cfg(target_arch = "aarch64")]
fn set_ctl(v: u64) {
    // SAFETY: msr of FPCR, writable at EL0; callers pass a value `ctl`
    // returned with only FZ (bit 24) or RMode changed.
    unsafe { std::arch::asm!("msr fpcr, {v}", v = in(reg) v, options(nostack)) };
}
/// FZ.
#[cfg(target_arch = "aarch64")]
const FLUSH: u64 = 1 << 24;

/// Everything a model computes for one fixed input: `step` ×3, `step_many`
/// over 3 streams, `step_chunk` of 5 frames, and `run` (2 batch rows).
fn outputs(m: &Model, x: &[f32], h0: &[f32]) -> Vec<f32> {
    let spec = *m.spec();
    let (n_in, hr) = (spec.input_size, spec.state_size());
    let mut all = Vec::new();
    let mut st = m.new_state();
    st.set_h(0, &h0[..hr]).unwrap();
    let mut y = vec![0.0f32; hr];
    for t in 0..3 {
        m.step(&mut st, &x[t * n_in..][..n_in], &mut y).unwrap();
        all.extend_from_slice(&y);
    }
    let mut sts: Vec<State> = (0..3).map(|_| m.new_state()).collect();
    let mut refs: Vec<&mut State> = sts.iter_mut().collect();
    let xs: Vec<&[f32]> = (0..3).map(|i| &x[i * n_in..][..n_in]).collect();
    let mut ys = vec![vec![0.0f32; hr]; 3];
    let mut yr: Vec<&mut [f32]> = ys.iter_mut().map(|v| v.as_mut_slice()).collect();
    m.step_many(&mut refs, &xs, &mut yr).unwrap();
    all.extend(ys.concat());
    let mut st = m.new_state();
    let mut yc = vec![0.0f32; 5 * hr];
    m.step_chunk(&mut st, &x[..5 * n_in], &mut yc).unwrap();
    all.extend_from_slice(&yc);
    let seq = Sequence {
        h0: Some(&h0[..spec.num_layers * 2 * hr]),
        ..Sequence::new(&x[..6 * n_in], 3, 2)
    };
    let (yo, hn, cn) = run_model(m, &seq);
    all.extend(yo);
    all.extend(hn);
    all.extend(cn);
    all
}

#[test]
fn caller_rounding_and_flush_modes_change_nothing_and_are_restored() {
    let before = ctl();
    let mut modes_checked = 0;
    for (vi, (name, cell)) in all_variants(5).into_iter().enumerate() {
        let spec = ModelSpec::new(cell, 7, 21);
        let w = random_weights(&spec, 40 + vi as u64);
        let mut rng = DataRng::new(vi as u64);
        let mut x = rng.vec(6 * 7, 1.0);
        // Subnormal inputs are used as given, so DAZ would see them.
        x[3] = 1e-40;
        x[10] = -3e-39;
        let h0 = rng.vec(2 * 21, 1e-37);
        for k in kernel_sets() {
            let m = k.model(spec, &w).unwrap();
            let want = outputs(&m, &x, &h0);
            for (rname, mode) in ROUNDINGS {
                for flush in [false, true] {
                    // SAFETY: fesetround with a valid FE_* value only
                    // changes this thread's rounding mode.
                    assert_eq!(unsafe { fesetround(mode) }, 0);
                    let set = if flush { ctl() | FLUSH } else { ctl() };
                    set_ctl(set);
                    let got = outputs(&m, &x, &h0);
                    let after = ctl();
                    // SAFETY: as above.
                    let r_after = unsafe { fegetround() };
                    set_ctl(before);
                    assert_eq!(
                        after & !0x3f,
                        set & !0x3f,
                        "{k} {name}: control register not restored (exception flags aside)"
                    );
                    assert_eq!(r_after, mode, "{k} {name}: rounding mode not restored");
                    cmp_bits(&format!("{k} {name} {rname} flush {flush}"), &got, &want).unwrap();
                    modes_checked += 1;
                }
            }
        }
    }
    assert_eq!(ctl() & !0x3f, before & !0x3f);
    println!("{modes_checked} (variant, kernels, mode) combinations identical");
}

/// The mode is also restored when a call fails early (an error return
/// before any kernel ran).
#[test]
fn mode_restored_after_an_error() {
    let spec = ModelSpec::new(CellKind::gru(), 3, 4);
    let m = Model::new(spec, &random_weights(&spec, 1)).unwrap();
    let mut st = m.new_state();
    let before = ctl();
    let (_, up) = ROUNDINGS[2];
    // SAFETY: valid FE_* value; this thread only.
    unsafe { fesetround(up) };
    set_ctl(ctl() | FLUSH);
    let set = ctl();
    let r = m.step(&mut st, &[0.0; 2], &mut [0.0; 4]);
    let after = ctl();
    set_ctl(before);
    assert!(matches!(r, Err(Error::SizeMismatch { .. })), "{r:?}");
    assert_eq!(after & !0x3f, set & !0x3f);
}

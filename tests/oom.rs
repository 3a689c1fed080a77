//! No call that a caller's arguments can make allocate too much aborts the
//! process (issue 11 part 3): each allocating call runs in a forked child
//! with a memory budget and must return, either `Ok` (its scratch is
//! bounded and fits) or `Error::Allocation` / `RNNCELL_STATUS_ALLOCATION`
//! (it does not), never die of SIGABRT as Rust's infallible allocation
//! does. Before the fix every "fits" case below aborted (the scratch grew
//! with K, T or B) and every "too small" case aborted too.
//!
//! The budget is enforced twice: the global allocator below refuses
//! (returns NULL for) any allocation that would take the bytes the child
//! allocated past the budget, which is exact whatever glibc keeps free in
//! its heap; and `setrlimit(RLIMIT_AS)` caps the child's address space at
//! its size at the fork plus the budget plus 64 MiB, a backstop for
//! anything that would bypass the allocator.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicIsize, Ordering};

use rnncell::ffi::*;
use rnncell::*;

const MIB: u64 = 1 << 20;

/// Bytes the process may still allocate (isize::MAX: no budget; set only
/// in a child) and bytes allocated since the budget was set.
static BUDGET: AtomicIsize = AtomicIsize::new(isize::MAX);
static USED: AtomicIsize = AtomicIsize::new(0);

struct Budgeted;

impl Budgeted {
    /// Whether `bytes` more may be allocated (and counts them if so).
    fn take(bytes: usize) -> bool {
        let b = bytes as isize;
        let used = USED.fetch_add(b, Ordering::Relaxed) + b;
        if used > BUDGET.load(Ordering::Relaxed) {
            USED.fetch_sub(b, Ordering::Relaxed);
            return false;
        }
        true
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, or returns NULL (allocation failure, which `GlobalAlloc`
// allows) before calling it; the counters are atomics that never allocate.
unsafe impl GlobalAlloc for Budgeted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::take(layout.size()) {
            return null_mut();
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            USED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::take(layout.size()) {
            return null_mut();
        }
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            USED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grow = new_size.saturating_sub(layout.size());
        if !Self::take(grow) {
            return null_mut();
        }
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            USED.fetch_sub(grow as isize, Ordering::Relaxed);
        } else {
            let shrink = layout.size().saturating_sub(new_size);
            USED.fetch_sub(shrink as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Budgeted = Budgeted;

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Ok,
    Allocation,
    /// Another error or status (its code), or a panic (-1).
    Other(i32),
    /// Killed by this signal (SIGABRT = 6: an infallible allocation failed).
    Signal(i32),
}

fn code_of<T>(r: &Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(Error::Allocation(_)) => 1,
        Err(_) => 2,
    }
}

fn status_code(s: RnncellStatus) -> i32 {
    match s {
        RnncellStatus::Ok => 0,
        RnncellStatus::Allocation => 1,
        _ => 2,
    }
}

/// The address space this process maps now, in bytes.
fn vm_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Runs `f` in a forked child whose address space may grow by `budget`
/// bytes at most; `f` returns 0 (Ok), 1 (allocation failure) or 2.
fn under_limit(budget: u64, f: impl FnOnce() -> i32) -> End {
    // SAFETY: fork has no preconditions. The child runs only `f` (which
    // allocates through glibc's malloc, made fork-safe by its atfork
    // handlers) and leaves with _exit, never returning into the test
    // harness; the parent only waits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(|| {
            let lim = vm_bytes() + budget + 64 * MIB;
            let r = libc::rlimit {
                rlim_cur: lim,
                rlim_max: lim,
            };
            // SAFETY: `r` is a valid rlimit; lowering our own limit is allowed.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
            // Blocks freed from now on may have been allocated before: the
            // count may go negative, which only adds to the budget.
            USED.store(0, Ordering::Relaxed);
            BUDGET.store(budget as isize, Ordering::Relaxed);
            f()
        }))
        .unwrap_or(3);
        // SAFETY: ends the child at once, without running the parent's
        // atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => End::Ok,
            1 => End::Allocation,
            3 => End::Other(-1),
            c => End::Other(c),
        }
    } else if libc::WIFSIGNALED(status) {
        End::Signal(libc::WTERMSIG(status))
    } else {
        End::Other(-2)
    }
}

/// LSTM I = 1, P = 1, H hidden units: tiny inputs, huge pre-activations
/// (4H floats a column).
fn lstm_p1_weights(h: usize) -> (ModelSpec, LayerWeights) {
    let o = LstmOptions {
        proj_size: 1,
        ..LstmOptions::default()
    };
    let spec = ModelSpec::new(CellKind::Lstm(o), 1, h);
    let mut lw = LayerWeights::zeros(4, h, 1, 1);
    lw.proj = vec![0.01; h];
    lw.w.iter_mut().for_each(|v| *v = 0.02);
    (spec, lw)
}

/// The H = 2^20 model, built once (about 300 MB packed).
fn huge() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let (spec, lw) = lstm_p1_weights(1 << 20);
        Model::new(spec, &[lw]).unwrap()
    })
}

fn run_code(m: &Model, x: &[f32], t: usize, b: usize, y: &mut [f32]) -> i32 {
    code_of(&m.run(
        &Sequence::new(x, t, b),
        &mut SequenceOutput {
            output: y,
            h_n: None,
            c_n: None,
        },
    ))
}

#[test]
fn step_chunk_of_a_huge_layer_is_bounded() {
    // Was K·(4H + 2) floats: 4 frames of H = 2^20 asked for 64 MiB (K =
    // 4096: 64 GiB). Now one frame per block: 16 MiB.
    let m = huge();
    let k = 4;
    let xs = vec![0.5f32; k];
    let go = |budget| {
        let mut st = m.new_state();
        let mut ys = vec![0.0f32; k];
        under_limit(budget, || code_of(&m.step_chunk(&mut st, &xs, &mut ys)))
    };
    assert_eq!(go(48 * MIB), End::Ok);
    assert_eq!(go(8 * MIB), End::Allocation);
}

#[test]
fn long_step_chunk_is_bounded() {
    // Was 400 · (4·2^14 + 2) floats = 105 MB; now 64 frames a block, 17 MB.
    let (spec, lw) = lstm_p1_weights(1 << 14);
    let m = Model::new(spec, &[lw]).unwrap();
    let k = 400;
    let xs = vec![0.5f32; k];
    let mut st = m.new_state();
    let mut ys = vec![0.0f32; k];
    assert_eq!(
        under_limit(64 * MIB, || code_of(&m.step_chunk(&mut st, &xs, &mut ys))),
        End::Ok
    );
}

#[test]
fn run_of_a_huge_layer_is_bounded() {
    // Was min(T, 256) columns of 4H floats: 64 MiB at T = 4 (4 GiB at
    // T = 300). Now one column: 16 MiB.
    let m = huge();
    let t = 4;
    let x = vec![0.5f32; t];
    let mut y = vec![0.0f32; t];
    assert_eq!(
        under_limit(48 * MIB, || run_code(m, &x, t, 1, &mut y)),
        End::Ok
    );
    assert_eq!(
        under_limit(8 * MIB, || run_code(m, &x, t, 1, &mut y)),
        End::Allocation
    );
}

#[test]
fn run_of_a_large_batch_is_bounded() {
    // GRU I = H = 1, B = 2^20: was 2.6 GB of per-row scratch; now 256 rows
    // a block, under 1 MiB.
    let spec = ModelSpec::new(CellKind::gru(), 1, 1);
    let m = Model::new(spec, &[LayerWeights::zeros(3, 1, 1, 1)]).unwrap();
    let b = 1 << 20;
    let x = vec![0.5f32; b];
    let mut y = vec![0.0f32; b];
    assert_eq!(
        under_limit(32 * MIB, || run_code(&m, &x, 1, b, &mut y)),
        End::Ok
    );
}

#[test]
fn run_intermediate_layers_fail_cleanly() {
    // Three layers over T = 2^14 steps: the outputs of the two inner layers
    // (2 · T · out floats, 8 MiB) do not fit in 2 MiB: an error, not an
    // abort; in 64 MiB they do.
    let spec = ModelSpec::new(CellKind::gru(), 1, 64).layers(3);
    let w: Vec<LayerWeights> = (0..3)
        .map(|l| LayerWeights::zeros(3, 64, if l == 0 { 1 } else { 64 }, 64))
        .collect();
    let m = Model::new(spec, &w).unwrap();
    let t = 1 << 14;
    let x = vec![0.5f32; t];
    let mut y = vec![0.0f32; t * 64];
    assert_eq!(
        under_limit(2 * MIB, || run_code(&m, &x, t, 1, &mut y)),
        End::Allocation
    );
    assert_eq!(
        under_limit(64 * MIB, || run_code(&m, &x, t, 1, &mut y)),
        End::Ok
    );
}

#[test]
fn new_state_fails_cleanly() {
    // A state of H = 2^20 holds c and the projection input: 8 MiB.
    let m = huge();
    assert_eq!(
        under_limit(4 * MIB, || code_of(&m.try_new_state())),
        End::Allocation
    );
    assert_eq!(
        under_limit(64 * MIB, || code_of(&m.try_new_state())),
        End::Ok
    );
    let st = m.new_state();
    assert_eq!(
        under_limit(4 * MIB, || code_of(&st.try_clone())),
        End::Allocation
    );
}

#[test]
fn model_building_fails_cleanly() {
    // LSTM I = H = 1024: 32 MiB of tensors, copied and packed.
    let (i, h) = (1024, 1024);
    let spec = ModelSpec::new(CellKind::lstm(), i, h);
    let w = vec![0.01f32; 4 * h * i];
    let r = vec![0.01f32; 4 * h * h];
    let b = vec![0.0f32; 8 * h];
    let pytorch = || {
        code_of(&Model::from_pytorch(spec, |n| match n {
            "weight_ih_l0" => Some(&w[..]),
            "weight_hh_l0" => Some(&r[..]),
            _ => None,
        }))
    };
    let onnx = || {
        let t = OnnxTensors {
            w: &w,
            r: &r,
            b: Some(&b),
            p: None,
        };
        code_of(&Model::from_onnx(spec, &[t]))
    };
    let keras = || {
        let t = KerasTensors {
            kernel: &w,
            recurrent_kernel: &r,
            bias: Some(&b[..4 * h]),
        };
        code_of(&Model::from_keras(spec, &[t]))
    };
    let lw = LayerWeights {
        w: w.clone(),
        r: r.clone(),
        b_w: vec![0.0; 4 * h],
        b_r: vec![0.0; 4 * h],
        ..LayerWeights::default()
    };
    let canonical = || code_of(&Model::new(spec, std::slice::from_ref(&lw)));
    let c_pytorch = || {
        let mut cs = RnncellSpec::default();
        // SAFETY: `cs` is writable.
        let st = unsafe {
            rnncell_spec_init(
                &mut cs,
                size_of::<RnncellSpec>(),
                RnncellCell::Lstm as u32,
                i,
                h,
            )
        };
        assert_eq!(st, RnncellStatus::Ok);
        let t = |v: &[f32]| RnncellTensor {
            data: v.as_ptr(),
            len: v.len(),
        };
        let layer = RnncellPytorchLayer {
            weight_ih: t(&w),
            weight_hh: t(&r),
            ..RnncellPytorchLayer::default()
        };
        let mut m = null_mut();
        // SAFETY: every pointer is valid for its count; no message buffer.
        let st = unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, null_mut(), 0) };
        // SAFETY: `m` is NULL or the model just built.
        unsafe { rnncell_model_free(m) };
        status_code(st)
    };
    let builders: [(&str, &dyn Fn() -> i32); 5] = [
        ("from_pytorch", &pytorch),
        ("from_onnx", &onnx),
        ("from_keras", &keras),
        ("new", &canonical),
        ("rnncell_model_new_pytorch", &c_pytorch),
    ];
    for (name, f) in builders {
        assert_eq!(under_limit(4 * MIB, f), End::Allocation, "{name}");
        assert_eq!(under_limit(512 * MIB, f), End::Ok, "{name}");
    }
}

#[test]
fn c_state_new_fails_cleanly() {
    let (_, lw) = lstm_p1_weights(1 << 20);
    let mut cs = RnncellSpec::default();
    // SAFETY: `cs` is writable.
    let st = unsafe {
        rnncell_spec_init(
            &mut cs,
            size_of::<RnncellSpec>(),
            RnncellCell::Lstm as u32,
            1,
            1 << 20,
        )
    };
    assert_eq!(st, RnncellStatus::Ok);
    cs.lstm_proj_size = 1;
    let t = |v: &[f32]| RnncellTensor {
        data: v.as_ptr(),
        len: v.len(),
    };
    let layer = RnncellPytorchLayer {
        weight_ih: t(&lw.w),
        weight_hh: t(&lw.r),
        weight_hr: t(&lw.proj),
        ..RnncellPytorchLayer::default()
    };
    let mut m = null_mut();
    // SAFETY: every pointer is valid for its count; no message buffer.
    let st = unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, null_mut(), 0) };
    assert_eq!(st, RnncellStatus::Ok);
    let new_state = |m: *mut RnncellModel| {
        let mut s = null_mut();
        // SAFETY: `m` is a live model; `s` is writable.
        let st = unsafe { rnncell_state_new(m, &mut s) };
        // SAFETY: `s` is NULL or the state just made.
        unsafe { rnncell_state_free(s) };
        status_code(st)
    };
    assert_eq!(under_limit(4 * MIB, || new_state(m)), End::Allocation);
    assert_eq!(under_limit(64 * MIB, || new_state(m)), End::Ok);
    // SAFETY: `m` is the model built above, freed once.
    unsafe { rnncell_model_free(m) };
}

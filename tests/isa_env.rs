//! `RNNCELL_ISA` with a value that is no ISA name does not go unnoticed:
//! the automatic choice (`Isa::try_detect`, `Model::new`) fails with
//! `InvalidArgument` naming the value, while an explicit ISA still works.
//! The variable is read once per process, so the checks run in a child
//! process of this test binary with the variable set.

use rnncell::*;
use std::process::Command;

const CHILD: &str = "RNNCELL_ISA_ENV_CHILD";

fn child_checks() {
    let bad = std::env::var("RNNCELL_ISA").unwrap();
    let spec = ModelSpec::new(CellKind::gru(), 2, 3);
    let w = [LayerWeights::zeros(3, 3, 2, 3)];
    let expect_err = |r: Result<Model>, what: &str| match r {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains(&format!("RNNCELL_ISA={bad:?}")), "{what}: {m}");
            assert!(m.contains("scalar, avx2, avx512 or neon"), "{what}: {m}");
        }
        other => panic!("{what} with RNNCELL_ISA={bad:?}: {other:?}"),
    };
    expect_err(Model::new(spec, &w), "Model::new");
    assert!(Isa::try_detect().is_err());
    // No override applied: the best level of the CPU.
    assert_eq!(Isa::detect(), *Isa::available().last().unwrap());
    assert!(Model::with_isa(spec, &w, Isa::Scalar).is_ok());
    // The C ABI's RNNCELL_ISA_AUTO reports it too, with the message.
    use rnncell::ffi::*;
    let mut cs = RnncellSpec::default();
    // SAFETY: `cs` is writable.
    let st = unsafe {
        rnncell_spec_init(
            &mut cs,
            size_of::<RnncellSpec>(),
            RnncellCell::Gru as u32,
            2,
            3,
        )
    };
    assert_eq!(st, RnncellStatus::Ok);
    let (wi, wh) = (vec![0.1f32; 18], vec![0.1f32; 27]);
    let layer = RnncellPytorchLayer {
        weight_ih: RnncellTensor {
            data: wi.as_ptr(),
            len: wi.len(),
        },
        weight_hh: RnncellTensor {
            data: wh.as_ptr(),
            len: wh.len(),
        },
        ..RnncellPytorchLayer::default()
    };
    let mut m = std::ptr::null_mut();
    let mut msg = [0 as std::ffi::c_char; 200];
    // SAFETY: valid pointers and counts; `msg` holds 200 bytes.
    let st = unsafe { rnncell_model_new_pytorch(&cs, &layer, 1, 0, &mut m, msg.as_mut_ptr(), 200) };
    assert_eq!(st, RnncellStatus::InvalidArgument);
    assert!(m.is_null());
    // SAFETY: NUL-terminated by the call.
    let text = unsafe { std::ffi::CStr::from_ptr(msg.as_ptr()) }.to_string_lossy();
    assert!(text.contains("RNNCELL_ISA"), "{text}");
}

/// This test binary as a command, behind `RNNCELL_TEST_RUNNER` when set
/// (`.ci/neon.sh` sets it to its qemu runner: a cross-built binary cannot
/// exec itself without it).
fn self_command() -> Command {
    let exe = std::env::current_exe().unwrap();
    let runner = std::env::var("RNNCELL_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

fn run_child(test: &str, value: &str) -> std::process::Output {
    self_command()
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("RNNCELL_ISA", value)
        .env(CHILD, "1")
        .output()
        .unwrap()
}

#[test]
fn unknown_rnncell_isa_is_an_error_of_the_automatic_choice() {
    if std::env::var_os(CHILD).is_some() {
        child_checks();
        return;
    }
    for value in ["bogus", "avx-512", "sse4"] {
        let out = run_child(
            "unknown_rnncell_isa_is_an_error_of_the_automatic_choice",
            value,
        );
        assert!(
            out.status.success(),
            "RNNCELL_ISA={value}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The child ran the checks (one test, not zero filtered ones).
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}

#[test]
fn known_or_empty_rnncell_isa_is_accepted() {
    if std::env::var_os(CHILD).is_some() {
        let v = std::env::var("RNNCELL_ISA").unwrap();
        let isa = Isa::try_detect().unwrap();
        if let Some(req) = Isa::from_name(&v).filter(|r| r.is_supported()) {
            assert_eq!(isa, req.min(*Isa::available().last().unwrap()));
        }
        assert!(
            Model::new(
                ModelSpec::new(CellKind::gru(), 2, 3),
                &[LayerWeights::zeros(3, 3, 2, 3)]
            )
            .is_ok()
        );
        return;
    }
    for value in ["", " ", "scalar", "SCALAR", " avx2 ", "neon", "avx512"] {
        let out = run_child("known_or_empty_rnncell_isa_is_accepted", value);
        assert!(
            out.status.success(),
            "RNNCELL_ISA={value:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}

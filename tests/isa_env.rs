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
}

fn run_child(test: &str, value: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
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

//! The committed C header must be exactly what cbindgen generates now, and
//! its version macros must match Cargo.toml.
//!
//! Needs `--features regen-header` (Cargo.toml `required-features`): build.rs
//! then writes the freshly generated header to `$OUT_DIR/rnncell.h`.
//! To update the committed header after changing `src/ffi`:
//! `RNNCELL_WRITE_HEADER=1 cargo build --features regen-header`.

use std::path::Path;

/// What build.rs generated for this build.
const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/rnncell.h"));

fn committed() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rnncell.h");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn committed_header_is_current() {
    let committed = committed();
    if committed != GENERATED {
        let first = committed
            .lines()
            .zip(GENERATED.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(GENERATED.lines().count()));
        panic!(
            "include/rnncell.h is stale (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\n\
             regenerate it with: RNNCELL_WRITE_HEADER=1 cargo build --features regen-header",
            first + 1,
            committed.lines().nth(first),
            GENERATED.lines().nth(first),
        );
    }
}

fn define(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{name} is not defined in the header"))
        .trim()
        .to_string()
}

#[test]
fn version_macros_match_cargo_toml() {
    let h = committed();
    assert_eq!(
        define(&h, "RNNCELL_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define(&h, "RNNCELL_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define(&h, "RNNCELL_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert_eq!(
        define(&h, "RNNCELL_VERSION"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
    // And against Cargo.toml itself, not only the environment cargo set.
    let toml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    let version = toml
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| l.trim().strip_prefix("version = "))
        .expect("package version in Cargo.toml")
        .trim_matches('"');
    assert_eq!(define(&h, "RNNCELL_VERSION"), format!("\"{version}\""));
    // The runtime version the library reports agrees.
    // SAFETY: rnncell_version returns a static NUL-terminated string.
    let rt = unsafe { std::ffi::CStr::from_ptr(rnncell::ffi::rnncell_version()) };
    assert_eq!(rt.to_str().unwrap(), version);
}

#[test]
fn header_is_plain_ascii_and_declares_every_export() {
    let h = committed();
    assert!(h.is_ascii(), "the header should be plain ASCII");
    for f in [
        "rnncell_status_str",
        "rnncell_version",
        "rnncell_isa_detected",
        "rnncell_isa_available",
        "rnncell_isa_name",
        "rnncell_spec_init",
        "rnncell_sequence_init",
        "rnncell_safetensors_options_init",
        "rnncell_onnx_options_init",
        "rnncell_model_info_init",
        "rnncell_onnx_node_info_init",
        "rnncell_model_new_pytorch",
        "rnncell_model_new_onnx",
        "rnncell_model_new_keras",
        "rnncell_model_free",
        "rnncell_model_info",
        "rnncell_model_spec",
        "rnncell_model_step",
        "rnncell_model_run",
        "rnncell_state_new",
        "rnncell_state_copy",
        "rnncell_state_reset",
        "rnncell_state_free",
        "rnncell_state_get_h",
        "rnncell_state_get_c",
        "rnncell_state_set_h",
        "rnncell_state_set_c",
    ] {
        assert!(
            h.contains(&format!(" {f}(")) || h.contains(&format!("*{f}(")),
            "{f} is not declared"
        );
    }
    assert!(h.contains("#if defined(RNNCELL_TEST_PANIC)"));
}

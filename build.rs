//! Build script. Without the `regen-header` feature it does nothing, so
//! Rust users of the crate never build cbindgen.
//!
//! With `--features regen-header` it runs cbindgen over src/ (the C ABI is
//! `src/ffi`) with `cbindgen.toml` and the version macros from Cargo.toml,
//! and writes the header to `$OUT_DIR/rnncell.h`. Only when the environment
//! variable `RNNCELL_WRITE_HEADER=1` is set does it also overwrite the
//! committed `include/rnncell.h` (a build script must not modify the source
//! tree by default: `cargo publish` verifies that). `tests/header.rs`
//! compares the two and fails when the committed header is stale:
//!
//! ```sh
//! cargo test --features regen-header --test header                 # check
//! RNNCELL_WRITE_HEADER=1 cargo build --features regen-header       # update
//! ```

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "regen-header")]
    header::generate();
}

#[cfg(feature = "regen-header")]
mod header {
    use std::env;
    use std::path::PathBuf;

    /// The `#define`s placed after the includes: the crate version.
    pub fn version_macros() -> String {
        let v = |k: &str| env::var(k).expect("cargo sets the package version");
        format!(
            "#define RNNCELL_VERSION \"{}\"\n\
             #define RNNCELL_VERSION_MAJOR {}\n\
             #define RNNCELL_VERSION_MINOR {}\n\
             #define RNNCELL_VERSION_PATCH {}\n",
            v("CARGO_PKG_VERSION"),
            v("CARGO_PKG_VERSION_MAJOR"),
            v("CARGO_PKG_VERSION_MINOR"),
            v("CARGO_PKG_VERSION_PATCH"),
        )
    }

    pub fn generate() {
        let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
        let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
        println!("cargo:rerun-if-changed=src");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-changed=Cargo.toml");
        println!("cargo:rerun-if-env-changed=RNNCELL_WRITE_HEADER");
        let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
            .expect("cbindgen.toml is valid");
        config.after_includes = Some(version_macros());
        let bindings = cbindgen::Builder::new()
            .with_config(config)
            .with_src(root.join("src/lib.rs"))
            .generate()
            .expect("cbindgen could not parse the crate");
        let generated = out.join("rnncell.h");
        bindings.write_to_file(&generated);
        if env::var("RNNCELL_WRITE_HEADER").as_deref() == Ok("1") {
            std::fs::create_dir_all(root.join("include")).expect("create include/");
            std::fs::copy(&generated, root.join("include/rnncell.h"))
                .expect("write include/rnncell.h");
        }
    }
}

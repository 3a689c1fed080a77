#!/usr/bin/env bash
# The C ABI from a fresh machine (issue 4): header freshness, the ABI tested
# from Rust, the C tests under AddressSanitizer + UndefinedBehaviorSanitizer
# and valgrind, the C and C++ examples linked statically and dynamically,
# and an installed library (cargo cinstall) used through pkg-config.
# Exits non-zero on the first failure. Usage: bash .ci/c.sh
#
# Environment: CARGO_TARGET_DIR (default ./target); CARGO_C_VERSION (the
# cargo-c to install when `cargo cinstall` is missing; 0.10.24 is the newest
# that builds with rustc 1.95).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export RUST_BACKTRACE=0 # the deliberate panics of the tests print one line each
step() { printf '\n==== %s (%ds)\n' "$1" "$SECONDS"; }

step "system packages"
need=()
for p in gcc g++ make pkg-config valgrind libc6-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
cargo --version
gcc --version | head -1
valgrind --version

step "include/rnncell.h is what cbindgen generates now; version macros match Cargo.toml"
cargo test --release --features regen-header --test header

step "the C ABI called from Rust (tests/ffi*.rs, with the test-panic entry points)"
cargo test --release --features test-panic --test ffi --test ffi_abi --test ffi_onnx --test ffi_marshal

step "C side: header as C99/C11/C++11/C++17, tests (test_api, test_threads, test_onnx) under ASan+UBSan and valgrind, examples"
make -C c all

step "cargo-c: cargo cinstall, then build the examples with pkg-config"
if ! cargo cinstall --help >/dev/null 2>&1; then
    version=${CARGO_C_VERSION:-0.10.24}
    echo "installing cargo-c $version (cargo install --locked)"
    start=$SECONDS
    cargo install cargo-c --version "=$version" --locked
    echo "cargo install cargo-c took $((SECONDS - start)) s"
fi
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cargo cinstall --release -p rnncell-capi --prefix="$prefix" --libdir="$prefix/lib"
ls -l "$prefix/include" "$prefix/lib" "$prefix/lib/pkgconfig"
cmp "$prefix/include/rnncell.h" include/rnncell.h
PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs rnncell
make -C c pkgconfig PREFIX="$prefix"

step "done: C ABI checks passed"

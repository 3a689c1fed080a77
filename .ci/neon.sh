#!/usr/bin/env bash
# Builds and runs the whole test suite for AArch64 NEON under qemu-user
# (DESIGN §6): Debian's rustc-web, which ships an arm64 standard library,
# cross-links with gcc-aarch64-linux-gnu and runs the test binaries with
# qemu-aarch64. Run from the repository root. Cargo ≥ 1.89 also builds and
# runs the doc-tests for the cross target, with Debian's rustdoc (under qemu).
#
# Environment:
#   PROPTEST_CASES   proptest cases per property (default 256; under qemu the
#                    identity proptest takes ~12 s at 256, ~47 s at 1024)
#   NEON_TEST_ARGS   extra arguments for `cargo test`, e.g. "--test vectors"
set -euo pipefail

cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
PKGS=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
    libc6:arm64)

# ---- toolchain (idempotent) -------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "neon.sh: installing ${missing[*]}"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        "${SUDO[@]}" dpkg --add-architecture arm64
    fi
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- build and test ---------------------------------------------------------
# /usr/bin/rustc is Debian's compiler (with the arm64 std); rustup's cargo
# drives it. A separate target dir keeps the two compilers' artifacts apart.
# rustdoc must be Debian's too, or the doc-tests find no arm64 std.
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# The runner loads the arm64 glibc of libc6:arm64 (/lib/aarch64-linux-gnu, a
# dependency of libstd-rust-web-dev:arm64), NOT `-L /usr/aarch64-linux-gnu`:
# with that prefix qemu takes ld.so from libc6-arm64-cross but, finding no
# libc.so.6 under the prefix's multiarch dir, falls back to the host's
# /lib/aarch64-linux-gnu/libc.so.6 from libc6:arm64. When the two packages'
# versions differ (bookworm: 2.36-8cross1 vs 2.36-9+deb12uN) the mixed
# ld.so/libc pair spins forever in pthread_create, i.e. every test hangs.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /"
# Tests that run this test binary again in a child process need the runner too.
export RNNCELL_TEST_RUNNER="qemu-aarch64 -L /"
export CARGO_TARGET_DIR=target/aarch64
# Fail, rather than skip, if the NEON kernels are not exercised.
export RNNCELL_REQUIRE_ISA=neon
# Likewise both NEON integer dots (qemu's default CPU has dotprod); this also
# replaces the x86 dots .ci/run requires on its host (avx512-vnni, avx-vnni),
# which an AArch64 binary cannot have.
export RNNCELL_REQUIRE_INT_DOT=neon-sdot,neon-smull
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

"$RUSTC" --version
echo "neon.sh: PROPTEST_CASES=$PROPTEST_CASES"
start=$SECONDS
# shellcheck disable=SC2086 # NEON_TEST_ARGS is a word list on purpose
cargo test --release --target "$TARGET" ${NEON_TEST_ARGS:-}
echo "neon.sh: passed in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Bounded fuzz runs of the safetensors loader (fuzz/fuzz_targets/load.rs) and the ONNX loader
# (fuzz/fuzz_targets/load_onnx.rs) with cargo-fuzz and libFuzzer: FUZZ_SECONDS (default 60) of
# fuzzing in all, half for each, seeded with the committed test files and a dictionary of
# tensor names (safetensors) or operator and attribute names (ONNX). Needs the nightly toolchain (`rustup toolchain list`) and
# cargo-fuzz (installed here with `cargo +nightly install cargo-fuzz --locked` if missing, about
# 5 minutes on 2 cores). Building the instrumented target takes a few minutes more.
# A crash leaves its input in fuzz/artifacts/<target>/ and makes this script fail; reproduce it
# with
#   cargo +nightly fuzz run load fuzz/artifacts/load/<file>          (or load_onnx)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-60}
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is not installed (rustup toolchain list)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

half=$(( secs / 2 > 0 ? secs / 2 : 1 ))

corpus=fuzz/corpus/load
mkdir -p "$corpus"
cp tests/safetensors/*.safetensors "$corpus"/

cargo +nightly fuzz build load
cargo +nightly fuzz run load "$corpus" -- \
    -max_total_time="$half" -max_len=16384 -dict=fuzz/load.dict -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1
echo "fuzz.sh: ${half} s of fuzzing the safetensors loader found no crash"

corpus=fuzz/corpus/load_onnx
mkdir -p "$corpus"
find tests/onnx -name '*.onnx' | while read -r f; do
    cp "$f" "$corpus/$(echo "${f#tests/onnx/}" | tr / _)"
done

cargo +nightly fuzz build load_onnx
cargo +nightly fuzz run load_onnx "$corpus" -- \
    -max_total_time="$half" -max_len=16384 -dict=fuzz/load_onnx.dict -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1
echo "fuzz.sh: ${half} s of fuzzing the ONNX loader found no crash"

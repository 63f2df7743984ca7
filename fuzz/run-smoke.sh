#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly on a copy of its seed corpus (FUZZ_SECONDS, default 10).
# Needs the nightly toolchain (cargo-fuzz instruments with sanitizer flags only nightly accepts).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-10}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

echo "== building fuzz targets"
cargo +nightly fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
  corpus="$work/$target"
  mkdir -p "$corpus"
  if [ -d "corpus/$target" ]; then cp -r "corpus/$target/." "$corpus/"; fi
  if ! cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
      >"$work/$target.log" 2>&1; then
    echo "fuzz $target: FAILED" >&2
    tail -n 40 "$work/$target.log" >&2
    exit 1
  fi
  echo "fuzz $target: ok ($(grep -o 'Done [0-9]* runs' "$work/$target.log" | tail -n 1 || true))"
done

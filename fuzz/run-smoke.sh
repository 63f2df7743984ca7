#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly on a temporary copy of its seed corpus, so runs add no
# files to the repository. FUZZ_SECONDS sets the time per target (default 10). Exits non-zero if any
# target fails; crash reproducers are left in fuzz/artifacts/<target>/ (git-ignored).
# Needs the nightly toolchain: cargo-fuzz instruments with sanitizer flags only nightly accepts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${FUZZ_SECONDS:-10}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  # cargo-fuzz itself builds on stable; only the targets need nightly.
  cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets"
cargo +nightly fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Listed into a variable first so that a failing `fuzz list` stops the script (set -e ignores it in `for`).
targets="$(cargo +nightly fuzz list)"
failed=()
for target in $targets; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus"
  if [ -d "corpus/$target" ]; then cp -r "corpus/$target/." "$corpus/"; fi
  log="$work/$target.log"
  if cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
      >"$log" 2>&1; then
    echo "fuzz $target: ok ($(grep -o 'Done [0-9]* runs' "$log" | tail -n 1 || true))"
  else
    echo "fuzz $target: FAILED" >&2
    grep -m 1 -A 2 -E 'panicked at|ERROR: libFuzzer' "$log" >&2 || true
    grep -m 1 'Test unit written to' "$log" >&2 || true
    echo "-- last lines of the $target log:" >&2
    tail -n 15 "$log" >&2
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (reproducers in $(pwd)/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ok"

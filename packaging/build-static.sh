#!/bin/sh
# Builds the release cgview as one static executable (glibc linked in with crt-static; cgview uses no NSS
# or dlopen), checks that it needs no shared library and runs, and prints its path.
# Usage: packaging/build-static.sh   (run from anywhere; output: target/<triple>/release/cgview)
set -eu
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
# The explicit --target keeps crt-static off build scripts and proc-macros, which must stay dynamic.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" >&2
binary="target/$triple/release/cgview"
case "$(file -b "$binary")" in
  *"static-pie linked"* | *"statically linked"*) ;;
  *) echo "build-static: $binary is not static: $(file -b "$binary")" >&2; exit 1 ;;
esac
if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q "statically linked"; then
  echo "build-static: ldd lists shared libraries for $binary:" >&2; ldd "$binary" >&2; exit 1
fi
"$binary" --version >/dev/null
echo "$binary"

#!/bin/sh
# Builds the cgview image offline from a static binary built on this host: packaging/Dockerfile (FROM
# scratch) in a context holding only that binary. No base image is pulled and no registry is needed.
# Usage: packaging/build-image.sh [TAG]   (default cgview:latest; prints the tag)
#   CGVIEW_BINARY=path  use a static cgview built already instead of running packaging/build-static.sh
#   CGVIEW_BUILDER="docker build"  the build command (e.g. "podman build")
set -eu
cd "$(dirname "$0")/.."
tag="${1:-cgview:latest}"
binary="${CGVIEW_BINARY:-$(packaging/build-static.sh)}"
case "$(file -b "$binary")" in
  *"static-pie linked"* | *"statically linked"*) ;;
  *) echo "build-image: $binary is not a static executable: $(file -b "$binary")" >&2; exit 1 ;;
esac
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/cgview"
cp packaging/Dockerfile "$context/Dockerfile"
${CGVIEW_BUILDER:-docker build} -q -t "$tag" "$context" >&2
echo "$tag"

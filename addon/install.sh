#!/bin/sh
# The one build recipe of meter2mqtt's images: installs the npm package with its production dependencies into DEST
# and starts it from there (smoke-test.sh). The app's Dockerfile (this folder, built by the Supervisor on the
# user's machine) and the repository's root Dockerfile (the standalone image) both run it.
#
#   sh install.sh PACKAGE DEST      PACKAGE: an npm spec (meter2mqtt@0.1.0) or a tarball made by `npm pack`
#
# Native modules (better-sqlite3, serialport) are built for, or fetched prebuilt for, this machine's Node.js; the
# caller provides the compiler for the case where no prebuilt binary matches.
set -eu

if [ $# -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "usage: $0 PACKAGE DEST" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=$1
DEST=$2
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT

# A global install into a prefix of its own: the package and, inside it, its production dependencies only.
npm install --global --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "$PACKAGE"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$PREFIX/lib/node_modules/meter2mqtt" "$DEST"

sh "$HERE/smoke-test.sh" "$DEST"

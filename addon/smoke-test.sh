#!/bin/sh
# Starts meter2mqtt from an installed tree (DIR holds bin/, dist/, sql/, node_modules/) the way its images do, so a
# build fails here rather than on the user's machine: --version, then the demo through the whole pipeline (both
# native modules load, the SQL migrations are found, the bundled captures replay into an archive).
#
#   sh smoke-test.sh DIR
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
VERSION=$(node "$DIR/bin/meter2mqtt.js" --version)
EXPECTED=$(node -p 'require(process.argv[1]).version' "$DIR/package.json")
[ "$VERSION" = "$EXPECTED" ] || { echo "--version printed '$VERSION', expected $EXPECTED" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && node "$DIR/bin/meter2mqtt.js" demo --quiet --interval 0 >"$WORK/demo.log" 2>&1) || {
  cat "$WORK/demo.log" >&2
  echo "the demo failed from $DIR" >&2
  exit 1
}
grep -q "readings" "$WORK/demo.log" || { cat "$WORK/demo.log" >&2; echo "the demo archived nothing" >&2; exit 1; }
echo "meter2mqtt $VERSION starts from $DIR ($(du -sh "$DIR" | cut -f1))"

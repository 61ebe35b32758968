#!/bin/sh
# Builds the file tree a meter2mqtt image holds into OUT, from this checkout (with `npm ci` done), and starts the
# app from it with the images' own check (addon/smoke-test.sh). The images install the npm package (addon/
# install.sh); this lays out the same files (package.json "files", compiled, production dependencies) from the
# checkout, so what an image would ship is checked without a Docker engine or the registry:
#
#   sh scripts/build-runtime-tree.sh /tmp/meter2mqtt     then: node /tmp/meter2mqtt/bin/meter2mqtt.js demo
#
# OUT (new or empty, or an earlier tree, which is replaced) gets what the npm package ships (package.json "files": bin, dist, sql, fixtures), dist compiled here, and the
# production node_modules: this checkout's, pruned of dev dependencies, so the native modules (better-sqlite3,
# serialport) are the ones built for this machine's Node. Nothing in the checkout is written.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
# OUT is replaced: only an empty folder or an earlier tree is, never anything else by a slip of the argument.
if [ "$OUT" = "$SRC" ] || { [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/bin/meter2mqtt.js" ]; }; then
  echo "refusing to replace $OUT: give an empty or new folder" >&2
  exit 2
fi
[ -x "$SRC/node_modules/.bin/tsc" ] || { echo "run npm ci in $SRC first" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"

echo "compiling into $OUT/dist"
"$SRC/node_modules/.bin/tsc" -p "$SRC/tsconfig.build.json" --outDir "$OUT/dist"

# The package's own file list decides what ships, so the image, the npm package and npx hold the same files.
FILES=$(node -e 'for (const f of require(process.argv[1]).files ?? []) console.log(f)' "$SRC/package.json")
for entry in $FILES; do
  case "$entry" in
    dist | dist/) ;;
    *) [ -e "$SRC/$entry" ] || { echo "package.json lists $entry, which does not exist" >&2; exit 1; }
       # At the same path as in the package (src/web/static stays src/web/static).
       mkdir -p "$OUT/$(dirname "$entry")"
       cp -a "$SRC/$entry" "$OUT/$(dirname "$entry")/" ;;
  esac
done
cp "$SRC/package.json" "$SRC/package-lock.json" "$OUT/"
for doc in README.md LICENSE; do
  if [ -f "$SRC/$doc" ]; then cp "$SRC/$doc" "$OUT/"; fi
done

echo "production dependencies"
cp -a "$SRC/node_modules" "$OUT/node_modules"
(cd "$OUT" && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error)
# npm prune leaves emptied scope folders behind.
for scope in "$OUT"/node_modules/@*/; do rmdir "$scope" 2>/dev/null || true; done
rm "$OUT/package-lock.json"

# The same start-up check as the images' build recipe (addon/install.sh).
sh "$SRC/addon/smoke-test.sh" "$OUT"
echo "runtime tree ready: $OUT"

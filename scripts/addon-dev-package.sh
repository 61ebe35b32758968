#!/bin/sh
# Packs this checkout exactly as npm would publish it into addon/ (meter2mqtt-<version>.tgz, git-ignored), so that
# a development install of the app (the addon folder copied to Home Assistant's /addons share, or this repository
# added as an app repository from a branch) builds from these sources instead of the published package.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
rm -f "$SRC"/addon/meter2mqtt-*.tgz
cd "$SRC"
npm pack --pack-destination addon

# syntax=docker/dockerfile:1
#
# meter2mqtt images. Every one runs the tree scripts/build-runtime-tree.sh assembles (and smoke-tests) in a build
# stage; the same script checks that tree on a machine without Docker.
#
#   docker build -t meter2mqtt .                 standalone image (the default, last stage): runs as user `node`
#
#   docker buildx build --platform linux/arm64 --target addon \
#     --build-arg BUILD_FROM=ghcr.io/home-assistant/aarch64-base:3.22 \
#     --build-arg BUILD_ARCH=aarch64 --build-arg BUILD_VERSION=0.1.0 \
#     -t ghcr.io/meter2mqtt/aarch64-addon-meter2mqtt:0.1.0 .
#                                                the Home Assistant add-on (addon/config.yaml `image`), on Home
#                                                Assistant's base image for each arch in addon/build.yaml; the tag
#                                                is the version in addon/config.yaml

ARG NODE_VERSION=22
ARG BUILD_FROM=ghcr.io/home-assistant/amd64-base:3.22

# What the build reads from the checkout, in one place for both build stages.
FROM scratch AS source
COPY package.json package-lock.json tsconfig.json tsconfig.build.json /src/
COPY bin /src/bin
COPY src /src/src
COPY sql /src/sql
COPY fixtures /src/fixtures
COPY scripts/build-runtime-tree.sh /src/scripts/build-runtime-tree.sh

# Build stage for the standalone image. The toolchain is for the native modules (better-sqlite3, serialport)
# when no prebuilt binary matches.
FROM node:${NODE_VERSION}-alpine AS build
RUN apk add --no-cache python3 make g++ linux-headers
WORKDIR /src
COPY --from=source /src/package.json /src/package-lock.json ./
# Dependency scripts wait until the sources are there (the package's `prepare` compiles them); only the two
# native modules need theirs.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 @serialport/bindings-cpp
COPY --from=source /src ./
RUN sh scripts/build-runtime-tree.sh /opt/meter2mqtt

# Build stage for the add-on: same sources and dependencies, native modules rebuilt for the Node.js of the
# Home Assistant base image (Alpine's nodejs package), which runs them.
FROM ${BUILD_FROM} AS addon-build
RUN apk add --no-cache nodejs npm python3 make g++ linux-headers
COPY --from=build /src /src
WORKDIR /src
RUN npm rebuild better-sqlite3 @serialport/bindings-cpp \
 && sh scripts/build-runtime-tree.sh /opt/meter2mqtt

# The add-on. It runs as root, as the Supervisor's add-ons do: s6-overlay (/init, the base image's entrypoint)
# needs it, /data and the mapped serial devices are root's, and addon/apparmor.txt confines it instead.
FROM ${BUILD_FROM} AS addon
RUN apk add --no-cache nodejs
COPY --from=addon-build /opt/meter2mqtt /opt/meter2mqtt
# s6 stops the CMD with SIGTERM and waits this long before SIGKILL: enough to flush the archive and say offline.
ENV S6_KILL_GRACETIME=15000 \
    NODE_ENV=production
WORKDIR /data
# Without --config, `run` reads /data/options.json and asks the Supervisor for the broker (src/addon/).
# with-contenv hands the container's environment (SUPERVISOR_TOKEN) to the CMD whatever s6's defaults.
CMD ["/usr/bin/with-contenv", "node", "/opt/meter2mqtt/bin/meter2mqtt.js", "run"]
ARG BUILD_ARCH=amd64
ARG BUILD_VERSION=dev
LABEL io.hass.type="addon" \
      io.hass.name="meter2mqtt" \
      io.hass.version="${BUILD_VERSION}" \
      io.hass.arch="${BUILD_ARCH}" \
      org.opencontainers.image.source="https://github.com/meter2mqtt/meter2mqtt"

# The standalone image: the app and its production dependencies, no compiler, no npm cache, not root.
FROM node:${NODE_VERSION}-alpine AS runtime
COPY --from=build /opt/meter2mqtt /opt/meter2mqtt
RUN mkdir -p /var/lib/meter2mqtt /config && chown node:node /var/lib/meter2mqtt
ENV NODE_ENV=production
USER node
# Relative paths in the config (the default archive, ./data/meter2mqtt.sqlite) land in this volume.
WORKDIR /var/lib/meter2mqtt
VOLUME /var/lib/meter2mqtt
ENTRYPOINT ["node", "/opt/meter2mqtt/bin/meter2mqtt.js"]
CMD ["run", "--config", "/config/config.yaml"]
LABEL org.opencontainers.image.title="meter2mqtt" \
      org.opencontainers.image.source="https://github.com/meter2mqtt/meter2mqtt" \
      org.opencontainers.image.licenses="MIT"

# syntax=docker/dockerfile:1
#
# The standalone meter2mqtt image, for Docker without Home Assistant's Supervisor:
#
#   docker build -t meter2mqtt .
#   docker run -v ./config.yaml:/config/config.yaml:ro -v meter2mqtt:/var/lib/meter2mqtt meter2mqtt
#
# It packs this checkout as npm publishes it and installs that package with addon/install.sh, the recipe the Home
# Assistant app (addon/Dockerfile, built by the Supervisor from the published package) shares; the final stage has
# Node.js, the app and its production dependencies, no compiler or npm cache, and runs as the user `node`.

ARG NODE_VERSION=22

# What the build reads from the checkout, in one place.
FROM scratch AS source
COPY package.json package-lock.json tsconfig.json tsconfig.build.json /src/
COPY bin /src/bin
COPY src /src/src
COPY sql /src/sql
COPY fixtures /src/fixtures
COPY addon/install.sh addon/smoke-test.sh /src/addon/

# The package, compiled and packed, then installed by the shared recipe. The toolchain is for the native modules
# (better-sqlite3, serialport) when no prebuilt binary matches.
FROM node:${NODE_VERSION}-alpine AS build
RUN apk add --no-cache python3 make g++ linux-headers
WORKDIR /src
COPY --from=source /src/package.json /src/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY --from=source /src ./
RUN npm run build \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && sh addon/install.sh /tmp/meter2mqtt-*.tgz /opt/meter2mqtt

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
# The bridge's own health (a meter silent past its timeout, the broker away, the archive refusing writes): asks
# GET /health when the config has web:, else reads the retained bridge/health message.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
  CMD ["node", "/opt/meter2mqtt/bin/meter2mqtt.js", "health", "--config", "/config/config.yaml"]
LABEL org.opencontainers.image.title="meter2mqtt" \
      org.opencontainers.image.source="https://github.com/meter2mqtt/meter2mqtt" \
      org.opencontainers.image.licenses="MIT"

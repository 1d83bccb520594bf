# syntax=docker/dockerfile:1
#
# bff-gateway container image.
#
#   docker build -t bff-gateway .
#   docker run --rm -p 8080:8080 -v "$PWD/routes.yaml:/config/routes.yaml:ro" \
#     -e OIDC_CLIENT_SECRET -e SESSION_SECRET -e TOKEN_CACHE_KEY bff-gateway
#
# Two stages: "build" compiles TypeScript with the dev dependencies; the runtime stage
# installs production dependencies only and copies the compiled JavaScript in. The
# runtime image writes nothing at run time, so it runs with a read-only root filesystem.
# Debian (glibc) rather than Alpine: sodium-native ships prebuilt glibc binaries.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: dev dependencies + tsc -------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs an install script (sodium-native loads a bundled prebuild).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies only -----------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    BFF_CONFIG=/config/routes.yaml \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /root/.npm /tmp/* \
 && groupadd --system --gid 10001 bff \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin bff \
 && mkdir -p /config
# /config/routes.yaml is mounted at run time (ConfigMap, or -v …:/config/routes.yaml:ro).
COPY --from=build /app/dist/src ./dist/src

# Non-root, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080

# Liveness through node itself (no curl/wget in the slim image). The URL can be
# overridden when config.listen.port is not 8080.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.BFF_HEALTHCHECK_URL||'http://127.0.0.1:8080/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# The gateway handles SIGTERM itself (graceful shutdown, config shutdownGracePeriod).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli.js"]
# Extra arguments go to the CLI, e.g. `docker run … bff-gateway check`.
CMD []

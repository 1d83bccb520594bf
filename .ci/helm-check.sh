#!/usr/bin/env bash
# Lints and renders the Helm chart where a helm binary exists; elsewhere the static
# chart tests (test/deploy/helm.test.ts) are all there is.
set -euo pipefail
cd "$(dirname "$0")/.."

chart=helm/bff-gateway

if ! command -v helm >/dev/null 2>&1; then
  echo "helm not installed: static chart tests only"
  exit 0
fi

helm version --short 2>/dev/null || helm version
helm lint "$chart"
helm template t "$chart" >/dev/null
echo "helm template (defaults): ok"

# Several replicas with the in-memory token cache must be refused.
if out=$(helm template t "$chart" --set replicaCount=2 2>&1); then
  echo "FAIL: helm template accepted replicaCount=2 with tokenCache.url memory://" >&2
  exit 1
fi
if ! grep -q "in-memory token cache" <<<"$out"; then
  echo "FAIL: replicaCount=2 was refused, but not by the token-cache guard:" >&2
  echo "$out" >&2
  exit 1
fi
echo "helm template --set replicaCount=2 (memory://): refused as expected"

# …and accepted with Redis.
helm template t "$chart" --set replicaCount=2 \
  --set 'config.tokenCache.url=${REDIS_URL}' --set secrets.keys.redisUrl=REDIS_URL >/dev/null
echo "helm template --set replicaCount=2 (redis): ok"

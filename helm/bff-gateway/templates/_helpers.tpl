{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "bff-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or fullnameOverride.
*/}}
{{- define "bff-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bff-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bff-gateway.labels" -}}
helm.sh/chart: {{ include "bff-gateway.chart" . }}
{{ include "bff-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "bff-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bff-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bff-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bff-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the existing Secret holding OIDC_CLIENT_SECRET, SESSION_SECRET, TOKEN_CACHE_KEY…
*/}}
{{- define "bff-gateway.secretName" -}}
{{- default (include "bff-gateway.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "bff-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The container port: config.listen.port, 8080 when unset.
*/}}
{{- define "bff-gateway.port" -}}
{{- int (dig "listen" "port" 8080 (.Values.config | default dict)) }}
{{- end }}

{{/*
config.metrics.port when set (and not 0), else empty.
*/}}
{{- define "bff-gateway.metricsPort" -}}
{{- $port := int (dig "metrics" "port" 0 (.Values.config | default dict)) }}
{{- if gt $port 0 }}{{ $port }}{{ end }}
{{- end }}

{{/*
Refuses values that would deploy a broken gateway. Included by the Deployment.
*/}}
{{- define "bff-gateway.validate" -}}
{{- $cfg := .Values.config | default dict }}
{{- $url := toString (dig "tokenCache" "url" "" $cfg) | default "memory://" }}
{{- $redisKey := toString (.Values.secrets.keys.redisUrl | default "") }}
{{- $redisFromEnv := or (ne $redisKey "") (hasKey (.Values.secrets.extraKeys | default dict) "REDIS_URL") (gt (len (.Values.extraEnvFrom | default list)) 0) }}
{{- range (.Values.extraEnv | default list) }}
{{- if eq (toString .name) "REDIS_URL" }}{{ $redisFromEnv = true }}{{ end }}
{{- end }}
{{- /* memory:// outright, or ${REDIS_URL:-memory://} with no REDIS_URL given */}}
{{- $memory := or (hasPrefix "memory:" $url) (and (contains "memory:" $url) (not $redisFromEnv)) }}
{{- $replicas := int .Values.replicaCount }}
{{- $maxReplicas := $replicas }}
{{- if .Values.autoscaling.enabled }}{{ $maxReplicas = int .Values.autoscaling.maxReplicas }}{{ end }}
{{- if and $memory (gt $maxReplicas 1) }}
{{- fail (printf "bff-gateway: %d replicas cannot share an in-memory token cache (config.tokenCache.url is %q): each pod would hold its own tokens and a user's next request, served by another pod, would find none. Set config.tokenCache.url to a Redis URL (redis://… or rediss://…, or ${REDIS_URL} with secrets.keys.redisUrl naming the Secret key that holds it), or run one replica (replicaCount=1, autoscaling.enabled=false)." $maxReplicas $url) }}
{{- end }}
{{- if and (contains "${REDIS_URL" $url) (not (contains ":-" $url)) (not $redisFromEnv) }}
{{- fail "bff-gateway: config.tokenCache.url refers to ${REDIS_URL} but nothing sets REDIS_URL: set secrets.keys.redisUrl to the key of secrets.existingSecret that holds the Redis URL." }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "bff-gateway: autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)." (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- $host := toString (dig "listen" "host" "0.0.0.0" $cfg) }}
{{- if has $host (list "127.0.0.1" "localhost" "::1") }}
{{- fail (printf "bff-gateway: config.listen.host is %s: in a pod the gateway must listen on 0.0.0.0 (or ::) for the Service and the probes to reach it." $host) }}
{{- end }}
{{- $grace := toString (dig "shutdownGracePeriod" "" $cfg) }}
{{- if regexMatch "^[0-9]+(ms|s|m)$" $grace }}
{{- $n := atoi (regexFind "^[0-9]+" $grace) }}
{{- $seconds := $n }}
{{- if hasSuffix "ms" $grace }}{{ $seconds = div $n 1000 }}{{ else if hasSuffix "m" $grace }}{{ $seconds = mul $n 60 }}{{ end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $seconds) }}
{{- fail (printf "bff-gateway: terminationGracePeriodSeconds (%d) must exceed config.shutdownGracePeriod (%s), else Kubernetes kills the gateway before it has drained." (int .Values.terminationGracePeriodSeconds) $grace) }}
{{- end }}
{{- end }}
{{- end }}

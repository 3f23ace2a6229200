{{/* Chart name. */}}
{{- define "ext-authz-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the Deployment, Service, Secret and ServiceAccount name. */}}
{{- define "ext-authz-adapter.fullname" -}}
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

{{- define "ext-authz-adapter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ext-authz-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ext-authz-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ext-authz-adapter.labels" -}}
helm.sh/chart: {{ include "ext-authz-adapter.chart" . }}
{{ include "ext-authz-adapter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The chart's Redis: labels distinct from the adapter's, so no selector takes both. */}}
{{- define "ext-authz-adapter.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ext-authz-adapter.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ext-authz-adapter.redisLabels" -}}
helm.sh/chart: {{ include "ext-authz-adapter.chart" . }}
{{ include "ext-authz-adapter.redisSelectorLabels" . }}
app.kubernetes.io/component: redis
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ext-authz-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ext-authz-adapter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding client-secret, cookie-secret (and redis-password). */}}
{{- define "ext-authz-adapter.secretName" -}}
{{- default (include "ext-authz-adapter.fullname" .) .Values.oidc.existingSecret }}
{{- end }}

{{/* The adapter's Service host: the mesh config provider's `service`. */}}
{{- define "ext-authz-adapter.serviceHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "ext-authz-adapter.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The callback path the CUSTOM policy must never skip. */}}
{{- define "ext-authz-adapter.callbackPath" -}}
{{- if .Values.config.redirectUrl }}
{{- (urlParse .Values.config.redirectUrl).path }}
{{- else }}
{{- printf "%s/callback" (trimSuffix "/" .Values.config.proxyPrefix) }}
{{- end }}
{{- end }}

{{/* Cookie Secure attribute: true/false, or auto (true when the Gateway terminates TLS). */}}
{{- define "ext-authz-adapter.cookieSecure" -}}
{{- if kindIs "bool" .Values.config.cookieSecure }}
{{- .Values.config.cookieSecure }}
{{- else }}
{{- not (empty .Values.istio.gateway.tlsCredential) }}
{{- end }}
{{- end }}

{{/* The VirtualService's name. */}}
{{- define "ext-authz-adapter.virtualServiceName" -}}
{{- if .Values.istio.virtualService.name }}
{{- .Values.istio.virtualService.name }}
{{- else }}
{{- first .Values.istio.hosts | replace "." "-" | replace "*" "" | trimPrefix "-" | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Redis URL: the external one, or the chart's own Redis. */}}
{{- define "ext-authz-adapter.redisUrl" -}}
{{- if .Values.redis.connectionUrl }}
{{- .Values.redis.connectionUrl }}
{{- else }}
{{- printf "redis://%s-redis.%s.svc.cluster.local:6379" (include "ext-authz-adapter.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The mesh config's pathNormalization and extensionProviders entry, for NOTES.txt (and istiod's values). */}}
{{- define "ext-authz-adapter.meshConfig" -}}
pathNormalization:
  normalization: {{ .Values.istio.pathNormalization }}
extensionProviders:
- name: {{ .Values.istio.providerName }}
  {{- if eq .Values.istio.mode "grpc" }}
  envoyExtAuthzGrpc:
    service: {{ include "ext-authz-adapter.serviceHost" . }}
    port: {{ .Values.service.grpcPort }}
    timeout: {{ .Values.istio.timeout }}
  {{- else }}
  envoyExtAuthzHttp:
    service: {{ include "ext-authz-adapter.serviceHost" . }}
    port: {{ .Values.service.httpPort }}
    timeout: {{ .Values.istio.timeout }}
    includeRequestHeadersInCheck: {{ .Values.istio.headers.includeRequestHeadersInCheck | toJson }}
    headersToUpstreamOnAllow: {{ .Values.istio.headers.headersToUpstreamOnAllow | toJson }}
    headersToDownstreamOnAllow: {{ .Values.istio.headers.headersToDownstreamOnAllow | toJson }}
    headersToDownstreamOnDeny: {{ .Values.istio.headers.headersToDownstreamOnDeny | toJson }}
  {{- end }}
{{- end }}

{{/* Refuses values that would make the resources disagree. Included by every template. */}}
{{- define "ext-authz-adapter.validate" -}}
{{- if and .Values.providerTls.caBundle.configMap .Values.providerTls.caBundle.secret }}
{{- fail "providerTls.caBundle: set configMap or secret, not both" }}
{{- end }}
{{- with .Values.providerTls.clientCert }}
{{- if and .secret (or (not .certKey) (not .keyKey) (eq .certKey .keyKey)) }}
{{- fail "providerTls.clientCert: certKey and keyKey must be set and differ (the certificate and the key are two files)" }}
{{- end }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainTimeoutSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed shutdown.preStopSleepSeconds + shutdown.drainTimeoutSeconds (%v): the kubelet would kill checks still draining" .Values.terminationGracePeriodSeconds (add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainTimeoutSeconds))) }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.redis.replicasWithoutRedis) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "more than one replica without Redis: each replica would refresh on its own and a back-channel logout would reach only one of them (docs/sessions.md). Set redis.enabled=true (the default), or replicaCount=1, or redis.replicasWithoutRedis=true to accept it" }}
{{- end }}
{{- if and .Values.redis.sessionStore (not .Values.redis.enabled) }}
{{- fail "redis.sessionStore needs redis.enabled=true" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true (the ServiceMonitor scrapes the metrics port)" }}
{{- end }}
{{- $refresh := include "ext-authz-adapter.seconds" (dict "name" "config.cookieRefresh" "value" .Values.config.cookieRefresh) | int }}
{{- $idle := include "ext-authz-adapter.seconds" (dict "name" "oidc.ssoSessionIdle" "value" .Values.oidc.ssoSessionIdle) | int }}
{{- if and (gt $refresh 0) (gt $idle 0) (ge $refresh $idle) }}
{{- fail (printf "config.cookieRefresh (%s) must be shorter than oidc.ssoSessionIdle (%s, Keycloak's SSO Session Idle): the adapter reaches Keycloak only to refresh, so even an active user's Keycloak session would idle out between two refreshes, the next refresh would fail and the user sign in again. Lower config.cookieRefresh (e.g. 15m), or set oidc.ssoSessionIdle to your realm's value" .Values.config.cookieRefresh .Values.oidc.ssoSessionIdle) }}
{{- end }}
{{- if not (has .Values.istio.mode (list "http" "grpc")) }}
{{- fail (printf "istio.mode must be http or grpc, not %q" .Values.istio.mode) }}
{{- end }}
{{- if and (eq .Values.istio.mode "grpc") (not .Values.grpc.enabled) }}
{{- fail "istio.mode=grpc needs grpc.enabled=true (the provider calls the gRPC port)" }}
{{- end }}
{{- if eq (int .Values.service.httpPort) (int .Values.service.grpcPort) }}
{{- fail "service.httpPort and service.grpcPort must differ" }}
{{- end }}
{{- if not (hasPrefix "/" .Values.config.proxyPrefix) }}
{{- fail "config.proxyPrefix must start with /" }}
{{- end }}
{{- with .Values.oidc.cookieSecret }}
{{- if not (has (len .) (list 16 22 24 32 43 44)) }}
{{- fail "oidc.cookieSecret must be 16, 24 or 32 bytes, raw or base64 (openssl rand -base64 32 | tr -- '+/' '-_')" }}
{{- end }}
{{- end }}
{{- if .Values.istio.enabled }}
{{- if empty .Values.istio.hosts }}
{{- fail "istio.hosts needs at least one host to protect" }}
{{- end }}
{{- range .Values.istio.hosts }}
{{- if or (eq . "*") (contains "/" .) }}
{{- fail (printf "istio.hosts: %q is not a host name (never \"*\": the IdP's login page would need a login)" .) }}
{{- end }}
{{- end }}
{{- if not (has .Values.istio.pathNormalization (list "MERGE_SLASHES" "DECODE_AND_MERGE_SLASHES")) }}
{{- fail (printf "istio.pathNormalization must be MERGE_SLASHES or DECODE_AND_MERGE_SLASHES, not %q: Istio's BASE keeps \"//admin\" apart from the \"/admin\" that nginx and most frameworks serve" .Values.istio.pathNormalization) }}
{{- end }}
{{- if not (has .Values.istio.headersWithUnderscoresAction (list "" "REJECT_REQUEST" "DROP_HEADER")) }}
{{- fail (printf "istio.headersWithUnderscoresAction must be REJECT_REQUEST, DROP_HEADER or \"\", not %q" .Values.istio.headersWithUnderscoresAction) }}
{{- end }}
{{- $callback := include "ext-authz-adapter.callbackPath" . }}
{{- $prefix := printf "%s/" (trimSuffix "/" .Values.config.proxyPrefix) }}
{{- range .Values.istio.skipPaths }}
{{- $skip := or (eq . "*") (eq . $callback) (and (hasSuffix "*" .) (hasPrefix (trimSuffix "*" .) $callback)) (and (hasPrefix "*" .) (hasSuffix (trimPrefix "*" .) $callback)) }}
{{- if $skip }}
{{- fail (printf "istio.skipPaths: %q covers the callback path %s; the login could never finish" . $callback) }}
{{- end }}
{{- $endpoint := or (hasPrefix $prefix .) (and (hasSuffix "*" .) (hasPrefix (trimSuffix "*" .) $prefix)) }}
{{- if $endpoint }}
{{- fail (printf "istio.skipPaths: %q covers the adapter's endpoints under %s; they travel through the check, like every path" . $prefix) }}
{{- end }}
{{- end }}
{{- if .Values.config.cookieDomains }}
{{- range $host := .Values.istio.hosts }}
{{- $covered := false }}
{{- range $.Values.config.cookieDomains }}
{{- $d := trimPrefix "." . }}
{{- if or (eq $host $d) (hasSuffix (printf ".%s" $d) $host) }}
{{- $covered = true }}
{{- end }}
{{- end }}
{{- if not $covered }}
{{- fail (printf "config.cookieDomains %v do not cover the protected host %s (browsers would drop the session cookie)" $.Values.config.cookieDomains $host) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Seconds in a duration like 15m, 1h30m or 90s (0 or "" for none); fails on anything else. Takes (dict "name" NAME "value" VALUE). */}}
{{- define "ext-authz-adapter.seconds" -}}
{{- $value := toString .value }}
{{- if or (eq $value "") (eq $value "0") }}0
{{- else if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $value) }}
{{- fail (printf "%s: %q is not a duration in h, m and s (e.g. 15m or 1h30m)" .name $value) }}
{{- else }}
{{- $total := 0 }}
{{- range $part := regexFindAll "[0-9]+[hms]" $value -1 }}
{{- $n := int (regexFind "[0-9]+" $part) }}
{{- if hasSuffix "h" $part }}{{ $total = add $total (mul $n 3600) }}{{ else if hasSuffix "m" $part }}{{ $total = add $total (mul $n 60) }}{{ else }}{{ $total = add $total $n }}{{ end }}
{{- end }}
{{- $total }}
{{- end }}
{{- end }}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tessera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: "<release>-tessera", or the release name if it already says tessera. */}}
{{- define "tessera.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tessera.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades, so never the version. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Kubernetes recommended labels. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "tessera.labels" -}}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tessera
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "tessera.chart" .ctx }}
{{- end -}}

{{/* "repository:tag", the tag defaulting to the chart's appVersion. Call with (dict "ctx" $ "image" .Values.operator.image). */}}
{{- define "tessera.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "tessera.schedulerAddress" -}}
{{- printf "%s-scheduler.%s.svc:%d" (include "tessera.fullname" .) .Release.Namespace (int .Values.scheduler.grpcPort) -}}
{{- end -}}

{{/* The NATS URL every component uses: the bundled server's Service, or nats.url. */}}
{{- define "tessera.natsUrl" -}}
{{- if .Values.nats.bundled.enabled -}}
{{- printf "nats://%s-nats.%s.svc:%d" (include "tessera.fullname" .) .Release.Namespace (int .Values.nats.bundled.clientPort) -}}
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Refuses contradictory values at render time rather than installing something that cannot work. */}}
{{- define "tessera.validate" -}}
{{- if and .Values.nats.bundled.enabled .Values.nats.url -}}
{{- fail "nats.url and nats.bundled.enabled are exclusive: set nats.bundled.enabled=false to use an external NATS" -}}
{{- end -}}
{{- if and (not .Values.nats.bundled.enabled) (not .Values.nats.url) -}}
{{- fail "nats.url is required when nats.bundled.enabled=false" -}}
{{- end -}}
{{- if le (int .Values.priorityClasses.local.value) (int .Values.priorityClasses.network.value) -}}
{{- fail "priorityClasses.local.value must be higher than priorityClasses.network.value (local jobs preempt network jobs)" -}}
{{- end -}}
{{- if not (has .Values.operator.planner (list "grpc" "in-process")) -}}
{{- fail (printf "operator.planner must be grpc or in-process, got %q" (toString .Values.operator.planner)) -}}
{{- end -}}
{{- if and .Values.bridge.enabled (or (not .Values.bridge.rpcUrl) (not .Values.bridge.keystoreSecret) (not .Values.bridge.registry) (not .Values.bridge.market)) -}}
{{- fail "bridge.enabled=true needs bridge.rpcUrl, bridge.keystoreSecret, bridge.registry and bridge.market" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every Deployment and the NATS StatefulSet. */}}
{{- define "tessera.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* HTTP probes on /healthz; call with the port name. */}}
{{- define "tessera.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  initialDelaySeconds: 5
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

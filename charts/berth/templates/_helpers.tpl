{{/*
Named templates of the Berth chart. Sprig functions used by this chart (and no others, so the
chart renders in tests/tests/helm_chart.rs without Helm): include, default, trunc, trimSuffix,
contains, replace, quote, toYaml, nindent, indent, until, add1, int, required, fail.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>" (just the release name when it already contains the chart name). */}}
{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select this release's pods (add app.kubernetes.io/component). */}}
{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The controllers' StatefulSet; its pods are <this>-0 .. <this>-(replicas-1). */}}
{{- define "berth.controller.name" -}}
{{- printf "%s-controller" (include "berth.fullname" .) -}}
{{- end -}}

{{/* The headless Service that gives each controller pod a stable DNS name. */}}
{{- define "berth.controller.headless" -}}
{{- printf "%s-controller-headless" (include "berth.fullname" .) -}}
{{- end -}}

{{/* The client Service (API and HTTP port) in front of all controllers. */}}
{{- define "berth.controller.service" -}}
{{- printf "%s-controller" (include "berth.fullname" .) -}}
{{- end -}}

{{/* The agents' DaemonSet. */}}
{{- define "berth.agent.name" -}}
{{- printf "%s-agent" (include "berth.fullname" .) -}}
{{- end -}}

{{/* "<headless service>.<namespace>.svc.<cluster domain>": the controllers' DNS zone. */}}
{{- define "berth.controller.domain" -}}
{{- printf "%s.%s.svc.%s" (include "berth.controller.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* Number of controllers, checked (an int >= 1). */}}
{{- define "berth.controller.replicas" -}}
{{- $n := int (required "controller.replicas is required" .Values.controller.replicas) -}}
{{- if lt $n 1 -}}
{{- fail "controller.replicas must be at least 1" -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/*
--initial-cluster: "1=<sts>-0.<domain>:<peer port>,2=<sts>-1.<domain>:<peer port>,..." for node
ids 1..replicas (node id = pod ordinal + 1, see the StatefulSet's command).
*/}}
{{- define "berth.initialCluster" -}}
{{- $sts := include "berth.controller.name" . -}}
{{- $domain := include "berth.controller.domain" . -}}
{{- $port := .Values.ports.peer -}}
{{- range $i := until (int (include "berth.controller.replicas" .)) -}}
{{- if $i }},{{ end }}{{ add1 $i }}={{ $sts }}-{{ $i }}.{{ $domain }}:{{ $port }}
{{- end -}}
{{- end -}}

{{/* The agents' --endpoint: every controller's client API, "http://<pod>.<domain>:<api port>,...". */}}
{{- define "berth.controller.endpoints" -}}
{{- $sts := include "berth.controller.name" . -}}
{{- $domain := include "berth.controller.domain" . -}}
{{- $port := .Values.ports.api -}}
{{- range $i := until (int (include "berth.controller.replicas" .)) -}}
{{- if $i }},{{ end }}http://{{ $sts }}-{{ $i }}.{{ $domain }}:{{ $port }}
{{- end -}}
{{- end -}}

{{/* "repository:tag" of an image value (tag defaults to the chart's appVersion). */}}
{{- define "berth.controller.image" -}}
{{- printf "%s:%s" .Values.image.controller.repository (default .Chart.AppVersion .Values.image.controller.tag) -}}
{{- end -}}
{{- define "berth.agent.image" -}}
{{- printf "%s:%s" .Values.image.agent.repository (default .Chart.AppVersion .Values.image.agent.tag) -}}
{{- end -}}

{{/* --log-format of controllers and agents: text or json (anything else fails the render). */}}
{{- define "berth.logFormat" -}}
{{- $f := .Values.logFormat | default "text" -}}
{{- if not (or (eq $f "text") (eq $f "json")) -}}
{{- fail (printf "logFormat must be text or json, got %q" $f) -}}
{{- end -}}
{{- $f -}}
{{- end -}}

{{/*
Chart name, truncated to 63 characters (the DNS-1123 label limit).
*/}}
{{- define "wattprint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: release-chart, or the release name alone when it already contains the chart name.
Truncated to 63 characters; components append a suffix, so keep release names short.
*/}}
{{- define "wattprint.fullname" -}}
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

{{/*
Name of one component's objects: <fullname>-<component>, at most 63 characters.
Usage: include "wattprint.componentName" (list . "exporter")
*/}}
{{- define "wattprint.componentName" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- printf "%s-%s" (include "wattprint.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "wattprint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
*/}}
{{- define "wattprint.labels" -}}
helm.sh/chart: {{ include "wattprint.chart" . }}
{{ include "wattprint.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wattprint
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (immutable once installed: never add to them).
*/}}
{{- define "wattprint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wattprint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component. Usage: include "wattprint.componentLabels" (list . "exporter")
*/}}
{{- define "wattprint.componentLabels" -}}
{{ include "wattprint.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "wattprint.componentSelectorLabels" -}}
{{ include "wattprint.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Service account of the pods.
*/}}
{{- define "wattprint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wattprint.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The full image (Dockerfile target full): wattprint with the pipeline, for serve-intensity and the report CronJob.
Tag defaults to the chart's appVersion; a digest pins it.
*/}}
{{- define "wattprint.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Whether the exporter needs the host's PID namespace: NVML reports the PIDs of the processes on each GPU as host
PIDs, and slurm discovery and kubernetes' /proc method read /proc/<pid>/cgroup for each of them. With the
PodResources API kubernetes needs them only to split time-sliced GPUs by process (kubernetes.hostPID).
*/}}
{{- define "wattprint.exporter.hostPID" -}}
{{- $k := .Values.exporter.kubernetes }}
{{- if or (eq .Values.exporter.jobDiscovery "slurm") (and (eq .Values.exporter.jobDiscovery "kubernetes") (or (not $k.podResources) $k.hostPID)) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
Whether the exporter reads the kubelet's PodResources API (jobDiscovery kubernetes with kubernetes.podResources).
*/}}
{{- define "wattprint.exporter.podResources" -}}
{{- if and (eq .Values.exporter.jobDiscovery "kubernetes") .Values.exporter.kubernetes.podResources }}true{{ else }}false{{ end }}
{{- end }}

{{/*
Name of the exporter's web config Secret: the user's, the generated one, or "" when the exporter has none.
*/}}
{{- define "wattprint.exporter.webConfigSecret" -}}
{{- if .Values.exporter.web.existingConfigSecret }}
{{- .Values.exporter.web.existingConfigSecret }}
{{- else if or .Values.exporter.web.tls.enabled .Values.exporter.web.basicAuthUsers }}
{{- include "wattprint.componentName" (list . "exporter-web") }}
{{- end }}
{{- end }}

{{/*
The exporter's scheme, for probes and monitors.
*/}}
{{- define "wattprint.exporter.scheme" -}}
{{- if .Values.exporter.web.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/*
The cluster config (wattprint.yaml): an entry for cluster.name built from cluster.*, merged under .Values.config
(which may add clusters, budgets, report defaults, ...), and phase_rules when phaseRules is set.
*/}}
{{- define "wattprint.config" -}}
{{- $c := dict "provider" .Values.cluster.provider }}
{{- with .Values.cluster.region }}{{ $_ := set $c "region" . }}{{ end }}
{{- with .Values.cluster.zone }}{{ $_ := set $c "zone" . }}{{ end }}
{{- if not (kindIs "invalid" .Values.cluster.pue) }}{{ $_ := set $c "pue" .Values.cluster.pue }}{{ end }}
{{- with .Values.cluster.nodes }}{{ $_ := set $c "nodes" . }}{{ end }}
{{- $generated := dict "clusters" (dict .Values.cluster.name $c) "default_cluster" .Values.cluster.name }}
{{- if .Values.phaseRules }}{{ $_ := set $generated "phase_rules" "phase-rules.yaml" }}{{ end }}
{{- $config := mustMergeOverwrite $generated (deepCopy .Values.config) }}
{{- toYaml $config }}
{{- end }}

{{/*
Pod-level volumes and container mounts shared by the pipeline pods: the config and a writable /tmp.
*/}}
{{- define "wattprint.configVolume" -}}
- name: config
  configMap:
    name: {{ include "wattprint.componentName" (list . "config") }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "wattprint.configVolumeMounts" -}}
- name: config
  mountPath: /etc/wattprint
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The exporter image (Dockerfile target exporter): wattprint-exporter without DuckDB and Arrow, for the DaemonSet.
Repository defaults to <image.repository>-exporter (backend amdsmi: <image.repository>-exporter-amdsmi, built with
Dockerfile.amdsmi: the exporter image with ROCm's amd-smi library), tag to image.tag then the appVersion; its own digest pins it.
*/}}
{{- define "wattprint.exporterImage" -}}
{{- $img := .Values.exporter.image | default dict }}
{{- $suffix := eq .Values.exporter.backend "amdsmi" | ternary "-exporter-amdsmi" "-exporter" }}
{{- $repo := default (printf "%s%s" .Values.image.repository $suffix) $img.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $img.tag }}
{{- if $img.digest }}
{{- printf "%s:%s@%s" $repo $tag $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/*
Whether the monthly report CronJob (and its PVC) is rendered: report.enabled true, or null (the default) once
report.prometheus.url is set. "true" or "".
*/}}
{{- define "wattprint.report.enabled" -}}
{{- $e := .Values.report.enabled }}
{{- if or (eq (toString $e) "true") (and (kindIs "invalid" $e) .Values.report.prometheus.url) }}true{{ end }}
{{- end }}

{{/*
The exporter's backend amdsmi (AMD Instinct GPUs through ROCm's amdsmi): checks, device access, and the
NVIDIA-only settings that would be silently wrong there. docs/exporter.md, "amdsmi: AMD Instinct GPUs", "On Kubernetes".
*/}}

{{/*
Whether the exporter reaches the AMD device nodes through hostPath mounts in a privileged container ("true" or "").
*/}}
{{- define "wattprint.exporter.amdsmiPrivileged" -}}
{{- if and (eq .Values.exporter.backend "amdsmi") (eq .Values.exporter.amdsmi.deviceAccess "privileged") }}true{{ end }}
{{- end }}

{{/*
Refuses what cannot work, would be silently wrong or unsafe: a GPU resource on the exporter (any backend), and with
backend amdsmi the NVIDIA settings the chart has, and uid 0 (the kubelet's PodResources socket, RAPL as root) in a
privileged container, where it would hold every capability.
*/}}
{{- define "wattprint.exporter.checks" -}}
{{- $e := .Values.exporter }}
{{- range $section := list "requests" "limits" }}
{{- range $name, $_ := (get ($e.resources | default dict) $section) | default dict }}
{{- if or (hasPrefix "nvidia.com/" $name) (hasPrefix "amd.com/" $name) }}
{{- fail (printf "exporter.resources.%s must not request %s: the device plugin would allocate it to the exporter, away from the jobs it measures; the exporter reads every GPU of its node without one (see exporter.backend)" $section $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $e.backend "amdsmi" }}
{{- if hasKey ($e.nodeSelector | default dict) "nvidia.com/gpu.present" }}
{{- fail "exporter.backend amdsmi: exporter.nodeSelector still selects NVIDIA nodes (nvidia.com/gpu.present, the chart's default, into which Helm merges yours): remove it with `nvidia.com/gpu.present: null` under exporter.nodeSelector (--set 'exporter.nodeSelector.nvidia\\.com/gpu\\.present=null') and select your AMD GPU nodes, e.g. feature.node.kubernetes.io/amd-gpu: \"true\" (the label of the AMD GPU operator's node feature discovery rule)" }}
{{- end }}
{{- if contains "nvidia" (lower $e.runtimeClassName) }}
{{- fail (printf "exporter.backend amdsmi: exporter.runtimeClassName %s is the NVIDIA container runtime's: leave it empty with exporter.amdsmi.deviceAccess privileged, or name the AMD container runtime's RuntimeClass with deviceAccess runtime" $e.runtimeClassName) }}
{{- end }}
{{- if and (include "wattprint.exporter.amdsmiPrivileged" .) (eq (include "wattprint.exporter.podResources" .) "true") }}
{{- fail "exporter.backend amdsmi with exporter.amdsmi.deviceAccess privileged and the kubelet's PodResources API (exporter.jobDiscovery kubernetes, exporter.kubernetes.podResources) would run a privileged container as uid 0 (the socket is root's), which holds every capability whatever capabilities.drop says: use exporter.amdsmi.deviceAccess runtime (the AMD container runtime: unprivileged, uid 0 with every capability dropped, pods charged for the amd.com GPUs allocated to them), or set exporter.kubernetes.podResources=false (pods from the processes on each GPU, hostPID)" }}
{{- end }}
{{- if and (include "wattprint.exporter.amdsmiPrivileged" .) $e.rapl.enabled $e.rapl.runAsRoot }}
{{- fail "exporter.rapl.runAsRoot with exporter.backend amdsmi and exporter.amdsmi.deviceAccess privileged would run a privileged container as uid 0, which holds every capability whatever capabilities.drop says: install deploy/udev/99-wattprint-rapl.rules on the nodes instead (energy_uj readable without root), or use deviceAccess runtime" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The exporter container's securityContext. With the privileged device access: privileged (the runtime's device cgroup
admits no device node a pod was not allocated, whatever its capabilities; Kubernetes has no --device), and no
allowPrivilegeEscalation: false, which the API server refuses beside privileged: true. The rest is kept: non-root
(a non-root process keeps no capability across exec), read-only root filesystem; the image has no setuid file.
*/}}
{{- define "wattprint.exporter.securityContext" -}}
{{- $sc := deepCopy (.Values.exporter.securityContext | default dict) }}
{{- if include "wattprint.exporter.amdsmiPrivileged" . }}
{{- $_ := set $sc "privileged" true }}
{{- $_ := unset $sc "allowPrivilegeEscalation" }}
{{- end }}
{{- with $sc }}{{ toYaml . }}{{ end }}
{{- end }}

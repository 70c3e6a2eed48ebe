{{/*
Names and labels.
*/}}
{{- define "llmsim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llmsim.fullname" -}}
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

{{- define "llmsim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmsim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llmsim.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "llmsim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "llmsim.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The ConfigMap the pods mount: the chart's own, or .Values.existingConfigMap.
*/}}
{{- define "llmsim.configMapName" -}}
{{- default (include "llmsim.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{/*
deepMerge (list DST SRC): copy SRC into the map DST, recursing where both hold a map. Unlike
sprig's mergeOverwrite on Helm 3, false, 0 and "" in SRC do replace what DST holds; a null in
SRC removes the key.
*/}}
{{- define "llmsim.deepMerge" -}}
{{- $dst := index . 0 }}
{{- range $key, $value := index . 1 }}
{{- $current := get $dst $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- include "llmsim.deepMerge" (list $current $value) }}
{{- else if kindIs "invalid" $value }}
{{- $_ := unset $dst $key }}
{{- else if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- $_ := set $dst $key (deepCopy $value) }}
{{- else }}
{{- $_ := set $dst $key $value }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The scenario as a dict: a deep copy of .Values.scenario with the section overrides merged over
its sections (values key -> scenario key), and non-empty rules / phases replacing its lists.
Rendered with toYaml into the ConfigMap, and read for server.data-parallel-size.
*/}}
{{- define "llmsim.scenario" -}}
{{- $scenario := deepCopy (.Values.scenario | default dict) }}
{{- $sections := dict "model" "model" "server" "server" "engine" "engine" "latency" "latency" "responses" "responses" "lora" "lora" "kvCache" "kv-cache" "failures" "failures" "metrics" "metrics" }}
{{- range $valuesKey, $scenarioKey := $sections }}
{{- $override := index $.Values $valuesKey }}
{{- if $override }}
{{- $section := get $scenario $scenarioKey }}
{{- if not (kindIs "map" $section) }}
{{- $section = dict }}
{{- $_ := set $scenario $scenarioKey $section }}
{{- end }}
{{- include "llmsim.deepMerge" (list $section $override) }}
{{- end }}
{{- end }}
{{- range $key := list "rules" "phases" }}
{{- with index $.Values $key }}
{{- $_ := set $scenario $key (deepCopy .) }}
{{- end }}
{{- end }}
{{- toYaml $scenario }}
{{- end }}

{{/*
server.data-parallel-size of the scenario (default 1), checked to be 1..8: one port per rank.
*/}}
{{- define "llmsim.dataParallelSize" -}}
{{- $scenario := include "llmsim.scenario" . | fromYaml }}
{{- $size := dig "server" "data-parallel-size" 1 $scenario }}
{{- $number := or (kindIs "int" $size) (kindIs "int64" $size) (kindIs "float64" $size) }}
{{- if or (not $number) (lt (float64 $size) 1.0) (gt (float64 $size) 8.0) (ne (float64 $size) (float64 (int $size))) }}
{{- fail (printf "server.data-parallel-size must be an integer from 1 to 8, not %v" $size) }}
{{- end }}
{{- int $size }}
{{- end }}

{{/*
The name of rank i's port: http for rank 0, http-rank<i> for the others.
*/}}
{{- define "llmsim.portName" -}}
{{- if eq (int .) 0 }}http{{ else }}{{ printf "http-rank%d" (int .) }}{{ end }}
{{- end }}

{{/*
An HTTP probe on rank 0's port from a probes.* entry: path, plus every key but enabled and path.
*/}}
{{- define "llmsim.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
{{- with omit . "enabled" "path" }}
{{ toYaml . }}
{{- end }}
{{- end }}

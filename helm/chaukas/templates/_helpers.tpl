{{/* Names and labels shared by every object. */}}
{{- define "chaukas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chaukas.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "chaukas.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "chaukas.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chaukas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "chaukas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: include with (dict "root" $ "role" "gateway"). */}}
{{- define "chaukas.selector" -}}
app.kubernetes.io/name: {{ include "chaukas.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "chaukas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chaukas.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "chaukas.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The generated config.toml: connection settings and listen addresses from values, with
     `config` merged over them. */}}
{{- define "chaukas.config" -}}
{{- $generated := dict
  "nats" (dict "url" .Values.nats.url "user" .Values.nats.user "replicas" .Values.nats.replicas "shards" .Values.nats.shards "max_bytes" .Values.nats.maxBytes)
  "clickhouse" (dict "url" .Values.clickhouse.url "database" .Values.clickhouse.database)
  "gateway" (dict
    "grpc_listen" (printf "0.0.0.0:%v" .Values.gateway.grpcPort)
    "http_listen" (printf "0.0.0.0:%v" .Values.gateway.httpPort)
    "otlp_grpc_listen" ""
    "otlp_http_listen" ""
    "query_endpoint" (printf "http://%s-query:%v" (include "chaukas.fullname" .) .Values.query.grpcPort))
  "writer" (dict "http_listen" (printf "0.0.0.0:%v" .Values.writer.httpPort) "scratch_database" .Values.clickhouse.scratch.database)
  "log" (dict "name" .Values.log.name)
  "query" (dict
    "grpc_listen" (printf "0.0.0.0:%v" .Values.query.grpcPort)
    "http_listen" (printf "0.0.0.0:%v" .Values.query.httpPort))
-}}
{{- include "chaukas.toml" (mustMergeOverwrite $generated (deepCopy .Values.config)) -}}
{{- end -}}

{{/* Sections of scalars as TOML. Not `toToml`: values arrive as float64, which it would write
     as 16.0 or 5.36870912e+10, and the services' integer settings refuse those. */}}
{{- define "chaukas.toml" -}}
{{- range $section, $keys := . }}
[{{ $section }}]
{{- range $key, $value := $keys }}
{{ $key }} = {{ include "chaukas.tomlValue" $value }}
{{- end }}
{{ end }}
{{- end -}}

{{- define "chaukas.tomlValue" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else -}}
{{ fail (printf "config: %v is not a string, number or boolean" .) }}
{{- end -}}
{{- end -}}

{{/* Environment every Chaukas container gets: the config file, its role's credentials,
     telemetry. Include with (dict "root" $ "role" "gateway|writer|query"). */}}
{{- define "chaukas.env" -}}
{{- $root := .root -}}
- name: CHAUKAS_CONFIG
  value: /etc/chaukas/config.toml
- name: RUST_LOG
  value: {{ $root.Values.logLevel | quote }}
- name: CHAUKAS_LOG_FORMAT
  value: json
{{- include "chaukas.secretEnv" (list "CHAUKAS_NATS__URL" $root.Values.nats.urlSecret) }}
{{- if ne .role "query" }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_NATS__PASSWORD" $root.Values.nats.passwordSecret) }}
{{- end }}
{{- if ne .role "gateway" }}
{{- $clickhouse := index $root.Values.clickhouse .role }}
- name: CHAUKAS_CLICKHOUSE__USER
  value: {{ $clickhouse.user | quote }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_CLICKHOUSE__PASSWORD" $clickhouse.passwordSecret) }}
{{- end }}
{{- if and (eq .role "writer") $root.Values.clickhouse.scratch.database }}
- name: CHAUKAS_WRITER__SCRATCH_USER
  value: {{ $root.Values.clickhouse.scratch.user | quote }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_WRITER__SCRATCH_PASSWORD" $root.Values.clickhouse.scratch.passwordSecret) }}
{{- end }}
{{- if eq .role "gateway" }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_GATEWAY__QUERY_TOKEN" $root.Values.internalTokenSecret) }}
{{- end }}
{{- if eq .role "query" }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_QUERY__INTERNAL_TOKEN" $root.Values.internalTokenSecret) }}
{{- end }}
{{- if or (eq .role "writer") (eq .role "query") }}
{{- include "chaukas.secretEnv" (list "CHAUKAS_LOG__SIGNING_KEYS" $root.Values.log.signingKeySecret) }}
{{- end }}
{{- if $root.Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otlpEndpoint | quote }}
{{- end }}
{{- end -}}

{{/* (list NAME secretRef): an env entry from a Secret, when the Secret is named. */}}
{{- define "chaukas.secretEnv" -}}
{{- $name := index . 0 -}}
{{- $secret := index . 1 -}}
{{- if $secret.name }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $secret.key }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every Deployment: include with the role's values. */}}
{{- define "chaukas.podSpec" -}}
serviceAccountName: {{ include "chaukas.serviceAccountName" .root }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "chaukas.fullname" .root }}-config
{{- end -}}

{{/* Pod template metadata: labels and a checksum so a config change rolls the pods. */}}
{{- define "chaukas.podMetadata" -}}
labels:
  {{- include "chaukas.selector" (dict "root" .root "role" .role) | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "chaukas.config" .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

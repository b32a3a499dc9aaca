{{- define "ibu.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "ibu.labels" -}}
app.kubernetes.io/part-of: ibu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image of service .name: repository@digest, or repository:tag. */}}
{{- define "ibu.image" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $repo := $svc.image.repository | default (printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) .name) -}}
{{- if $svc.image.digest -}}
{{ $repo }}@{{ $svc.image.digest }}
{{- else -}}
{{ $repo }}:{{ $svc.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "ibu.natsImage" -}}
{{- with .Values.nats.image -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* The NATS URL the services dial. */}}
{{- define "ibu.natsURL" -}}
{{- if .Values.nats.external.url -}}
{{ .Values.nats.external.url }}
{{- else -}}
{{- $scheme := ternary "tls" "nats" (ne .Values.nats.tls.secretName "") -}}
{{ $scheme }}://{{ include "ibu.fullname" . }}-nats.{{ .Release.Namespace }}.svc:4222
{{- end -}}
{{- end -}}

{{- define "ibu.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ibu.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}

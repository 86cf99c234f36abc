{{/*
name is the chart name, or nameOverride.
*/}}
{{- define "bollard-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
fullname prefixes every object of the release. It is the release name alone
when that already contains the chart name (helm install bollard-operator ...).
*/}}
{{- define "bollard-operator.fullname" -}}
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
chart is name-version, for the helm.sh/chart label.
*/}}
{{- define "bollard-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
labels go on every object of the release.
*/}}
{{- define "bollard-operator.labels" -}}
helm.sh/chart: {{ include "bollard-operator.chart" . }}
{{ include "bollard-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bollard
{{- end }}

{{/*
selectorLabels select the operator pods; they never change across upgrades
(a Deployment's selector is immutable).
*/}}
{{- define "bollard-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bollard-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
serviceAccountName is the operator's ServiceAccount.
*/}}
{{- define "bollard-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bollard-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
image is the operator image, repository:tag, the tag defaulting to the
chart's appVersion.
*/}}
{{- define "bollard-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
brokerImage is the default image of brokers: defaultBrokerImage, or the
operator's own image.
*/}}
{{- define "bollard-operator.brokerImage" -}}
{{- default (include "bollard-operator.image" .) .Values.defaultBrokerImage }}
{{- end }}

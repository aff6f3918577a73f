{{/* Names. */}}
{{- define "imagetron.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imagetron.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "imagetron.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "imagetron.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "imagetron.secretName" -}}
{{- default (printf "%s-secrets" (include "imagetron.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "gateway"). */}}
{{- define "imagetron.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagetron.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "imagetron.labels" -}}
{{ include "imagetron.selectorLabels" . }}
app.kubernetes.io/part-of: imagetron
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Image of one process: (dict "root" $ "component" "gateway"). */}}
{{- define "imagetron.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := printf "%s/%s" $img.repositoryPrefix .component -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* In-cluster URLs. */}}
{{- define "imagetron.url" -}}
{{- printf "http://%s-%s:%v" (include "imagetron.fullname" .root) .component .port -}}
{{- end -}}

{{- define "imagetron.goapiBaseUrl" -}}
{{- if .Values.config.goapiBaseUrl -}}{{ .Values.config.goapiBaseUrl }}
{{- else if .Values.sandbox.enabled -}}{{ include "imagetron.url" (dict "root" . "component" "sandbox" "port" 8090) }}
{{- else -}}{{ fail "set config.goapiBaseUrl (or enable the sandbox)" }}
{{- end -}}
{{- end -}}

{{- define "imagetron.llmBaseUrl" -}}
{{- if .Values.config.llmBaseUrl -}}{{ .Values.config.llmBaseUrl }}
{{- else if .Values.sandbox.enabled -}}{{ include "imagetron.url" (dict "root" . "component" "sandbox" "port" 8090) }}/v1
{{- else -}}{{ fail "set config.llmBaseUrl (or enable the sandbox)" }}
{{- end -}}
{{- end -}}

{{- define "imagetron.webhookPublicBaseUrl" -}}
{{- if .Values.config.webhookPublicBaseUrl -}}{{ .Values.config.webhookPublicBaseUrl }}
{{- else if .Values.sandbox.enabled -}}{{ include "imagetron.url" (dict "root" . "component" "gateway" "port" 8080) }}
{{- else if .Values.ingress.enabled -}}{{ ternary "https" "http" .Values.ingress.tls.enabled }}://{{ .Values.ingress.host }}
{{- else -}}{{ fail "set config.webhookPublicBaseUrl: the gateway's URL as the image provider reaches it" }}
{{- end -}}
{{- end -}}

{{- define "imagetron.downloadAllowHosts" -}}
{{- $hosts := .Values.config.downloadAllowHosts | default list -}}
{{- if .Values.sandbox.enabled -}}
{{- $hosts = append $hosts (printf "%s-sandbox:8090" (include "imagetron.fullname" .)) -}}
{{- end -}}
{{- $hosts | toJson -}}
{{- end -}}

{{/*
A secret value: the one in values, else the one already in the cluster's Secret (so
generated values survive upgrades), else a new random one.
(dict "root" $ "key" "IMAGETRON_WEBHOOK_SECRET" "value" .Values.secrets.webhookSecret "prefix" "")
*/}}
{{- define "imagetron.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "imagetron.secretName" .root) -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- printf "%s%s" (default "" .prefix) (randAlphaNum 43) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every workload: (dict "root" $ "values" .Values.gateway). */}}
{{- define "imagetron.podSpecCommon" -}}
serviceAccountName: {{ include "imagetron.serviceAccountName" .root }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
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
{{- end -}}

{{/* An environment variable (`name`, by default the key) from the Secret's `key`. */}}
{{- define "imagetron.secretEnv" -}}
- name: {{ .name | default .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "imagetron.secretName" .root }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* Imagetron's NATS users (imagetron_platform.nats_access.USERS; a test keeps them equal). */}}
{{- define "imagetron.natsUsers" -}}
gateway images notifier prompts publisher provision
{{- end -}}

{{/* A workload's NATS user and password: (dict "root" $ "user" "gateway"). */}}
{{- define "imagetron.natsEnv" -}}
- name: IMAGETRON_NATS_USER
  value: {{ .user }}
{{ include "imagetron.secretEnv" (dict "root" .root "name" "IMAGETRON_NATS_PASSWORD" "key" (printf "IMAGETRON_NATS_%s_PASSWORD" (upper .user))) }}
{{- end -}}

{{/* The NATS server's CA, when config.natsCaSecret names one: the volume and its mount. */}}
{{- define "imagetron.natsCaVolume" -}}
{{- if .Values.config.natsCaSecret }}
- name: nats-ca
  secret:
    secretName: {{ .Values.config.natsCaSecret }}
{{- end }}
{{- end -}}

{{- define "imagetron.natsCaMount" -}}
{{- if .Values.config.natsCaSecret }}
- name: nats-ca
  mountPath: /etc/imagetron/nats-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "caracal.name" -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}

{{/* Labels shared by every object; component-specific ones add app.kubernetes.io/component. */}}
{{- define "caracal.labels" -}}
app.kubernetes.io/name: caracal
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: caracal
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "caracal.selector" -}}
app.kubernetes.io/name: caracal
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "caracal.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{/* The caracal YAML config: the guide's tuning keys at the top level plus .Values.config. */}}
{{- define "caracal.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy .Values.gateway.config) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Environment of every caracal container: config path and the secrets. */}}
{{- define "caracal.env" -}}
- name: CARACAL_CONFIG
  value: /etc/caracal/config.yaml
- name: CARACAL_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.name }}, key: DB_PASSWORD}
- name: CARACAL_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.name }}, key: REDIS_PASSWORD, optional: true}
- name: CARACAL_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.name }}, key: KAFKA_SASL_PASSWORD, optional: true}
{{- end -}}

{{/* Optional mounts first, config last: kustomize patches prepend, so the
production overlay renders in the same order as the chart. */}}
{{- define "caracal.volumeMounts" -}}
{{- if .Values.tls.caBundle.secretName }}
- name: ca-bundle
  mountPath: /etc/caracal/ca
  readOnly: true
{{- end }}
{{- if eq .Values.secrets.backend "vault" }}
- name: vault-secrets
  mountPath: /var/run/secrets/caracal
  readOnly: true
{{- end }}
- name: config
  mountPath: /etc/caracal/config.yaml
  subPath: config.yaml
  readOnly: true
{{- end -}}

{{- define "caracal.volumes" -}}
{{- if .Values.tls.caBundle.secretName }}
- name: ca-bundle
  secret:
    secretName: {{ .Values.tls.caBundle.secretName }}
{{- end }}
{{- if eq .Values.secrets.backend "vault" }}
- name: vault-secrets
  csi:
    driver: secrets-store.csi.k8s.io
    readOnly: true
    volumeAttributes:
      secretProviderClass: {{ .Values.secrets.vault.name }}
{{- end }}
- name: config
  configMap:
    name: {{ include "caracal.name" . }}-config
{{- end -}}

{{/* Hook annotations for what the pre-install migration Job needs before the release's
objects exist: its config and its secret. */}}
{{- define "caracal.preHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{- define "caracal.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

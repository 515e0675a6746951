{{/* The chart name, overridable. */}}
{{- define "alert-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-qualified name used for every object. */}}
{{- define "alert-router.fullname" -}}
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

{{- define "alert-router.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alert-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alert-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alert-router.labels" -}}
helm.sh/chart: {{ include "alert-router.chart" . }}
{{ include "alert-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alert-router
{{- end -}}

{{- define "alert-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "alert-router.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "alert-router.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the store is PostgreSQL (several replicas allowed), else "". */}}
{{- define "alert-router.postgres" -}}
{{- if or (hasPrefix "postgresql://" .Values.store.url) (hasPrefix "postgres://" .Values.store.url) -}}true{{- end -}}
{{- end -}}

{{/* Where things live in the pod; the image uses the same paths. */}}
{{- define "alert-router.configDir" -}}/etc/alert-router{{- end -}}
{{- define "alert-router.secretsDir" -}}/etc/alert-router/secrets{{- end -}}
{{- define "alert-router.dataDir" -}}/var/lib/alert-router{{- end -}}

{{/*
Refuses values that cannot work, with a message saying what to change. Included by the Deployment, so every
render runs it.
*/}}
{{- define "alert-router.validate" -}}
{{- $postgres := include "alert-router.postgres" . -}}
{{- if and (gt (int .Values.replicaCount) 1) (not $postgres) -}}
{{- fail (printf "replicaCount is %d but the store is SQLite: several replicas need a shared PostgreSQL store. Set store.url to postgresql://USER@HOST:5432/DB (password in store.passwordSecret), or set replicaCount to 1." (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.store.url (not $postgres) (not (hasPrefix "sqlite://" .Values.store.url)) -}}
{{- fail (printf "store.url %q: use postgresql://USER@HOST:PORT/DB, or leave it empty for SQLite in the data directory" .Values.store.url) -}}
{{- end -}}
{{- if and $postgres (regexMatch "^postgres(ql)?://[^/@]*:[^/@]*@" .Values.store.url) -}}
{{- fail "store.url contains a password: remove it and put the password in a Secret named by store.passwordSecret" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) .Values.persistence.enabled (not .Values.persistence.existingClaim) (has "ReadWriteOnce" .Values.persistence.accessModes) -}}
{{- fail "replicaCount > 1 with persistence.enabled: a ReadWriteOnce volume cannot be shared by several pods. With a PostgreSQL store the data directory only holds file receivers: set persistence.enabled=false, or use a ReadWriteMany class." -}}
{{- end -}}
{{- range $key := list "listen" "data_dir" "rules" "runbooks" "store" -}}
{{- if hasKey $.Values.config $key -}}
{{- fail (printf "config.%s is set by the chart from the pod layout; remove it (store: use store.url)" $key) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.rbac.clusterRole (not .Values.rbac.namespaces) -}}
{{- fail "rbac.clusterRole needs rbac.namespaces: the chart binds the ClusterRole per namespace and never cluster-wide" -}}
{{- end -}}
{{- end -}}

{{/* alert-router.yaml: the user's config plus the keys the pod layout fixes. */}}
{{- define "alert-router.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) -}}
{{- $_ := set $cfg "data_dir" (include "alert-router.dataDir" .) -}}
{{- $_ := set $cfg "rules" "rules/" -}}
{{- $_ := set $cfg "runbooks" "runbooks/" -}}
{{- if .Values.store.url -}}
{{- $_ := set $cfg "store" .Values.store.url -}}
{{- end -}}
{{- if and .Values.existingSecret .Values.webhookTokenKey (not (hasKey $cfg "auth")) -}}
{{- $_ := set $cfg "auth" (dict "bearer_token_file" (printf "%s/%s" (include "alert-router.secretsDir" .) .Values.webhookTokenKey)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The files of rules/ or runbooks/: the chart's copies (when defaults) overlaid with values. Arg: list ctx kind. */}}
{{- define "alert-router.dirFiles" -}}
{{- $ctx := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $values := index $ctx.Values $kind -}}
{{- $files := dict -}}
{{- if $values.defaults -}}
{{- range $path, $_ := $ctx.Files.Glob (printf "files/%s/*.yaml" $kind) -}}
{{- $_ := set $files (base $path) ($ctx.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- range $name, $text := $values.files -}}
{{- $_ := set $files $name $text -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
The RBAC rules the runbook actions and the evidence need, and nothing more: the requests KubeSession
(alert_router/remediation/kube.py) makes for the actions in alert_router/remediation/actions/ and for
alert_router/remediation/evidence.py (gathered before a run changes anything, and by the kubernetes enrichment).
  rollout_restart: deployments/statefulsets get, patch       wait_rollout: deployments/statefulsets get
  rollout_undo: deployments get, patch; replicasets list     delete_pod: pods list (no get: it selects by name), delete
  scale: deployments/scale, statefulsets/scale get, patch; horizontalpodautoscalers list, patch (raise minReplicas)
  create_job_from_cronjob: cronjobs get, jobs create, get
  evidence: deployments, statefulsets get; replicasets, pods, events, horizontalpodautoscalers list; pods/log get
tests/deploy/test_helm.py derives this table from the code, so an action or the evidence making another request
fails the tests until it is granted here.
*/}}
{{- define "alert-router.rbacRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end -}}

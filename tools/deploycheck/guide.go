package main

import (
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The production deployment guide's facts, checked on a production render.

// guideAlerts are the guide's "Alerting Rules", verbatim.
var guideAlerts = []rule{
	{Alert: "HighErrorRate", Expr: `rate(caracal_requests_total{status="error"}[5m]) > 0.05`, For: "5m"},
	{Alert: "HighConsumerLag", Expr: `kafka_consumer_lag > 10000`, For: "10m"},
	{Alert: "MerkleVerificationFailure", Expr: `caracal_merkle_verification_failures_total > 0`, For: "1m"},
}

// guideAffinity is the guide's "Multi-AZ Deployment" block.
var guideAffinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
	RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "app.kubernetes.io/component", Operator: metav1.LabelSelectorOpIn, Values: []string{"gateway"}}}},
		TopologyKey: "topology.kubernetes.io/zone",
	}},
}}

// guideTuning is the guide's "Gateway Proxy Tuning" and "Kafka Tuning".
var guideTuning = map[string]string{
	"dbPoolSize": "20", "dbMaxOverflow": "10", "dbPoolTimeout": "30", "maxConcurrentRequests": "1000",
	"requestTimeout": "30", "policyCacheTTL": "60", "policyCacheMaxSize": "50000",
	"kafka.producer.batch.size": "32768", "kafka.producer.linger.ms": "10", "kafka.producer.compression.type": "snappy",
	"kafka.producer.buffer.memory": "67108864", "kafka.producer.acks": "all", "kafka.producer.enable.idempotence": "true",
	"kafka.consumer.fetch.min.bytes": "1024", "kafka.consumer.fetch.max.wait.ms": "500", "kafka.consumer.max.poll.records": "500",
	"kafka.consumer.enable.auto.commit": "false", "kafka.consumer.isolation.level": "read_committed",
}

type sizing struct {
	deployment, hpa       string
	min, max              int32
	cpuReq, cpuLim        string
	memReq, memLim        string
	consumerLagThreshhold string
}

var guideSizing = []sizing{
	{"caracal-gateway", "caracal-gateway", 5, 10, "1000m", "4000m", "1Gi", "4Gi", ""},
	{"caracal-consumer-ledger", "caracal-consumer-ledger", 3, 5, "500m", "2000m", "512Mi", "2Gi", "10000"},
	{"caracal-consumer-metrics", "caracal-consumer-metrics", 3, 5, "500m", "2000m", "512Mi", "2Gi", "10000"},
	{"caracal-consumer-audit", "caracal-consumer-audit", 2, 3, "500m", "2000m", "512Mi", "2Gi", "10000"},
}

type objects map[string]any

func typed(docs []doc) (objects, error) {
	m := objects{}
	for _, d := range docs {
		v, err := decodeStrict(d)
		if err != nil {
			return nil, err
		}
		m[d.id()] = v
	}
	return m, nil
}

func get[T any](c *checker, where string, m objects, id string) T {
	v, ok := m[id].(T)
	if !ok {
		c.failf("%s: %s missing", where, id)
	}
	return v
}

func (c *checker) checkGuide(where string, docs []doc) {
	m, err := typed(docs)
	if err != nil {
		c.failf("%s: %w", where, err)
		return
	}
	cfg := c.guideConfig(where, m)
	for _, s := range guideSizing {
		c.checkSizing(where, m, s)
	}
	if dep := get[*appsv1.Deployment](c, where, m, "Deployment/caracal-gateway"); dep != nil {
		c.checkGateway(where, dep, cfg)
	}
	if pdb := get[*policyv1.PodDisruptionBudget](c, where, m, "PodDisruptionBudget/caracal-gateway-pdb"); pdb != nil {
		want := &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "gateway"}}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 3 || !reflect.DeepEqual(pdb.Spec.Selector, want) {
			c.failf("%s: PodDisruptionBudget/caracal-gateway-pdb: want minAvailable 3 and the guide's selector", where)
		}
	}
	if pr := get[*prometheusRule](c, where, m, "PrometheusRule/caracal"); pr != nil {
		c.checkGuideAlerts(where, pr)
	}
	if es := get[*externalSecret](c, where, m, "ExternalSecret/caracal-secrets"); es != nil {
		c.checkExternalSecret(where, es)
	}
	c.checkNetworkPolicy(where, m)
	c.checkJobs(where, m)
}

// guideConfig checks the tuning values in the rendered caracal config and returns it.
func (c *checker) guideConfig(where string, m objects) map[string]any {
	cm := get[*corev1.ConfigMap](c, where, m, "ConfigMap/caracal-config")
	if cm == nil {
		return nil
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		c.failf("%s: config.yaml: %w", where, err)
		return nil
	}
	for k, want := range guideTuning {
		if got := lookup(cfg, k); got != want {
			c.failf("%s: config %s = %q; the guide says %s", where, k, got, want)
		}
	}
	for k, want := range map[string]string{"kafka.tls": "true", "redis.tls": "true", "gateway.plaintext": "false"} {
		if got := lookup(cfg, k); got != want {
			c.failf("%s: config %s = %q; want %s (TLS everywhere)", where, k, got, want)
		}
	}
	if u := lookup(cfg, "database.url"); !strings.Contains(u, "sslmode=verify-full") {
		c.failf("%s: database.url %q lacks sslmode=verify-full", where, u)
	}
	return cfg
}

// lookup follows a dotted key, trying the longest literal key first at each level
// (kafka.producer.batch.size is the key "batch.size" under kafka.producer).
func lookup(m map[string]any, key string) string {
	if v, ok := m[key]; ok {
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return fmt.Sprint(int64(f))
		}
		return fmt.Sprint(v)
	}
	parts := strings.Split(key, ".")
	for i := 1; i < len(parts); i++ {
		if sub, ok := m[strings.Join(parts[:i], ".")].(map[string]any); ok {
			if v := lookup(sub, strings.Join(parts[i:], ".")); v != "" {
				return v
			}
		}
	}
	return ""
}

func (c *checker) checkSizing(where string, m objects, s sizing) {
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](c, where, m, "HorizontalPodAutoscaler/"+s.hpa)
	dep := get[*appsv1.Deployment](c, where, m, "Deployment/"+s.deployment)
	if hpa == nil || dep == nil {
		return
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != s.min || hpa.Spec.MaxReplicas != s.max {
		c.failf("%s: HPA %s: want %d-%d replicas", where, s.hpa, s.min, s.max)
	}
	if hpa.Spec.ScaleTargetRef.Name != s.deployment {
		c.failf("%s: HPA %s scales %s", where, s.hpa, hpa.Spec.ScaleTargetRef.Name)
	}
	var cpu, mem int32
	lag := ""
	for _, mt := range hpa.Spec.Metrics {
		switch {
		case mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.AverageUtilization != nil:
			cpu = *mt.Resource.Target.AverageUtilization
		case mt.Resource != nil && mt.Resource.Name == corev1.ResourceMemory && mt.Resource.Target.AverageUtilization != nil:
			mem = *mt.Resource.Target.AverageUtilization
		case mt.External != nil && mt.External.Metric.Name == "kafka_consumer_lag" && mt.External.Target.Value != nil:
			lag = fmt.Sprint(mt.External.Target.Value.Value())
		}
	}
	if cpu != 70 || mem != 80 || lag != s.consumerLagThreshhold {
		c.failf("%s: HPA %s: cpu %d%%, memory %d%%, consumer lag %q; the guide says 70, 80, %q", where, s.hpa, cpu, mem, lag, s.consumerLagThreshhold)
	}
	b := hpa.Spec.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleUp.StabilizationWindowSeconds == nil || *b.ScaleUp.StabilizationWindowSeconds != 600 {
		c.failf("%s: HPA %s: want a 600 s scale-up stabilisation window (the guide's \"for 10 minutes\")", where, s.hpa)
	}
	if dep.Spec.Replicas != nil {
		c.failf("%s: Deployment %s sets replicas although its HPA owns them", where, s.deployment)
	}
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		c.failf("%s: Deployment %s: want one container", where, s.deployment)
		return
	}
	r := cs[0].Resources
	for _, q := range []struct {
		got  resource.Quantity
		want string
		what string
	}{
		{r.Requests[corev1.ResourceCPU], s.cpuReq, "cpu request"}, {r.Limits[corev1.ResourceCPU], s.cpuLim, "cpu limit"},
		{r.Requests[corev1.ResourceMemory], s.memReq, "memory request"}, {r.Limits[corev1.ResourceMemory], s.memLim, "memory limit"},
	} {
		if q.got.Cmp(resource.MustParse(q.want)) != 0 {
			c.failf("%s: Deployment %s: %s %s; the guide says %s", where, s.deployment, q.what, q.got.String(), q.want)
		}
	}
}

func (c *checker) checkGateway(where string, dep *appsv1.Deployment, cfg map[string]any) {
	ps := dep.Spec.Template.Spec
	if !reflect.DeepEqual(ps.Affinity, guideAffinity) {
		c.failf("%s: gateway affinity differs from the guide's Multi-AZ block", where)
	}
	ct := ps.Containers[0]
	if p := ct.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		c.failf("%s: gateway readiness probe: want GET /readyz", where)
	}
	if p := ct.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		c.failf("%s: gateway liveness probe: want GET /healthz", where)
	}
	var sleep int64
	if l := ct.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		sleep = l.PreStop.Sleep.Seconds
	} else {
		c.failf("%s: gateway: want a preStop sleep", where)
	}
	var shutdown int64
	fmt.Sscan(lookup(cfg, "gateway.shutdownTimeout"), &shutdown)
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds <= shutdown+sleep || shutdown == 0 {
		c.failf("%s: gateway terminationGracePeriodSeconds must exceed gateway.shutdownTimeout (%d) + preStop sleep (%d)", where, shutdown, sleep)
	}
}

func (c *checker) checkGuideAlerts(where string, pr *prometheusRule) {
	have := map[string]rule{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			have[r.Alert] = r
		}
	}
	for _, want := range guideAlerts {
		got, ok := have[want.Alert]
		if !ok || got.Expr != want.Expr || got.For != want.For {
			c.failf("%s: alert %s: got expr %q for %q; the guide writes %q for %q", where, want.Alert, got.Expr, got.For, want.Expr, want.For)
		}
	}
}

func (c *checker) checkExternalSecret(where string, es *externalSecret) {
	s := es.Spec
	ok := es.APIVersion == "external-secrets.io/v1beta1" && s.SecretStoreRef.Name == "aws-secrets-manager" && s.Target.Name == "caracal-secrets"
	found := false
	for _, d := range s.Data {
		found = found || (d.SecretKey == "DB_PASSWORD" && d.RemoteRef.Key == "caracal/production/db-password")
	}
	if !ok || !found {
		c.failf("%s: ExternalSecret differs from the guide's (store aws-secrets-manager, target caracal-secrets, DB_PASSWORD <- caracal/production/db-password)", where)
	}
}

func (c *checker) checkNetworkPolicy(where string, m objects) {
	np := get[*networkingv1.NetworkPolicy](c, where, m, "NetworkPolicy/caracal-gateway")
	if np == nil {
		return
	}
	ingress, egress := map[int]bool{}, map[int]bool{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			ingress[p.Port.IntValue()] = true
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			egress[p.Port.IntValue()] = true
		}
	}
	if !ingress[8443] || !egress[9092] || !egress[5432] {
		c.failf("%s: gateway NetworkPolicy: want ingress 8443 and egress 9092 and 5432 (the guide's security groups)", where)
	}
}

func (c *checker) checkJobs(where string, m objects) {
	want := map[string]string{
		"Job/caracal-migrate":       "db migrate up",
		"Job/caracal-create-topics": "kafka create-topics --partitions=12 --replication-factor=3 --min-insync-replicas=2",
	}
	for id, args := range want {
		j := get[*batchv1.Job](c, where, m, id)
		if j == nil {
			continue
		}
		if got := strings.Join(j.Spec.Template.Spec.Containers[0].Args, " "); got != args {
			c.failf("%s: %s runs %q; want %q", where, id, got, args)
		}
		if !strings.Contains(j.Annotations["helm.sh/hook"], "pre-install") || !strings.Contains(j.Annotations["helm.sh/hook"], "pre-upgrade") {
			c.failf("%s: %s: want a pre-install,pre-upgrade hook", where, id)
		}
	}
}

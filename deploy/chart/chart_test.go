package chart_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"ibu.dev/deploy/chart"
	"ibu.dev/shared/testkit/kubetest"
)

var kube *kubetest.Server

func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, func(_ context.Context, s *kubetest.Server) error { kube = s; return nil }))
}

const (
	hubChart   = "../../charts/ibu"
	agentChart = "../../charts/ibu-agent"
)

var services = []string{"scheduler", "seed-builder", "precache", "backup-restore", "health"}

func hubValues() map[string]any {
	return map[string]any{
		"image":       map[string]any{"registry": "registry.example.com/ibu", "tag": "v1.0.0"},
		"credentials": map[string]any{"secretName": "ibu-service-creds"},
		"tlsCA":       map[string]any{"secretName": "ibu-nats-tls"},
		"nats": map[string]any{
			"auth": map[string]any{"secretName": "ibu-nats-auth"},
			"tls":  map[string]any{"secretName": "ibu-nats-tls"},
		},
		"otlp": map[string]any{"endpoint": "http://otel-collector:4318"},
	}
}

func agentValues() map[string]any {
	return map[string]any{"clusterId": "sno-1", "hub": map[string]any{"natsUrl": "tls://hub.example.com:4222"},
		"image": map[string]any{"repository": "registry.example.com/ibu/ibu-agent"}}
}

func TestLint(t *testing.T) {
	for dir, vals := range map[string]map[string]any{hubChart: hubValues(), agentChart: agentValues()} {
		if errs, _ := chart.Lint(dir, vals); len(errs) > 0 {
			t.Errorf("%s: %s", dir, strings.Join(errs, "\n"))
		}
	}
}

// client is Helm against the test's API server, in a namespace of its own.
func client(t *testing.T) (*chart.Client, kubernetes.Interface, string) {
	t.Helper()
	ns := kube.Namespace(t)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, kube.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kc, &ns
	c, err := chart.NewClient(flags, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(kube.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c, cs, ns
}

// A real install, upgrade and uninstall of the hub chart; what the API
// server holds is what the issue asks for.
func TestHubInstallUpgradeUninstall(t *testing.T) {
	c, cs, ns := client(t)
	ctx := t.Context()
	if err := c.Install(hubChart, "ibu", hubValues()); err != nil {
		t.Fatal(err)
	}

	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "ibu-nats", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("NATS StatefulSet: %v", err)
	}
	if *sts.Spec.Replicas != 3 || len(sts.Spec.VolumeClaimTemplates) != 1 ||
		sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "10Gi" {
		t.Errorf("NATS StatefulSet: replicas %d, claims %v", *sts.Spec.Replicas, sts.Spec.VolumeClaimTemplates)
	}
	if sts.Spec.ServiceName != "ibu-nats-headless" {
		t.Errorf("StatefulSet service %q", sts.Spec.ServiceName)
	}
	if svc, err := cs.CoreV1().Services(ns).Get(ctx, "ibu-nats-headless", metav1.GetOptions{}); err != nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless Service: %v", err)
	}
	if pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "ibu-nats", metav1.GetOptions{}); err != nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("NATS PodDisruptionBudget: %v", err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "ibu-nats-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conf := cm.Data["nats.conf"]
	for _, want := range []string{"jetstream", "ibu-nats-2.ibu-nats-headless", "include /etc/nats/auth/auth.conf", "tls {"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, name := range services {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "ibu-"+name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("Deployment %s: %v", name, err)
			continue
		}
		checkDeployment(t, d, name)
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/ibu/"+name+":v1.0.0" {
			t.Errorf("%s image %s", name, img)
		}
	}
	checkRBAC(t, cs, ns)

	// Upgrade: more scheduler replicas, a digest, an external NATS (the
	// StatefulSet goes away).
	up := hubValues()
	digest := "sha256:" + strings.Repeat("ab", 32)
	up["services"] = map[string]any{"scheduler": map[string]any{"replicas": 3, "image": map[string]any{"digest": digest}}}
	up["nats"] = map[string]any{"external": map[string]any{"url": "nats://nats.messaging:4222"}}
	up["logLevel"] = "debug"
	up["pushSecrets"] = []any{"quay-push"}
	if err := c.Upgrade(hubChart, "ibu", up); err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "ibu-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/ibu/scheduler@"+digest {
		t.Errorf("after upgrade: replicas %d image %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
	if env(d, "NATS_URL") != "nats://nats.messaging:4222" || env(d, "IBU_LOG_LEVEL") != "debug" {
		t.Errorf("after upgrade: NATS_URL %q, log level %q", env(d, "NATS_URL"), env(d, "IBU_LOG_LEVEL"))
	}
	// The push Secret reaches the seed-builder, where a build request's
	// kubernetes-secret:quay-push finds it, and no other service.
	sb, err := cs.AppsV1().Deployments(ns).Get(ctx, "ibu-seed-builder", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pushMount := "/etc/ibu/push-secrets/" + ns + "/quay-push"
	if !hasMount(sb, pushMount) || env(sb, "IBU_SECRETS_DIR") != "/etc/ibu/push-secrets" || env(sb, "POD_NAMESPACE") != ns {
		t.Errorf("seed-builder: push Secret mount %v, IBU_SECRETS_DIR %q, POD_NAMESPACE %q", hasMount(sb, pushMount), env(sb, "IBU_SECRETS_DIR"), env(sb, "POD_NAMESPACE"))
	}
	if hasMount(d, pushMount) {
		t.Error("the scheduler mounts the push Secret")
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "ibu-nats", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("NATS StatefulSet with an external NATS: %v", err)
	}

	if err := c.Uninstall("ibu"); err != nil {
		t.Fatal(err)
	}
	if ds, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err != nil || len(ds.Items) != 0 {
		t.Errorf("after uninstall: %d Deployments (%v)", len(ds.Items), err)
	}
	if rs, err := cs.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{}); err != nil || len(rs.Items) != 0 {
		t.Errorf("after uninstall: %d Roles (%v)", len(rs.Items), err)
	}
}

func env(d *appsv1.Deployment, name string) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, name string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod not runAsNonRoot", name)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(pod.Containers))
	}
	ctr := pod.Containers[0]
	sc := ctr.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: container security context %+v", name, sc)
	}
	if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness probe %+v", name, ctr.LivenessProbe)
	}
	if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: readiness probe %+v", name, ctr.ReadinessProbe)
	}
	if env(d, "IBU_NATS_CREDS") != "/etc/ibu/nats/"+name+".creds" || env(d, "OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		t.Errorf("%s: credentials %q, OTLP %q", name, env(d, "IBU_NATS_CREDS"), env(d, "OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
}

// checkRBAC: one Role, reading Secrets only, bound to the two services that
// talk to spokes; no cluster-wide roles.
func checkRBAC(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := t.Context()
	roles, err := cs.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(roles.Items) != 1 {
		t.Fatalf("%d Roles, want 1", len(roles.Items))
	}
	for _, r := range roles.Items[0].Rules {
		if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"secrets"}) {
			t.Errorf("rule wider than Secrets: %+v", r)
		}
		for _, v := range r.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, v) {
				t.Errorf("verb %q on Secrets", v)
			}
		}
	}
	bs, err := cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(bs.Items) != 1 {
		t.Fatalf("RoleBindings: %v", err)
	}
	var subjects []string
	for _, s := range bs.Items[0].Subjects {
		subjects = append(subjects, s.Name)
	}
	if !slices.Equal(subjects, []string{"ibu-backup-restore", "ibu-health"}) {
		t.Errorf("Secrets readable by %v", subjects)
	}
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=ibu"})
	if err != nil || len(crs.Items) != 0 {
		t.Errorf("cluster roles: %d (%v)", len(crs.Items), err)
	}
}

// Bad values fail at install with the schema's message, and nothing is
// created.
func TestBadValuesFailWithTheSchemaMessage(t *testing.T) {
	c, cs, ns := client(t)
	for _, tc := range []struct {
		name  string
		dir   string
		vals  map[string]any
		wants []string
	}{
		{"replicas three", hubChart, with(hubValues(), "services", map[string]any{"scheduler": map[string]any{"replicas": "three"}}),
			[]string{"/services/scheduler/replicas", "got string, want integer"}},
		{"missing image", hubChart, with(hubValues(), "image", map[string]any{"registry": ""}),
			[]string{"/image/registry", "minLength"}},
		{"even NATS cluster", hubChart, with(hubValues(), "nats", map[string]any{"replicas": 2}),
			[]string{"/nats/replicas", "one of 1, 3, 5"}},
		{"agent without cluster id", agentChart, with(agentValues(), "clusterId", ""),
			[]string{"/clusterId", "does not match pattern"}},
		{"agent without image", agentChart, with(agentValues(), "image", map[string]any{"repository": ""}),
			[]string{"/image/repository", "minLength"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Install(tc.dir, "bad", tc.vals)
			if err == nil {
				t.Fatal("installed")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
	if ds, err := cs.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{}); err != nil || len(ds.Items) != 0 {
		t.Errorf("bad installs left %d Deployments (%v)", len(ds.Items), err)
	}
}

// with returns vals with key set to v.
func with(vals map[string]any, key string, v any) map[string]any {
	vals[key] = v
	return vals
}

// The agent chart installs as a privileged DaemonSet with the host mounts.
func TestAgentInstall(t *testing.T) {
	c, cs, ns := client(t)
	if err := c.Install(agentChart, "spoke", agentValues()); err != nil {
		t.Fatal(err)
	}
	ds, err := cs.AppsV1().DaemonSets(ns).Get(t.Context(), "spoke-ibu-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := ds.Spec.Template.Spec.Containers[0]
	if ctr.SecurityContext == nil || ctr.SecurityContext.Privileged == nil || !*ctr.SecurityContext.Privileged {
		t.Error("agent not privileged")
	}
	var mounts []string
	for _, m := range ctr.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	for _, want := range []string{"/host", "/run/cri.sock", "/etc/ibu/nats"} {
		if !slices.Contains(mounts, want) {
			t.Errorf("agent lacks mount %s (has %v)", want, mounts)
		}
	}
	envs := map[string]string{}
	for _, e := range ctr.Env {
		envs[e.Name] = e.Value
	}
	if envs["IBU_CLUSTER_ID"] != "sno-1" || envs["IBU_HOST_ROOT"] != "/host" || envs["IBU_NATS_INBOX_PREFIX"] != "_INBOX_sno-1" {
		t.Errorf("agent env %v", envs)
	}
	if err := c.Uninstall("spoke"); err != nil {
		t.Fatal(err)
	}
}

func hasMount(d *appsv1.Deployment, path string) bool {
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

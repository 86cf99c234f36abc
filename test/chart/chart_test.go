//go:build external

package chart_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// valueCases are the values files under testdata/values, each rendered to
// testdata/golden/<name>.yaml. "default" uses the chart's own values.
func valueCases(t *testing.T) map[string][]string {
	t.Helper()
	cases := map[string][]string{"default": nil}
	files, err := filepath.Glob(filepath.Join("testdata", "values", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[strings.TrimSuffix(filepath.Base(f), ".yaml")] = []string{"--values", abs}
	}
	return cases
}

func TestHelmLint(t *testing.T) {
	for name, args := range valueCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir, "--kube-version", kubeVersion}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestHelmTemplateGolden renders every values case and compares it with
// its golden file. The CRD documents are left out of the golden files:
// TestChartCRDsMatchConfig checks them against config/crd/bases instead,
// so an API change does not churn every golden file.
func TestHelmTemplateGolden(t *testing.T) {
	for name, args := range valueCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("golden", name+".yaml"), withoutCRDs(out))
		})
	}
}

// withoutCRDs drops the CustomResourceDefinition documents of a rendered
// stream, keeping everything else byte for byte.
func withoutCRDs(s string) string {
	docs := strings.Split(s, "\n---\n")
	var keep []string
	for _, d := range docs {
		if strings.Contains(d, "\nkind: CustomResourceDefinition\n") {
			continue
		}
		keep = append(keep, d)
	}
	return strings.Join(keep, "\n---\n")
}

// TestChartCRDsMatchConfig checks that the chart's CRD templates are what
// hack/sync-chart-crds.sh generates from config/crd/bases, and that each
// renders to exactly the controller-gen CRD plus the chart's labels and
// keep annotation.
func TestChartCRDsMatchConfig(t *testing.T) {
	if out, err := run(t, nil, filepath.Join(root(t), "hack", "sync-chart-crds.sh"), "--check"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[string]object{}
	for _, o := range byKind(parseManifests(t, out), "CustomResourceDefinition") {
		rendered[o.name()] = o
	}
	sources, err := filepath.Glob(filepath.Join(root(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	for _, src := range sources {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		var want object
		if err := yaml.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := rendered[want.name()]
		if !ok {
			t.Errorf("%s: CRD %s is not rendered by the chart", filepath.Base(src), want.name())
			continue
		}
		meta := got["metadata"].(map[string]any)
		ann, _ := meta["annotations"].(map[string]any)
		if ann["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s: no helm.sh/resource-policy: keep annotation", want.name())
		}
		delete(ann, "helm.sh/resource-policy")
		delete(meta, "labels")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("CRD %s rendered by the chart differs from %s", want.name(), filepath.Base(src))
		}
		delete(rendered, want.name())
	}
	for name := range rendered {
		t.Errorf("chart renders CRD %s, which is not in config/crd/bases", name)
	}
}

// TestCRDValues checks crds.install and crds.keep.
func TestCRDValues(t *testing.T) {
	out, err := helmTemplate(t, "--set", "crds.install=false")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(byKind(parseManifests(t, out), "CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.install=false renders %d CRDs", n)
	}
	out, err = helmTemplate(t, "--set", "crds.keep=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range byKind(parseManifests(t, out), "CustomResourceDefinition") {
		if strings.Contains(toYAML(t, o), "resource-policy") {
			t.Errorf("crds.keep=false: CRD %s still has the keep annotation", o.name())
		}
	}
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSchemaRejectsBadValues checks that values.schema.json (or a template
// guard) refuses values that would install a broken operator, with a
// message that names the value.
func TestSchemaRejectsBadValues(t *testing.T) {
	cases := map[string]struct {
		set  []string
		want string
	}{
		"unknown top-level key":  {[]string{"replicas=2"}, "additional properties 'replicas' not allowed"},
		"typo in a nested key":   {[]string{"metrics.servicemonitor.enabled=true"}, "additional properties 'servicemonitor' not allowed"},
		"pull policy":            {[]string{"image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		"zero replicas":          {[]string{"replicaCount=0"}, "/replicaCount"},
		"replicas as a string":   {[]string{"replicaCount=two"}, "/replicaCount"},
		"log level":              {[]string{"logLevel=verbose"}, "/logLevel"},
		"metrics port too large": {[]string{"metrics.port=70000"}, "/metrics/port"},
		"service type":           {[]string{"metrics.service.type=Ingress"}, "/metrics/service/type"},
		"scrape interval":        {[]string{"metrics.serviceMonitor.interval=often"}, "/metrics/serviceMonitor/interval"},
		"namespace name":         {[]string{"watchNamespaces={Team_A}"}, "/watchNamespaces/0"},
		"empty repository":       {[]string{"image.repository="}, "/image/repository"},
		"crds.install as string": {[]string{"crds.install=maybe"}, "/crds/install"},
		"network policy admitting every pod": {
			[]string{"networkPolicy.prometheus.namespaceSelector=", "networkPolicy.prometheus.podSelector="}, "/networkPolicy/prometheus",
		},
		"network policy switch as string": {[]string{"networkPolicy.enabled=maybe"}, "/networkPolicy/enabled"},
		"dashboard namespace":             {[]string{"grafanaDashboard.namespace=Monitoring"}, "/grafanaDashboard/namespace"},
		"typo in prometheusRule":          {[]string{"prometheusRule.enable=true"}, "additional properties 'enable' not allowed"},
		"replicas without leader election": {
			[]string{"replicaCount=2", "leaderElection.enabled=false"}, "replicaCount > 1 needs leaderElection.enabled",
		},
		"existing service account without a name": {
			[]string{"serviceAccount.create=false"}, "serviceAccount.name is required",
		},
		"pod label over the selector": {[]string{"podLabels.app\\.kubernetes\\.io/instance=x"}, "/podLabels"},
		"env the chart sets":          {[]string{"extraEnv[0].name=POD_NAMESPACE", "extraEnv[0].value=x"}, "/extraEnv/0/name"},
		"mount over the token": {
			[]string{"extraVolumes[0].name=x", "extraVolumeMounts[0].name=x", "extraVolumeMounts[0].mountPath=/var/run/secrets"},
			"/extraVolumeMounts/0/mountPath",
		},
		"relative mount path": {
			[]string{"extraVolumes[0].name=x", "extraVolumeMounts[0].name=x", "extraVolumeMounts[0].mountPath=etc/ssl"},
			"/extraVolumeMounts/0/mountPath",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			out, err := helmTemplate(t, args...)
			if err == nil {
				t.Fatalf("--set %v was accepted:\n%.300s", c.set, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("--set %v: error does not mention %q:\n%v", c.set, c.want, err)
			}
		})
	}
}

// TestDeploymentFlagsExist checks that every flag the chart passes to the
// operator is defined by cmd/bollard-operator, so renaming a flag there
// cannot leave the chart starting a binary that exits on an unknown flag.
func TestDeploymentFlagsExist(t *testing.T) {
	defined := operatorFlags(t)
	for name, args := range valueCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range containerFlags(t, byKind(parseManifests(t, out), "Deployment")) {
				if !defined[f] {
					t.Errorf("the chart passes --%s, which cmd/bollard-operator does not define", f)
				}
			}
		})
	}
}

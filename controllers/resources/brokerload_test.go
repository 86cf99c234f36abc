package resources

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/broker/access/accesstest"
	"github.com/bollard-io/bollard/broker/config"
)

// TestGoldenConfigMapsLoadInTheBroker feeds every golden ConfigMap through
// the broker's own loading (config.Load, which validates, and the ACL
// compilation the broker does at start and on reload): a render the broker
// would refuse fails here, not in a crash-looping pod.
func TestGoldenConfigMapsLoadInTheBroker(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*", "configmap.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden ConfigMaps: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict(data, &cm); err != nil {
				t.Fatal(err)
			}
			file, ok := cm.Data[ConfigFile]
			if !ok {
				t.Fatalf("no %s key", ConfigFile)
			}
			path := filepath.Join(t.TempDir(), ConfigFile)
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path)
			if err != nil {
				t.Fatalf("the broker refuses the golden config: %v", err)
			}
			if _, err := access.NewACL(c.Auth.Rules()); err != nil {
				t.Fatalf("the broker refuses the golden ACL: %v", err)
			}
		})
	}
}

// TestACLMeaningsThroughRendering walks the shared table of ACL meanings
// (broker/access/accesstest) through the operator: MQTTBroker spec ->
// rendered ConfigMap -> the broker's parser -> the broker's ACL. A rule
// the operator renders differently from how the broker reads it (an
// omitted user, "*", "") fails here.
func TestACLMeaningsThroughRendering(t *testing.T) {
	for _, tc := range accesstest.Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			b := loadBroker(t, "minimal")
			b.Generation = 3
			for _, r := range tc.Rules {
				b.Spec.Auth.ACL = append(b.Spec.Auth.ACL, v1alpha1.ACLRule{User: r.User, Topic: r.Topic, Access: string(r.Kind)})
			}
			cm, err := ConfigMapFor(b)
			if err != nil {
				t.Fatal(err)
			}
			c, err := config.Parse([]byte(cm.Data[ConfigFile]))
			if err != nil {
				t.Fatal(err)
			}
			a, err := access.NewACL(c.Auth.Rules())
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.Rules) > 0 && a.Len() != len(tc.Rules) {
				t.Fatalf("%d rules rendered, want %d", a.Len(), len(tc.Rules))
			}
			for _, ck := range tc.Checks {
				if accesstest.Ask(a, ck) != ck.Want {
					t.Errorf("%s(user %q, client %q, %q) != %v after rendering", ck.Op, ck.User, ck.ClientID, ck.Topic, ck.Want)
				}
			}
		})
	}
}

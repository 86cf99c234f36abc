//go:build envtest

package controllers_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"k8s.io/client-go/discovery"
)

// TestExplainDocumentsEveryField reads the OpenAPI v3 document the
// apiserver publishes for the CRD (what `kubectl explain mqttbroker.spec`
// prints) and requires a description on every field of spec and status.
func TestExplainDocumentsEveryField(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	eventually(t, func() error {
		paths, err := dc.OpenAPIV3().Paths()
		if err != nil {
			return err
		}
		gv, ok := paths["apis/mqtt.bollard.io/v1alpha1"]
		if !ok {
			return errNotPublished
		}
		raw, err := gv.Schema("application/json")
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &schema)
	})
	broker := dig(schema, "components", "schemas", "io.bollard.mqtt.v1alpha1.MQTTBroker")
	if broker == nil {
		t.Fatal("no io.bollard.mqtt.v1alpha1.MQTTBroker schema in the published OpenAPI")
	}
	var missing []string
	count := 0
	for _, top := range []string{"spec", "status"} {
		walkFields(dig(broker, "properties", top), top, func(path string, field map[string]any) {
			count++
			if d, _ := field["description"].(string); strings.TrimSpace(d) == "" {
				missing = append(missing, path)
			}
		})
	}
	if count < 50 {
		t.Fatalf("walked only %d fields: the published schema is not what this test expects", count)
	}
	t.Logf("%d documented fields", count)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d fields have no description for kubectl explain:\n%s", len(missing), count, strings.Join(missing, "\n"))
	}
	for _, f := range []string{"replicas", "listeners", "persistence", "sessions", "queues", "limits", "auth"} {
		if dig(broker, "properties", "spec", "properties", f) == nil {
			t.Errorf("spec.%s is not published", f)
		}
	}
}

type publishErr string

func (e publishErr) Error() string { return string(e) }

const errNotPublished = publishErr("mqtt.bollard.io/v1alpha1 is not in the OpenAPI v3 paths yet")

func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// walkFields calls fn for every named property below s (through arrays and
// maps), with its dotted path.
func walkFields(s map[string]any, path string, fn func(path string, field map[string]any)) {
	if s == nil {
		return
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for name, p := range props {
			child, _ := p.(map[string]any)
			fn(path+"."+name, child)
			walkFields(child, path+"."+name, fn)
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		walkFields(items, path+"[]", fn)
	}
	if extra, ok := s["additionalProperties"].(map[string]any); ok {
		walkFields(extra, path+"{}", fn)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			for _, e := range list {
				sub, _ := e.(map[string]any)
				walkFields(sub, path, fn)
			}
		}
	}
}

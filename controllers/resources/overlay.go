package resources

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
)

// ErrConfigOverlay is wrapped by every refusal of spec.config.
var ErrConfigOverlay = errors.New("spec.config")

// configOwner says which part of the MQTTBroker sets a path of the broker's
// file: spec.config may not set it (nor anything above or below it).
type configOwner struct {
	path  string // in the broker's file, e.g. "limits.maxConnections"
	owner string // what sets it instead
}

// configOwners lists every path of the broker's file that the operator
// renders from the spec or manages itself. The sections whose field names
// are the spec's own (sessions, queues, limits, auth.login) are listed
// from the API types, so a field added to one of them is owned as soon as
// it exists; TestOwnedConfigCoversRenderer checks that every field the
// renderer changes is owned.
var configOwners = buildConfigOwners()

func buildConfigOwners() []configOwner {
	o := []configOwner{
		{"configGeneration", "the operator (metadata.generation)"},
		{"listeners", "spec.listeners"},
		{"admin", "the operator (the admin endpoint and its token)"},
		{"dataDir", "the operator (the data volume)"},
		{"durability", "spec.persistence.durability and spec.persistence.syncInterval"},
		{"queues.maxStoreBytes", "spec.persistence.size (the budget is 90% of it)"},
		{"limits.memoryLimit", "spec.resources.limits.memory (80% of it)"},
		{"auth", "spec.auth"},
		{"logLevel", "spec.logLevel"},
		{"drainTimeout", "spec.terminationGracePeriodSeconds (minus 10s)"},
	}
	o = append(o, specFields("sessions", "spec.sessions", reflect.TypeFor[v1alpha1.Sessions]())...)
	o = append(o, specFields("queues", "spec.queues", reflect.TypeFor[v1alpha1.Queues]())...)
	o = append(o, specFields("limits", "spec.limits", reflect.TypeFor[v1alpha1.Limits]())...)
	o = append(o, specFields("login", "spec.auth.login", reflect.TypeFor[v1alpha1.Login]())...)
	return o
}

// specFields lists the JSON names of t's fields as owned paths under
// section, each owned by the spec field of the same name.
func specFields(section, specPath string, t reflect.Type) []configOwner {
	var out []configOwner
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, configOwner{section + "." + name, specPath + "." + name})
	}
	return out
}

// ownerOf returns what sets path p, or "" when spec.config may set it. A
// path above an owned one is owned too: replacing "limits" whole would
// replace limits.maxConnections.
func ownerOf(p string) string {
	for _, o := range configOwners {
		if p == o.path || strings.HasPrefix(p, o.path+".") || strings.HasPrefix(o.path, p+".") {
			return o.owner
		}
	}
	return ""
}

// applyConfigOverlay merges spec.config over c, the configuration rendered
// from the rest of the spec, and returns the result as the broker's own
// loader reads it (config.Parse: unknown fields refused, then Validate).
// Paths the spec or the operator own are refused, not overridden.
func applyConfigOverlay(b *v1alpha1.MQTTBroker, c *config.Config) (*config.Config, error) {
	raw := b.Spec.Config
	if raw == nil || len(raw.Raw) == 0 {
		return c, nil
	}
	var patch map[string]any
	// JSON is YAML: one decoder keeps numbers as the loader reads them.
	if err := yaml.Unmarshal(raw.Raw, &patch); err != nil {
		return nil, fmt.Errorf("%w: not an object: %w", ErrConfigOverlay, err)
	}
	if len(patch) == 0 {
		return c, nil
	}
	var refused []string
	for _, p := range leafPaths("", patch) {
		if owner := ownerOf(p); owner != "" {
			refused = append(refused, fmt.Sprintf("%s is set by %s", p, owner))
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s: set them there (spec.config only sets fields the MQTTBroker does not expose)",
			ErrConfigOverlay, strings.Join(refused, "; "))
	}
	base, err := config.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("resources: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("resources: re-reading the rendered config: %w", err)
	}
	mergeObjects(doc, patch)
	merged, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfigOverlay, err)
	}
	out, err := config.Parse(merged)
	if err != nil {
		return nil, fmt.Errorf("%w: the broker's configuration loader refuses it: %w", ErrConfigOverlay, err)
	}
	return out, nil
}

// leafPaths lists the dotted paths of m's non-object values, sorted.
func leafPaths(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			// An empty object sets nothing (and names no field).
			out = append(out, leafPaths(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// mergeObjects merges patch into dst: objects field by field, any other
// value (lists included) replacing what dst holds.
func mergeObjects(dst, patch map[string]any) {
	for k, v := range patch {
		sub, isObj := v.(map[string]any)
		cur, curObj := dst[k].(map[string]any)
		if isObj && curObj {
			mergeObjects(cur, sub)
			continue
		}
		dst[k] = v
	}
}

package resources

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
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
	// Membership, addresses and the cluster secret need Services, ports
	// and pods the operator makes: not a file setting. Every field of the
	// cluster section is the operator's but the few spec.config may tune
	// (a field added to the section is owned until listed there).
	for f := range reflect.TypeFor[config.Cluster]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && !clusterTunables[name] {
			o = append(o, configOwner{"cluster." + name, "the operator (replication follows spec.replicas: each member gets its ID, addresses and secret as flags)"})
		}
	}
	o = append(o, specFields("sessions", "spec.sessions", reflect.TypeFor[v1alpha1.Sessions]())...)
	o = append(o, specFields("queues", "spec.queues", reflect.TypeFor[v1alpha1.Queues]())...)
	o = append(o, specFields("limits", "spec.limits", reflect.TypeFor[v1alpha1.Limits]())...)
	o = append(o, specFields("login", "spec.auth.login", reflect.TypeFor[v1alpha1.Login]())...)
	return o
}

// clusterTunables are the fields of the broker's cluster section that
// spec.config may set (with replicas 3 or 5): the readiness handover's
// bounds.
var clusterTunables = map[string]bool{"handoverHoldFor": true, "handoverMaxHeld": true}

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

// ownerOf says what sets path p ("is set by ..."), or "" when spec.config
// may set it. A path above an owned one is owned too: replacing "limits"
// whole would replace limits.maxConnections.
func ownerOf(p string) string {
	for _, o := range configOwners {
		if p == o.path || strings.HasPrefix(p, o.path+".") {
			return "is set by " + o.owner
		}
	}
	for _, o := range configOwners {
		if strings.HasPrefix(o.path, p+".") {
			return fmt.Sprintf("holds %s, which %s sets", o.path, o.owner)
		}
	}
	return ""
}

// maxOverlayFields bounds the fields one spec.config sets (each is checked
// on its own by the broker's loader).
const maxOverlayFields = 64

// lineRef is the position yaml.v3 puts in its errors: a line of the file
// the operator assembled, not of anything the user wrote.
var lineRef = regexp.MustCompile(`line \d+: `)

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
	paths := leafPaths("", patch)
	if len(paths) > maxOverlayFields {
		return nil, fmt.Errorf("%w: sets %d fields, at most %d", ErrConfigOverlay, len(paths), maxOverlayFields)
	}
	var refused []string
	for _, p := range paths {
		if owner := ownerOf(p); owner != "" {
			refused = append(refused, p+" "+owner)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s: set them there (spec.config only sets fields the MQTTBroker does not expose)",
			ErrConfigOverlay, strings.Join(refused, "; "))
	}
	// Each field on its own first, so that the loader's refusal names it.
	var bad []string
	for _, p := range paths {
		if _, err := overlay(c, onlyPath(patch, p)); err != nil {
			bad = append(bad, p+": "+lineRef.ReplaceAllString(err.Error(), ""))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: the broker's configuration loader refuses it: %s", ErrConfigOverlay, strings.Join(bad, "; "))
	}
	out, err := overlay(c, patch)
	if err != nil {
		return nil, fmt.Errorf("%w: the broker's configuration loader refuses it: %s", ErrConfigOverlay, lineRef.ReplaceAllString(err.Error(), ""))
	}
	return out, nil
}

// overlay merges patch over c's file and loads the result with the
// broker's loader.
func overlay(c *config.Config, patch map[string]any) (*config.Config, error) {
	base, err := config.Marshal(c)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(base, &doc); err != nil {
		return nil, err
	}
	mergeObjects(doc, patch)
	merged, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return config.Parse(merged)
}

// onlyPath is the part of patch that sets the dotted path p.
func onlyPath(patch map[string]any, p string) map[string]any {
	head, rest, nested := strings.Cut(p, ".")
	if sub, ok := patch[head].(map[string]any); ok && nested {
		return map[string]any{head: onlyPath(sub, rest)}
	}
	return map[string]any{head: patch[head]}
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

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// SourcesAnnotation, on each broker Pod (not on the pod template, so it
// never rolls anything), digests the content of the volumes the broker
// reloads: the ConfigMap's data and the resourceVersions of the Secrets it
// mounts.
//
// Why: the kubelet refreshes ConfigMap and Secret volumes only when it
// syncs the pod, about once a minute (measured on a real kubelet: a hot
// change reached the broker after 66 s), or when the Pod object itself
// changes. Writing the new digest on the Pod makes the kubelet sync it,
// and so refresh the files, within a second or two of the change.
const SourcesAnnotation = "mqtt.bollard.io/sources-digest"

// sources collects what goes into SourcesAnnotation during a reconcile.
type sources struct {
	parts []string
}

func (s *sources) configMap(cm *corev1.ConfigMap) {
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(cm.Data[k]), cm.Data[k])
	}
	s.parts = append(s.parts, "configmap="+hex.EncodeToString(h.Sum(nil)))
}

func (s *sources) secret(sec *corev1.Secret) {
	s.parts = append(s.parts, "secret/"+sec.Name+"="+sec.ResourceVersion)
}

// digest is "" until the ConfigMap was rendered: without it there is
// nothing worth pushing.
func (s *sources) digest() string {
	if !slices.ContainsFunc(s.parts, func(p string) bool { return strings.HasPrefix(p, "configmap=") }) {
		return ""
	}
	parts := slices.Clone(s.parts)
	slices.Sort(parts)
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:])[:16]
}

// refreshPods writes the sources digest on every running broker pod that
// does not carry it yet (see SourcesAnnotation). A failure is logged and
// left to the kubelet's own periodic refresh.
func (r *MQTTBrokerReconciler) refreshPods(ctx context.Context, p *pass, pods []corev1.Pod) {
	d := p.sources.digest()
	if d == "" {
		return
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{SourcesAnnotation: d}}})
	if err != nil {
		return
	}
	for i := range pods {
		pod := &pods[i]
		if !pod.DeletionTimestamp.IsZero() || pod.Spec.NodeName == "" || pod.Annotations[SourcesAnnotation] == d {
			continue
		}
		if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
			log.FromContext(ctx).Error(err, "annotating the broker pod so that the kubelet refreshes its configuration now",
				"pod", pod.Name)
		}
	}
}

package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers/resources"
)

// TestDriftSeenInTheObjectUpdated: a hand edit the cache brings in between
// the reconcile's first read of the StatefulSet and the read its update
// merges into is still reported (DriftCorrected) as it is reverted. The
// envtest TestStatefulSetDriftIsCorrected met this race now and then: the
// edit was reverted with only an "Updated" event.
func TestDriftSeenInTheObjectUpdated(t *testing.T) {
	b, cfg := fixtureBroker(t, "minimal")
	params := resources.Params{DefaultImage: "bollard:1"}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	own := resources.StatefulSet(b, cfg, params)
	own.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MQTTBroker",
		Name: b.Name, UID: b.UID, Controller: ptr.To(true)}}
	ctx := context.Background()
	store := fake.NewClientBuilder().WithScheme(scheme).Build()
	if err := store.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	stale := own.DeepCopy() // what the cache still holds at the first read
	edited := own.DeepCopy()
	edited.Spec.Template.Spec.Containers[0].Image = "example.com/evil:1"
	if err := store.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	reads := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(edited).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if s, ok := obj.(*appsv1.StatefulSet); ok {
				if reads++; reads == 1 {
					stale.DeepCopyInto(s)
					return nil
				}
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	}).Build()
	rec := events.NewFakeRecorder(16)
	r := &MQTTBrokerReconciler{Client: c, Recorder: rec}
	if err := r.applyStatefulSet(ctx, &pass{broker: b, cfg: cfg, params: params}); err != nil {
		t.Fatal(err)
	}
	got := &appsv1.StatefulSet{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(own), got); err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != own.Spec.Template.Spec.Containers[0].Image {
		t.Fatalf("image %s, want the edit reverted to %s", img, own.Spec.Template.Spec.Containers[0].Image)
	}
	close(rec.Events)
	var seen []string
	for e := range rec.Events {
		seen = append(seen, e)
		if strings.Contains(e, string(EventDriftCorrected)) && strings.Contains(e, "spec.template.spec.containers[0].image") {
			return
		}
	}
	t.Fatalf("no DriftCorrected event naming the image among %q", seen)
}

// fixtureBroker is the MQTTBroker of resources/testdata/<name>.input.yaml
// (as the apiserver stores it) and the broker config it renders.
func fixtureBroker(t *testing.T, name string) (*v1alpha1.MQTTBroker, *config.Config) {
	t.Helper()
	b := &v1alpha1.MQTTBroker{}
	raw, err := os.ReadFile(filepath.Join("resources", "testdata", name+".input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, b); err != nil {
		t.Fatal(err)
	}
	cfg, err := resources.BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, cfg
}

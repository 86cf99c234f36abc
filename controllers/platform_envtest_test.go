//go:build envtest

package controllers_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

func raw(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }

func emptyDir(name string) v1alpha1.Volume {
	return v1alpha1.Volume{Name: name, EmptyDir: &corev1.EmptyDirVolumeSource{}}
}

// TestPlatformFieldsAreValidatedAtAdmission: the pod additions, Service
// settings, cert-manager issuer and spec.config are refused at admission
// with a message naming the field when they would break the broker or
// reach into what the operator owns.
func TestPlatformFieldsAreValidatedAtAdmission(t *testing.T) {
	ns := namespace(t)
	cases := map[string]struct {
		mutate func(b *v1alpha1.MQTTBroker)
		want   []string
	}{
		"selector pod label": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.PodLabels = map[string]v1alpha1.LabelValue{resources.LabelInstance: "x"}
		},
			[]string{"spec.podLabels", "cannot set the operator's labels"}},
		"version pod label": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.PodLabels = map[string]v1alpha1.LabelValue{resources.LabelVersion: "x"}
		},
			[]string{"spec.podLabels", "cannot set the operator's labels"}},
		"bad pod label key": {func(b *v1alpha1.MQTTBroker) { b.Spec.PodLabels = map[string]v1alpha1.LabelValue{"a b": "x"} },
			[]string{"spec.podLabels", "must be label keys"}},
		"bad pod label value": {func(b *v1alpha1.MQTTBroker) { b.Spec.PodLabels = map[string]v1alpha1.LabelValue{"team": "a b"} },
			[]string{"spec.podLabels.team", "should match"}},
		"GOMEMLIMIT": {func(b *v1alpha1.MQTTBroker) { b.Spec.Env = []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "1"}} },
			[]string{"spec.env", "cannot set GOMEMLIMIT"}},
		"env twice": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Env = []corev1.EnvVar{{Name: "TZ", Value: "UTC"}, {Name: "TZ", Value: "CET"}}
		}, []string{"spec.env[1]", "Duplicate value"}},
		"volume with no source": {func(b *v1alpha1.MQTTBroker) { b.Spec.Volumes = []v1alpha1.Volume{{Name: "x"}} },
			[]string{"spec.volumes[0]", "exactly one source"}},
		"volume with two sources": {func(b *v1alpha1.MQTTBroker) {
			v := emptyDir("x")
			v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}
			b.Spec.Volumes = []v1alpha1.Volume{v}
		}, []string{"spec.volumes[0]", "exactly one source"}},
		"volume twice": {func(b *v1alpha1.MQTTBroker) { b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x"), emptyDir("x")} },
			[]string{"spec.volumes[1]", "Duplicate value"}},
		"mount of a missing volume": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "data", MountPath: "/srv"}}
		}, []string{"spec", "must name a volume of spec.volumes"}},
		"unclean mount path": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x")}
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: "/etc/ssl/../bollard"}}
		}, []string{"spec.volumeMounts[0]", "mountPath must be an absolute, clean path"}},
		"relative mount path": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x")}
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: "etc/bollard"}}
		}, []string{"spec.volumeMounts[0]", "mountPath must be an absolute, clean path"}},
		"subPath escaping the volume": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x")}
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: "/srv", SubPath: "a/../.."}}
		}, []string{"spec.volumeMounts[0].subPath", "relative path without '..'"}},
		"same mount path twice": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x"), emptyDir("y")}
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: "/srv"}, {Name: "y", MountPath: "/srv"}}
		}, []string{"spec.volumeMounts[1]", "Duplicate value"}},
		"load balancer ranges on ClusterIP": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Service.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
		}, []string{"spec.service", "needs service.type LoadBalancer"}},
		"not a CIDR": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
			b.Spec.Service.LoadBalancerSourceRanges = []string{"10.0.0.1"}
		}, []string{"spec.service.loadBalancerSourceRanges[0]", "must be CIDRs"}},
		"traffic policy on ClusterIP": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, []string{"spec.service", "needs service.type NodePort or LoadBalancer"}},
		"bad traffic policy": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Service.Type = corev1.ServiceTypeNodePort
			b.Spec.Service.ExternalTrafficPolicy = "Nearest"
		}, []string{"spec.service.externalTrafficPolicy"}},
		"tls with neither Secret nor issuer": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883}
		}, []string{"spec.listeners.tls", "needs secretName", "or issuerRef"}},
		"dnsNames without issuer": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, SecretName: "s", DNSNames: []string{"a.example.com"}}
		}, []string{"spec.listeners.tls", "dnsNames is only used with"}},
		"bad dnsName": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, IssuerRef: &v1alpha1.IssuerRef{Name: "ca"}, DNSNames: []string{"A_B"}}
		}, []string{"spec.listeners.tls.dnsNames[0]"}},
		"cert-manager issuer of another kind": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, IssuerRef: &v1alpha1.IssuerRef{Name: "ca", Kind: "Vault"}}
		}, []string{"spec.listeners.tls.issuerRef", "must be Issuer or ClusterIssuer"}},
		"config not an object": {func(b *v1alpha1.MQTTBroker) { b.Spec.Config = raw(`"limits"`) },
			[]string{"spec.config", "object"}},
	}
	// The CRD's reserved mount paths are the builders' (one list, checked).
	for _, r := range resources.ReservedMountPaths {
		for _, p := range []string{r, r + "/x", r[:strings.LastIndex(r, "/")]} {
			if p == "" {
				continue // "/" is refused as unclean above
			}
			cases["mount at "+p] = struct {
				mutate func(b *v1alpha1.MQTTBroker)
				want   []string
			}{func(b *v1alpha1.MQTTBroker) {
				b.Spec.Volumes = []v1alpha1.Volume{emptyDir("x")}
				b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: p}}
			}, []string{"spec.volumeMounts[0]", "mountPath cannot be at, inside or above the operator's paths"}}
		}
	}
	for _, v := range resources.ReservedVolumeNames {
		cases["volume named "+v] = struct {
			mutate func(b *v1alpha1.MQTTBroker)
			want   []string
		}{func(b *v1alpha1.MQTTBroker) { b.Spec.Volumes = []v1alpha1.Volume{emptyDir(v)} },
			[]string{"spec.volumes", "cannot use the operator's volume names"}}
	}
	for _, l := range resources.ReservedLabels {
		cases["pod label "+l] = struct {
			mutate func(b *v1alpha1.MQTTBroker)
			want   []string
		}{func(b *v1alpha1.MQTTBroker) { b.Spec.PodLabels = map[string]v1alpha1.LabelValue{l: "x"} },
			[]string{"spec.podLabels", "cannot set the operator's labels"}}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBroker(ns, "invalid")
			tc.mutate(b)
			err := k8s.Create(ctx, b, client.DryRunAll)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: err = %v, want Invalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestPodAdditionsReachTheBroker: every pod addition and Service setting
// reaches the StatefulSet or the client Service as asked, passes the
// apiserver's own validation of those objects, and follows the spec when
// it changes.
func TestPodAdditionsReachTheBroker(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "platform")
	b.Spec.PodLabels = map[string]v1alpha1.LabelValue{"team": "iot", "sidecar.istio.io/inject": "false"}
	b.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{resources.LabelInstance: "platform"}},
	}}
	b.Spec.Env = []corev1.EnvVar{{Name: "TZ", Value: "UTC"}, {Name: "REGION", ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "site"}, Key: "region"},
	}}}
	b.Spec.Volumes = []v1alpha1.Volume{
		{Name: "corporate-ca", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ca"}}},
		{Name: "scratch", EmptyDir: &corev1.EmptyDirVolumeSource{}},
	}
	b.Spec.VolumeMounts = []v1alpha1.VolumeMount{
		{Name: "corporate-ca", MountPath: "/etc/ssl/corporate", ReadOnly: true},
		{Name: "scratch", MountPath: "/var/cache/bollard"},
	}
	b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	b.Spec.Service.LoadBalancerSourceRanges = []string{"203.0.113.0/24", "2001:db8::/32"}
	b.Spec.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)

	pod := statefulSet(t, b).Spec.Template
	for k, v := range b.Spec.PodLabels {
		if pod.Labels[k] != string(v) {
			t.Errorf("pod label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if !equality.Semantic.DeepEqual(pod.Spec.TopologySpreadConstraints, b.Spec.TopologySpreadConstraints) {
		t.Errorf("topologySpreadConstraints = %+v", pod.Spec.TopologySpreadConstraints)
	}
	c := pod.Spec.Containers[0]
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name)
	}
	if !slices.Equal(env, []string{"GOMEMLIMIT", "TZ", "REGION"}) {
		t.Errorf("env = %v, want GOMEMLIMIT, TZ, REGION", env)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	vols := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = true
	}
	for _, m := range b.Spec.VolumeMounts {
		if mounts[m.Name] != m.MountPath || !vols[m.Name] {
			t.Errorf("volume %s: mounted at %q (want %q), in the pod: %v", m.Name, mounts[m.Name], m.MountPath, vols[m.Name])
		}
	}
	if mounts["config"] != resources.ConfigDir || mounts["data"] != resources.DataMountPath {
		t.Errorf("the operator's mounts moved: %v", mounts)
	}

	svc := &corev1.Service{}
	if err := get(t, svc, ns, resources.ServiceName(b)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(svc.Spec.LoadBalancerSourceRanges, b.Spec.Service.LoadBalancerSourceRanges) ||
		svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || svc.Spec.HealthCheckNodePort == 0 {
		t.Errorf("Service: ranges %v, policy %q, health check node port %d", svc.Spec.LoadBalancerSourceRanges,
			svc.Spec.ExternalTrafficPolicy, svc.Spec.HealthCheckNodePort)
	}

	// What the apiserver defaults in them is no drift: another reconcile
	// writes neither the StatefulSet nor the Service.
	stsRV, svcRV := statefulSet(t, b).ResourceVersion, svc.ResourceVersion
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.LogLevel = "debug" })
	b = observed(t, b)
	if err := get(t, svc, ns, resources.ServiceName(b)); err != nil {
		t.Fatal(err)
	}
	if rv := statefulSet(t, b).ResourceVersion; rv != stsRV || svc.ResourceVersion != svcRV {
		t.Errorf("a steady state rewrote the StatefulSet (%s -> %s) or the Service (%s -> %s)", stsRV, rv, svcRV, svc.ResourceVersion)
	}
	noEvent(t, b, controllers.EventDriftCorrected)

	// Dropping the policy and the ranges puts Kubernetes' defaults back.
	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Service.ExternalTrafficPolicy = ""
		b.Spec.Service.LoadBalancerSourceRanges = nil
		b.Spec.PodLabels = nil
	})
	b = observed(t, b)
	eventually(t, func() error {
		if err := get(t, svc, ns, resources.ServiceName(b)); err != nil {
			return err
		}
		if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || len(svc.Spec.LoadBalancerSourceRanges) != 0 {
			return fmt.Errorf("Service: policy %q, ranges %v", svc.Spec.ExternalTrafficPolicy, svc.Spec.LoadBalancerSourceRanges)
		}
		if l := statefulSet(t, b).Spec.Template.Labels; l["team"] != "" {
			return fmt.Errorf("pod labels still %v", l)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
}

// TestConfigOverlayIsCheckedByTheBroker: spec.config reaches the ConfigMap
// without rolling the pod when it sets a hot field the CRD does not
// expose; a field the CRD exposes, or one the broker's loader refuses, is
// reported (Degraded and ConfigApplied False, reason InvalidConfig, an
// Event) and never rendered.
func TestConfigOverlayIsCheckedByTheBroker(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "overlay")))
	before := statefulSet(t, b)

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Config = raw(`{"limits": {"connectTimeout": "4s", "maxClientIDLength": 64}}`)
	})
	b = observed(t, b)
	c := brokerConfig(t, b)
	if c.Limits.ConnectTimeout.String() != "4s" || c.Limits.MaxClientIDLength != 64 || c.ConfigGeneration != b.Generation {
		t.Fatalf("ConfigMap: connectTimeout %s, maxClientIDLength %d, generation %d (want 4s, 64, %d)",
			c.Limits.ConnectTimeout, c.Limits.MaxClientIDLength, c.ConfigGeneration, b.Generation)
	}
	if after := statefulSet(t, b); !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Error("a hot field through spec.config changed the pod template")
	}
	good := b.Generation

	cases := map[string]struct{ overlay, want string }{
		"exposed field":  {`{"limits": {"maxConnections": 5}}`, "limits.maxConnections is set by spec.limits.maxConnections"},
		"unknown field":  {`{"limits": {"connectTimeoutz": "4s"}}`, "field connectTimeoutz not found"},
		"invalid value":  {`{"limits": {"connectTimeout": "soon"}}`, "limits.connectTimeout"},
		"operator field": {`{"admin": {"tokenFile": ""}}`, "admin.tokenFile is set by the operator"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Config = raw(tc.overlay) })
			b := observed(t, b)
			condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidConfig)
			condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, "")
			hasEvent(t, b, controllers.EventInvalidConfig, tc.want)
			cur := &v1alpha1.MQTTBroker{}
			if err := get(t, cur, ns, b.Name); err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{v1alpha1.ConditionDegraded, v1alpha1.ConditionConfigApplied} {
				if c := conditionOf(cur, typ); !strings.Contains(c.Message, tc.want) {
					t.Errorf("%s message %q does not say %q", typ, c.Message, tc.want)
				}
			}
			if c := brokerConfig(t, b); c.ConfigGeneration != good || c.Limits.ConnectTimeout.String() != "4s" {
				t.Errorf("the refused overlay reached the ConfigMap: generation %d (want %d), connectTimeout %s",
					c.ConfigGeneration, good, c.Limits.ConnectTimeout)
			}
		})
	}

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Config = nil })
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	if c := brokerConfig(t, b); c.Limits.ConnectTimeout.String() != "10s" {
		t.Errorf("removing spec.config left connectTimeout %s, want the broker's default 10s", c.Limits.ConnectTimeout)
	}
}

func conditionOf(b *v1alpha1.MQTTBroker, typ string) metav1.Condition {
	for _, c := range b.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// certificateCRD is a minimal stand-in for cert-manager's CRD: a free-form
// spec with one defaulted field, as cert-manager's webhook and CRD add
// some, which must not make the operator rewrite the Certificate.
func certificateCRD() *apiextensionsv1.CustomResourceDefinition {
	preserve := ptr.To(true)
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: resources.CertificateCRDName},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: resources.CertificateGVK.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "certificates", Singular: "certificate", Kind: "Certificate", ListKind: "CertificateList",
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {
							Type: "object", XPreserveUnknownFields: preserve,
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"revisionHistoryLimit": {Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte("1")}},
							},
						},
					},
				}},
			}},
		},
	}
}

func getCertificate(t *testing.T, b *v1alpha1.MQTTBroker) (*unstructured.Unstructured, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(resources.CertificateGVK)
	return u, get(t, u, b.Namespace, resources.CertificateName(b))
}

// TestCertificateFromCertManager: without cert-manager a broker asking for
// a certificate is Degraded (reason CertManagerUnavailable, naming
// cert-manager) and nothing crashes or stops the other children; once the
// CRD is installed the Certificate appears (the CRD watch), with the
// Services' DNS names, and the pod mounts the Secret it names. A renewal
// (new Secret content) leaves the pod template alone. Without issuerRef
// the Certificate goes.
func TestCertificateFromCertManager(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "certs")
	b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, IssuerRef: &v1alpha1.IssuerRef{Name: "iot-ca", Kind: "ClusterIssuer"},
		DNSNames: []string{"mqtt.example.com"}}
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonCertManagerUnavailable)
	hasEvent(t, b, controllers.EventCertManagerUnavailable, "cert-manager")
	// The rest of the broker is there, mounting the Secret cert-manager will write.
	secretName := b.Name + "-tls"
	sts := statefulSet(t, b)
	if !mountsSecret(sts.Spec.Template.Spec.Volumes, "tls", secretName) {
		t.Errorf("pod volumes %+v do not mount Secret %s as tls", sts.Spec.Template.Spec.Volumes, secretName)
	}

	crd := certificateCRD()
	if _, err := envtest.InstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
			t.Error(err)
		}
	})
	var cert *unstructured.Unstructured
	eventually(t, func() error {
		var err error
		cert, err = getCertificate(t, b)
		return err
	})
	hasEvent(t, b, controllers.EventCreated, "Certificate "+resources.CertificateName(b))
	if got, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); got != secretName {
		t.Errorf("Certificate secretName = %q, want %q", got, secretName)
	}
	ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	if ref["name"] != "iot-ca" || ref["kind"] != "ClusterIssuer" || ref["group"] != "cert-manager.io" {
		t.Errorf("issuerRef = %v", ref)
	}
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	for _, want := range []string{b.Name + "." + ns + ".svc", b.Name + "-0." + resources.HeadlessServiceName(b) + "." + ns + ".svc", "mqtt.example.com"} {
		if !slices.Contains(dns, want) {
			t.Errorf("dnsNames %v lack %s", dns, want)
		}
	}
	// Until cert-manager writes the Secret, the broker says what it waits for.
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonSecretNotFound)
	hasEvent(t, b, controllers.EventSecretNotFound, "cert-manager issues it from Certificate "+resources.CertificateName(b))

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("cert 1"), corev1.TLSPrivateKeyKey: []byte("key 1")},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	sts = statefulSet(t, b)
	certRV := mustCertificate(t, b).GetResourceVersion()

	// A renewal: new content in the same Secret. The broker reloads the
	// files; nothing of the pod template may change.
	update(t, secret, func(s *corev1.Secret) {
		s.Data = map[string][]byte{corev1.TLSCertKey: []byte("cert 2"), corev1.TLSPrivateKeyKey: []byte("key 2")}
	})
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.LogLevel = "debug" }) // a reconcile that reads the renewed Secret
	b = observed(t, b)
	after := statefulSet(t, b)
	if !equality.Semantic.DeepEqual(sts.Spec.Template, after.Spec.Template) ||
		sts.Annotations[resources.TemplateHashAnnotation] != after.Annotations[resources.TemplateHashAnnotation] {
		t.Error("a renewed certificate changed the pod template: the broker pod would roll")
	}
	noEvent(t, b, controllers.EventRestarted)
	if rv := mustCertificate(t, b).GetResourceVersion(); rv != certRV {
		t.Errorf("an unrelated change rewrote the Certificate (resourceVersion %s -> %s)", certRV, rv)
	}

	// A Certificate changed by hand is put back.
	cert = mustCertificate(t, b)
	if err := unstructured.SetNestedField(cert.Object, "other-ca", "spec", "issuerRef", "name"); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Update(ctx, cert); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		name, _, _ := unstructured.NestedString(mustCertificate(t, b).Object, "spec", "issuerRef", "name")
		if name != "iot-ca" {
			return fmt.Errorf("issuerRef.name = %q", name)
		}
		return nil
	})

	// Without issuerRef (the Secret named explicitly) the Certificate goes.
	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Listeners.TLS.IssuerRef = nil
		b.Spec.Listeners.TLS.DNSNames = nil
		b.Spec.Listeners.TLS.SecretName = secretName
	})
	eventually(t, func() error {
		if _, err := getCertificate(t, b); !apierrors.IsNotFound(err) {
			return errors.Join(errors.New("Certificate still there"), err)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventDeleted, "Certificate "+resources.CertificateName(b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
}

func mustCertificate(t *testing.T, b *v1alpha1.MQTTBroker) *unstructured.Unstructured {
	t.Helper()
	u, err := getCertificate(t, b)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mountsSecret(vols []corev1.Volume, name, secret string) bool {
	for _, v := range vols {
		if v.Name == name && v.Secret != nil && v.Secret.SecretName == secret {
			return true
		}
	}
	return false
}

package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/test/poll"
)

// ep is a pod endpoint with the given conditions (nil: unset).
func ep(pod string, ready, serving, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{"127.0.0.1"},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: pod},
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating},
	}
}

func slice(name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: "svc"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func slicePorts(name string, port int32) []discoveryv1.EndpointPort {
	return []discoveryv1.EndpointPort{{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}}
}

// testLocal maps pods p0..p4 to local ports 2000x (container port 1883)
// and 2100x (8080); other pods do not run here.
func testLocal(ns, pod string, port int32) (string, bool) {
	var i int
	if _, err := fmt.Sscanf(pod, "p%d", &i); err != nil || ns != "ns" || i > 4 {
		return "", false
	}
	base := map[int32]int{1883: 20000, 8080: 21000}[port]
	if base == 0 {
		return "", false
	}
	return "127.0.0.1:" + strconv.Itoa(base+i), true
}

func TestEndpointAddrs(t *testing.T) {
	yes, no := ptr.To(true), ptr.To(false)
	mqtt := corev1.ServicePort{Name: "mqtt", Port: 1883}
	tests := map[string]struct {
		port   corev1.ServicePort
		slices []*discoveryv1.EndpointSlice
		want   []string
	}{
		"ready only": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 1883),
			ep("p0", yes, yes, no), ep("p1", no, no, no), ep("p2", nil, nil, nil))},
			[]string{"127.0.0.1:20000", "127.0.0.1:20002"}},
		"no ready: serving and terminating": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 1883),
			ep("p0", no, yes, yes), ep("p1", no, no, yes), ep("p2", no, yes, no))},
			[]string{"127.0.0.1:20000"}},
		"a ready one wins over terminating": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 1883),
			ep("p0", no, yes, yes), ep("p1", yes, yes, no))},
			[]string{"127.0.0.1:20001"}},
		"none usable": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 1883),
			ep("p0", no, no, no), ep("p1", no, no, yes))}, nil},
		"no slice": {mqtt, nil, nil},
		"port by name, target number from the slice": {corev1.ServicePort{Name: "admin", Port: 80},
			[]*discoveryv1.EndpointSlice{slice("a", append(slicePorts("mqtt", 1883), slicePorts("admin", 8080)...),
				ep("p3", yes, yes, no))},
			[]string{"127.0.0.1:21003"}},
		"other port name": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("ws", 1883), ep("p0", yes, yes, no))}, nil},
		"UDP port": {mqtt, []*discoveryv1.EndpointSlice{slice("a", []discoveryv1.EndpointPort{{
			Name: ptr.To("mqtt"), Port: ptr.To(int32(1883)), Protocol: ptr.To(corev1.ProtocolUDP)}}, ep("p0", yes, yes, no))}, nil},
		"pod not on this node": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 1883),
			ep("p9", yes, yes, no), ep("p1", yes, yes, no))},
			[]string{"127.0.0.1:20001"}},
		"across slices, without duplicates": {mqtt, []*discoveryv1.EndpointSlice{
			slice("a", slicePorts("mqtt", 1883), ep("p1", yes, yes, no)),
			slice("b", slicePorts("mqtt", 1883), ep("p0", yes, yes, no), ep("p1", yes, yes, no)),
		}, []string{"127.0.0.1:20000", "127.0.0.1:20001"}},
		"IPv6 slice": {mqtt, []*discoveryv1.EndpointSlice{func() *discoveryv1.EndpointSlice {
			s := slice("a", slicePorts("mqtt", 1883), ep("p0", yes, yes, no))
			s.AddressType = discoveryv1.AddressTypeIPv6
			return s
		}()}, nil},
		"non-pod endpoints: loopback only": {mqtt, []*discoveryv1.EndpointSlice{slice("a", slicePorts("mqtt", 5000),
			discoveryv1.Endpoint{Addresses: []string{"127.0.0.1"}},
			discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}},
			discoveryv1.Endpoint{Addresses: []string{"not-an-ip"}},
			discoveryv1.Endpoint{})},
			[]string{"127.0.0.1:5000"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := endpointAddrs(tc.port, tc.slices, testLocal)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProxied(t *testing.T) {
	tests := map[string]struct {
		spec corev1.ServiceSpec
		want bool
	}{
		"ClusterIP":     {corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.1"}, true},
		"LoadBalancer":  {corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.1"}, true},
		"NodePort":      {corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.1"}, true},
		"headless":      {corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone}, false},
		"ExternalName":  {corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}, false},
		"type defaults": {corev1.ServiceSpec{ClusterIP: "10.0.0.1"}, true},
	}
	for name, tc := range tests {
		if got := proxied(&corev1.Service{Spec: tc.spec}); got != tc.want {
			t.Errorf("%s: proxied = %v, want %v", name, got, tc.want)
		}
	}
}

// startFakeAgent runs an agent against a fake API server (no control
// plane): it watches Services and EndpointSlices as it would a real one.
func startFakeAgent(t *testing.T) (*Agent, *fake.Clientset) {
	t.Helper()
	kube := fake.NewClientset()
	a, err := New(kube, Options{
		WorkDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Resolve: func(*corev1.Container) (string, error) { return "", fmt.Errorf("no containers here") },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready")
	}
	return a, kube
}

func backendPort(t *testing.T, b *backend) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(b.addr())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// serviceAddr waits until the agent proxies the Service port.
func serviceAddr(t *testing.T, a *Agent, ns, svc, port string) string {
	t.Helper()
	var addr string
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the service proxy", func() bool {
		var err error
		addr, err = a.ServiceAddr(ns, svc, port)
		return err == nil
	})
	return addr
}

// greetingAt dials addr and returns the greeting of the backend reached,
// or "" when the connection was refused.
func greetingAt(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return ""
	}
	var buf [64]byte
	n, _ := c.Read(buf[:])
	s := string(buf[:n])
	if len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

// The agent proxies a Service's ports to the endpoints its EndpointSlices
// name, follows their changes, keeps the address when the Service goes and
// comes back, and proxies nothing for a headless Service.
func TestAgentProxiesServices(t *testing.T) {
	a, kube := startFakeAgent(t)
	ctx := t.Context()
	b1, b2 := startBackend(t, "one"), startBackend(t, "two")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.10", Ports: []corev1.ServicePort{
			{Name: "mqtt", Port: 1883}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		}},
	}
	if _, err := kube.CoreV1().Services("ns").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	addr := serviceAddr(t, a, "ns", "svc", "mqtt")
	if got, err := a.ServiceAddr("ns", "svc", "1883"); err != nil || got != addr {
		t.Fatalf("by number: %q, %v; by name %q", got, err, addr)
	}
	if _, err := a.ServiceAddr("ns", "svc", "dns"); err == nil {
		t.Fatal("a UDP port is proxied")
	}
	if g := greetingAt(addr); g != "" {
		t.Fatalf("no endpoints yet, but a connection reached %q", g)
	}
	one := slice("svc-1", slicePorts("mqtt", backendPort(t, b1)), discoveryv1.Endpoint{Addresses: []string{"127.0.0.1"}})
	if _, err := kube.DiscoveryV1().EndpointSlices("ns").Create(ctx, one, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGreeting(t, addr, "one")
	one.Ports = slicePorts("mqtt", backendPort(t, b2))
	if _, err := kube.DiscoveryV1().EndpointSlices("ns").Update(ctx, one, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGreeting(t, addr, "two")
	one.Endpoints[0].Conditions.Ready = ptr.To(false)
	if _, err := kube.DiscoveryV1().EndpointSlices("ns").Update(ctx, one, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGreeting(t, addr, "")
	st, err := a.ServiceStats("ns", "svc", "mqtt")
	if err != nil || st.NoEndpoints == 0 || st.Forwarded == 0 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if err := kube.CoreV1().Services("ns").Delete(ctx, "svc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the proxy to stop", func() bool {
		_, err := a.ServiceAddr("ns", "svc", "mqtt")
		return err != nil
	})
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("a deleted Service's port still accepts")
	}
	if _, err := kube.CoreV1().Services("ns").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if again := serviceAddr(t, a, "ns", "svc", "mqtt"); again != addr {
		t.Fatalf("the Service came back at %s, was %s", again, addr)
	}
	headless := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "mqtt", Port: 1883}}},
	}
	if _, err := kube.CoreV1().Services("ns").Create(ctx, headless, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// One worker takes Services in the order the informer saw them: once
	// a Service created after the headless one has its proxy, the
	// headless one was synced.
	marker := svc.DeepCopy()
	marker.Name = "marker"
	if _, err := kube.CoreV1().Services("ns").Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	serviceAddr(t, a, "ns", "marker", "mqtt")
	if _, err := a.ServiceAddr("ns", "headless", "mqtt"); err == nil {
		t.Fatal("a headless Service is proxied")
	}
}

// A pod endpoint goes to the local port the agent allocated for the pod's
// container port.
func TestAgentProxiesToPodPorts(t *testing.T) {
	a, kube := startFakeAgent(t)
	ctx := t.Context()
	local, err := a.ports.get("ns/p0/1883")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: "p0", ln: ln}
	serveBackend(b)
	t.Cleanup(b.stop)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.0.0.10", Ports: []corev1.ServicePort{{Name: "mqtt", Port: 1883}}},
	}
	if _, err := kube.CoreV1().Services("ns").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes, no := ptr.To(true), ptr.To(false)
	s := slice("svc-1", slicePorts("mqtt", 1883), ep("p0", yes, yes, no), ep("elsewhere", yes, yes, no))
	if _, err := kube.DiscoveryV1().EndpointSlices("ns").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	addr := serviceAddr(t, a, "ns", "svc", "mqtt")
	waitGreeting(t, addr, "p0")
	st, err := a.ServiceStats("ns", "svc", "mqtt")
	if err != nil || st.Endpoints != 1 {
		t.Fatalf("stats %+v, %v: want only the pod that runs here", st, err)
	}
}

// waitGreeting waits until a new connection to addr reaches the backend
// named want ("" : is refused).
func waitGreeting(t *testing.T, addr, want string) {
	t.Helper()
	var got string
	err := poll.Until(t.Context(), 10*time.Second, 10*time.Millisecond, func(context.Context) error {
		if got = greetingAt(addr); got != want {
			return fmt.Errorf("reached %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a new connection to %s to reach %q: %v", addr, want, err)
	}
}

// A pod name resolves under a headless Service that publishes not-ready
// addresses, and under no other Service.
func TestAgentHeadlessMember(t *testing.T) {
	a, kube := startFakeAgent(t)
	ctx := t.Context()
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "all"}, Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true, Selector: map[string]string{"app": "b"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ready-only"}, Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "b"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "clusterip"}, Spec: corev1.ServiceSpec{
			ClusterIP: "10.0.0.1", PublishNotReadyAddresses: true, Selector: map[string]string{"app": "b"}}},
	} {
		if _, err := kube.CoreV1().Services("ns").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the Services in the cache", func() bool {
		l, err := a.services.List(labels.Everything())
		return err == nil && len(l) == 3
	})
	for svc, want := range map[string]bool{"all": true, "ready-only": false, "clusterip": false, "missing": false} {
		if got := a.headlessMember("ns", svc, "b-0"); got != want {
			t.Errorf("b-0 under %s: %v, want %v", svc, got, want)
		}
	}
	d := a.podDNS("ns")
	addr, ok, err := d.resolve("b-1.all:7946")
	if err != nil || !ok {
		t.Fatalf("resolve: %q %v %v", addr, ok, err)
	}
	if local, ok := a.localAddr("ns", "b-1", 7946); !ok || local != addr {
		t.Fatalf("the pod will listen at %q (%v), the name resolved to %q", local, ok, addr)
	}
}

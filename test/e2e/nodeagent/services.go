package nodeagent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
)

// servicePrefix marks Service keys in the service queue.
const servicePrefix = "svc:"

// proxied reports whether the agent proxies svc as kube-proxy would: every
// Service with a cluster IP (ClusterIP, NodePort, LoadBalancer), not a
// headless one (its clients dial the pods) nor an ExternalName.
func proxied(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// proxiedPorts are svc's TCP ports (the proxy does not carry UDP or SCTP).
func proxiedPorts(svc *corev1.Service) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			out = append(out, p)
		}
	}
	return out
}

// localAddrFunc maps a pod's container port to the local address the
// agent gave it; false when the pod does not run on this node.
type localAddrFunc func(namespace, pod string, port int32) (string, bool)

// endpointAddrs are the addresses new connections to one Service port go
// to, from the Service's EndpointSlices, by kube-proxy's rule: the ready
// endpoints (a nil ready condition counts as ready); when there is none,
// the endpoints that are serving and terminating (kube-proxy's fallback
// for a Service whose pods are all shutting down); otherwise none. A pod
// endpoint (targetRef kind Pod) is reached at the local port its
// container port was remapped to; any other endpoint only at a loopback
// address, so that no EndpointSlice makes the agent dial off the machine.
// The result is sorted and without duplicates.
func endpointAddrs(port corev1.ServicePort, eps []*discoveryv1.EndpointSlice, local localAddrFunc) []string {
	var ready, terminating []string
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		target, ok := slicePort(s, port.Name)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			addr, ok := endpointAddr(s.Namespace, ep, target, local)
			if !ok {
				continue
			}
			isReady := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := isReady
			if ep.Conditions.Serving != nil {
				serving = *ep.Conditions.Serving
			}
			isTerminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			switch {
			case isReady:
				ready = append(ready, addr)
			case serving && isTerminating:
				terminating = append(terminating, addr)
			}
		}
	}
	if len(ready) == 0 {
		ready = terminating
	}
	slices.Sort(ready)
	return slices.Compact(ready)
}

// slicePort is the target port of the slice's port named name (the Service
// port's name; "" for a Service's only, unnamed port), if TCP.
func slicePort(s *discoveryv1.EndpointSlice, name string) (int32, bool) {
	for _, p := range s.Ports {
		if p.Name == nil || *p.Name != name || p.Port == nil {
			continue
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		return *p.Port, true
	}
	return 0, false
}

func endpointAddr(ns string, ep discoveryv1.Endpoint, port int32, local localAddrFunc) (string, bool) {
	if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
		if ref.Namespace != "" {
			ns = ref.Namespace
		}
		return local(ns, ref.Name, port)
	}
	if len(ep.Addresses) == 0 {
		return "", false
	}
	ip := net.ParseIP(ep.Addresses[0])
	if ip == nil || !ip.IsLoopback() {
		return "", false
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), true
}

// onService queues a Service for sync.
func (a *Agent) onService(obj any) {
	if s, ok := obj.(*corev1.Service); ok {
		a.svcQueue.Add(servicePrefix + podKey(s.Namespace, s.Name))
	}
}

// onEndpointSlice queues the Service a slice belongs to.
func (a *Agent) onEndpointSlice(obj any) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
		a.svcQueue.Add(servicePrefix + podKey(s.Namespace, svc))
	}
}

func (a *Agent) serviceWorker(ctx context.Context) {
	for {
		key, shutdown := a.svcQueue.Get()
		if shutdown {
			return
		}
		if err := a.syncService(key); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("service sync failed, retrying", "service", key, "err", err)
			}
			a.svcQueue.AddRateLimited(key)
		} else {
			a.svcQueue.Forget(key)
		}
		a.svcQueue.Done(key)
	}
}

// proxyKey names one Service port's proxy: namespace/service/port.
func proxyKey(ns, svc string, port int32) string { return fmt.Sprintf("%s/%s/%d", ns, svc, port) }

// syncService makes the Service's proxies match it: one per TCP port,
// each forwarding to the port's current endpoints; none for a Service
// that is gone, headless or ExternalName.
func (a *Agent) syncService(key string) error {
	ns, name, _ := strings.Cut(strings.TrimPrefix(key, servicePrefix), "/")
	svc, err := a.services.Services(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("nodeagent: service %s/%s: %w", ns, name, err)
	}
	want := map[string]corev1.ServicePort{}
	if err == nil && proxied(svc) {
		for _, p := range proxiedPorts(svc) {
			want[proxyKey(ns, name, p.Port)] = p
		}
	}
	a.closeStaleProxies(ns, name, want)
	if len(want) == 0 {
		return nil
	}
	eps, err := a.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	if err != nil {
		return fmt.Errorf("nodeagent: endpoint slices of %s/%s: %w", ns, name, err)
	}
	for k, port := range want {
		p, err := a.serviceProxy(k, port)
		if err != nil {
			return err
		}
		addrs := endpointAddrs(port, eps, a.localAddr)
		if p.setEndpoints(addrs) {
			a.log.Info("service endpoints changed", "service", k, "endpoints", addrs)
		}
	}
	return nil
}

// serviceProxy returns the proxy of a Service port, starting it on the
// port's local address (stable for the life of the agent, so a Service
// deleted and created again listens where its clients connect).
func (a *Agent) serviceProxy(key string, port corev1.ServicePort) (*serviceProxy, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.proxies[key]; ok {
		p.portName = port.Name
		return p, nil
	}
	local, err := a.ports.get(servicePrefix + key)
	if err != nil {
		return nil, err
	}
	p, err := newServiceProxy(key, net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), a.opts.MaxProxyConns, a.log)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: proxy of service port %s: %w", key, err)
	}
	p.portName = port.Name
	a.proxies[key] = p
	p.start()
	a.log.Info("service proxy started", "service", key, "name", port.Name, "addr", p.Addr())
	return p, nil
}

// closeStaleProxies closes the proxies of ns/name not in want.
func (a *Agent) closeStaleProxies(ns, name string, want map[string]corev1.ServicePort) {
	prefix := ns + "/" + name + "/"
	a.mu.Lock()
	var stale []*serviceProxy
	for k, p := range a.proxies {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, prefix) {
			stale = append(stale, p)
			delete(a.proxies, k)
		}
	}
	a.mu.Unlock()
	for _, p := range stale {
		p.close()
		a.log.Info("service proxy stopped", "service", p.name)
	}
}

// closeProxies stops every proxy when the agent stops.
func (a *Agent) closeProxies() {
	a.mu.Lock()
	ps := a.proxies
	a.proxies = map[string]*serviceProxy{}
	a.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// localAddr is where a pod's container port listens: the port the agent
// allocated for it, if it did (only pods this agent ran have one).
func (a *Agent) localAddr(ns, pod string, port int32) (string, bool) {
	local, ok := a.ports.lookup(fmt.Sprintf("%s/%d", podKey(ns, pod), port))
	if !ok {
		return "", false
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), true
}

// ServiceAddr is the local address where the agent proxies a Service port
// (named by its name, or its number), as a cluster IP would carry it; an
// error while the agent proxies no such port (yet).
func (a *Agent) ServiceAddr(namespace, service, port string) (string, error) {
	p, err := a.findProxy(namespace, service, port)
	if err != nil {
		return "", err
	}
	return p.Addr(), nil
}

// ServiceStats returns the counters of a Service port's proxy.
func (a *Agent) ServiceStats(namespace, service, port string) (ProxyStats, error) {
	p, err := a.findProxy(namespace, service, port)
	if err != nil {
		return ProxyStats{}, err
	}
	return p.Stats(), nil
}

func (a *Agent) findProxy(ns, svc, port string) (*serviceProxy, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prefix := ns + "/" + svc + "/"
	for k, p := range a.proxies {
		if strings.HasPrefix(k, prefix) && (p.portName == port || strings.TrimPrefix(k, prefix) == port) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("nodeagent: no proxy for port %q of service %s/%s", port, ns, svc)
}

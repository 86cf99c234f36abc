package nodeagent

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// processEnv is a container's environment: as NAME=value entries for the
// process, and as a map for $(NAME) expansion.
type processEnv struct {
	list []string
	vars map[string]string
}

func (e *processEnv) set(name, value string) {
	e.list = append(e.list, name+"="+value)
	e.vars[name] = value
}

// containerEnv resolves envFrom and env as the kubelet does (later entries
// win, $(NAME) refers to earlier ones), with container paths rewritten.
func (a *Agent) containerEnv(pod *corev1.Pod, c *corev1.Container, rw *Rewriter) (processEnv, error) {
	e := processEnv{vars: map[string]string{}}
	for _, from := range c.EnvFrom {
		data, err := a.envFromData(pod.Namespace, from)
		if err != nil {
			return e, err
		}
		for k, v := range data {
			e.set(from.Prefix+k, v)
		}
	}
	for _, v := range c.Env {
		value := Expand(v.Value, e.vars)
		if v.ValueFrom != nil {
			var err error
			if value, err = a.envValueFrom(pod, c, v.ValueFrom); err != nil {
				return e, fmt.Errorf("nodeagent: pod %s/%s env %s: %w", pod.Namespace, pod.Name, v.Name, err)
			}
		}
		e.set(v.Name, rw.String(value))
	}
	return e, nil
}

func (a *Agent) envFromData(ns string, from corev1.EnvFromSource) (map[string]string, error) {
	out := map[string]string{}
	switch {
	case from.ConfigMapRef != nil:
		cm, err := a.configMaps.ConfigMaps(ns).Get(from.ConfigMapRef.Name)
		if err != nil {
			return nil, fmt.Errorf("nodeagent: envFrom: %w", err)
		}
		for k, v := range cm.Data {
			out[k] = v
		}
	case from.SecretRef != nil:
		s, err := a.secrets.Secrets(ns).Get(from.SecretRef.Name)
		if err != nil {
			return nil, fmt.Errorf("nodeagent: envFrom: %w", err)
		}
		for k, v := range s.Data {
			out[k] = string(v)
		}
	}
	return out, nil
}

func (a *Agent) envValueFrom(pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource) (string, error) {
	switch {
	case src.FieldRef != nil:
		return podField(pod, src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil:
		return a.resourceField(c, src.ResourceFieldRef)
	case src.ConfigMapKeyRef != nil:
		cm, err := a.configMaps.ConfigMaps(pod.Namespace).Get(src.ConfigMapKeyRef.Name)
		if err != nil {
			return "", err
		}
		return cm.Data[src.ConfigMapKeyRef.Key], nil
	case src.SecretKeyRef != nil:
		s, err := a.secrets.Secrets(pod.Namespace).Get(src.SecretKeyRef.Name)
		if err != nil {
			return "", err
		}
		return string(s.Data[src.SecretKeyRef.Key]), nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

func podField(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP":
		return "127.0.0.1", nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// resourceField reads a container's request or limit; an unset limit is
// the node's allocatable amount, as in the kubelet.
func (a *Agent) resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	var list corev1.ResourceList
	var name corev1.ResourceName
	switch ref.Resource {
	case "limits.cpu", "limits.memory", "limits.ephemeral-storage":
		list, name = c.Resources.Limits, corev1.ResourceName(ref.Resource[len("limits."):])
	case "requests.cpu", "requests.memory", "requests.ephemeral-storage":
		list, name = c.Resources.Requests, corev1.ResourceName(ref.Resource[len("requests."):])
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	q, ok := list[name]
	if !ok {
		q = a.opts.Capacity[name]
	}
	div := ref.Divisor
	if div.IsZero() {
		return strconv.FormatInt(q.Value(), 10), nil
	}
	// Round up, as the kubelet's ExtractContainerResourceValue does.
	v := (q.MilliValue() + div.MilliValue() - 1) / div.MilliValue()
	return strconv.FormatInt(v, 10), nil
}

package nodeagent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podRuntime is the local incarnation of one pod (one UID): its
// directories, port map, and one process loop per container.
type podRuntime struct {
	key     string
	uid     types.UID
	dir     string
	created time.Time

	// volDirs maps each pod volume to its local directory.
	volDirs map[string]string
	// portAddrs is the PortsAnnotation content; hostPorts maps container
	// port numbers to local ports.
	portAddrs map[string]string
	hostPorts map[int32]int
	// podIP is the pod's IP in the API (see PodIPRange).
	podIP string

	containers []*container

	mu          sync.Mutex
	terminating bool
	// sourcesMeta and sourcesRound: the Pod labels and annotations at the
	// last refresh of its ConfigMap and Secret volumes, and the periodic
	// resync round (Agent.resyncs) it was in.
	sourcesMeta  string
	sourcesRound uint64
}

// startPod prepares the pod's directories, volumes and ports, and starts
// its containers.
func (a *Agent) startPod(pod *corev1.Pod) (*podRuntime, error) {
	if len(pod.Spec.InitContainers) > 0 {
		return nil, fmt.Errorf("nodeagent: pod %s/%s: init containers are not supported", pod.Namespace, pod.Name)
	}
	key := podKey(pod.Namespace, pod.Name)
	rt := &podRuntime{
		key: key, uid: pod.UID, created: time.Now(),
		dir: filepath.Join(a.opts.WorkDir, "pods", string(pod.UID)),
	}
	if err := a.preparePod(pod, rt); err != nil {
		return nil, err
	}
	for i := range pod.Spec.Containers {
		c, err := a.newContainer(pod, rt, &pod.Spec.Containers[i])
		if err != nil {
			return nil, err
		}
		rt.containers = append(rt.containers, c)
	}
	a.mu.Lock()
	a.runtimes[key] = rt
	a.mu.Unlock()
	for _, c := range rt.containers {
		go c.loop()
	}
	a.log.Info("pod started", "pod", key, "uid", pod.UID, "ports", rt.portAddrs)
	return rt, nil
}

func (a *Agent) preparePod(pod *corev1.Pod, rt *podRuntime) error {
	for _, d := range []string{"volumes", "logs"} {
		if err := os.MkdirAll(filepath.Join(rt.dir, d), 0o755); err != nil {
			return fmt.Errorf("nodeagent: %w", err)
		}
	}
	if err := a.volumeDirs(pod, rt); err != nil {
		return err
	}
	if err := a.allocatePorts(pod, rt); err != nil {
		return err
	}
	ip, err := a.ips.get()
	if err != nil {
		return err
	}
	rt.podIP = ip
	return a.writeSourceVolumes(pod, rt)
}

// volumeDirs decides where each volume lives locally. A claim that is not
// bound yet fails the sync, which is retried.
func (a *Agent) volumeDirs(pod *corev1.Pod, rt *podRuntime) error {
	rt.volDirs = map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(rt.dir, "volumes", v.Name)
		switch {
		case v.PersistentVolumeClaim != nil:
			d, err := a.claimDir(pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return err
			}
			dir = d
		case v.HostPath != nil:
			dir = v.HostPath.Path
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("nodeagent: volume %s: %w", v.Name, err)
		}
		rt.volDirs[v.Name] = dir
	}
	return nil
}

// allocatePorts maps every container port to a local port on 127.0.0.1.
func (a *Agent) allocatePorts(pod *corev1.Pod, rt *podRuntime) error {
	rt.portAddrs, rt.hostPorts = map[string]string{}, map[int32]int{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			port, err := a.ports.get(fmt.Sprintf("%s/%d", rt.key, p.ContainerPort))
			if err != nil {
				return err
			}
			rt.hostPorts[p.ContainerPort] = port
			rt.portAddrs[PortKey(p.Name, p.ContainerPort)] = fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	return nil
}

// mounts are the container's volume mounts as local paths.
func (rt *podRuntime) mounts(c *corev1.Container) []Mount {
	var out []Mount
	for _, m := range c.VolumeMounts {
		dir, ok := rt.volDirs[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" {
			dir = filepath.Join(dir, m.SubPath)
		}
		out = append(out, Mount{ContainerPath: m.MountPath, LocalPath: dir})
	}
	return out
}

// rewriterFor is the rewriter of the first container mounting volume, which
// decides how paths inside that volume's config files are translated.
func (a *Agent) rewriterFor(pod *corev1.Pod, rt *podRuntime, volume string) *Rewriter {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for _, m := range c.VolumeMounts {
			if m.Name == volume {
				return NewRewriter(rt.mounts(c), rt.hostPorts).WithPodDNS(a.podDNS(pod.Namespace))
			}
		}
	}
	return NewRewriter(nil, rt.hostPorts).WithPodDNS(a.podDNS(pod.Namespace))
}

// writeSourceVolumes writes the files of ConfigMap and Secret volumes,
// rewriting config files, and replaces only files whose content changed,
// atomically, as the kubelet's atomic writer does.
func (a *Agent) writeSourceVolumes(pod *corev1.Pod, rt *podRuntime) error {
	for _, v := range pod.Spec.Volumes {
		files, err := a.sourceFiles(pod.Namespace, v)
		if err != nil {
			return err
		}
		if files == nil {
			continue
		}
		rw := a.rewriterFor(pod, rt, v.Name)
		for name, content := range files {
			if isConfigFile(name) {
				if content, err = rw.YAML(content); err != nil {
					return fmt.Errorf("nodeagent: volume %s file %s: %w", v.Name, name, err)
				}
			}
			if err := writeIfChanged(filepath.Join(rt.volDirs[v.Name], name), content); err != nil {
				return err
			}
		}
	}
	return nil
}

// sourceFiles are the files of a ConfigMap or Secret volume (nil for other
// volume types), honouring items.
func (a *Agent) sourceFiles(ns string, v corev1.Volume) (map[string][]byte, error) {
	var data map[string][]byte
	var items []corev1.KeyToPath
	switch {
	case v.ConfigMap != nil:
		cm, err := a.configMaps.ConfigMaps(ns).Get(v.ConfigMap.Name)
		if err != nil {
			return nil, fmt.Errorf("nodeagent: volume %s: %w", v.Name, err)
		}
		data = map[string][]byte{}
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		for k, b := range cm.BinaryData {
			data[k] = b
		}
		items = v.ConfigMap.Items
	case v.Secret != nil:
		s, err := a.secrets.Secrets(ns).Get(v.Secret.SecretName)
		if err != nil {
			return nil, fmt.Errorf("nodeagent: volume %s: %w", v.Name, err)
		}
		data, items = s.Data, v.Secret.Items
	default:
		return nil, nil
	}
	if len(items) == 0 {
		return data, nil
	}
	out := map[string][]byte{}
	for _, it := range items {
		if b, ok := data[it.Key]; ok {
			out[it.Path] = b
		}
	}
	return out, nil
}

func writeIfChanged(path string, content []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	return nil
}

// terminate stops every container: SIGTERM, then SIGKILL after grace.
// Only the first call acts; later calls return at once.
func (rt *podRuntime) terminate(grace time.Duration) {
	rt.mu.Lock()
	first := !rt.terminating
	rt.terminating = true
	rt.mu.Unlock()
	if !first {
		return
	}
	var wg sync.WaitGroup
	for _, c := range rt.containers {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(grace) }()
	}
	wg.Wait()
}

// exited reports whether every container's process loop has ended.
func (rt *podRuntime) exited() bool {
	for _, c := range rt.containers {
		select {
		case <-c.done:
		default:
			return false
		}
	}
	return true
}

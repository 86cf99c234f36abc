package load

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A CPU limit per broker process (LOAD_CPU_LIMIT, in cores): each process
// a benchmark starts runs in a cgroup of its own whose CFS quota is that
// many cores, exactly how Kubernetes enforces a container's
// resources.limits.cpu. A single node and each member of a cluster then
// get the same CPU, as on nodes of the same size, instead of all of them
// sharing the machine's cores: on this 2-core machine a 3-member cluster
// otherwise runs three stores on the cores one single node has to itself.

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// ParseCPULimit reads LOAD_CPU_LIMIT: cores, a positive decimal ("0.5",
// "1"), or "" for none (0).
func ParseCPULimit(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0.01 && v <= 1024) {
		return 0, fmt.Errorf("CPU limit %q: want cores between 0.01 and 1024 (e.g. 0.5)", s)
	}
	return v, nil
}

// cpuLimit is LOAD_CPU_LIMIT (TestMain refuses a value ParseCPULimit does
// not read).
func cpuLimit() float64 {
	v, _ := ParseCPULimit(os.Getenv("LOAD_CPU_LIMIT"))
	return v
}

// cpuCgroup is a cgroup holding one process under a CPU quota.
type cpuCgroup struct {
	dir string
}

// limitCPU moves process pid into a new cgroup named after it whose quota
// is cores per 100 ms period: the cgroup v1 cpu controller, or cgroup v2's
// cpu.max where the unified hierarchy is the only one.
func limitCPU(pid int, cores float64) (*cpuCgroup, error) {
	const period = 100000 // µs
	quota := int64(cores * period)
	name := fmt.Sprintf("bollard-load-%d", pid)
	var dir string
	var files [][2]string // file, value
	switch {
	case exists(filepath.Join(cgroupRoot, "cpu", "cpu.cfs_quota_us")):
		dir = filepath.Join(cgroupRoot, "cpu", name)
		files = [][2]string{{"cpu.cfs_period_us", strconv.Itoa(period)}, {"cpu.cfs_quota_us", strconv.FormatInt(quota, 10)}}
	case exists(filepath.Join(cgroupRoot, "cgroup.controllers")):
		ctl, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"))
		if err != nil || !strings.Contains(" "+strings.TrimSpace(string(ctl))+" ", " cpu ") {
			if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				return nil, fmt.Errorf("load: enabling the cpu controller: %w", err)
			}
		}
		dir = filepath.Join(cgroupRoot, name)
		files = [][2]string{{"cpu.max", fmt.Sprintf("%d %d", quota, period)}}
	default:
		return nil, errors.New("load: LOAD_CPU_LIMIT needs a cgroup cpu controller under " + cgroupRoot)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("load: LOAD_CPU_LIMIT (needs root): %w", err)
	}
	g := &cpuCgroup{dir: dir}
	files = append(files, [2]string{"cgroup.procs", strconv.Itoa(pid)})
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			_ = g.remove()
			return nil, fmt.Errorf("load: LOAD_CPU_LIMIT: %s: %w", f[0], err)
		}
	}
	return g, nil
}

// remove deletes the cgroup once its process has exited.
func (g *cpuCgroup) remove() error {
	if g == nil {
		return nil
	}
	return os.Remove(g.dir)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

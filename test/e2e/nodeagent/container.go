package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Crash-loop back-off: the first restart is immediate, then 1 s doubling
// up to 30 s; a run longer than backoffReset starts over.
const (
	backoffStart = time.Second
	backoffMax   = 30 * time.Second
	backoffReset = 10 * time.Second
)

// container runs one container of a pod as a local process, restarting it
// by the pod's restart policy.
type container struct {
	a      *Agent
	rt     *podRuntime
	spec   corev1.Container
	policy corev1.RestartPolicy

	exe     string
	args    []string
	env     []string
	workDir string
	logPath string
	ports   map[string]int // container port name or number -> local port

	mu       sync.Mutex
	stopped  bool
	pid      int
	state    corev1.ContainerState
	last     corev1.ContainerState
	restarts int32
	ready    bool
	started  bool

	stopReq chan struct{}
	done    chan struct{}
}

func (a *Agent) newContainer(pod *corev1.Pod, rt *podRuntime, spec *corev1.Container) (*container, error) {
	exe, err := a.opts.Resolve(spec)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: pod %s container %s: %w", rt.key, spec.Name, err)
	}
	rw := NewRewriter(rt.mounts(spec), rt.hostPorts)
	env, err := a.containerEnv(pod, spec, rw)
	if err != nil {
		return nil, err
	}
	c := &container{
		a: a, rt: rt, spec: *spec, policy: pod.Spec.RestartPolicy, exe: exe,
		env: append(append(os.Environ(), a.opts.Env...), env.list...), workDir: rt.dir,
		logPath: fmt.Sprintf("%s/logs/%s.log", rt.dir, spec.Name),
		ports:   map[string]int{},
		state:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		stopReq: make(chan struct{}), done: make(chan struct{}),
	}
	if spec.WorkingDir != "" {
		c.workDir = rw.String(spec.WorkingDir)
	}
	var argv []string
	if len(spec.Command) > 1 {
		argv = append(argv, spec.Command[1:]...)
	}
	for _, s := range append(argv, spec.Args...) {
		c.args = append(c.args, rw.String(Expand(s, env.vars)))
	}
	if c.args, err = a.podDNS(pod.Namespace).ClusterArgs(c.args); err != nil {
		return nil, err
	}
	for _, p := range spec.Ports {
		c.ports[PortKey(p.Name, p.ContainerPort)] = rt.hostPorts[p.ContainerPort]
		c.ports[strconv.Itoa(int(p.ContainerPort))] = rt.hostPorts[p.ContainerPort]
	}
	return c, nil
}

func (c *container) notify() { c.a.queue.Add(c.rt.key) }

// loop runs the process until it must not be restarted or stop is called.
func (c *container) loop() {
	// The pod's sync must see the container done: terminated() notified
	// before done was closed, so a terminating pod's sync could find the
	// process not yet exited and then wait for an unrelated event (41 s
	// once, until the periodic resync).
	defer c.notify()
	defer close(c.done)
	backoff := time.Duration(0)
	for {
		began := time.Now()
		code, ok := c.runOnce()
		if !ok || !restartWanted(c.policy, code) {
			return
		}
		if time.Since(began) > backoffReset {
			backoff = 0
		}
		if !c.waitBackoff(backoff) {
			return
		}
		backoff = min(max(2*backoff, backoffStart), backoffMax)
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
	}
}

func restartWanted(p corev1.RestartPolicy, exitCode int32) bool {
	switch p {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// waitBackoff reports CrashLoopBackOff for d; false means stop was called.
func (c *container) waitBackoff(d time.Duration) bool {
	if d > 0 {
		c.mu.Lock()
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off %s restarting failed container", d),
		}}
		c.mu.Unlock()
		c.notify()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stopReq:
		return false
	}
}

// runOnce starts the process and waits for it. ok is false when stop was
// requested before it could start.
func (c *container) runOnce() (exitCode int32, ok bool) {
	cmd, err := c.start()
	if cmd == nil && err == nil {
		return 0, false
	}
	if err != nil {
		c.terminated(128, "StartError", err.Error(), time.Now())
		return 128, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	probesDone := make(chan struct{})
	go func() { defer close(probesDone); c.probe(ctx) }()
	werr := cmd.Wait()
	cancel()
	<-probesDone
	code, reason := exitStatus(cmd, werr)
	c.terminated(code, reason, "", time.Now())
	c.a.log.Info("container exited", "pod", c.rt.key, "container", c.spec.Name, "exitCode", code,
		"reason", reason)
	return code, true
}

// start launches the process in its own process group, unless stop was
// requested; it returns (nil, nil) in that case.
func (c *container) start() (*exec.Cmd, error) {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: log file: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(c.exe, c.args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = c.env, c.workDir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, nil
	}
	fmt.Fprintf(logf, "--- nodeagent: starting %s %q (restart %d)\n", c.exe, c.args, c.restarts)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nodeagent: starting %s: %w", c.exe, err)
	}
	c.pid = cmd.Process.Pid
	c.ready, c.started = false, c.spec.StartupProbe == nil
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: nowSec()}}
	c.notify()
	return cmd, nil
}

func exitStatus(cmd *exec.Cmd, err error) (int32, string) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 128, "Error"
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		return 128 + int32(ws.Signal()), "Error"
	case cmd.ProcessState.ExitCode() == 0:
		return 0, "Completed"
	}
	return int32(cmd.ProcessState.ExitCode()), "Error"
}

func (c *container) terminated(code int32, reason, msg string, at time.Time) {
	c.mu.Lock()
	var startedAt metav1.Time
	if c.state.Running != nil {
		startedAt = c.state.Running.StartedAt
	}
	c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: msg, StartedAt: startedAt, FinishedAt: metav1.NewTime(at.Truncate(time.Second)),
		ContainerID: c.containerID(),
	}}
	c.last = c.state
	c.pid, c.ready = 0, false
	c.mu.Unlock()
	c.notify()
}

// containerID names one run of the container: it changes on every
// restart, as a runtime's container ID does. Callers hold c.mu.
func (c *container) containerID() string {
	return fmt.Sprintf("bollard-e2e://%s-%d-%d", c.rt.uid, c.restarts, c.pid)
}

// signal sends sig to the process group of the running process.
func (c *container) signal(sig syscall.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pid <= 0 {
		return false
	}
	return syscall.Kill(-c.pid, sig) == nil
}

// stop keeps the process from restarting, sends SIGTERM, and SIGKILL after
// grace; it returns once the loop ended.
func (c *container) stop(grace time.Duration) {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.stopReq)
	}
	c.mu.Unlock()
	c.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-t.C:
	}
	c.a.log.Warn("grace period over, killing", "pod", c.rt.key, "container", c.spec.Name, "grace", grace)
	c.signal(syscall.SIGKILL)
	<-c.done
}

// status is the container's ContainerStatus.
func (c *container) status() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: "bollard-e2e://" + c.exe,
		Ready: c.ready, Started: ptr.To(c.started && c.state.Running != nil), RestartCount: c.restarts,
		State: c.state, LastTerminationState: c.last,
	}
	if c.state.Running != nil {
		s.ContainerID = c.containerID()
	}
	if c.state.Terminated != nil {
		s.LastTerminationState = corev1.ContainerState{} // c.last is the current state
	}
	return s
}

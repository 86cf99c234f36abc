package controllers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/poll"
)

// TestRenderedMemberStarts runs the real bollard binary as the first
// member of the golden 3-member broker: the ConfigMap's file and the pod
// template's arguments as the operator renders them, with what Kubernetes
// would fill in (the downward API's pod name and IP, the mounted files'
// paths, loopback ports). The member must start, bootstrap the three
// members, fail /readyz (it cannot lead alone) and answer GET /v1/cluster
// in the form HTTPClusterAdmin reads. It checks the operator's rendering
// against the broker's own flag and file parsing, not a copy of them.
func TestRenderedMemberStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cmd/bollard")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bollard")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bollard-io/bollard/cmd/bollard").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/bollard: %v\n%s", err, out)
	}
	b, cfg := fixtureBroker(t, "cluster")
	mqtt, admin, repl := freePort(t), freePort(t), freePort(t)
	cfg.Listeners.MQTT.Address = mqtt
	cfg.Admin.Address = admin
	cfg.Admin.TokenFile = writeFile(t, dir, "token", testToken)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Auth.UsersFile = writeFile(t, dir, "users", "")
	file, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeFile(t, dir, "bollard.yaml", string(file))
	secret := writeFile(t, dir, "secret", strings.Repeat("s3cret-", 8))

	sts := resources.StatefulSet(b, cfg, resources.Params{DefaultImage: "unused", ClusterBootstrap: true})
	_, replPort, _ := net.SplitHostPort(repl)
	expand := strings.NewReplacer(
		"$(BOLLARD_POD_NAME)", resources.MemberName(b, 0),
		fmt.Sprintf("[$(BOLLARD_POD_IP)]:%d", resources.ReplicationPort), "[127.0.0.1]:"+replPort,
		resources.ConfigDir+"/"+resources.ConfigFile, cfgPath,
		resources.ClusterSecretFile, secret,
	)
	var args []string
	for _, a := range sts.Spec.Template.Spec.Containers[0].Args {
		args = append(args, expand.Replace(a))
	}
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	host, adminPort, _ := net.SplitHostPort(admin)
	port, err := strconv.Atoi(adminPort)
	if err != nil {
		t.Fatal(err)
	}
	h := HTTPClusterAdmin{Port: port}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: resources.MemberName(b, 0)}, Status: corev1.PodStatus{PodIP: host}}
	var v adminapi.ClusterStatus
	// A minute: a race-built member on a loaded 2-core CI machine once took
	// over 20 s to open its stores and answer.
	err = poll.Until(context.Background(), time.Minute, 50*time.Millisecond, func(ctx context.Context) error {
		var err error
		v, err = h.ClusterStatus(ctx, pod, testToken)
		return err
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("the rendered member does not answer GET /v1/cluster: %v\n%s", err, log)
	}
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz of a member that cannot lead = %s, want 503: only the leader may be Ready", resp.Status)
	}
	if v.ID != resources.MemberName(b, 0) || len(v.Members) != 3 || v.Role == "leader" || v.Serving {
		t.Errorf("view %+v: want cluster-0 not serving, with the 3 rendered members", v)
	}
	for i, m := range v.Members {
		want := resources.ClusterMember(b, i)
		if m.ID != want.ID || m.RaftAddress != want.RaftAddress || !m.Voter {
			t.Errorf("member %d = %+v, want the voter %+v", i, m, want)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

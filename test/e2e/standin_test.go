//go:build e2e

package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// standinMain is the stand-in container process: it copies --in to --out
// (proving ConfigMap and PVC mounts), serves /readyz on --admin-listen,
// and exits 0 on SIGTERM.
func standinMain(args []string) int {
	fs := flag.NewFlagSet("standin", flag.ContinueOnError)
	admin := fs.String("admin-listen", "", "admin address")
	in := fs.String("in", "", "file to copy")
	out := fs.String("out", "", "where to copy it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := os.ReadFile(*in)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 1
	}
	ln, err := net.Listen("tcp", *admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("standin: SIGTERM, exiting")
	srv.Close()
	return 0
}

// TestStatefulSetStandIn proves the cluster and the node agent without the
// operator: a StatefulSet's pod is scheduled, its claim provisioned and
// bound, its process run with ConfigMap and PVC mounts and remapped ports,
// reported Ready from its probe, restarted after kill -9, and stopped with
// SIGTERM when deleted.
func TestStatefulSetStandIn(t *testing.T) {
	ns := namespace(t, "standin")
	kube := testCluster.Kube
	ctx := t.Context()
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "msg"},
		Data:       map[string]string{"msg": "hello from a ConfigMap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, standinStatefulSet(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := readyPod(t, ns, "standin-0", 60*time.Second)
	resp, err := http.Get("http://" + portAddr(t, pod, "admin") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checkClaimFile(t, ns, "data-standin-0", "copy-standin-0", "hello from a ConfigMap")

	if err := testCluster.Agent.KillPod(ns, "standin-0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "restart after kill -9", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "standin-0", metav1.GetOptions{})
		return err == nil && restartCount(p) == 1 && podReady(p), err
	})

	logPath := testCluster.Agent.LogPath(ns, "standin-0", "standin")
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "standin-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "pod re-created by the StatefulSet", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "standin-0", metav1.GetOptions{})
		return err == nil && p.UID != pod.UID && podReady(p), err
	})
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "standin: SIGTERM, exiting\n") {
		t.Errorf("the deleted pod's process did not get SIGTERM (err %v):\n%s", err, b)
	}
}

func checkClaimFile(t *testing.T, ns, claim, file, want string) {
	t.Helper()
	pvc, err := testCluster.Kube.CoreV1().PersistentVolumeClaims(ns).Get(t.Context(), claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := testCluster.Kube.CoreV1().PersistentVolumes().Get(t.Context(), pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(pv.Spec.HostPath.Path, file))
	if err != nil || string(b) != want {
		t.Errorf("claim %s file %s = %q, %v; want %q", claim, file, b, err, want)
	}
}

func standinStatefulSet() *appsv1.StatefulSet {
	labels := map[string]string{"app": "standin"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "standin"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(1)), ServiceName: "standin",
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(5)),
					Containers:                    []corev1.Container{standinContainer()},
					Volumes: []corev1.Volume{{Name: "msg", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "msg"}},
					}}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("64Mi"),
					}},
				},
			}},
		},
	}
}

func standinContainer() corev1.Container {
	return corev1.Container{
		Name: "standin", Image: standinImage,
		Command: []string{"standin"},
		Args:    []string{"--admin-listen", ":8080", "--in", "/etc/standin/msg", "--out", "/data/copy-$(POD_NAME)"},
		Env: []corev1.EnvVar{
			{Name: standinEnv, Value: "1"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		},
		Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 8080}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "msg", MountPath: "/etc/standin"},
			{Name: "data", MountPath: "/data"},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/readyz", Port: intstr.FromString("admin"),
			}},
			PeriodSeconds: 5,
		},
	}
}

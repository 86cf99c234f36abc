// Command bollard-operator runs the MQTTBroker controller: flag parsing and
// wiring only; the logic lives in package controllers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// Set at build time: -ldflags "-X main.version=v1.2.3 -X main.defaultImage=...".
// Without defaultImage, brokers run the image of the operator's own
// release (one image holds both binaries).
var (
	version      = "dev"
	defaultImage = ""
)

const imageRepo = "ghcr.io/bollard-io/bollard"

func brokerImageDefault() string {
	if defaultImage != "" {
		return defaultImage
	}
	return imageRepo + ":" + version
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bollard-operator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr  = flag.String("metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (\"0\" disables it)")
		probeAddr    = flag.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
		leaderElect  = flag.Bool("leader-elect", false, "elect a leader among operator replicas, so only one reconciles")
		leaderNS     = flag.String("leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
		watchNS      = flag.String("watch-namespaces", "", "comma-separated namespaces to watch (default: all)")
		brokerImage  = flag.String("broker-image", brokerImageDefault(), "broker image for MQTTBrokers that do not set spec.image")
		statusPeriod = flag.Duration("broker-status-period", controllers.DefaultStatusRefresh,
			"how often to ask Ready brokers for their figures (status.sessions, status.queuedMessages, status.stats)")
		statusMin = flag.Duration("broker-status-min-interval", controllers.DefaultStatusMinInterval,
			"ask one broker pod for its status at most this often, however many events come, unless a configuration generation is awaited")
		netPolicies = flag.Bool("network-policies", true, "create a NetworkPolicy per MQTTBroker that admits the admin port only from "+
			"the operator's namespace and Prometheus (spec.networkPolicy.enabled can still turn it off per broker)")
		operatorNS = flag.String("operator-namespace", "", "namespace of the operator's pods, admitted to the brokers' admin port "+
			"(default: $POD_NAMESPACE, else the service account's namespace)")
		promNSSel = flag.String("prometheus-namespace-selector", "",
			"label selector of the namespaces whose Prometheus may scrape brokers (default \"\": every namespace)")
		promPodSel = flag.String("prometheus-pod-selector", "app.kubernetes.io/name=prometheus",
			"label selector of the Prometheus pods that may scrape brokers (\"\": every pod of the selected namespaces)")
		logLevel     = flag.String("log-level", "info", "log level: debug, info, warn or error")
		printVersion = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *printVersion {
		fmt.Println(version)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(splitList(*watchNS)),
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        leaseName,
		LeaderElectionNamespace: *leaderNS,
		// Stepping down releases the Lease at once, so a rolling update of
		// the operator does not wait out the lease duration.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if *statusPeriod < time.Second {
		return fmt.Errorf("--broker-status-period %s: must be at least 1s", *statusPeriod)
	}
	if *statusMin < time.Second || *statusMin > *statusPeriod {
		return fmt.Errorf("--broker-status-min-interval %s: must be at least 1s and at most --broker-status-period (%s)", *statusMin, *statusPeriod)
	}
	np, err := networkPolicyDefaults(!*netPolicies, *operatorNS, *promNSSel, *promPodSel)
	if err != nil {
		return err
	}
	r := &controllers.MQTTBrokerReconciler{DefaultImage: *brokerImage, StatusRefresh: *statusPeriod,
		StatusMinInterval: *statusMin, NetworkPolicy: np}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if *leaderElect {
		if lo := newLeaseOwner(mgr.GetClient(), *leaderNS, leaseName); lo != nil {
			if err := mgr.Add(lo); err != nil {
				return err
			}
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.Info("starting", "version", version, "brokerImage", *brokerImage, "watchNamespaces", *watchNS,
		"networkPolicies", *netPolicies, "operatorNamespace", np.OperatorNamespace)
	return mgr.Start(ctx)
}

// leaseName is the leader election Lease.
const leaseName = "bollard-operator.mqtt.bollard.io"

// saNamespaceFile holds the namespace of the pod's service account.
const saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// podNamespace is the operator pod's namespace: $POD_NAMESPACE, else its
// service account's, else "".
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(saNamespaceFile); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// networkPolicyDefaults turns the NetworkPolicy flags into the builder's
// defaults.
func networkPolicyDefaults(disabled bool, operatorNS, nsSel, podSel string) (resources.NetworkPolicyDefaults, error) {
	d := resources.NetworkPolicyDefaults{Disabled: disabled, OperatorNamespace: operatorNS}
	if d.OperatorNamespace == "" {
		d.OperatorNamespace = podNamespace()
	}
	if nsSel == "" && podSel == "" {
		return d, errors.New("--prometheus-namespace-selector and --prometheus-pod-selector: " +
			"at least one must be set, or every pod of the cluster could reach the brokers' admin port")
	}
	ns, err := metav1.ParseToLabelSelector(nsSel)
	if err != nil {
		return d, fmt.Errorf("--prometheus-namespace-selector: %w", err)
	}
	d.Prometheus.NamespaceSelector = ns
	if podSel != "" {
		pod, err := metav1.ParseToLabelSelector(podSel)
		if err != nil {
			return d, fmt.Errorf("--prometheus-pod-selector: %w", err)
		}
		d.Prometheus.PodSelector = pod
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

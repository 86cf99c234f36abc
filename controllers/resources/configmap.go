package resources

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
)

// drainMargin is how much of the termination grace period is kept free
// after the broker's drain timeout, for the store to flush and close.
const drainMargin = 10 * time.Second

// BrokerConfig renders the broker configuration file for b, on top of the
// broker's own defaults, merges spec.config over it (applyConfigOverlay),
// and validates it with the broker's rules. An error means the spec passed
// the CRD's validation but not the broker's: the reconciler reports it and
// does not roll the broker onto it.
func BrokerConfig(b *v1alpha1.MQTTBroker) (*config.Config, error) {
	s := &b.Spec
	c := config.Default()
	c.ConfigGeneration = b.Generation
	renderListeners(b, c)
	c.Admin.Address = listenAddr(v1alpha1.AdminPort)
	c.Admin.TokenFile = AdminTokenFile
	c.Admin.MetricsTopQueues = int(b.Spec.Metrics.TopQueues)
	c.DataDir = DataDir
	c.Durability.Mode = s.Persistence.Durability
	if s.Persistence.SyncInterval != nil {
		c.Durability.Interval = config.Duration(s.Persistence.SyncInterval.Duration)
	}
	if v := s.Persistence.EarlyDelivery; v != nil {
		c.Durability.EarlyDelivery = ptr.To(*v)
	}
	c.Sessions.MaxSessionExpiry = config.Duration(s.Sessions.MaxSessionExpiry.Duration)
	c.Sessions.DefaultSessionExpiry = config.Duration(s.Sessions.DefaultSessionExpiry.Duration)
	setInt(&c.Sessions.MaxSessions, s.Sessions.MaxSessions)
	setInt(&c.Sessions.MaxSessionsPerPrincipal, s.Sessions.MaxSessionsPerPrincipal)
	c.Queues.MaxQueuedMessages = s.Queues.MaxQueuedMessages
	c.Queues.MaxQueuedBytes = s.Queues.MaxQueuedBytes.Value()
	c.Queues.OverflowPolicy = s.Queues.OverflowPolicy
	c.Queues.QueueQoS0 = s.Queues.QueueQoS0
	c.Queues.MaxStoreBytes = s.Persistence.Size.Value() / 10 * 9
	setBytes(&c.Queues.MinVolumeFreeBytes, s.Queues.MinVolumeFreeBytes)
	c.Queues.Policies = renderPolicies(s.Queues.Policies)
	renderLimits(s.Limits, c)
	c.Limits.MemoryLimit = softMemoryLimit(s.Resources)
	renderAuth(s.Auth, c)
	renderLogin(s.Auth.Login, c)
	c.LogLevel = s.LogLevel
	if s.TerminationGracePeriodSeconds != nil {
		c.DrainTimeout = config.Duration(time.Duration(*s.TerminationGracePeriodSeconds)*time.Second - drainMargin)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("resources: rendered broker config is invalid: %w", err)
	}
	c, err := applyConfigOverlay(b, c)
	if err != nil {
		return nil, err
	}
	if err := ValidateCluster(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// softMemoryLimit is the broker's soft Go memory limit: 80% of the
// container's memory limit, so that the garbage collector returns memory
// well before the kernel's OOM killer would act; 0 (the runtime's default)
// when the container has no memory limit.
func softMemoryLimit(r corev1.ResourceRequirements) int64 {
	lim, ok := r.Limits[corev1.ResourceMemory]
	if !ok || lim.Value() <= 0 {
		return 0
	}
	return lim.Value() / 5 * 4
}

func listenAddr(port int32) string { return ":" + strconv.Itoa(int(port)) }

func renderListeners(b *v1alpha1.MQTTBroker, c *config.Config) {
	l := b.Spec.Listeners
	c.Listeners.MQTT.Address = ""
	if mqttEnabled(b) {
		c.Listeners.MQTT.Address = listenAddr(int32(l.MQTT.Port))
	}
	if t := l.TLS; t != nil {
		c.Listeners.TLS = config.TLSListener{
			Address:  listenAddr(int32(t.Port)),
			CertFile: TLSDir + "/" + corev1.TLSCertKey,
			KeyFile:  TLSDir + "/" + corev1.TLSPrivateKeyKey,
		}
		if t.RequireClientCert {
			c.Listeners.TLS.ClientCAFile = TLSDir + "/" + TLSCAKey
			c.Listeners.TLS.RequireClientCert = true
		}
	}
	if w := l.WebSocket; w != nil {
		c.Listeners.WebSocket = config.WebSocketListener{Address: listenAddr(int32(w.Port)), Path: w.Path}
	}
}

func renderLimits(l v1alpha1.Limits, c *config.Config) {
	if l.MaxConnections != nil {
		c.Limits.MaxConnections = int(*l.MaxConnections)
	}
	if l.MaxInflight > 0 {
		c.Limits.MaxInflight = uint16(min(l.MaxInflight, 65535))
	}
	if l.MaxPacketSize > 0 {
		c.Limits.MaxPacketSize = uint32(l.MaxPacketSize)
	}
	if l.MaxSubscriptionsPerClient > 0 {
		c.Limits.MaxSubscriptionsPerClient = int(l.MaxSubscriptionsPerClient)
	}
	setDuration(&c.Limits.MaxKeepAlive, l.MaxKeepAlive)
	setInt(&c.Limits.MaxTopicLength, l.MaxTopicLength)
	setInt(&c.Limits.MaxTopicLevels, l.MaxTopicLevels)
	setInt(&c.Limits.MaxUserProperties, l.MaxUserProperties)
	if l.MaxUserPropertyBytes != nil {
		c.Limits.MaxUserPropertyBytes = int(l.MaxUserPropertyBytes.Value())
	}
	setInt(&c.Limits.MaxRetainedMessages, l.MaxRetainedMessages)
	setBytes(&c.Limits.MaxRetainedBytes, l.MaxRetainedBytes)
}

// renderLogin sets the login fields the spec sets; the others keep the
// broker's defaults, which also decide how the fields fit together.
func renderLogin(l v1alpha1.Login, c *config.Config) {
	setInt(&c.Login.MaxConcurrentChecks, l.MaxConcurrentChecks)
	setDuration(&c.Login.CheckWait, l.CheckWait)
	setInt(&c.Login.FailuresBeforeBackoff, l.FailuresBeforeBackoff)
	setDuration(&c.Login.FailureBackoff, l.FailureBackoff)
	setDuration(&c.Login.FailureBackoffMax, l.FailureBackoffMax)
	setInt(&c.Login.BackoffAddresses, l.BackoffAddresses)
}

// setInt, setBytes and setDuration copy an optional spec field onto the
// broker's default: unset (nil) keeps the default, 0 is a value of its own
// (often "no limit").
func setInt(dst *int, v *int32) {
	if v != nil {
		*dst = int(*v)
	}
}

func setBytes(dst *int64, q *resource.Quantity) {
	if q != nil {
		*dst = q.Value()
	}
}

func setDuration(dst *config.Duration, d *metav1.Duration) {
	if d != nil {
		*dst = config.Duration(d.Duration)
	}
}

// renderPolicies copies spec.queues.policies in order; a field left unset
// stays unset, so the broker applies its broker-wide value (one place
// decides what a policy inherits: broker/config).
func renderPolicies(ps []v1alpha1.QueuePolicy) []config.QueuePolicy {
	if len(ps) == 0 {
		return nil
	}
	out := make([]config.QueuePolicy, len(ps))
	for i, p := range ps {
		q := config.QueuePolicy{Name: p.Name, ClientID: p.ClientID, Principal: p.Principal, TopicFilter: p.TopicFilter,
			OverflowPolicy: p.OverflowPolicy}
		if p.MaxQueuedMessages != nil {
			q.MaxQueuedMessages = ptrTo(*p.MaxQueuedMessages)
		}
		if p.MaxQueuedBytes != nil {
			q.MaxQueuedBytes = ptrTo(p.MaxQueuedBytes.Value())
		}
		if p.QueueQoS0 != nil {
			q.QueueQoS0 = ptrTo(*p.QueueQoS0)
		}
		if p.MaxSessionExpiry != nil {
			q.MaxSessionExpiry = ptrTo(config.Duration(p.MaxSessionExpiry.Duration))
		}
		if p.StoreBudgetPercent != nil {
			q.StoreBudgetPercent = ptrTo(*p.StoreBudgetPercent)
		}
		out[i] = q
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

func renderAuth(a v1alpha1.Auth, c *config.Config) {
	anon := a.AllowAnonymous
	c.Auth.AllowAnonymous = &anon
	if a.UsersSecretRef != nil {
		c.Auth.UsersFile = UsersDir + "/" + usersKey(a.UsersSecretRef)
	}
	for _, r := range a.ACL {
		c.Auth.ACL = append(c.Auth.ACL, config.ACLRule{User: r.User, Topic: r.Topic, Access: r.Access})
	}
}

func usersKey(ref *v1alpha1.SecretKeyRef) string {
	if ref.Key == "" {
		return "users"
	}
	return ref.Key
}

// ConfigMap holds the rendered configuration file, mounted as a directory
// (not a subPath) so that the kubelet updates it in place and the broker
// reloads hot fields without a restart.
func ConfigMap(b *v1alpha1.MQTTBroker, c *config.Config) (*corev1.ConfigMap, error) {
	data, err := config.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("resources: %w", err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: objectMeta(b, ConfigMapName(b)),
		Data:       map[string]string{ConfigFile: string(data)},
	}
	cm.Annotations = map[string]string{ConfigGenerationAnnotation: strconv.FormatInt(c.ConfigGeneration, 10)}
	return cm, nil
}

// ConfigMapFor renders b's configuration and its ConfigMap in one step.
func ConfigMapFor(b *v1alpha1.MQTTBroker) (*corev1.ConfigMap, error) {
	c, err := BrokerConfig(b)
	if err != nil {
		return nil, err
	}
	return ConfigMap(b, c)
}

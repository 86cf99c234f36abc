package resources

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// AdminTokenKey is the key of the token in the admin token Secret.
const AdminTokenKey = "token"

// AdminTokenFile is where the broker reads its admin token.
const AdminTokenFile = AdminTokenDir + "/" + AdminTokenKey

// AdminTokenSecret holds the bearer token of the broker's admin API
// (/v1/*): the broker reads it from the mounted file (admin.tokenFile) and
// the operator presents it when it asks the broker for its status. The
// reconciler generates token once, randomly, and never rewrites an
// existing Secret's token; the Secret is owned by the MQTTBroker, so it
// goes with it.
func AdminTokenSecret(b *v1alpha1.MQTTBroker, token string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(b, AdminTokenSecretName(b)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{AdminTokenKey: []byte(token)},
	}
}

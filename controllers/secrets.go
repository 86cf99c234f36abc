package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/controllers/resources"
)

// secretIndex indexes MQTTBrokers by the names of the Secrets they
// reference, so that a Secret event finds its brokers without a scan.
const secretIndex = "spec.secretNames"

// secretNames lists the Secrets b references.
func secretNames(b *v1alpha1.MQTTBroker) []string {
	var names []string
	if t := b.Spec.Listeners.TLS; t != nil {
		names = append(names, t.SecretName)
	}
	if u := b.Spec.Auth.UsersSecretRef; u != nil {
		names = append(names, u.Name)
	}
	return names
}

func indexSecretNames(o client.Object) []string {
	return secretNames(o.(*v1alpha1.MQTTBroker))
}

// brokersForSecret maps a Secret event to the brokers that reference it.
func (r *MQTTBrokerReconciler) brokersForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.MQTTBrokerList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretIndex: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// checkSecrets reads the referenced Secrets (directly: the cache holds
// only their metadata), reports missing ones, and digests the TLS Secret
// so that a renewed certificate rolls the pod (the broker reads it at
// start). The users file is hot: the kubelet refreshes the mounted Secret
// and the broker reloads it, so its content is not digested.
func (r *MQTTBrokerReconciler) checkSecrets(ctx context.Context, p *pass) error {
	b := p.broker
	if t := b.Spec.Listeners.TLS; t != nil {
		keys := []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey}
		if t.RequireClientCert {
			keys = append(keys, resources.TLSCAKey)
		}
		s, err := r.secret(ctx, p, t.SecretName, "spec.listeners.tls.secretName", keys)
		if err != nil {
			return err
		}
		p.params.TLSSecretHash = "missing"
		if s != nil {
			p.params.TLSSecretHash = digestSecret(s, keys)
		}
	}
	if u := b.Spec.Auth.UsersSecretRef; u != nil {
		key := u.Key
		if key == "" {
			key = "users"
		}
		s, err := r.secret(ctx, p, u.Name, "spec.auth.usersSecretRef", []string{key})
		if err != nil {
			return err
		}
		if s != nil && s.Data[key] != nil {
			r.checkUsers(p, s, key, s.Data[key])
		}
	}
	return nil
}

// checkUsers reports a users file the broker would refuse, with the
// broker's own parser (broker/access): a running broker keeps its previous
// users, a starting one does not start. The message names line numbers,
// never their content.
func (r *MQTTBrokerReconciler) checkUsers(p *pass, s *corev1.Secret, key string, data []byte) {
	_, bad := access.ParseUsersFile(data)
	if len(bad) == 0 {
		return
	}
	msg := fmt.Sprintf("Secret %s (spec.auth.usersSecretRef) key %q: %s: every line must be \"username:bcrypt-hash\"; "+
		"the broker refuses this file (a running broker keeps its previous users, a starting one fails)",
		s.Name, key, strings.TrimPrefix(access.UsersFileError(bad).Error(), access.ErrUsersFile.Error()+": "))
	p.problem(v1alpha1.ReasonInvalidUsers, "%s", msg)
	r.event(p.broker, s, true, EventInvalidUsers, "Check", "%s", msg)
}

// secret reads a referenced Secret and checks it has keys. A missing
// Secret or key is a problem, not an error: retrying will not help until
// someone creates it, and the Secret watch brings the broker back then.
func (r *MQTTBrokerReconciler) secret(ctx context.Context, p *pass, name, field string, keys []string) (*corev1.Secret, error) {
	b := p.broker
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		msg := fmt.Sprintf("Secret %s (%s) not found: the broker pod cannot start until it exists", name, field)
		p.problem(v1alpha1.ReasonSecretNotFound, "%s", msg)
		r.event(b, nil, true, EventSecretNotFound, "Check", "%s", msg)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if _, ok := s.Data[k]; !ok {
			msg := fmt.Sprintf("Secret %s (%s) has no key %q", name, field, k)
			p.problem(v1alpha1.ReasonSecretNotFound, "%s", msg)
			r.event(b, s, true, EventSecretNotFound, "Check", "%s", msg)
		}
	}
	return s, nil
}

func digestSecret(s *corev1.Secret, keys []string) string {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, k := range sorted {
		fmt.Fprintf(h, "%s=%d:", k, len(s.Data[k]))
		h.Write(s.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

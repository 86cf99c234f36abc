package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/controllers/resources"
)

// checkSecrets reads the referenced Secrets directly (the operator neither
// caches nor watches Secrets: its RBAC grants get, not list or watch) and
// reports missing ones and a users file the broker would refuse. Their
// contents never reach the pod template: the broker reloads a renewed TLS
// certificate and a changed users file from the mounted files, so neither
// rolls the pod. A problem here makes the reconcile come back after
// SecretRecheck, since no watch will.
func (r *MQTTBrokerReconciler) checkSecrets(ctx context.Context, p *pass) error {
	b := p.broker
	if t := b.Spec.Listeners.TLS; t != nil {
		keys := []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey}
		if t.RequireClientCert {
			keys = append(keys, resources.TLSCAKey)
		}
		field := "spec.listeners.tls.secretName"
		if resources.CertificateWanted(b) {
			field = fmt.Sprintf("spec.listeners.tls: cert-manager issues it from Certificate %s", resources.CertificateName(b))
		}
		if _, err := r.secret(ctx, p, resources.TLSSecretName(b), field, keys); err != nil {
			return err
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
	p.recheckSecrets = true
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
		p.recheckSecrets = true
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
			p.recheckSecrets = true
			r.event(b, s, true, EventSecretNotFound, "Check", "%s", msg)
		}
	}
	p.sources.secret(s)
	return s, nil
}

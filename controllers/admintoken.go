package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// adminTokenBytes is the entropy of a generated admin token (hex-encoded
// into twice as many characters).
const adminTokenBytes = 32

// minAdminToken is the shortest token the broker accepts (see
// broker/host AdminAuth).
const minAdminToken = 16

// ensureAdminToken makes sure the admin token Secret exists and remembers
// its token for the status queries. A missing Secret is created with a new
// random token; an existing one is read and never rewritten, so the token
// changes only when someone deletes the Secret. A Secret of that name
// without a controller (made by hand, to choose the token) is used as it
// is; one controlled by another object, or without a usable token, is a
// problem. The token is never logged or put in an Event.
func (r *MQTTBrokerReconciler) ensureAdminToken(ctx context.Context, p *pass) error {
	b := p.broker
	name := resources.AdminTokenSecretName(b)
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return r.createAdminToken(ctx, p)
	}
	if err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(s); ref != nil && ref.UID != b.UID {
		r.adminTokenProblem(p, s, fmt.Sprintf("Secret %s is controlled by %s %s, not by this MQTTBroker; "+
			"rename or delete it so that the operator can create the broker's admin token", name, ref.Kind, ref.Name))
		return nil
	}
	tok := strings.TrimSpace(string(s.Data[resources.AdminTokenKey]))
	if len(tok) < minAdminToken || strings.ContainsAny(tok, " \t\r\n") {
		r.adminTokenProblem(p, s, fmt.Sprintf("Secret %s: key %q must hold a token of at least %d characters without "+
			"whitespace; the broker refuses to start without one. Delete the Secret and the operator creates a new token",
			name, resources.AdminTokenKey, minAdminToken))
		return nil
	}
	p.adminToken = tok
	p.sources.secret(s)
	return nil
}

func (r *MQTTBrokerReconciler) createAdminToken(ctx context.Context, p *pass) error {
	b := p.broker
	tok, err := newAdminToken()
	if err != nil {
		return err
	}
	s := resources.AdminTokenSecret(b, tok)
	if err := r.Client.Create(ctx, s); err != nil {
		r.event(b, nil, true, EventApplyFailed, "Apply", "Secret %s: %v", s.Name, err)
		return fmt.Errorf("creating Secret %s: %w", s.Name, err)
	}
	r.event(b, s, false, EventCreated, "Create", "Created Secret %s (the broker's admin token)", s.Name)
	p.adminToken = tok
	p.sources.secret(s)
	return nil
}

func (r *MQTTBrokerReconciler) adminTokenProblem(p *pass, s *corev1.Secret, msg string) {
	p.problem(v1alpha1.ReasonAdminTokenInvalid, "%s", msg)
	p.recheckSecrets = true
	r.event(p.broker, s, true, EventAdminTokenInvalid, "Check", "%s", msg)
}

// newAdminToken returns adminTokenBytes random bytes, hex-encoded.
func newAdminToken() (string, error) {
	b := make([]byte, adminTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("controllers: generating an admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

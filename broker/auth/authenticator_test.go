package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFileAuthenticator(t *testing.T) {
	users, err := ParseUsers(strings.NewReader("alice:" + hash(t, "pw") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	type in struct {
		anon        bool
		user, pw    string
		hasPassword bool
	}
	tests := map[string]struct {
		in        in
		principal string
		err       error
	}{
		"valid":                  {in{false, "alice", "pw", true}, "alice", nil},
		"valid anon allowed":     {in{true, "alice", "pw", true}, "alice", nil},
		"wrong password":         {in{false, "alice", "nope", true}, "", ErrBadCredentials},
		"wrong pw, anon on":      {in{true, "alice", "nope", true}, "", ErrBadCredentials},
		"no password":            {in{false, "alice", "", false}, "", ErrBadCredentials},
		"empty password":         {in{false, "alice", "", true}, "", ErrBadCredentials},
		"unknown user":           {in{false, "eve", "pw", true}, "", ErrBadCredentials},
		"anonymous refused":      {in{false, "", "", false}, "", ErrNotAuthorized},
		"anonymous allowed":      {in{true, "", "", false}, "", nil},
		"password only, anon":    {in{true, "", "pw", true}, "", nil},
		"password only, no anon": {in{false, "", "pw", true}, "", ErrNotAuthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := NewFileAuthenticator(users, tc.in.anon)
			p, err := a.Authenticate(t.Context(), "client-1", tc.in.user, []byte(tc.in.pw), tc.in.hasPassword)
			if p != tc.principal || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("Authenticate = %q, %v; want %q, %v", p, err, tc.principal, tc.err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestFileAuthenticatorNoUsers(t *testing.T) {
	a := NewFileAuthenticator(nil, false)
	if _, err := a.Authenticate(t.Context(), "c", "alice", []byte("pw"), true); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("error = %v", err)
	}
	if a.AllowAnonymous() {
		t.Error("AllowAnonymous = true")
	}
}

func TestFileAuthenticatorCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a := NewFileAuthenticator(nil, true)
	if _, err := a.Authenticate(ctx, "c", "", nil, false); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

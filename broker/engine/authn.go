package engine

import (
	"context"
	"fmt"

	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/config"
)

// authState is the authenticator and authorizer in force; it is replaced
// as a whole on configuration reload.
type authState struct {
	authn  auth.Authenticator
	authz  auth.Authorizer // nil allows everything
	reader auth.Reader     // nil: every subscriber reads every topic it matches
}

// buildAuth builds the users file authenticator and the ACL of cfg, unless
// WithAuthenticator fixed them.
func (s *Server) buildAuth(cfg *config.Config) (*authState, error) {
	if s.fixed != nil {
		return s.fixed, nil
	}
	var users *auth.Users
	if cfg.Auth.UsersFile != "" {
		u, err := auth.LoadUsers(cfg.Auth.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		users = u
	}
	st := &authState{authn: auth.NewFileAuthenticator(users, cfg.AnonymousAllowed())}
	if len(cfg.Auth.ACL) > 0 {
		acl, err := access.NewACL(cfg.Auth.Rules())
		if err != nil {
			return nil, fmt.Errorf("engine: auth.acl: %w", err)
		}
		st.authz, st.reader = acl, acl
	}
	return st, nil
}

func (s *Server) authenticate(ctx context.Context, clientID, user string, pass []byte, hasPass bool) (string, error) {
	return s.authz.Load().authn.Authenticate(ctx, clientID, user, pass, hasPass)
}

func (s *Server) canPublish(principal, clientID, topic string) bool {
	a := s.authz.Load().authz
	return a == nil || a.CanPublish(principal, clientID, topic)
}

func (s *Server) canSubscribe(principal, clientID, filter string) bool {
	a := s.authz.Load().authz
	return a == nil || a.CanSubscribe(principal, clientID, filter)
}

// canRead reports whether a session may receive a message on topic. It is
// the session's CanRead hook, called for every message offered to or
// delivered from a session: without ACL rules it costs one atomic load.
func (s *Server) canRead(principal, clientID, topic string) bool {
	r := s.authz.Load().reader
	return r == nil || r.CanRead(principal, clientID, topic)
}

package server

import (
	"context"
	"fmt"

	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/config"
)

// authState is the authenticator and authorizer in force; it is replaced
// as a whole on configuration reload.
type authState struct {
	authn auth.Authenticator
	authz auth.Authorizer // nil allows everything
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
			return nil, fmt.Errorf("server: %w", err)
		}
		users = u
	}
	rules := make([]auth.ACLRule, 0, len(cfg.Auth.ACL))
	for _, r := range cfg.Auth.ACL {
		rules = append(rules, auth.ACLRule{User: r.User, Topic: r.Topic, Access: auth.Access(r.Access)})
	}
	st := &authState{authn: auth.NewFileAuthenticator(users, cfg.AnonymousAllowed())}
	if len(rules) > 0 {
		acl, err := auth.NewACL(rules)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		st.authz = acl
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

// Package config is the schema of the broker's configuration file: its
// fields, their defaults, validation with errors that name the field, and
// which fields a running broker can reload without a restart.
//
// The broker loads it; the operator renders the same type into the
// ConfigMap it mounts into broker pods, so the two can never disagree on the
// file format. It imports no package of Bollard but broker/access (the one
// definition of users and ACL rules, which validates auth.acl) and nothing
// of Kubernetes.
package config

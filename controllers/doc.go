// Package controllers holds the MQTTBroker reconciler: it gathers what
// exists, asks the pure builders (controllers/resources) what should exist,
// applies the difference child by child in a fixed order, and patches the
// status computed by controllers/status once per reconcile.
//
// It reaches the broker only through broker/config (the configuration file
// schema) and, at run time, the broker's admin endpoint (GET /v1/status)
// behind the BrokerStatusReader interface.
package controllers

// Package resources holds the pure builders of an MQTTBroker's child
// objects: one file per child (ServiceAccount, ConfigMap, client and headless
// Services, StatefulSet, PodDisruptionBudget). A builder takes the broker
// (as stored by the apiserver, defaults applied) and returns the desired
// object; it does no I/O, so it is tested against golden files in testdata
// (`go test ./controllers/resources -update` rewrites them).
//
// The broker configuration is rendered through the broker's own schema
// (broker/config), which also classifies each field as hot-reloadable or
// restart-requiring; the digest of the restart fields goes on the pod
// template, so only restart changes roll the pod.
package resources

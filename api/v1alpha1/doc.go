// Package v1alpha1 is the mqtt.bollard.io/v1alpha1 API: the MQTTBroker kind
// that the bollard-operator reconciles into a StatefulSet running the
// bollard broker, with its Services, ConfigMap, ServiceAccount and
// PodDisruptionBudget.
//
// Validation lives in the CRD (OpenAPI bounds, enums and CEL rules) so that
// the apiserver rejects a bad manifest with a message naming the field; the
// operator never has to. This package imports only Kubernetes API packages
// (never the broker or the controllers), so it can be vendored by clients.
//
// +kubebuilder:object:generate=true
// +groupName=mqtt.bollard.io
package v1alpha1

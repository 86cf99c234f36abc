// Package status decides an MQTTBroker's conditions from what the
// reconciler observed: pure functions from (spec, observed children, broker
// reports) to []metav1.Condition. A condition's LastTransitionTime moves
// only when its status changes (meta.SetStatusCondition), so watching
// clients see real transitions, not reconcile ticks.
package status

package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

func TestNextBrokerQuery(t *testing.T) {
	cond := func(typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, Reason: reason}
	}
	ready := cond(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady)
	notReady := cond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)
	current := cond(v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	pending := cond(v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	unreachable := cond(v1alpha1.ConditionConfigApplied, metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnreachable)
	noBrokers := cond(v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonNoRunningBrokers)
	cases := map[string]struct {
		conds []metav1.Condition
		want  brokerQuery
	}{
		"no status yet":                  {nil, queryOnEvent},
		"no running broker":              {[]metav1.Condition{notReady, noBrokers}, queryOnEvent},
		"rolling, config current":        {[]metav1.Condition{notReady, current}, queryOnEvent},
		"config pending":                 {[]metav1.Condition{ready, pending}, queryWithBackoff},
		"broker unreachable":             {[]metav1.Condition{notReady, unreachable}, queryWithBackoff},
		"ready and current: refresh":     {[]metav1.Condition{ready, current}, queryPeriodically},
		"ready without config condition": {[]metav1.Condition{ready}, queryPeriodically},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := nextBrokerQuery(tc.conds); got != tc.want {
				t.Errorf("nextBrokerQuery = %d, want %d", got, tc.want)
			}
		})
	}
}

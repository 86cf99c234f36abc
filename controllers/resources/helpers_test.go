package resources

import (
	appsv1 "k8s.io/api/apps/v1"
)

func statefulSetOf(children map[string]any) *appsv1.StatefulSet {
	return children["statefulset"].(*appsv1.StatefulSet)
}

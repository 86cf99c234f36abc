package resources

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// What a spec's pod additions (podLabels, env, volumes, volumeMounts) may
// not touch. The CRD refuses the same at admission (its CEL rules name
// these values: a test keeps the two lists equal); ValidatePodSpec is the
// definition the builders rely on, also for an object admitted by an
// older CRD.
var (
	// ReservedMountPaths are the operator's own directories in the broker
	// container; a volumeMount may be neither at, inside nor above one.
	ReservedMountPaths = []string{ConfigDir, DataMountPath, SecretsDir, TmpDir}
	// ReservedVolumeNames are the operator's own volumes.
	ReservedVolumeNames = []string{"config", DataVolume, "tmp", "admin-token", "users", "tls", clusterSecretVolume}
	// ReservedEnv are the environment variables the operator sets.
	ReservedEnv = []string{envGoMemLimit, envPodName, envPodIP}
	// ReservedLabels are the labels the operator sets on the pod; the
	// first two select it.
	ReservedLabels = []string{LabelName, LabelInstance, LabelComponent, LabelManagedBy, LabelPartOf, LabelVersion}
)

const envGoMemLimit = "GOMEMLIMIT"

// ErrPodSpec is wrapped by every error of ValidatePodSpec.
var ErrPodSpec = errors.New("resources: invalid pod settings")

// ValidatePodSpec checks what the spec adds to the broker pod: labels
// that would change the pod's selector labels, environment variables the
// operator sets, volumes named like the operator's, mounts over the
// operator's directories or of volumes that do not exist. Each error names
// the field.
func ValidatePodSpec(b *v1alpha1.MQTTBroker) error {
	s := &b.Spec
	var errs []error
	for k := range s.PodLabels {
		if slices.Contains(ReservedLabels, k) {
			errs = append(errs, fmt.Errorf("spec.podLabels[%s]: the operator sets this label (it selects the broker's pods)", k))
		}
	}
	for i, e := range s.Env {
		if slices.Contains(ReservedEnv, e.Name) {
			errs = append(errs, fmt.Errorf("spec.env[%d].name %s: the operator sets it", i, e.Name))
		}
	}
	names := map[string]bool{}
	for i, v := range s.Volumes {
		switch {
		case slices.Contains(ReservedVolumeNames, v.Name):
			errs = append(errs, fmt.Errorf("spec.volumes[%d].name %s: the operator's own volume is named so", i, v.Name))
		case names[v.Name]:
			errs = append(errs, fmt.Errorf("spec.volumes[%d].name %s: used twice", i, v.Name))
		}
		names[v.Name] = true
	}
	for i, m := range s.VolumeMounts {
		if !names[m.Name] {
			errs = append(errs, fmt.Errorf("spec.volumeMounts[%d].name %s: no such volume in spec.volumes", i, m.Name))
		}
		if err := checkMountPath(m.MountPath); err != nil {
			errs = append(errs, fmt.Errorf("spec.volumeMounts[%d].mountPath %q: %w", i, m.MountPath, err))
		}
		if m.SubPath != "" && (path.IsAbs(m.SubPath) || slices.Contains(strings.Split(m.SubPath, "/"), "..")) {
			errs = append(errs, fmt.Errorf("spec.volumeMounts[%d].subPath %q: must be a relative path without '..'", i, m.SubPath))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrPodSpec, err)
	}
	return nil
}

// checkMountPath refuses a path that is not absolute and clean, or that
// is at, inside or above one of ReservedMountPaths.
func checkMountPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p {
		return errors.New("must be an absolute, clean path (no '.' or '..' parts, no '//', no trailing '/')")
	}
	for _, r := range ReservedMountPaths {
		switch {
		case p == r:
			return fmt.Errorf("the operator mounts %s there", r)
		case strings.HasPrefix(p, r+"/"):
			return fmt.Errorf("inside the operator's %s", r)
		case strings.HasPrefix(r, p+"/"):
			return fmt.Errorf("above the operator's %s, which it would hide", r)
		}
	}
	return nil
}

// podLabels are the pod template's labels: the operator's, the image's
// version, and the spec's podLabels (which cannot override the first two).
func podLabels(b *v1alpha1.MQTTBroker, image string) map[string]string {
	l := map[string]string{}
	for k, v := range b.Spec.PodLabels {
		l[k] = string(v)
	}
	for k, v := range Labels(b) {
		l[k] = v
	}
	if v := imageVersion(image); v != "" {
		l[LabelVersion] = v
	}
	return l
}

// containerEnv is the operator's environment, then the spec's.
func containerEnv(b *v1alpha1.MQTTBroker) []corev1.EnvVar {
	env := []corev1.EnvVar{{
		// The Go runtime keeps the heap under the container's memory limit.
		Name: envGoMemLimit,
		ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			ContainerName: brokerContainerName, Resource: "limits.memory", Divisor: quantityOne,
		}},
	}}
	for _, e := range b.Spec.Env {
		if !slices.Contains(ReservedEnv, e.Name) {
			env = append(env, *e.DeepCopy())
		}
	}
	return env
}

// extraMounts turns the spec's volumeMounts into container mounts.
func extraMounts(b *v1alpha1.MQTTBroker) []corev1.VolumeMount {
	out := make([]corev1.VolumeMount, 0, len(b.Spec.VolumeMounts))
	for _, m := range b.Spec.VolumeMounts {
		out = append(out, corev1.VolumeMount{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly, SubPath: m.SubPath})
	}
	return out
}

// extraVolumes turns the spec's volumes into pod volumes.
func extraVolumes(b *v1alpha1.MQTTBroker) []corev1.Volume {
	out := make([]corev1.Volume, 0, len(b.Spec.Volumes))
	for _, v := range b.Spec.Volumes {
		v := v.DeepCopy()
		out = append(out, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{
			ConfigMap:             v.ConfigMap,
			Secret:                v.Secret,
			EmptyDir:              v.EmptyDir,
			PersistentVolumeClaim: v.PersistentVolumeClaim,
			CSI:                   v.CSI,
			Projected:             v.Projected,
		}})
	}
	return out
}

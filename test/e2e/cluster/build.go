package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/testenv"
)

// BuildBollard builds cmd/bollard from this checkout into dir and returns
// the binary's path.
func BuildBollard(ctx context.Context, dir string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bollard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/bollard")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cluster: building cmd/bollard: %w\n%s", err, b)
	}
	return out, nil
}

// BollardResolver runs every container whose image is a bollard image, or
// whose command is bollard, as the local binary; others fail to start.
// extra maps further image names (without tag) to local executables.
func BollardResolver(binary string, extra map[string]string) nodeagent.Resolver {
	return func(c *corev1.Container) (string, error) {
		repo := imageRepo(c.Image)
		if exe, ok := extra[repo]; ok {
			return exe, nil
		}
		if strings.HasSuffix(repo, "/bollard") || repo == "bollard" ||
			(len(c.Command) > 0 && filepath.Base(c.Command[0]) == "bollard") {
			return binary, nil
		}
		return "", fmt.Errorf("cluster: no local executable for image %q", c.Image)
	}
}

// imageRepo strips the tag and digest from an image reference.
func imageRepo(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		image = image[:i]
	}
	return image
}

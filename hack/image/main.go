// Command image builds Bollard's container image without Docker: one
// image holding both static binaries (bollard and bollard-operator) in
// /usr/local/bin, run as the non-root user 65532, written as an image
// archive (an OCI image layout in a tar file, with the manifest.json of
// `docker save` beside it: `docker load`, `podman load`,
// `kind load image-archive`, `skopeo copy oci-archive:` and, once
// extracted into a directory, `crane push DIR` read it) and, with --push,
// to a registry.
//
// `make image` builds the binaries (`make build`) and runs it:
//
//	go run ./hack/image --bin bin --out bin/bollard-image.tar --tag ghcr.io/bollard-io/bollard:v1.2.3 \
//	    --version v1.2.3 --revision "$(git rev-parse HEAD)" --created "$(git log -1 --format=%cI)" [--push REF]
//
// The Dockerfile builds the same image with Docker on a distroless base.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding the binaries "+fmt.Sprint(Binaries)+" (make build writes them to bin/)")
	out := fs.String("out", "bin/bollard-image.tar", "image tarball to write; empty writes none")
	tag := fs.String("tag", "ghcr.io/bollard-io/bollard:dev", "image name recorded in the tarball (docker load and kind load use it)")
	push := fs.String("push", "", "also push the image to this reference (credentials from ~/.docker/config.json, as docker login and crane auth login write them)")
	version := fs.String("version", "dev", "version label")
	revision := fs.String("revision", "unknown", "source revision label (the commit)")
	source := fs.String("source", "https://github.com/bollard-io/bollard", "source repository label")
	created := fs.String("created", "1970-01-01T00:00:00Z", "creation time (RFC 3339), also every file's mtime: the commit's time makes the build reproducible")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, *created)
	if err != nil {
		return fmt.Errorf("image: --created: %w", err)
	}
	s := Spec{Binaries: map[string]string{}, Version: *version, Revision: *revision, Source: *source, Created: t.UTC()}
	for _, b := range Binaries {
		s.Binaries[b] = filepath.Join(*bin, b)
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	if *out == "" && *push == "" {
		return errors.New("image: nothing to do: set --out, --push or both")
	}
	if *out != "" {
		if err := write(img, *tag, *out, s.Created); err != nil {
			return err
		}
	}
	if *push != "" {
		if err := pushImage(img, *push); err != nil {
			return err
		}
	}
	return nil
}

// write writes img to path as an image archive named tag.
func write(img v1.Image, tag, path string, mtime time.Time) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image: --tag: %w", err)
	}
	if err := writeArchive(img, ref, path, mtime); err != nil {
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	fmt.Printf("wrote %s: %s (%s)\n", path, ref, d)
	return nil
}

func pushImage(img v1.Image, to string) error {
	ref, err := name.ParseReference(to)
	if err != nil {
		return fmt.Errorf("image: --push: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("image: pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	fmt.Printf("pushed %s@%s\n", ref.Context(), d)
	return nil
}

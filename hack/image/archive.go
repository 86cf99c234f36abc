package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// writeArchive writes img to path as an OCI image layout in a tar file
// (an "oci-archive"): oci-layout, index.json naming the image, and its
// blobs, so the manifest digest is the one a registry will show. Beside
// them, a manifest.json as `docker save` writes it points at the same
// blobs, so that `docker load` (any version), `kind load image-archive`
// and other readers of the Docker format load it too. The tar's entries
// are in a fixed order with a fixed mtime: the same image makes the same
// file. The file is replaced only once complete.
func writeArchive(img v1.Image, tag name.Tag, path string, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "bollard-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	err = lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	}))
	if err != nil {
		return err
	}
	if err := writeDockerManifest(img, tag, dir); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarDir(dir, tmp, mtime); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// writeDockerManifest adds the manifest.json of the Docker image format.
func writeDockerManifest(img v1.Image, tag name.Tag, dir string) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: blob(m.Config.Digest), RepoTags: []string{tag.Name()}}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, blob(l.Digest))
	}
	b, err := json.Marshal([]any{entry})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
}

// tarDir writes the files under dir into a tar file at out, sorted, with
// mtime t and no owner.
func tarDir(dir, out string, t time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range files {
		if err := addFile(tw, dir, p, t); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, dir, p string, t time.Time) error {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), ModTime: t, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	_, err = tw.Write(data)
	return err
}

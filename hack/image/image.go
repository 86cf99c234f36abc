package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is. The Dockerfile builds the same image with Docker; a
// test keeps the two in agreement where they overlap (user, binary paths,
// entrypoint, working directory).
const (
	// BinDir holds both binaries and is on PATH: the chart starts
	// "bollard-operator" and the operator's pods start "bollard" by name.
	BinDir = "/usr/local/bin"
	// User is the non-root user and group the image runs as (distroless's
	// "nonroot"); the broker pod's securityContext uses the same IDs.
	User = "65532:65532"
	uid  = 65532
	// HomeDir is the working directory, writable by User, so that a
	// broker started with no arguments can create ./bollard-data.
	HomeDir = "/home/nonroot"
	// Path is the PATH of the image, distroless's.
	Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Binaries are the programs in the image, in BinDir; the first is the
// entrypoint.
var Binaries = []string{"bollard", "bollard-operator"}

// Entrypoint runs the broker; the operator's Deployment sets its command.
var Entrypoint = []string{BinDir + "/bollard"}

// Spec says what goes into an image besides the binaries.
type Spec struct {
	// Binaries maps each name of Binaries to the file to copy.
	Binaries map[string]string
	// Version, Revision and Source go into the OCI labels.
	Version, Revision, Source string
	// Created is the image's creation time, and the mtime of every file in
	// it: a fixed value (the commit's time) makes the build reproducible.
	Created time.Time
}

// Build assembles the image: one layer holding the binaries, a minimal
// /etc/passwd and /etc/group naming the non-root user, its home and
// /tmp; a config with that user, PATH, the entrypoint and the OCI labels.
// It refuses a binary that is not a static ELF executable (it would not
// run on an image with no C library) and binaries of different
// architectures.
func Build(s Spec) (v1.Image, error) {
	arch := ""
	files := map[string][]byte{}
	for _, name := range Binaries {
		p, ok := s.Binaries[name]
		if !ok {
			return nil, fmt.Errorf("image: no file for %s", name)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		a, err := staticELFArch(data)
		if err != nil {
			return nil, fmt.Errorf("image: %s (%s): %w", name, p, err)
		}
		if arch != "" && a != arch {
			return nil, fmt.Errorf("image: %s is for %s, the other binaries for %s", name, a, arch)
		}
		arch = a
		files[path.Join(BinDir, name)] = data
	}
	content, err := layerTar(files, s.Created)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: s.Created}, CreatedBy: "hack/image: " + fmt.Sprint(Binaries), Comment: "static binaries, non-root",
	}})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = arch, "linux", v1.Time{Time: s.Created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: Entrypoint,
		Env:        []string{"PATH=" + Path},
		WorkingDir: HomeDir,
		Labels:     labels(s),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

func labels(s Spec) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "bollard",
		"org.opencontainers.image.description": "Bollard: an MQTT 3.1.1/5.0 broker with durable persistent sessions (bollard) and its Kubernetes operator (bollard-operator)",
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
}

// staticELFArch returns the image architecture of an ELF executable that
// needs no dynamic loader and no shared library, or an error saying why
// it does not qualify.
func staticELFArch(data []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("not an executable (ELF type %s)", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("dynamically linked (it names an ELF interpreter): build it with CGO_ENABLED=0")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return "", fmt.Errorf("needs shared libraries %v: build it with CGO_ENABLED=0", libs)
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
		elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64",
	}[f.Machine]
	if !ok {
		return "", fmt.Errorf("unsupported machine %s", f.Machine)
	}
	return arch, nil
}

// layerTar writes the image's one layer: directories first, every entry
// owned by root but the user's home, at mtime t, in a fixed order.
func layerTar(files map[string][]byte, t time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", uid, uid, HomeDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)
	type entry struct {
		name      string
		mode      int64
		owner     int
		data      []byte
		directory bool
	}
	entries := []entry{
		{name: "etc", mode: 0o755, directory: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "home", mode: 0o755, directory: true},
		{name: HomeDir[1:], mode: 0o700, owner: uid, directory: true},
		{name: "tmp", mode: 0o1777, directory: true},
		{name: "usr", mode: 0o755, directory: true},
		{name: "usr/local", mode: 0o755, directory: true},
		{name: BinDir[1:], mode: 0o755, directory: true},
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		entries = append(entries, entry{name: n[1:], mode: 0o755, data: files[n]})
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.owner, Gid: e.owner, ModTime: t, Format: tar.FormatUSTAR}
		if e.directory {
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bollard-io/bollard/controllers/resources"
)

// tiny holds the small binaries the tests share (built once).
var tiny struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tiny.dir != "" {
		os.RemoveAll(tiny.dir)
	}
	os.Exit(code)
}

// smallBinaries returns a directory holding a tiny static program under
// each name of Binaries (the real ones take minutes to build; the external
// test uses them).
func smallBinaries(t *testing.T) string {
	t.Helper()
	tiny.once.Do(func() { tiny.dir, tiny.err = buildTiny() })
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	return filepath.Join(tiny.dir, "bin")
}

func buildTiny() (string, error) {
	dir, err := os.MkdirTemp("", "bollard-image-test-")
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return dir, err
	}
	for name, content := range map[string]string{
		"go.mod":  "module example.com/tiny\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"tiny\\n\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			return dir, err
		}
	}
	bin := filepath.Join(dir, "bin")
	for _, b := range Binaries {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(bin, b), ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			return dir, fmt.Errorf("building a tiny %s: %w\n%s", b, err, out)
		}
	}
	return dir, nil
}

// inspected is what a test learns of an image archive by reading it back.
type inspected struct {
	digest    v1.Hash
	config    *v1.ConfigFile
	manifest  *v1.Manifest
	files     map[string]*tar.Header
	contents  map[string][]byte
	imageName string // as docker load names it
	refName   string // the OCI index's org.opencontainers.image.ref.name
}

// inspect reads an image archive as an OCI image layout (skopeo, podman,
// containerd) and as a Docker image tarball (docker load, kind load): both
// must give the same image.
func inspect(t *testing.T, path string) inspected {
	t.Helper()
	dir := untar(t, path)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI image layout: %v", path, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index.json: %v %+v", err, im)
	}
	out := inspected{files: map[string]*tar.Header{}, contents: map[string][]byte{},
		digest: im.Manifests[0].Digest, refName: im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]}
	img, err := idx.Image(out.digest)
	if err != nil {
		t.Fatal(err)
	}
	if out.config, err = img.ConfigFile(); err != nil {
		t.Fatal(err)
	}
	if out.manifest, err = img.Manifest(); err != nil {
		t.Fatal(err)
	}
	readLayers(t, img, out)

	docker, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("docker load could not read %s: %v", path, err)
	}
	dcfg, err := docker.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if dcfg != out.manifest.Config.Digest {
		t.Errorf("the Docker manifest.json names config %s, the OCI index %s", dcfg, out.manifest.Config.Digest)
	}
	var m []struct{ RepoTags []string }
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 || len(m[0].RepoTags) != 1 {
		t.Fatalf("manifest.json: %v %s", err, b)
	}
	out.imageName = m[0].RepoTags[0]
	return out
}

func readLayers(t *testing.T, img v1.Image, out inspected) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out.files["/"+strings.TrimSuffix(h.Name, "/")] = h
		if h.Typeflag == tar.TypeReg {
			if out.contents["/"+h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// untar extracts an archive into a new directory.
func untar(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) {
			t.Fatalf("%s: unexpected entry %q (type %c)", path, h.Name, h.Typeflag)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkImage checks what every Bollard image must be: non-root, both
// binaries static and executable on PATH, the broker as entrypoint.
func checkImage(t *testing.T, im inspected) {
	t.Helper()
	c := im.config.Config
	if c.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532 (non-root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/bollard"}) {
		t.Errorf("entrypoint = %v", c.Entrypoint)
	}
	var path []string
	for _, e := range c.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = strings.Split(v, ":")
		}
	}
	if !slices.Contains(path, "/usr/local/bin") {
		t.Errorf("PATH %v does not hold /usr/local/bin, where the binaries are", path)
	}
	for _, b := range []string{"bollard", "bollard-operator", resources.ContainerBin} {
		p := "/usr/local/bin/" + b
		h := im.files[p]
		switch {
		case h == nil:
			t.Errorf("%s is not in the image", p)
			continue
		case h.Typeflag != tar.TypeReg || h.Mode&0o001 == 0 || h.Mode&0o004 == 0:
			t.Errorf("%s: type %c mode %o: not a file every user can run", p, h.Typeflag, h.Mode)
		}
		f, err := elf.NewFile(bytes.NewReader(im.contents[p]))
		if err != nil {
			t.Errorf("%s: not an ELF file: %v", p, err)
			continue
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s names an ELF interpreter: it is not static", p)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", p, libs)
		}
		if arch := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]; arch != "" && arch != im.config.Architecture {
			t.Errorf("%s is %s, the image says %s", p, arch, im.config.Architecture)
		}
	}
	if home := im.files[c.WorkingDir]; home == nil || home.Uid != 65532 {
		t.Errorf("working directory %q is missing or not the user's: %+v", c.WorkingDir, home)
	}
	if !bytes.Contains(im.contents["/etc/passwd"], []byte(":65532:65532:")) {
		t.Errorf("/etc/passwd does not name user 65532: %q", im.contents["/etc/passwd"])
	}
	for _, l := range []string{"title", "version", "revision", "source", "created"} {
		if c.Labels["org.opencontainers.image."+l] == "" {
			t.Errorf("label org.opencontainers.image.%s is missing (labels %v)", l, c.Labels)
		}
	}
	if im.manifest.MediaType != types.OCIManifestSchema1 || im.manifest.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s, config %s: want OCI media types", im.manifest.MediaType, im.manifest.Config.MediaType)
	}
	if im.config.OS != "linux" {
		t.Errorf("os = %q", im.config.OS)
	}
}

func TestImage(t *testing.T) {
	bin := smallBinaries(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	args := []string{"--bin", bin, "--out", out, "--tag", "example.com/bollard:v9", "--version", "v9",
		"--revision", "abc123", "--created", "2026-01-02T03:04:05Z"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	im := inspect(t, out)
	checkImage(t, im)
	if im.imageName != "example.com/bollard:v9" || im.refName != "v9" {
		t.Errorf("the archive names the image %q (docker) and %q (OCI ref.name)", im.imageName, im.refName)
	}
	if v := im.config.Config.Labels["org.opencontainers.image.version"]; v != "v9" {
		t.Errorf("version label = %q", v)
	}
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for p, h := range im.files {
		if !h.ModTime.Equal(want) {
			t.Errorf("%s: mtime %s, want the --created time", p, h.ModTime)
		}
	}

	// Reproducible: the same inputs make the same image.
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := run(append(slices.Clone(args[:2]), append([]string{"--out", again}, args[4:]...)...)); err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digestOf(t, out), digestOf(t, again); d1 != d2 {
		t.Errorf("two builds of the same inputs differ: %s and %s", d1, d2)
	}
	b1, err1 := os.ReadFile(out)
	b2, err2 := os.ReadFile(again)
	if err := errors.Join(err1, err2); err != nil || !bytes.Equal(b1, b2) {
		t.Errorf("two archives of the same image differ (%v)", err)
	}
}

func digestOf(t *testing.T, path string) v1.Hash {
	t.Helper()
	return inspect(t, path).digest
}

// TestImageRefusesWhatWouldNotRun: a dynamically linked binary, a file
// that is not an executable, or a missing one stop the build.
func TestImageRefusesWhatWouldNotRun(t *testing.T) {
	bin := smallBinaries(t)
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dynamic, err := exec.LookPath("sh") // a C program, dynamically linked
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ file, want string }{
		"dynamic":     {dynamic, "dynamically linked"},
		"not ELF":     {text, "not an ELF file"},
		"no file":     {filepath.Join(bin, "missing"), "no such file"},
		"object file": {elfRelocatable(t, t.TempDir()), "not an executable"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := Spec{Binaries: map[string]string{"bollard": filepath.Join(bin, "bollard"), "bollard-operator": tc.file}}
			_, err := Build(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// elfRelocatable writes the smallest ELF64 header of type ET_REL.
func elfRelocatable(t *testing.T, dir string) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // 64-bit, little endian, version 1
	h[16] = byte(elf.ET_REL)
	h[18] = byte(elf.EM_X86_64)
	h[20] = 1  // e_version
	h[52] = 64 // e_ehsize
	h[58] = 64 // e_shentsize
	p := filepath.Join(dir, "rel.o")
	if err := os.WriteFile(p, h, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImagePush: --push writes the same image to a registry (one served
// on 127.0.0.1 by go-containerregistry's own in-memory registry).
func TestImagePush(t *testing.T) {
	bin := smallBinaries(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	out := filepath.Join(t.TempDir(), "image.tar")
	to := host + "/bollard:v9"
	if err := run([]string{"--bin", bin, "--out", out, "--push", to}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if want := digestOf(t, out); d != want {
		t.Errorf("pushed %s, the tarball holds %s", d, want)
	}
}

// TestDockerfileAgrees: the Dockerfile, for users with Docker, builds what
// this tool builds where the two overlap: the user, where the binaries go,
// the entrypoint and the working directory. And the names the chart and
// the operator start are binaries of the image.
func TestDockerfileAgrees(t *testing.T) {
	root := filepath.Join("..", "..")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := string(df)
	if i := strings.LastIndex(final, "\nFROM "); i >= 0 {
		final = final[i:]
	}
	last := func(instr string) string {
		var v string
		sc := bufio.NewScanner(strings.NewReader(final))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), instr+" "); ok {
				v = strings.TrimSpace(rest)
			}
		}
		return v
	}
	if u := last("USER"); u != User {
		t.Errorf("Dockerfile USER %q, the image tool's %q", u, User)
	}
	var entry []string
	if err := json.Unmarshal([]byte(last("ENTRYPOINT")), &entry); err != nil || !slices.Equal(entry, Entrypoint) {
		t.Errorf("Dockerfile ENTRYPOINT %q (%v), the image tool's %v", last("ENTRYPOINT"), err, Entrypoint)
	}
	if w := last("WORKDIR"); w != HomeDir {
		t.Errorf("Dockerfile WORKDIR %q, the image tool's %q", w, HomeDir)
	}
	copied := regexp.MustCompile(`(?m)^COPY\s+--from=\S+\s+\S+/(\S+)\s+(\S+)\s*$`).FindAllStringSubmatch(final, -1)
	dest := map[string]string{}
	for _, m := range copied {
		dest[m[1]] = m[2]
	}
	for _, b := range Binaries {
		if dest[b] != BinDir+"/"+b {
			t.Errorf("Dockerfile copies %s to %q, the image tool to %s/%s", b, dest[b], BinDir, b)
		}
	}
	if len(dest) != len(Binaries) {
		t.Errorf("Dockerfile copies %v, the image tool %v", dest, Binaries)
	}
	// Started by name: the operator runs resources.ContainerBin, the chart
	// its command; both must be binaries on PATH.
	deploy, err := os.ReadFile(filepath.Join(root, "charts", "bollard-operator", "templates", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*command:\s*\["([^"]+)"\]`).FindSubmatch(deploy)
	if m == nil {
		t.Fatal("the chart's deployment has no command: [\"...\"] line")
	}
	for _, started := range []string{string(m[1]), resources.ContainerBin} {
		if !slices.Contains(Binaries, started) {
			t.Errorf("%q is started by name but is not a binary of the image %v", started, Binaries)
		}
	}
	if !slices.Contains(strings.Split(Path, ":"), BinDir) {
		t.Errorf("PATH %s lacks %s", Path, BinDir)
	}
}

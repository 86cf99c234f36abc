package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/config"
)

func TestFlagsOverrideConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bollard.yaml")
	yaml := "listeners:\n  mqtt:\n    address: 127.0.0.1:1999\nadmin:\n  address: 127.0.0.1:9999\ndataDir: /from/file\nlogLevel: warn\nauth:\n  allowAnonymous: false\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args  []string
		check func(*config.Config) bool
	}{
		"file only": {nil, func(c *config.Config) bool {
			return c.Listeners.MQTT.Address == "127.0.0.1:1999" && c.DataDir == "/from/file" && !c.AnonymousAllowed()
		}},
		"listen":       {[]string{"--listen", "127.0.0.1:2000"}, func(c *config.Config) bool { return c.Listeners.MQTT.Address == "127.0.0.1:2000" }},
		"admin off":    {[]string{"--admin-listen", ""}, func(c *config.Config) bool { return c.Admin.Address == "" }},
		"data dir":     {[]string{"--data-dir", "/from/flag"}, func(c *config.Config) bool { return c.DataDir == "/from/flag" }},
		"durability":   {[]string{"--durability", "interval"}, func(c *config.Config) bool { return c.Durability.Mode == config.DurabilityInterval }},
		"anonymous":    {[]string{"--allow-anonymous"}, func(c *config.Config) bool { return c.AnonymousAllowed() }},
		"single dash":  {[]string{"-log-level", "debug"}, func(c *config.Config) bool { return c.LogLevel == "debug" }},
		"log level":    {[]string{"--log-level=error"}, func(c *config.Config) bool { return c.LogLevel == "error" }},
		"unset keeps":  {[]string{"--data-dir", "/x"}, func(c *config.Config) bool { return c.LogLevel == "warn" }},
		"no anonymous": {[]string{"--allow-anonymous=false"}, func(c *config.Config) bool { return !c.AnonymousAllowed() }},
		"admin token": {[]string{"--admin-token-file", "/run/token"}, func(c *config.Config) bool {
			return c.Admin.TokenFile == "/run/token" && c.Admin.Address == "127.0.0.1:9999"
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := parseFlags(append([]string{"--config", path}, tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.load()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config after %v: %+v", tc.args, c)
			}
		})
	}
}

func TestFlagsDefaults(t *testing.T) {
	f, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.MQTT.Address != "127.0.0.1:1883" || c.Admin.Address != "127.0.0.1:8080" ||
		c.DataDir != "./bollard-data" || c.Durability.Mode != config.DurabilitySync || !c.AnonymousAllowed() {
		t.Errorf("defaults = %+v", c)
	}
}

func TestRunVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != exitOK || out.String() != "bollard "+version+"\n" {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, &out, &errOut); code != exitOK || !strings.Contains(errOut.String(), "-durability") {
		t.Errorf("--help: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--durability", "fast"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "--durability") {
		t.Errorf("bad flag: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--admin-token-file", ""}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "--admin-token-file") {
		t.Errorf("empty --admin-token-file: %d %q", code, errOut.String())
	}
}

// The cluster flags fill the config's cluster section, as a StatefulSet's
// members pass it (the operator renders no cluster section in the file).
func TestClusterFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseFlags([]string{
		"--data-dir", dir,
		"--cluster-member-id=b-1", "--cluster-bind=[127.0.0.1]:8081",
		"--cluster-members=b-0=b-0.h.ns.svc:8081=b-0.h.ns.svc:1883,b-1=b-1.h.ns.svc:8081",
		"--cluster-secret-file=" + secret, "--cluster-bootstrap",
		"--cluster-dial-addresses=b-0=127.0.0.1:20001, b-1=127.0.0.1:20002",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if cl.MemberID != "b-1" || cl.Bind != "[127.0.0.1]:8081" || cl.SecretFile != secret || !cl.Bootstrap {
		t.Errorf("cluster %+v", cl)
	}
	if len(cl.Members) != 2 || cl.Members[0] != (config.ClusterMember{ID: "b-0", RaftAddress: "b-0.h.ns.svc:8081", ClientAddress: "b-0.h.ns.svc:1883"}) ||
		cl.Members[1] != (config.ClusterMember{ID: "b-1", RaftAddress: "b-1.h.ns.svc:8081"}) {
		t.Errorf("members %+v", cl.Members)
	}
	if len(cl.DialAddresses) != 2 || cl.DialAddresses["b-0"] != "127.0.0.1:20001" || cl.DialAddresses["b-1"] != "127.0.0.1:20002" {
		t.Errorf("dial addresses %v", cl.DialAddresses)
	}
}

func TestClusterDialAddressesFlagRefused(t *testing.T) {
	for name, v := range map[string]string{
		"no address": "b-0=",
		"no id":      "=127.0.0.1:1",
		"no equals":  "b-0",
		"twice":      "b-0=127.0.0.1:1,b-0=127.0.0.1:2",
		"too many":   strings.Repeat("b=127.0.0.1:1,", maxDialAddresses) + "c=127.0.0.1:1",
	} {
		if _, err := parseFlags([]string{"--cluster-dial-addresses=" + v}, io.Discard); err == nil ||
			!strings.Contains(err.Error(), "--cluster-dial-addresses") {
			t.Errorf("%s: %v, want an error naming the flag", name, err)
		}
	}
	// Entries are checked against the members with the rest of the config.
	f, err := parseFlags([]string{"--cluster-dial-addresses=x=127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.load(); err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("dial addresses without a cluster: %v", err)
	}
}

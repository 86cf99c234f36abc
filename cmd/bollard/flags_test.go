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

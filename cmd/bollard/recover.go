package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/bollard-io/bollard/broker/cluster"
)

const clusterUsage = `usage:
  bollard cluster inspect --data-dir DIR
      print what a stopped member's data directory holds (last log index and
      term, applied index, configuration, pending recovery request) as JSON
  bollard cluster recover --data-dir DIR --member-id ID --members id=raftAddress,... [--dry-run] [--at-next-start]
      force a new configuration (this member alone, or the listed survivors)
      on a member whose majority is lost for good; see docs/operations.md
      ("When a cluster loses its quorum"). The member must be stopped, or
      --at-next-start writes a request the member carries out when it next
      starts (then delete the pod).
`

// runCluster is `bollard cluster ...`: offline tools over a member's data
// directory.
func runCluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return exitUsage
	}
	switch args[0] {
	case "inspect":
		return clusterInspect(args[1:], stdout, stderr)
	case "recover":
		return clusterRecover(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, clusterUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "bollard cluster: unknown command %q\n%s", args[0], clusterUsage)
	return exitUsage
}

func clusterFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bollard cluster "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clusterUsage) }
	return fs
}

// memberDir is a member's directory in the broker's data directory.
func memberDir(dataDir string) string { return filepath.Join(dataDir, "cluster") }

func clusterInspect(args []string, stdout, stderr io.Writer) int {
	fs := clusterFlagSet("inspect", stderr)
	dataDir := fs.String("data-dir", "", "the broker's data `directory` (dataDir; the member's state is in its cluster/)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bollard cluster inspect: --data-dir is required, and nothing else\n")
		return exitUsage
	}
	in, err := cluster.Inspect(memberDir(*dataDir))
	if err != nil {
		fmt.Fprintf(stderr, "bollard cluster inspect: %v\n", err)
		return exitFailure
	}
	return printJSON(stdout, stderr, in)
}

func clusterRecover(args []string, stdout, stderr io.Writer) int {
	fs := clusterFlagSet("recover", stderr)
	dataDir := fs.String("data-dir", "", "the broker's data `directory` (dataDir; the member's state is in its cluster/)")
	id := fs.String("member-id", "", "this member's `id` (cluster.memberID)")
	members := fs.String("members", "", "the new configuration's voters as id=raftAddress[=clientAddress],... (this member among them)")
	dry := fs.Bool("dry-run", false, "check the request and print the member's state, change nothing")
	later := fs.Bool("at-next-start", false, "write the request for the member to carry out when it next starts (a running member)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *dataDir == "" || *id == "" || *members == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bollard cluster recover: --data-dir, --member-id and --members are required\n%s", clusterUsage)
		return exitUsage
	}
	ms, err := parseMembers(*members)
	if err != nil {
		fmt.Fprintf(stderr, "bollard cluster recover: --members: %v\n", err)
		return exitUsage
	}
	req := cluster.RecoveryRequest{MemberID: *id}
	for _, m := range ms {
		req.Members = append(req.Members, cluster.RecoveryMember{ID: m.ID, RaftAddress: m.RaftAddress})
	}
	dir := memberDir(*dataDir)
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	switch {
	case *dry:
		if err := req.Validate(); err != nil {
			fmt.Fprintf(stderr, "bollard cluster recover: %v\n", err)
			return exitUsage
		}
		in, err := cluster.Inspect(dir)
		if err != nil {
			fmt.Fprintf(stderr, "bollard cluster recover: %v\n", err)
			return exitFailure
		}
		return printJSON(stdout, stderr, struct {
			DryRun  bool                    `json:"dryRun"`
			Current cluster.Inspection      `json:"current"`
			Request cluster.RecoveryRequest `json:"request"`
		}{true, in, req})
	case *later:
		if err := cluster.RequestRecovery(dir, req); err != nil {
			fmt.Fprintf(stderr, "bollard cluster recover: %v\n", err)
			return exitFailure
		}
		log.Warn("recovery requested: the member carries it out when it next starts (delete its pod now)",
			"file", filepath.Join(dir, cluster.RecoveryRequestFile), "member", req.MemberID)
		return exitOK
	}
	res, err := cluster.Recover(dir, req, log)
	if err != nil {
		fmt.Fprintf(stderr, "bollard cluster recover: %v\n", err)
		if errors.Is(err, cluster.ErrRecoveryRefused) {
			fmt.Fprintf(stderr, "bollard cluster recover: on a running member, use --at-next-start and restart it\n")
		}
		return exitFailure
	}
	return printJSON(stdout, stderr, res)
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "bollard cluster: %v\n", err)
		return exitFailure
	}
	return exitOK
}

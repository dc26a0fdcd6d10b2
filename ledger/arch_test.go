package ledger_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestArchitecture enforces the dependency rules of ARCHITECTURE.md: the
// content store knows nothing of builds, and the domain core never imports
// adapters (HTTP, the VMM, the rebuilder, commands).
func TestArchitecture(t *testing.T) {
	rules := map[string][]string{
		"github.com/buildledger/buildledger/cas": {
			"github.com/buildledger/buildledger/ledger", "github.com/buildledger/buildledger/httpapi",
			"github.com/buildledger/buildledger/attest",
		},
		"github.com/buildledger/buildledger/ledger/...": {
			"github.com/buildledger/buildledger/httpapi", "github.com/buildledger/buildledger/vmm",
			"github.com/buildledger/buildledger/rebuilder", "github.com/buildledger/buildledger/cmd",
			"github.com/gorilla/mux",
		},
	}
	// The vocabulary, the client and everything that only reads the log
	// through them link no storage and no server (ARCHITECTURE.md: "a VMM
	// or a rebuilder does not link badger").
	storage := []string{
		"github.com/dgraph-io/badger/v4", "github.com/buildledger/buildledger/cas/castest",
		"github.com/buildledger/buildledger/ledger/tree", "github.com/buildledger/buildledger/internal/kv",
	}
	for _, pkg := range []string{
		"github.com/buildledger/buildledger/cas/digest", "github.com/buildledger/buildledger/ledger/event",
		"github.com/buildledger/buildledger/ledger/checkpoint", "github.com/buildledger/buildledger/ledger/witnessing",
		"github.com/buildledger/buildledger/attest",
		"github.com/buildledger/buildledger/httpapi/api", "github.com/buildledger/buildledger/httpapi/client",
		"github.com/buildledger/buildledger/vmm/...", "github.com/buildledger/buildledger/rebuilder/...",
		"github.com/buildledger/buildledger/cmd/vmm", "github.com/buildledger/buildledger/cmd/rebuilder",
	} {
		rules[pkg] = append(slices.Clone(storage), "github.com/buildledger/buildledger/httpapi",
			"github.com/buildledger/buildledger/ledger")
	}
	// The server describes unikernel images but does not link the VMM:
	// only the solo5 note format is shared.
	rules["github.com/buildledger/buildledger/httpapi/..."] = []string{"github.com/buildledger/buildledger/vmm"}
	for pkg, forbidden := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") && !allowedBelow(dep) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// allowedBelow names the storage-free packages under a forbidden prefix
// (the vocabulary under ledger/ and cas/, the witness protocol whose
// policy clients check, the client and bodies under httpapi/). Their own
// dependencies are still checked: they are the client's.
func allowedBelow(dep string) bool {
	switch strings.TrimPrefix(dep, "github.com/buildledger/buildledger/") {
	case "ledger/event", "ledger/checkpoint", "ledger/builder", "ledger/orb", "ledger/witnessing", "cas/digest", "httpapi/api", "httpapi/client", "vmm/solo5":
		return true
	}
	return false
}

package ledger_test

import (
	"os/exec"
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
	for pkg, forbidden := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

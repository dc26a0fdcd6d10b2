package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/httpapi/api"
)

// TestBuildBodyMembers pins the JSON member names clients read: renaming a
// field silently would break every client of the API.
func TestBuildBodyMembers(t *testing.T) {
	b, err := json.Marshal(api.BuildView{MainBinary: true, MainArtifact: api.NewMainBinaryView(api.ArtifactView{Path: "bin/x.hvt"})})
	if err != nil {
		t.Fatal(err)
	}
	// builder-web's build page says "main_binary": true; the main binary
	// itself is main_binary_artifact.
	for _, m := range []string{`"job"`, `"uuid"`, `"platform"`, `"start_time"`, `"finish_time"`, `"main_binary":true`,
		`"main_binary_artifact":{"filename":"x.hvt","path":"bin/x.hvt"`,
		`"sha256"`, `"log_index"`, `"input_id"`, `"reproduced_by"`, `"same_input_different_output"`, `"attestations"`, `"checkpoint"`} {
		if !strings.Contains(string(b), m) {
			t.Errorf("BuildView JSON lacks %s: %s", m, b)
		}
	}
}

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
	b, err := json.Marshal(api.BuildView{BuildSummary: api.BuildSummary{MainBinary: &api.ArtifactView{}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{`"job"`, `"uuid"`, `"platform"`, `"start_time"`, `"finish_time"`, `"main_binary":{"path"`,
		`"sha256"`, `"log_index"`, `"input_id"`, `"reproduced_by"`, `"same_input_different_output"`, `"attestations"`, `"checkpoint"`} {
		if !strings.Contains(string(b), m) {
			t.Errorf("BuildView JSON lacks %s: %s", m, b)
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/vmm"
)

// TestPrintInfoRecheck: info of a unikernel whose image the gate would
// refuse now (a key revoked since) dates the recorded evidence and says
// what would be decided now, and why.
func TestPrintInfoRecheck(t *testing.T) {
	admitted := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	i := &vmm.Info{
		Name: "web", State: vmm.StateRunning, PID: 42, Spec: vmm.Spec{Name: "web", Tender: "solo5-hvt", MemMB: 64, CPU: 1, Startup: 10},
		Admission: &vmm.Admission{Time: admitted, Op: "create", K: 2, Agreeing: []string{"alice", "bob"}},
		Recheck: &vmm.Recheck{Time: admitted.Add(48 * time.Hour),
			Decision: &vmm.Admission{K: 2, Agreeing: []string{"bob"}},
			Reason:   "refused: sha256 00\n  key alice was revoked at log index 9"},
	}
	var b bytes.Buffer
	printInfo(&b, i)
	out := b.String()
	for _, want := range []string{
		"attested  when admitted: 2 agreeing of k=2 (alice, bob)\n",
		"admitted  at 2026-07-01T12:00:00Z, create\n",
		"now       NOT ADMISSIBLE (gate asked at 2026-07-03T12:00:00Z): it keeps running, but a restart or the daemon's next start would refuse it\n",
		"            key alice was revoked at log index 9\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}

	i.Recheck = &vmm.Recheck{Time: admitted.Add(time.Hour), Admitted: true, Decision: i.Admission}
	b.Reset()
	printInfo(&b, i)
	if !strings.Contains(b.String(), "now       admissible (gate asked at 2026-07-01T13:00:00Z): 2 agreeing of k=2 (alice, bob)\n") {
		t.Errorf("info of an admissible image:\n%s", b.String())
	}
}

package vmm_test

import (
	"strings"
	"testing"

	"github.com/buildledger/buildledger/vmm"
)

// TestRecheck: after the evidence an image was admitted on is withdrawn (a
// rebuilder's key revoked), info with a recheck says the gate would refuse
// it now, beside the admission recorded then; the running unikernel is not
// touched and nothing is audited.
func TestRecheck(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, "exec sleep 60")
	e.gate.allow(d)
	created := e.mustCreate(vmm.Spec{Name: "web"}, img)
	is, err := e.c.Recheck(ctx, "web")
	if err != nil || len(is) != 1 {
		t.Fatalf("recheck: %v, %v", is, err)
	}
	if r := is[0].Recheck; r == nil || !r.Admitted || r.Decision == nil || r.Time.IsZero() {
		t.Fatalf("recheck of an admissible image: %+v", r)
	}

	e.gate.deny(d) // the attestations no longer count
	is, err = e.c.Recheck(ctx, "")
	if err != nil || len(is) != 1 {
		t.Fatalf("recheck: %v, %v", is, err)
	}
	i := is[0]
	if r := i.Recheck; r == nil || r.Admitted || !strings.Contains(r.Reason, "refused") || r.Time.Before(i.Admission.Time) {
		t.Fatalf("recheck after the evidence was withdrawn: %+v", r)
	}
	if i.Admission == nil || !i.Admission.Time.Equal(created.Admission.Time) || i.State != vmm.StateRunning || i.PID != created.PID {
		t.Fatalf("the recorded admission or the unikernel changed: %+v", i)
	}
	if plain := e.info("web"); plain.Recheck != nil {
		t.Fatalf("info without a recheck asked the gate: %+v", plain.Recheck)
	}
	if a := e.audit(); len(a) != 1 {
		t.Fatalf("a recheck was audited: %+v", a)
	}
}

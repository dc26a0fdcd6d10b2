package gate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
)

// An image that is only an input file (build-environment) of a build
// whose outputs were reproduced is not admitted by the in-toto policy.
func TestGateInTotoRefusesInputFile(t *testing.T) {
	w := newWorld(t, "a", "b")
	image := []byte("\x7fELF unikernel")
	b, _ := w.build("web", image, time.Now().Add(-time.Hour))
	img := digest.Sum(image)
	w.link("a", b, img)
	w.link("b", b, img)
	policyFile := w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b")
	p := loadPolicy(t, policyFile)
	// the build's build-environment file, "OS=linux\n", as the image
	d, err := newGate(t, p, t.TempDir(), false).Admit(ctx, writeImage(t, []byte("OS=linux\n")))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(d.Reason)
	if d.Admitted {
		t.Errorf("the build-environment file of build %s is admitted as an image:\n%s", b.UUID, d.Reason)
	}
}

// A key's veto on one build of an image holds against another build of
// the same image that other keys reproduced.
func TestGateInTotoVetoAcrossBuilds(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	image := []byte("\x7fELF unikernel")
	img := digest.Sum(image)
	x, _ := w.build("web", image, time.Now().Add(-2*time.Hour))
	w.link("a", x, img)
	w.link("b", x, img)
	w.link("c", x, digest.Sum([]byte("other bytes")))
	policyFile := w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b", "c")
	d, err := newGate(t, loadPolicy(t, policyFile), t.TempDir(), false).Admit(ctx, writeImage(t, image))
	if err != nil || d.Admitted {
		t.Fatalf("veto: %v\n%s", err, d.Reason)
	}
	y, _ := w.build("web", image, time.Now().Add(-time.Hour)) // the same image, built again
	w.link("a", y, img)
	w.link("b", y, img)
	d, err = newGate(t, loadPolicy(t, policyFile), t.TempDir(), false).Admit(ctx, writeImage(t, image))
	if err != nil {
		t.Fatal(err)
	}
	if d.Admitted {
		t.Errorf("c's dispute of the same image (build %s) no longer vetoes once build %s has 2 links:\n%s", x.UUID, y.UUID, d.Reason)
	}
}

// The same with a tampered (untrusted) cached bundle: the bundle of the
// image, relabelled for the build's build-environment file.
func TestGateInTotoTamperedBundleInputFile(t *testing.T) {
	w := newWorld(t, "a", "b")
	image := []byte("\x7fELF unikernel")
	b, _ := w.build("web", image, time.Now().Add(-time.Hour))
	img := digest.Sum(image)
	w.link("a", b, img)
	w.link("b", b, img)
	p := loadPolicy(t, w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b"))
	cache := t.TempDir()
	if d, err := newGate(t, p, cache, false).Admit(ctx, writeImage(t, image)); err != nil || !d.Admitted {
		t.Fatalf("%v %s", err, d.Reason)
	}
	env := []byte("OS=linux\n")
	denv := digest.Sum(env)
	raw, err := os.ReadFile(filepath.Join(cache, "bundles", img.String()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var bu map[string]any
	json.Unmarshal(raw, &bu)
	bu["image"] = denv.String()
	raw, _ = json.Marshal(bu)
	os.WriteFile(filepath.Join(cache, "bundles", denv.String()+".json"), raw, 0o600)
	d, err := newGate(t, p, cache, true).Admit(ctx, writeImage(t, env))
	if err != nil {
		t.Fatal(err)
	}
	if d.Admitted {
		t.Errorf("offline, a relabelled bundle admits the build-environment file:\n%s", d.Reason)
	}
	// the JSON policy over the same tampered bundle
	jp := w.policy(2, "a", "b")
	_ = jp
}

// Dropping the vetoing link from the (untrusted) cached bundle does not
// lift the veto offline: the gate remembers the latest links it saw.
func TestGateInTotoVetoRemembered(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	image := []byte("\x7fELF unikernel")
	b, _ := w.build("web", image, time.Now().Add(-time.Hour))
	img := digest.Sum(image)
	w.link("a", b, img)
	w.link("b", b, img)
	w.link("c", b, digest.Sum([]byte("other")))
	p := loadPolicy(t, w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b", "c"))
	cache := t.TempDir()
	if d, err := newGate(t, p, cache, false).Admit(ctx, writeImage(t, image)); err != nil || d.Admitted {
		t.Fatalf("%v %s", err, d.Reason)
	}
	path := filepath.Join(cache, "bundles", img.String()+".json")
	raw, _ := os.ReadFile(path)
	var bu map[string]any
	json.Unmarshal(raw, &bu)
	atts := bu["attestations"].([]any)
	bu["attestations"] = atts[:2] // a's and b's
	raw, _ = json.Marshal(bu)
	os.WriteFile(path, raw, 0o600)
	d, err := newGate(t, p, cache, true).Admit(ctx, writeImage(t, image))
	if err != nil {
		t.Fatal(err)
	}
	if d.Admitted {
		t.Errorf("without c's link in the cached bundle the vetoed image is admitted offline:\n%s", d.Reason)
	}
}

package trillianlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/internal/trilliantest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/trillianlog"
)

var (
	env      *trilliantest.Env
	startErr error
)

// TestMain starts one private MariaDB + Trillian stack for the package.
func TestMain(m *testing.M) {
	env, startErr = start()
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	os.Exit(code)
}

func start() (*trilliantest.Env, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
	if err != nil {
		return nil, fmt.Errorf("locating Trillian's schema: %w", err)
	}
	return trilliantest.Start(filepath.Join(strings.TrimSpace(string(out)), "storage/mysql/schema/storage.sql"))
}

// newLog creates a fresh PREORDERED_LOG tree and connects to it.
func newLog(t testing.TB) *trillianlog.Log {
	t.Helper()
	if startErr != nil {
		trilliantest.Skip(t, startErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := trillianlog.CreateTree(ctx, env.Addr, t.Name())
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Logs())
	}
	l, err := trillianlog.Dial(ctx, env.Addr, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestConformance is the log backend conformance suite on a real Trillian
// with MariaDB.
func TestConformance(t *testing.T) {
	ledgertest.Conformance(t, func(t testing.TB) ledger.Backend { return newLog(t) })
}

// TestDialRefusesMissingTree: a tree id that does not exist is an error at
// Dial, not at the first append.
func TestDialRefusesMissingTree(t *testing.T) {
	l := newLog(t)
	if _, err := trillianlog.Dial(context.Background(), env.Addr, l.TreeID()+12345); err == nil {
		t.Fatal("dialled a tree that does not exist")
	}
}

// TestNoPartialInsert: a batch whose first index is taken stores nothing
// (Trillian would keep the leaves at free indices of a request), and a
// resend of a stored batch is harmless.
func TestNoPartialInsert(t *testing.T) {
	l := newLog(t)
	ctx := context.Background()
	a, b := []byte("entry a"), []byte("entry b")
	root := rootOf(a, b)
	if err := l.Integrate(ctx, 0, [][]byte{a, b}, root); err != nil {
		t.Fatal(err)
	}
	err := l.Integrate(ctx, 0, [][]byte{[]byte("c"), []byte("d"), []byte("e")}, [32]byte{1})
	if !errors.Is(err, ledger.ErrBehind) {
		t.Fatalf("colliding batch: %v", err)
	}
	if err := l.Integrate(ctx, 0, [][]byte{a, b}, [32]byte{}); err != nil {
		t.Fatalf("resend: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // a few sequencer runs
	size, got, err := l.Root(ctx)
	if err != nil || size != 2 || got != root {
		t.Fatalf("after the collision and the resend: size %d root %x, want 2 %x (%v)", size, got, root, err)
	}
}

func rootOf(leaves ...[]byte) [32]byte {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, l := range leaves {
		r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil)
	}
	h, _ := r.GetRootHash(nil)
	return [32]byte(h)
}

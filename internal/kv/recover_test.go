package kv

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestOpenAfterEmptyMemtable leaves the state a kill between badger's
// creating a memtable log and growing it produces (a .mem file of zero
// bytes, dgraph-io/badger#2207) and opens the store: it must open, with
// everything written before.
func TestOpenAfterEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "00007.mem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open with an empty memtable log: %v", err)
	}
	defer db.Close()
	mustGet(t, db, "k", "v")
}

// TestOpenAfterEmptyValueLog: the same for a value-log file of zero bytes
// (a kill between badger's creating the next value-log file and growing
// it).
func TestOpenAfterEmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2*ValueThreshold) // kept in the value log
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), big) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000002.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open with an empty value-log file: %v", err)
	}
	defer db.Close()
	mustGet(t, db, "k", string(big))
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k2"), big) }); err != nil {
		t.Fatal(err)
	}
}

// TestOpenLeavesLockedStore: while another process (here: another open)
// holds the database, nothing is removed.
func TestOpenLeavesLockedStore(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := filepath.Join(dir, "00099.mem")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, err := removeEmptyLogs(dir); err != nil || len(removed) != 0 {
		t.Fatalf("removed %v from a store in use (%v)", removed, err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// TestOpenKeepsNonEmptyMemtable: a memtable log with any bytes in it is
// badger's to replay, never removed.
func TestOpenKeepsNonEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "00003.mem")
	if err := os.WriteFile(p, []byte{0}, 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := removeEmptyLogs(dir)
	if err != nil || len(removed) != 0 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, db *badger.DB, k, want string) {
	t.Helper()
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(k))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err == nil && string(v) != want {
			err = fmt.Errorf("%s = %q, want %q", k, v, want)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
}

const envStartKill = "BUILDLEDGER_KV_STARTKILL_DIR"

// TestStartKillChild is the child process of TestStartKill: it opens the
// store, writes (synced) the key named by its argument, prints "ack" and
// keeps writing until it is killed.
func TestStartKillChild(t *testing.T) {
	dir := os.Getenv(envStartKill)
	if dir == "" {
		t.Skip("child process of TestStartKill")
	}
	db, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "OPEN FAILED:", err)
		os.Exit(3)
	}
	key := os.Getenv(envStartKill + "_KEY")
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), []byte(key)) }); err != nil {
		fmt.Fprintln(os.Stderr, "WRITE FAILED:", err)
		os.Exit(3)
	}
	fmt.Println("ack")
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%d", key, i)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(k), make([]byte, 4096)) }); err != nil {
			fmt.Fprintln(os.Stderr, "WRITE FAILED:", err)
			os.Exit(3)
		}
	}
}

// TestStartKill starts a child that opens the store and kills it with
// SIGKILL at a random moment of its start-up or first writes, round after
// round on the same directory. Every start must succeed (a child that
// exits by itself failed to open), and every key a child acknowledged must
// be there at the end.
func TestStartKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rounds := 200
	if s := os.Getenv("BUILDLEDGER_KV_STARTKILL_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	var acked []string
	for round := range rounds {
		key := fmt.Sprintf("round-%d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^TestStartKillChild$", "-test.v")
		cmd.Env = append(os.Environ(), envStartKill+"="+dir, envStartKill+"_KEY="+key)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Most rounds kill during the open itself (badger takes tens of
		// milliseconds to start); the rest after the first write.
		kill := time.After(time.Duration(rand.IntN(80)) * time.Millisecond)
		ack := false
	wait:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break wait // exited by itself: an open or write failed
				}
				if line == "ack" {
					ack = true
				}
			case <-kill:
				break wait
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for range lines {
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child was not killed but ended by itself (%v):\n%s", round, err, stderr.String())
		}
		if ack {
			acked = append(acked, key)
		}
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range acked {
		mustGet(t, db, k, k)
	}
	t.Logf("%d starts killed, %d acknowledged a write", rounds, len(acked))
}

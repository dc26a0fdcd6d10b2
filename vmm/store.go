package vmm

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/internal/jsonl"
	"github.com/buildledger/buildledger/vmm/gate"
)

// The state directory:
//
//	lock                  flock(2)ed by the one daemon using the directory
//	policy.json           the resource policy (schemas/vmm/resource-policy.json)
//	audit.log             every gate decision, JSON lines (AuditEntry), append-only
//	unikernels/NAME.json  one record per unikernel
//	images/SHA256         the images, by content
//	run/NAME/             the working directory of a unikernel's tender
//
// Every file but audit.log is replaced atomically (internal/atomicfile:
// write a temporary file, fsync, rename, fsync the directory).
const (
	lockFile      = "lock"
	policyFile    = "policy.json"
	auditFile     = "audit.log"
	unikernelsDir = "unikernels"
	imagesDir     = "images"
	runDir        = "run"
)

// record is what the state directory keeps of a unikernel.
type record struct {
	Spec      Spec          `json:"spec"`
	Image     digest.Digest `json:"image"`
	BlockMB   int           `json:"block_mb"`
	Created   time.Time     `json:"created"`
	Admission *Admission    `json:"admission,omitempty"`
	// Stopped: it exited and was not restarted; the daemon does not boot
	// it at start (vmm restart does).
	Stopped bool `json:"stopped,omitempty"`
}

// Admission is the gate decision that admitted a unikernel's image.
type Admission struct {
	Time     time.Time      `json:"time"`
	Op       string         `json:"op"`
	Build    *gate.BuildRef `json:"build,omitempty"`
	K        int            `json:"k"`
	Agreeing []string       `json:"agreeing"`
	Verdicts []gate.Verdict `json:"verdicts,omitempty"`
	Offline  bool           `json:"offline,omitempty"`
	Reason   string         `json:"reason,omitempty"`
}

// Summary says in one line who vouched for the image.
func (a *Admission) Summary() string {
	counts := map[string]int{}
	var order []string
	for _, v := range a.Verdicts {
		if counts[v.Status] == 0 {
			order = append(order, v.Status)
		}
		counts[v.Status]++
	}
	s := fmt.Sprintf("%d agreeing of k=%d", len(a.Agreeing), a.K)
	if len(a.Agreeing) > 0 {
		s += " (" + strings.Join(a.Agreeing, ", ") + ")"
	}
	for _, st := range order {
		s += fmt.Sprintf("; %d %s", counts[st], st)
	}
	if a.Offline {
		s += "; decided offline from the cached bundle"
	}
	return s
}

func admission(d *gate.Decision, op string, now time.Time) *Admission {
	return &Admission{Time: now, Op: op, Build: d.Build, K: d.K, Agreeing: d.Agreeing, Verdicts: d.Verdicts, Offline: d.Offline, Reason: d.Reason}
}

// store is the state directory.
type store struct {
	dir  string
	lock *os.File
	// writeFile replaces a record or the policy (Config.WriteFile).
	writeFile func(path string, data []byte, perm fs.FileMode) error
}

func openStore(dir string, writeFile func(string, []byte, fs.FileMode) error) (*store, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no state directory given", ErrInvalid)
	}
	for _, d := range []string{dir, filepath.Join(dir, unikernelsDir), filepath.Join(dir, imagesDir), filepath.Join(dir, runDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("state directory %s is in use by another vmm daemon (%v); stop it or use another --state", dir, err)
	}
	// Leftovers of writes a crash interrupted (the lock is ours: no
	// write is under way).
	for _, d := range []string{".", unikernelsDir, imagesDir} {
		atomicfile.RemoveTemps(filepath.Join(dir, d))
	}
	if writeFile == nil {
		writeFile = atomicfile.WriteFile
	}
	return &store{dir: dir, lock: lock, writeFile: writeFile}, nil
}

func (s *store) close() error { return s.lock.Close() }

func (s *store) imagePath(d digest.Digest) string { return filepath.Join(s.dir, imagesDir, d.String()) }

func (s *store) runDir(name string) string { return filepath.Join(s.dir, runDir, name) }

// receive copies at most max bytes of r into a temporary file of the
// image store and returns it with its digest; commit moves it in place.
func (s *store) receive(r io.Reader, max int64) (*atomicfile.File, digest.Digest, error) {
	// Executable by the owner only, for the process tender.
	f, err := atomicfile.CreateIn(filepath.Join(s.dir, imagesDir), 0o700)
	if err != nil {
		return nil, digest.Digest{}, err
	}
	fail := func(err error) (*atomicfile.File, digest.Digest, error) {
		f.Abort()
		return nil, digest.Digest{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, max+1))
	if err != nil {
		return fail(fmt.Errorf("receiving the image: %w", err))
	}
	if n > max {
		return fail(fmt.Errorf("%w: the image is larger than the daemon's limit of %d bytes", ErrInvalid, max))
	}
	if n == 0 {
		return fail(fmt.Errorf("%w: the image is empty", ErrInvalid))
	}
	return f, digest.Digest(h.Sum(nil)), nil
}

// commit makes the received image durable under its digest.
func (s *store) commit(f *atomicfile.File, d digest.Digest) error {
	return f.CommitAs(s.imagePath(d))
}

func (s *store) recordPath(name string) string {
	return filepath.Join(s.dir, unikernelsDir, name+".json")
}

func (s *store) saveRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return s.writeFile(s.recordPath(r.Spec.Name), append(b, '\n'), 0o600)
}

func (s *store) removeRecord(name string) error {
	if err := os.Remove(s.recordPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, unikernelsDir))
}

func (s *store) records() ([]*record, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, unikernelsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var recs []*record
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %v; fix or remove the file", p, err)
		}
		if r.Spec.Name+".json" != filepath.Base(p) {
			return nil, fmt.Errorf("%s holds unikernel %q; rename or remove the file", p, r.Spec.Name)
		}
		recs = append(recs, &r)
	}
	return recs, nil
}

func (s *store) loadPolicy() (*Policy, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, policyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &Policy{}, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; fix it or remove it (no limits)", filepath.Join(s.dir, policyFile), err)
	}
	return p, nil
}

func (s *store) savePolicy(p *Policy) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return s.writeFile(filepath.Join(s.dir, policyFile), append(b, '\n'), 0o600)
}

// AuditEntry is one gate decision in the audit log.
type AuditEntry struct {
	Time     time.Time     `json:"time"`
	Name     string        `json:"name"`
	Op       string        `json:"op"` // create, restart, restore, restart-on-fail, update, rollback
	Image    digest.Digest `json:"image"`
	Admitted bool          `json:"admitted"`
	Reason   string        `json:"reason"`
}

// auditLog appends entries to audit.log, each fsynced before the boot
// it allows or refuses goes on.
type auditLog struct{ log *jsonl.Log }

func openAudit(dir string) (*auditLog, error) {
	l, err := jsonl.Open(filepath.Join(dir, auditFile))
	if err != nil {
		return nil, err
	}
	return &auditLog{log: l}, nil
}

func (a *auditLog) append(e AuditEntry) error { return a.log.Append(e) }

func (a *auditLog) close() error { return a.log.Close() }

// ReadAudit parses an audit log. A torn last line (a crash while
// appending) is an error like any other malformed line.
func ReadAudit(r io.Reader) ([]AuditEntry, error) {
	var out []AuditEntry
	s := bufio.NewScanner(r)
	s.Buffer(nil, 16<<20)
	for n := 1; s.Scan(); n++ {
		var e AuditEntry
		if err := json.Unmarshal(s.Bytes(), &e); err != nil {
			return out, fmt.Errorf("audit log line %d: %v", n, err)
		}
		out = append(out, e)
	}
	return out, s.Err()
}

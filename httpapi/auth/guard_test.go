package auth

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/buildledger/buildledger/internal/kv"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := New(db)
	if err := s.Add("farm", "farm-password", true); err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func wantPushback(t *testing.T, err error, target error) *PushbackError {
	t.Helper()
	var pe *PushbackError
	if !errors.As(err, &pe) || !errors.Is(err, target) || pe.RetryAfter <= 0 {
		t.Fatalf("got %v, want a *PushbackError for %v with a Retry-After", err, target)
	}
	return pe
}

// TestGuardLimitsClient: a client network that used up its failures is
// refused before any hashing, even with the right password; IPv6 clients
// are grouped by /64; another network is unaffected; the budget refills
// with time, and successes do not use it up.
func TestGuardLimitsClient(t *testing.T) {
	s := openStore(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(s, Limits{Rate: rate.Every(time.Minute), Burst: 3, CacheTTL: -1, Now: c.Now})
	ctx := context.Background()
	a := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 3; i++ {
		if _, err := g.Login(ctx, a, "farm", "wrong-password"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	hashed := s.Hashes()
	if hashed != 3 {
		t.Fatalf("%d hashes for 3 attempts", hashed)
	}
	pe := wantPushback(t, func() error { _, err := g.Login(ctx, a, "farm", "farm-password"); return err }(), ErrTooManyFailures)
	if pe.RetryAfter > time.Minute {
		t.Fatalf("Retry-After %v, the bucket refills one token a minute", pe.RetryAfter)
	}
	// The same /64.
	_, err := g.Login(ctx, netip.MustParseAddr("2001:db8::ffff:2"), "farm", "farm-password")
	wantPushback(t, err, ErrTooManyFailures)
	if s.Hashes() != hashed {
		t.Fatalf("refused logins hashed a password (%d → %d)", hashed, s.Hashes())
	}
	// Another /64, and an IPv4 client.
	for _, other := range []string{"2001:db8:0:1::1", "192.0.2.7", "::ffff:192.0.2.8"} {
		if _, err := g.Login(ctx, netip.MustParseAddr(other), "farm", "farm-password"); err != nil {
			t.Fatalf("%s: %v", other, err)
		}
	}
	// Successes give their token back.
	b := netip.MustParseAddr("192.0.2.9")
	for i := 0; i < 5; i++ {
		if _, err := g.Login(ctx, b, "farm", "farm-password"); err != nil {
			t.Fatalf("success %d from one client: %v", i, err)
		}
	}
	c.Add(time.Minute)
	if _, err := g.Login(ctx, a, "farm", "farm-password"); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	st := g.Stats()
	if st.Failures != 3 || st.Limited != 2 || st.CacheHits != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// hold takes every hashing slot of the process until the returned
// function is called.
func hold(t *testing.T) func() {
	t.Helper()
	for i := 0; i < cap(hashing); i++ {
		hashing <- struct{}{}
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			for i := 0; i < cap(hashing); i++ {
				<-hashing
			}
		})
	}
	t.Cleanup(release)
	return release
}

// TestGuardBusy: with every hashing slot taken, a login gives up after its
// wait, or as soon as its context ends, with ErrBusy and a Retry-After,
// having hashed nothing; once a slot frees up logins go through again.
func TestGuardBusy(t *testing.T) {
	s := openStore(t)
	release := hold(t)
	client := netip.MustParseAddr("192.0.2.1")
	g := NewGuard(s, Limits{Wait: 20 * time.Millisecond})
	_, err := g.Login(context.Background(), client, "farm", "farm-password")
	wantPushback(t, err, ErrBusy)

	// The context ends the wait, however long Wait is.
	g = NewGuard(s, Limits{Wait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = g.Login(ctx, client, "farm", "farm-password")
	wantPushback(t, err, ErrBusy)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("busy error does not say the context ended: %v", err)
	}
	if s.Hashes() != 0 || g.Stats().Busy != 1 {
		t.Fatalf("hashes %d, stats %+v", s.Hashes(), g.Stats())
	}
	release()
	if _, err := g.Login(context.Background(), client, "farm", "farm-password"); err != nil {
		t.Fatal(err)
	}
}

// TestGuardCache: a verified name and password are not hashed again within
// the TTL; a wrong password, an expired entry or a changed account are.
func TestGuardCache(t *testing.T) {
	s := openStore(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(s, Limits{CacheTTL: time.Minute, Now: c.Now})
	ctx := context.Background()
	client := netip.MustParseAddr("192.0.2.1")
	login := func(pw string) error { _, err := g.Login(ctx, client, "farm", pw); return err }
	if err := login("farm-password"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := login("farm-password"); err != nil {
			t.Fatal(err)
		}
	}
	if s.Hashes() != 1 || g.Stats().CacheHits != 3 {
		t.Fatalf("hashes %d, stats %+v", s.Hashes(), g.Stats())
	}
	if err := login("farm-passwordX"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	if s.Hashes() != 2 {
		t.Fatalf("a wrong password was not hashed (%d)", s.Hashes())
	}
	c.Add(time.Minute)
	if err := login("farm-password"); err != nil || s.Hashes() != 3 {
		t.Fatalf("after the TTL: %v, %d hashes", err, s.Hashes())
	}
	// The account changes: the cached verification no longer counts.
	if err := s.Remove("farm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("farm", "new-password", true); err != nil {
		t.Fatal(err)
	}
	if err := login("farm-password"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("old password after the change: %v", err)
	}
	if err := login("new-password"); err != nil {
		t.Fatal(err)
	}
}

func TestClientNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":           "192.0.2.1/32",
		"::ffff:192.0.2.1":    "192.0.2.1/32",
		"2001:db8:1:2:3::4":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::": "2001:db8:1:2::/64",
	} {
		if got := ClientNetwork(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if got := ClientNetwork(netip.Addr{}); got.IsValid() {
		t.Errorf("invalid address: %s", got)
	}
}

// TestSlotsPriority: a freed slot goes to the waiter with the highest
// priority, whatever the arrival order; a waiter whose context ends leaves
// the queue.
func TestSlotsPriority(t *testing.T) {
	s := newSlots(1)
	if err := s.acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	queued := func(n int) {
		t.Helper()
		for {
			s.mu.Lock()
			l := len(s.waiters)
			s.mu.Unlock()
			if l == n {
				return
			}
			runtime.Gosched()
		}
	}
	got := make(chan string, 3)
	wait := func(name string, ctx context.Context, prio float64) {
		go func() {
			if err := s.acquire(ctx, prio); err != nil {
				got <- name + " gave up"
				return
			}
			got <- name
		}()
	}
	wait("failing", context.Background(), 0.5)
	queued(1)
	gone, cancel := context.WithCancel(context.Background())
	wait("impatient", gone, 9)
	queued(2)
	wait("fresh", context.Background(), 10)
	queued(3)
	cancel()
	if g := <-got; g != "impatient gave up" {
		t.Fatalf("first answer %q", g)
	}
	s.release()
	if g := <-got; g != "fresh" {
		t.Fatalf("the freed slot went to %q", g)
	}
	s.release()
	if g := <-got; g != "failing" {
		t.Fatalf("then to %q", g)
	}
	s.release()
	if s.free != 1 || len(s.waiters) != 0 {
		t.Fatalf("free %d, waiters %d", s.free, len(s.waiters))
	}
}

// TestGuardLimitsUser: with a per-user budget, failures from many networks
// against one name use it up and further logins for that name are refused
// before any hashing, except the right password verified from the cache;
// other names are unaffected.
func TestGuardLimitsUser(t *testing.T) {
	s := openStore(t)
	if err := s.Add("alice", "alice-password", true); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(s, Limits{UserBurst: 2, UserRate: rate.Every(time.Hour), Now: c.Now})
	ctx := context.Background()
	net := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	if _, err := g.Login(ctx, net(1), "farm", "farm-password"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 4; i++ {
		if _, err := g.Login(ctx, net(i), "farm", "guess"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("guess from network %d: %v", i, err)
		}
	}
	hashed := s.Hashes()
	_, err := g.Login(ctx, net(4), "farm", "another-guess")
	wantPushback(t, err, ErrTooManyFailures)
	if s.Hashes() != hashed {
		t.Fatal("a refused login was hashed")
	}
	// The uploader's cached login still works.
	if _, err := g.Login(ctx, net(1), "farm", "farm-password"); err != nil {
		t.Fatalf("cached login of an attacked name: %v", err)
	}
	if _, err := g.Login(ctx, net(4), "alice", "alice-password"); err != nil {
		t.Fatalf("another name: %v", err)
	}
	// Network 4's token came back with the refusal: it failed nothing.
	for i := 0; i < 4; i++ {
		if _, err := g.Login(ctx, net(4), "alice", "alice-password"); err != nil {
			t.Fatalf("network 4, login %d: %v", i, err)
		}
	}
}

// TestGuardConcurrentSameLogin: a farm starting many uploads at once with
// a cold cache — more than its network's burst — is served: the logins
// share one check and one password hash. An uploader whose login is
// cached gets in even when its network's budget is spent.
func TestGuardConcurrentSameLogin(t *testing.T) {
	s := openStore(t)
	g := NewGuard(s, Limits{Rate: rate.Every(time.Minute), Burst: 2})
	ctx := context.Background()
	a := netip.MustParseAddr("192.0.2.10")
	before := s.Hashes()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	start := make(chan struct{})
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := g.Login(ctx, a, "farm", "farm-password")
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent login of the same account: %v", err)
		}
	}
	// The goroutines may not all have overlapped; each check hashes once,
	// and at most Burst run at once.
	if n := s.Hashes() - before; n > 12 || n < 1 {
		t.Fatalf("%d hashes", n)
	}
	for range 2 {
		if _, err := g.Login(ctx, a, "farm", "wrong"); !errors.Is(err, ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	if _, err := g.Login(ctx, a, "farm", "wrong-again"); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("guess past the budget: %v", err)
	}
	if _, err := g.Login(ctx, a, "farm", "farm-password"); err != nil {
		t.Fatalf("cached login from a network whose budget is spent: %v", err)
	}
}

// TestGuardCacheSlides: an uploader that keeps logging in is served from
// the cache past CacheTTL, up to CacheMax after its password was hashed.
func TestGuardCacheSlides(t *testing.T) {
	s := openStore(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(s, Limits{CacheTTL: time.Minute, CacheMax: 3 * time.Minute, Now: c.Now})
	ctx := context.Background()
	client := netip.MustParseAddr("192.0.2.1")
	for i := range 4 { // 0 s, 50 s, 100 s, 150 s
		if _, err := g.Login(ctx, client, "farm", "farm-password"); err != nil {
			t.Fatal(err)
		}
		if s.Hashes() != 1 {
			t.Fatalf("login %d hashed again (%d hashes)", i, s.Hashes())
		}
		c.Add(50 * time.Second)
	}
	c.Add(40 * time.Second) // 240 s: past CacheMax
	if _, err := g.Login(ctx, client, "farm", "farm-password"); err != nil || s.Hashes() != 2 {
		t.Fatalf("past CacheMax: %v, %d hashes", err, s.Hashes())
	}
}

// TestGuardLimitsIPv6Site: cycling through the /64s of one /48 does not
// give fresh budgets without end: the site as a whole is limited.
func TestGuardLimitsIPv6Site(t *testing.T) {
	s := openStore(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(s, Limits{Rate: rate.Every(time.Minute), Burst: 2, CacheTTL: -1, Now: c.Now})
	ctx := context.Background()
	refused := 0
	for i := range 200 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i), 15: 1})
		_, err := g.Login(ctx, a, "farm", "wrong")
		if errors.Is(err, ErrTooManyFailures) {
			refused++
		} else if !errors.Is(err, ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	if hashed := s.Hashes(); hashed > 2*siteFactor || refused < 200-2*siteFactor {
		t.Fatalf("200 /64s of one /48: %d hashed, %d refused", hashed, refused)
	}
	// Another site is not affected.
	if _, err := g.Login(ctx, netip.MustParseAddr("2001:db9::1"), "farm", "farm-password"); err != nil {
		t.Fatal(err)
	}
}

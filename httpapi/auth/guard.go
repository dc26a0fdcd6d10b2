package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// ErrTooManyFailures: the client's network (or, with Limits.UserBurst, the
// user name) used up its budget of logins that need a password hash.
var ErrTooManyFailures = errors.New("auth: too many failed logins")

// PushbackError refuses a login without hashing its password: Err is
// ErrTooManyFailures (the client should wait) or wraps ErrBusy (the server
// is busy). RetryAfter is when trying again makes sense.
type PushbackError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *PushbackError) Error() string {
	return fmt.Sprintf("%v (retry in %v)", e.Err, e.RetryAfter.Round(time.Second))
}

func (e *PushbackError) Unwrap() error { return e.Err }

// Limits configures a Guard. The zero value gives the defaults.
type Limits struct {
	// Wait bounds how long a login waits for one of the process's hashing
	// slots before it is refused with ErrBusy. Default 2 s.
	Wait time.Duration
	// BusyRetry is the Retry-After of a busy refusal. Default 2 s.
	BusyRetry time.Duration
	// Rate and Burst are each client network's budget of logins that need
	// a hash (a token bucket): every such login takes a token while it is
	// checked, and a success or a busy refusal gives it back, so only
	// failures use the budget up, and a network has at most Burst logins
	// waiting or hashing at once. Default 1 a minute, burst 5: the budgets
	// of many networks together must stay well below what the hashing
	// slots can do (tens of hashes a second), or a flood from many
	// addresses keeps them busy.
	Rate  rate.Limit
	Burst int
	// UserRate and UserBurst, if UserBurst is positive, are also each user
	// name's budget, over all networks, the same way: they bound password
	// guessing against one account from many addresses. A login verified
	// from the cache does not need it, so an uploader that keeps logging
	// in is not locked out by an attack on its name. Default off; UserRate
	// defaults to 1 a minute when UserBurst is set.
	UserRate  rate.Limit
	UserBurst int
	// Clients bounds how many client networks (and user names) are
	// tracked; the least recently seen is forgotten first. Default 16384.
	Clients int
	// CacheTTL and CacheSize bound the cache of successful
	// verifications. Default 5 minutes and 1024 entries; a negative
	// CacheTTL turns the cache off. Each use extends an entry by CacheTTL,
	// up to CacheMax after the password was last hashed (default 12
	// times CacheTTL): an uploader that keeps working is not sent back to
	// the budgets every few minutes, where an attack on its name or
	// network could refuse it.
	CacheTTL  time.Duration
	CacheMax  time.Duration
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (l *Limits) setDefaults() {
	if l.Wait <= 0 {
		l.Wait = 2 * time.Second
	}
	if l.BusyRetry <= 0 {
		l.BusyRetry = 2 * time.Second
	}
	if l.Rate <= 0 {
		l.Rate = rate.Every(time.Minute)
	}
	if l.Burst <= 0 {
		l.Burst = 5
	}
	if l.UserBurst > 0 && l.UserRate <= 0 {
		l.UserRate = rate.Every(time.Minute)
	}
	if l.Clients <= 0 {
		l.Clients = 16384
	}
	if l.CacheMax == 0 {
		l.CacheMax = 12 * max(l.CacheTTL, 5*time.Minute)
	}
	if l.CacheTTL == 0 {
		l.CacheTTL = 5 * time.Minute
	}
	if l.CacheSize <= 0 {
		l.CacheSize = 1024
	}
	if l.Now == nil {
		l.Now = time.Now
	}
}

// Guard checks logins against a Store for a server facing the open
// network. In order, a login
//
//  1. succeeds at once when the same user name and password verified
//     within CacheTTL and the account's stored hash is unchanged (the
//     cache is keyed by an HMAC of name and password under a key made at
//     start, and holds no password); concurrent logins with the same name
//     and password then share one pass through the steps below
//     (TestGuardConcurrentSameLogin);
//  2. is refused with ErrTooManyFailures (a *PushbackError) when its client
//     network — the IPv4 address, or the /64 of an IPv6 address — has no
//     token left, or an IPv6 client's /48 has spent the budget of
//     siteFactor networks (TestGuardLimitsIPv6Site); nothing is hashed;
//  3. with Limits.UserBurst, is refused with ErrTooManyFailures when its
//     user name has no token left (TestGuardLimitsUser);
//  4. waits at most Wait (or until its context ends) for a hashing slot,
//     and is refused with ErrBusy (a *PushbackError) if none frees up;
//     waiting logins are served in order of their network's budget left,
//     so clients that keep failing do not delay one that has not
//     (TestSlotsPriority);
//  5. is checked by Store.AuthenticateContext.
//
// It is safe for concurrent use.
type Guard struct {
	users   *Store
	lim     Limits
	clients *lru.Cache[netip.Prefix, *rate.Limiter]
	names   *lru.Cache[string, *rate.Limiter]
	cache   *lru.Cache[[32]byte, cached]
	key     [32]byte
	flight  singleflight.Group

	failures, limited, busy, hits atomic.Uint64
}

type cached struct {
	hash    []byte
	expires time.Time
	until   time.Time // expires is never extended past it
}

// NewGuard returns a guard for users.
func NewGuard(users *Store, lim Limits) *Guard {
	lim.setDefaults()
	g := &Guard{users: users, lim: lim}
	g.clients, _ = lru.New[netip.Prefix, *rate.Limiter](lim.Clients)
	g.names, _ = lru.New[string, *rate.Limiter](lim.Clients)
	g.cache, _ = lru.New[[32]byte, cached](lim.CacheSize)
	if _, err := rand.Read(g.key[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return g
}

// GuardStats counts a guard's decisions since it was made.
type GuardStats struct {
	Failures  uint64 // wrong name or password
	Limited   uint64 // refused with ErrTooManyFailures
	Busy      uint64 // refused with ErrBusy
	CacheHits uint64 // verified from the cache
	Hashes    uint64 // passwords hashed by the store (all its users)
}

// Stats returns the guard's counters.
func (g *Guard) Stats() GuardStats {
	return GuardStats{
		Failures: g.failures.Load(), Limited: g.limited.Load(), Busy: g.busy.Load(),
		CacheHits: g.hits.Load(), Hashes: g.users.Hashes(),
	}
}

// ClientNetwork is the network a client address is accounted to: the
// address itself for IPv4 (also IPv4-mapped IPv6), its /64 for IPv6 (one
// subscriber usually holds a whole /64). An invalid address maps to the
// zero Prefix, which all such clients share.
func ClientNetwork(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// siteFactor is how many networks' budgets an IPv6 site (/48) has.
const siteFactor = 16

// clientSite is the IPv6 /48 a client address belongs to (false for IPv4).
func clientSite(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if !a.IsValid() || a.Is4() {
		return netip.Prefix{}, false
	}
	p, _ := a.Prefix(48)
	return p, true
}

// Login checks name and password for a request from client.
func (g *Guard) Login(ctx context.Context, client netip.Addr, name, password string) (User, error) {
	now := g.lim.Now()
	key := g.cacheKey(name, password)
	// A login that verified recently costs nothing and needs no budget: an
	// uploader behind an address whose budget someone else spent is not
	// locked out, and guesses, which are misses, still pay below.
	if u, ok := g.fromCache(key, name, now); ok {
		g.hits.Add(1)
		return u, nil
	}
	// Concurrent logins with the same name and password (a build farm
	// starting several uploads at once) share one check and one token of
	// the budget: without it a burst of uploads would spend the network's
	// whole budget and be refused for a minute.
	// The check is bounded (a hashing slot is waited for at most Wait), so
	// a login that joins another waits no longer than that one does; if
	// the request that made the check went away, the others are told to
	// retry (ErrBusy).
	// Shared per client network: each network's budget decides its own.
	net := ClientNetwork(client)
	v, err, _ := g.flight.Do(string(key[:])+net.String(), func() (any, error) {
		return g.login(ctx, client, name, password, key, now)
	})
	if err != nil {
		return User{}, err
	}
	return v.(User), nil
}

// login is Login past the cache, once per concurrent name and password.
func (g *Guard) login(ctx context.Context, client netip.Addr, name, password string, key [32]byte, now time.Time) (User, error) {
	refund := false // the user name's token, if taken
	lim := limiter(g.clients, ClientNetwork(client), g.lim.Rate, g.lim.Burst)
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 || !res.OK() {
		res.CancelAt(now)
		g.limited.Add(1)
		return User{}, &PushbackError{Err: ErrTooManyFailures, RetryAfter: max(d, time.Second)}
	}
	// An IPv6 site (/48) holds 65,536 /64 networks, enough to cycle
	// through the tracked networks until the spent ones are forgotten:
	// the site as a whole has a budget of SiteFactor networks' worth.
	if site, ok := clientSite(client); ok {
		sres := limiter(g.clients, site, g.lim.Rate*siteFactor, g.lim.Burst*siteFactor).ReserveN(now, 1)
		if d := sres.DelayFrom(now); d > 0 || !sres.OK() {
			sres.CancelAt(now)
			res.CancelAt(now)
			g.limited.Add(1)
			return User{}, &PushbackError{Err: ErrTooManyFailures, RetryAfter: max(d, time.Second)}
		}
		defer func(r *rate.Reservation) {
			if refund {
				r.CancelAt(now)
			}
		}(sres)
	}
	if g.lim.UserBurst > 0 && CheckName(name) == nil { // other names cannot log in
		ures := limiter(g.names, name, g.lim.UserRate, g.lim.UserBurst).ReserveN(now, 1)
		if d := ures.DelayFrom(now); d > 0 || !ures.OK() {
			ures.CancelAt(now)
			res.CancelAt(now) // nothing was hashed
			g.limited.Add(1)
			return User{}, &PushbackError{Err: ErrTooManyFailures, RetryAfter: max(d, time.Second)}
		}
		// Given back with the network's token (below).
		defer func(r *rate.Reservation) {
			if refund {
				r.CancelAt(now)
			}
		}(ures)
	}
	wctx, cancel := context.WithTimeout(ctx, g.lim.Wait)
	u, err := g.verify(wctx, lim.TokensAt(now), name, password)
	cancel()
	refund = !errors.Is(err, ErrUnauthorized)
	switch {
	case err == nil:
		res.CancelAt(now)
		if g.lim.CacheTTL > 0 {
			g.cache.Add(key, cached{hash: u.Hash, expires: now.Add(g.lim.CacheTTL), until: now.Add(max(g.lim.CacheMax, g.lim.CacheTTL))})
		}
		return u, nil
	case errors.Is(err, ErrBusy):
		// Waiting cost nothing but time, and a busy server is not the
		// client's failure: it may try again without losing budget.
		res.CancelAt(now)
		g.busy.Add(1)
		return User{}, &PushbackError{Err: err, RetryAfter: g.lim.BusyRetry}
	case errors.Is(err, ErrUnauthorized):
		g.failures.Add(1)
		return User{}, err
	default:
		res.CancelAt(now) // a storage error is not the client's failure
		return User{}, err
	}
}

// guardSlots admits the guards' logins to the store's hashing slots, the
// clients with the most budget left first.
var guardSlots = newSlots(cap(hashing))

func (g *Guard) verify(ctx context.Context, prio float64, name, password string) (User, error) {
	if err := guardSlots.acquire(ctx, prio); err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	defer guardSlots.release()
	return g.users.AuthenticateContext(ctx, name, password)
}

// limiter returns k's token bucket in c, making it if need be.
func limiter[K comparable](c *lru.Cache[K, *rate.Limiter], k K, r rate.Limit, burst int) *rate.Limiter {
	if l, ok := c.Get(k); ok {
		return l
	}
	l := rate.NewLimiter(r, burst)
	if prev, ok, _ := c.PeekOrAdd(k, l); ok {
		return prev
	}
	return l
}

func (g *Guard) cacheKey(name, password string) [32]byte {
	m := hmac.New(sha256.New, g.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	m.Write(n[:])
	m.Write([]byte(name))
	m.Write([]byte(password))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// fromCache returns the user when key verified recently and the account
// still has the password hash it verified against.
func (g *Guard) fromCache(key [32]byte, name string, now time.Time) (User, bool) {
	if g.lim.CacheTTL <= 0 {
		return User{}, false
	}
	c, ok := g.cache.Get(key)
	if !ok {
		return User{}, false
	}
	if !now.Before(c.expires) {
		g.cache.Remove(key)
		return User{}, false
	}
	u, err := g.users.Get(name)
	if err != nil || !bytes.Equal(u.Hash, c.hash) {
		g.cache.Remove(key)
		return User{}, false
	}
	if ext := now.Add(g.lim.CacheTTL); ext.After(c.expires) && c.expires.Before(c.until) {
		if ext.After(c.until) {
			ext = c.until
		}
		c.expires = ext
		g.cache.Add(key, c)
	}
	return u, true
}

// LoginToken checks an API token for a request from client (see
// AuthenticateToken). A valid token is never refused: checking it costs
// no hashing slot, and it is no guess. A wrong one spends the client
// network's failure budget as a wrong password does, and once that is
// spent is answered ErrTooManyFailures.
func (g *Guard) LoginToken(client netip.Addr, secret string) (User, error) {
	u, err := g.users.AuthenticateToken(secret)
	if !errors.Is(err, ErrUnauthorized) {
		return u, err
	}
	now := g.lim.Now()
	res := limiter(g.clients, ClientNetwork(client), g.lim.Rate, g.lim.Burst).ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 || !res.OK() {
		res.CancelAt(now)
		g.limited.Add(1)
		return User{}, &PushbackError{Err: ErrTooManyFailures, RetryAfter: max(d, time.Second)}
	}
	g.failures.Add(1)
	return User{}, err
}

// Package browsertest drives a real headless Chromium (Debian's chromium,
// which .ci/run installs) through the Chrome DevTools Protocol (chromedp)
// for the web pages' tests: it loads a page, collects console errors and
// uncaught exceptions, sets the viewport, and runs axe-core (from the npm
// registry, in the tools cache) for accessibility violations. Like
// package tooltest, it fails the test when BUILDLEDGER_REQUIRE_BROWSER is
// set and Chromium or axe-core is missing, and skips it otherwise.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/buildledger/buildledger/internal/tooltest"
)

const require = "BUILDLEDGER_REQUIRE_BROWSER"

// Browser is one headless Chromium for a test.
type Browser struct {
	tb  testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// New starts Chromium for tb; it stops when tb ends.
func New(tb testing.TB) *Browser {
	tb.Helper()
	path := tooltest.Find(tb, "chromium", require, "install Debian's chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(tb.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{tb: tb, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelA()
		tb.Fatalf("starting chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.addError(fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
			}
		}
	}()
	tb.Cleanup(func() { cancel(); <-done; cancelA() })
	return b
}

func (b *Browser) addError(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// Errors returns the console errors and uncaught exceptions so far, and
// forgets them.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.errors
	b.errors = nil
	return out
}

// Do runs chromedp actions with a time limit.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Visit loads url at a viewport width × 900 and waits for the body.
func (b *Browser) Visit(url string, width int64) {
	b.tb.Helper()
	if err := b.Do(chromedp.EmulateViewport(width, 900), chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		b.tb.Fatalf("loading %s: %v", url, err)
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) in b's page.
func Eval[T any](b *Browser, expr string) T {
	b.tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.tb.Fatalf("evaluating %.80s: %v", expr, err)
	}
	return v
}

// WaitText waits until the element sel's text contains one of wants and
// returns the text.
func (b *Browser) WaitText(sel string, wants ...string) string {
	b.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		text := Eval[string](b, "(document.querySelector("+strconvQuote(sel)+") || {}).textContent || ''")
		for _, w := range wants {
			if strings.Contains(text, w) {
				return text
			}
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("%s never said any of %q; it says %q", sel, wants, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func strconvQuote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// Violation is an axe-core rule a page violates.
type Violation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	var targets []string
	for _, n := range v.Nodes {
		targets = append(targets, fmt.Sprint(n.Target...))
	}
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(targets, ", "))
}

var (
	axeOnce sync.Once
	axeJS   []byte
	axeErr  error
)

// Axe runs axe-core on the current page and returns its serious and
// critical violations.
func (b *Browser) Axe() []Violation {
	b.tb.Helper()
	axeOnce.Do(func() { axeJS, axeErr = findAxe() })
	if axeErr != nil {
		if os.Getenv(require) != "" {
			b.tb.Fatalf("axe-core is required (%s is set): %v", require, axeErr)
		}
		b.tb.Skipf("SKIPPED: %v", axeErr)
	}
	raw := Eval[string](b, string(axeJS)+"\n;axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))")
	var all []Violation
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		b.tb.Fatalf("axe's answer: %v", err)
	}
	var out []Violation
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}

// findAxe reads axe.min.js from $BUILDLEDGER_TOOLS/axe-core or
// ~/.cache/buildledger-tools/axe-core, where .ci/run unpacks it.
func findAxe() ([]byte, error) {
	home, _ := os.UserHomeDir()
	for _, dir := range []string{os.Getenv("BUILDLEDGER_TOOLS"), filepath.Join(home, ".cache", "buildledger-tools")} {
		if dir == "" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "axe-core", "axe.min.js")); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("axe-core not found in the tools cache; .ci/run unpacks it (npm pack axe-core) into TOOLS/axe-core/axe.min.js")
}

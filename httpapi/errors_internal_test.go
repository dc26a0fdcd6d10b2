package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/diskspace"
	"github.com/buildledger/buildledger/ledger"
)

// TestErrorTableRetryAfter: pushback answers say when to retry, and a
// backend that did not confirm an append is not said to have recorded
// nothing (the ledger sends the batch again before anything else).
func TestErrorTableRetryAfter(t *testing.T) {
	s := &Server{}
	for _, c := range []struct {
		err    error
		status int
		retry  string
		says   string
	}{
		{fmt.Errorf("%w: index 7 is taken but not integrated yet", ledger.ErrBackend), http.StatusServiceUnavailable, "5", "may still be recorded"},
		{ledger.ErrClosed, http.StatusServiceUnavailable, "10", "shutting down"},
		{&Error{Status: http.StatusTooManyRequests, Msg: "slow down", RetryAfter: 1500 * time.Millisecond}, http.StatusTooManyRequests, "2", "slow down"},
		{fmt.Errorf("%w: below the reserve", diskspace.ErrFull), http.StatusInsufficientStorage, "60", "nothing was recorded"},
		{fmt.Errorf("%w: %w on a full disk", diskspace.ErrFull, diskspace.ErrReadOnly), http.StatusInsufficientStorage, "", "restarts"},
		{ledger.ErrNotFound, http.StatusNotFound, "", "not"},
	} {
		w := httptest.NewRecorder()
		s.cfg.Logger = slog.New(slog.DiscardHandler)
		s.fail(w, httptest.NewRequest(http.MethodPost, "/upload", nil), c.err)
		if w.Code != c.status || w.Header().Get("Retry-After") != c.retry || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%v: %d Retry-After %q %q", c.err, w.Code, w.Header().Get("Retry-After"), w.Body.String())
		}
		if errors.Is(c.err, ledger.ErrBackend) && strings.Contains(w.Body.String(), "nothing was recorded") {
			t.Errorf("%v: says nothing was recorded", c.err)
		}
	}
}

// TestClientGoneIsNotAServerError: a request whose client went away is
// recorded as 499 and not logged as a failure of the server.
func TestClientGoneIsNotAServerError(t *testing.T) {
	var logged strings.Builder
	s := &Server{}
	s.cfg.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "/compare/a/b", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	s.fail(w, r, fmt.Errorf("comparing: %w", ctx.Err()))
	if w.Code != statusClientClosed || logged.Len() != 0 {
		t.Fatalf("status %d, logged %q", w.Code, logged.String())
	}
}

package vmm

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConsoleRing(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newConsole(3, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	})
	texts := func(ls []Line) []string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Text)
		}
		return s
	}
	if got, next := c.query(ConsoleQuery{}); len(got) != 0 || next != 1 {
		t.Errorf("empty: %v, %d", got, next)
	}
	for i := 1; i <= 5; i++ {
		c.append(fmt.Sprint(i))
	}
	for _, tc := range []struct {
		q    ConsoleQuery
		want []string
	}{
		{ConsoleQuery{}, []string{"3", "4", "5"}},
		{ConsoleQuery{Count: 1}, []string{"5"}},
		{ConsoleQuery{Count: 9}, []string{"3", "4", "5"}},
		{ConsoleQuery{Since: time.Date(2026, 1, 1, 0, 0, 4, 0, time.UTC)}, []string{"4", "5"}},
		{ConsoleQuery{Since: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	} {
		got, next := c.query(tc.q)
		if !reflect.DeepEqual(texts(got), tc.want) || next != 6 {
			t.Errorf("%+v: %v, next %d", tc.q, texts(got), next)
		}
	}
	// A follower from line 1 learns it missed two.
	// Once it has the buffered lines, a new line and the close reach it.
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	caughtUp := make(chan struct{})
	go func() {
		<-caughtUp
		c.append("6")
		c.close()
	}()
	err := c.follow(ctx, 1, func(l Line) error {
		seen = append(seen, l.Text)
		if l.Text == "5" {
			close(caughtUp)
		}
		return nil
	})
	cancel()
	if err != nil || len(seen) != 5 || !strings.Contains(seen[0], "2 console lines dropped") || seen[4] != "6" {
		t.Errorf("follow: %q, %v", seen, err)
	}
	c.append("after close")
	if got, _ := c.query(ConsoleQuery{Count: 1}); got[0].Text != "6" {
		t.Errorf("appended after close: %v", got)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, v := range []*Request{
		{Op: OpCreate, Spec: &Spec{Name: "x", MemMB: 32, Args: []string{"a"}, Nets: []Net{{"service", "br0"}}}, ImageSize: 7},
		{Op: OpConsole, Name: "x", Console: &ConsoleQuery{Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Follow: true}},
		{Op: OpPolicySet, Policy: &Policy{CPUs: []int{}, Bridges: []string{"br0"}}},
	} {
		var b bytes.Buffer
		if err := writeFrame(&b, v); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame[Request](&b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %+v: %+v, %v", v, got, err)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, &Request{Op: OpInfo, Name: "x"})
	f.Add(b.Bytes())
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readFrame[Request](bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeFrame(&out, r); err != nil {
			t.Fatal(err)
		}
		r2, err := readFrame[Request](&out)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("%+v re-read as %+v, %v", r, r2, err)
		}
	})
}

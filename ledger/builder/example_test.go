package builder_test

import (
	"fmt"
	"time"

	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

func Example() {
	e := &builder.Exec{
		Job:      builder.Job{Name: "hello", Script: "orb build hello\n", Platform: "debian-12"},
		UUID:     uuid.MustParse("3f2c5a1e-8b7d-4c6e-9a0f-1b2c3d4e5f60"),
		Console:  []builder.Line{{Delta: 0, Data: "start"}, {Delta: 1500 * time.Millisecond, Data: "done"}},
		Started:  time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Finished: time.Date(2024, 1, 2, 3, 4, 7, 0, time.UTC),
		Result:   builder.Result{Kind: builder.ResultExited, Code: 0},
		Output:   []builder.File{{Path: "bin/hello.hvt", Data: []byte("\x7fELF...")}},
	}
	der, err := e.Marshal() // what builder-server POSTs to /upload
	if err != nil {
		panic(err)
	}
	got, err := builder.Parse(der, builder.Limits{}) // zero Limits: the defaults
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Job.Name, got.Job.Platform, got.Result, got.Finished.Sub(got.Started))
	for _, l := range got.Console {
		fmt.Printf("%.3fs:%s\n", l.Delta.Seconds(), l.Data)
	}

	_, err = builder.Parse(append(der, 0), builder.Limits{})
	fmt.Println(err)
	// Output:
	// hello debian-12 exited 0 2s
	// 0.000s:start
	// 1.500s:done
	// exec: 1 trailing byte after the exec record (at byte 161)
}

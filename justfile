# Recipes for everyday work. The README's two commands do not need just.

set shell := ["bash", "-euo", "pipefail", "-c"]

data := "./ledger-data"

# Run the test suite (the same command CI runs).
test:
    go test -count=1 ./...

# Vet and format check.
check:
    test -z "$(gofmt -l $(git ls-files '*.go'))"
    go vet ./...

# Benchmarks with their baselines, printed as a short summary of ratios.
bench:
    go run ./cmd/ledgerbench

# Appends on Trillian+MariaDB vs embedded, and replica catch-up (needs
# MariaDB and the Trillian binaries, as .ci/run installs them).
bench-scale:
    go run ./cmd/ledgerbench -only scale

# All go test benchmarks (raw output, e.g. for benchstat).
bench-raw:
    go test -run='^$' -bench=. -benchmem ./...

# Run every fuzz target for the given time each (default 30s).
fuzz time="30s":
    #!/usr/bin/env bash
    set -euo pipefail
    for pkg in $(go list ./...); do
      for target in $(go test -list='^Fuzz' "$pkg" | grep '^Fuzz' || true); do
        echo "== $pkg $target"
        go test "$pkg" -run='^$' -fuzz="^${target}\$" -fuzztime={{time}}
      done
    done

# Run the main job on the embedded store.
run:
    go run ./cmd/ledger serve --data {{data}}

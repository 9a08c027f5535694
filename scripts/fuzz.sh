#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZTIME each, default 5s) on top of its
# committed corpus. A failure prints the fuzzer's whole output; a failure
# that left no crashing input behind (the fuzzing engine itself gave up,
# e.g. a worker starved on a loaded machine) is retried once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
t=${FUZZTIME:-5s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(grep -rl '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    for attempt in 1 2; do
      echo "== fuzz $pkg $f ($t)"
      before=$( (find "$pkg/testdata/fuzz/$f" -type f 2>/dev/null || true) | wc -l)
      if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >"$out" 2>&1; then
        tail -1 "$out"
        break
      fi
      cat "$out"
      after=$( (find "$pkg/testdata/fuzz/$f" -type f 2>/dev/null || true) | wc -l)
      if [ "$after" -gt "$before" ] || [ "$attempt" -eq 2 ]; then
        echo "fuzz target $f in $pkg failed" >&2
        exit 1
      fi
      echo "no crashing input was recorded; retrying once"
    done
  done
done

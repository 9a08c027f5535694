#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZTIME each, default 5s) on top of its
# committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
t=${FUZZTIME:-5s}
for pkg in $(grep -rl '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "== fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" | tail -1
  done
done

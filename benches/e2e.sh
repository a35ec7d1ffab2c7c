#!/usr/bin/env bash
# The end-to-end benchmark (issue #4) in one command: builds the release binaries (vswitchd,
# vsctl, pktgen when present) and runs the harness, which builds its own namespaces and
# switches, measures every path in interleaved rounds and writes target/e2e/results-<time>.
# {jsonl,md,svg}. Needs root. All options go to the harness (`--help` lists them):
#   bash benches/e2e.sh [--quick] [--rounds N] [--only a,d,g] [--tests fps,tcp,rtt,idle]
#   bash benches/e2e.sh --report target/e2e/results-<time>.jsonl   # re-render table + chart
# The harness is built in the dev profile on purpose: it only starts programs and reads
# counters, and unlike the release profile (panic = "abort") a panic unwinds through its
# guards, which remove every namespace, link and process it made.
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do
    if [ "$a" = "--report" ] || [ "$a" = "--help" ] || [ "$a" = "-h" ]; then
        cargo build --quiet -p vswitch-benches --bin e2e
        exec target/debug/e2e "$@"
    fi
done
cargo build --release --workspace --bins
cargo build --quiet -p vswitch-benches --bin e2e
exec target/debug/e2e --bin-dir target/release "$@"

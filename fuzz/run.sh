#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20): with cargo-fuzz on nightly when both are
# there, else with the stable driver (src/bin/drive.rs). Builds the corpus first in
# fuzz/corpus/TARGET (git-ignored): the hand-written seeds/, the task definitions of
# ../shared/fixtures (read in place; they are not copied into the repo) and the agent target's
# generated binary seeds. Exits non-zero on a crash (the input is in fuzz/artifacts/TARGET/).
#   fuzz/run.sh [SECONDS] [TARGET...]      FUZZ_ENGINE=stable forces the stable driver.
# Builds go to $CARGO_TARGET_DIR (default fuzz/target): stable/ for the driver, libfuzzer/ for
# cargo-fuzz (two compilers, two directories, so neither rebuilds the other's artifacts).
set -euo pipefail
cd "$(dirname "$0")"
base="${CARGO_TARGET_DIR:-target}"
unset CARGO_TARGET_DIR
secs="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(taskdef query pattern agent)

engine="${FUZZ_ENGINE:-}"
if [ -z "$engine" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly' && cargo fuzz --version >/dev/null 2>&1; then
    engine=libfuzzer
  else
    engine=stable
    echo "fuzz: nightly or cargo-fuzz missing; using the stable driver (coverage-blind)"
  fi
fi

cargo build --release --bin drive -q --target-dir "$base/stable"
drive="$base/stable/release/drive"
mkdir -p "$base/logs"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  [ -d "seeds/$t" ] && cp -n "seeds/$t"/* "corpus/$t"/ 2>/dev/null || true
done
"$drive" write-agent-seeds corpus/agent
fixtures="../../shared/fixtures"
[ -d "$fixtures" ] || fixtures="../shared/fixtures"
extra_taskdef=()
if [ -d "$fixtures/taskdefs" ]; then extra_taskdef=("$fixtures/taskdefs"); fi

status=0
for t in "${targets[@]}"; do
  dirs=("corpus/$t")
  [ "$t" = taskdef ] && dirs+=("${extra_taskdef[@]}")
  if [ "$engine" = libfuzzer ]; then
    # The first corpus dir collects new inputs; the fixtures dir is read only.
    cargo +nightly fuzz run --target-dir "$base/libfuzzer" --features libfuzzer "$t" "${dirs[@]}" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      2>"$base/logs/fuzz-$t.log" || status=1
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$base/logs/fuzz-$t.log" | sed "s/^/fuzz $t: /" || true
    if [ "$status" != 0 ]; then tail -40 "$base/logs/fuzz-$t.log"; fi
  else
    "$drive" "$t" "$secs" "${dirs[@]}" || status=1
  fi
done
exit "$status"

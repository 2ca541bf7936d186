#!/usr/bin/env bash
# The whole test suite, RUNS times in a row (default 5), while a CPU-heavy load runs beside it:
# the suite must never flake on a busy machine (issue 13 §5).
#
#   scripts/stress-tests.sh [RUNS] [-- CARGO_TEST_ARGS...]
#   STRESS_LOAD=spin scripts/stress-tests.sh    # a busy loop per core instead of builds
#   scripts/stress-tests.sh 20 -- --test multi_process   # one test binary, 20 times (issue 20 §2)
#
# CARGO_TEST_ARGS (after `--`) replace the default `--workspace`: they select what each run is,
# e.g. `--test multi_process`, `-p lead-intake-fake`, or `--test redis_shared -- late` (a filter
# after a second `--`, as cargo takes it).
#
# 1. builds the tests once (`cargo test CARGO_TEST_ARGS --no-run`);
# 2. starts the load, in a process group of its own: by default release builds of this crate
#    from scratch, one after another, in a temporary target directory, with a job per core (a
#    real compiler load: CPU, memory and disk, like the other builds the issue saw); with
#    STRESS_LOAD=spin a shell busy loop per core;
# 3. runs `cargo test CARGO_TEST_ARGS` RUNS times, stops at the first failure (its log is kept and
#    its failures printed), prints a summary, and stops the load (the whole group) on any exit.
#
# Nothing is installed: the load is cargo and bash. The build load works offline.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/stress-tests.sh [RUNS] [-- CARGO_TEST_ARGS...]  (RUNS a positive" \
        "number, default 5; CARGO_TEST_ARGS default --workspace)" >&2
    exit 2
}
runs=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    runs="$1"
    shift
fi
case "$runs" in '' | *[!0-9]* | 0) usage ;; esac
test_args=(--workspace)
libtest_args=()
if [ $# -gt 0 ]; then
    [ "$1" = "--" ] || usage
    shift
    [ $# -gt 0 ] || usage
    # Cargo's options, then libtest's from a second `--` on (kept with it): the build step
    # takes cargo's only.
    test_args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        test_args+=("$1")
        shift
    done
    libtest_args=("$@")
fi
load_kind="${STRESS_LOAD:-build}"
what="cargo test ${test_args[*]}${libtest_args[*]:+ ${libtest_args[*]}}"
cores="$(nproc)"
export CARGO_TERM_COLOR=never
work="$(mktemp -d "${TMPDIR:-/tmp}/stress-tests.XXXXXX")"
load_pid=""
keep_work=""

stop_load() {
    if [ -n "$load_pid" ]; then
        # The load's process group: bash, cargo and every rustc it started.
        kill -TERM -- "-$load_pid" 2>/dev/null || true
        wait "$load_pid" 2>/dev/null || true
        load_pid=""
    fi
    if [ -n "$keep_work" ]; then
        rm -rf "$work/load-target"
    else
        rm -rf "$work"
    fi
}
trap stop_load EXIT
trap 'exit 130' INT TERM

# "N passed" summed over every `test result:` line of a cargo test log.
passed_in() {
    awk '/^test result:/ { for (i = 2; i <= NF; i++) if ($i == "passed;") n += $(i - 1) }
         END { print n + 0 }' "$1"
}

echo "== building the tests once ($what)"
cargo test "${test_args[@]}" --no-run --quiet

echo "== load: $load_kind, $cores cores"
# Job control: the load gets a process group of its own (its id is the job's pid), so stopping
# it stops every process it started, and nothing else.
set -m
case "$load_kind" in
build)
    bash -c '
        while :; do
            cargo build --release --offline --quiet --lib --jobs "$1" --target-dir "$2" || exit 1
            rm -rf "$2/release"
        done' load "$cores" "$work/load-target" >"$work/load.log" 2>&1 &
    ;;
spin)
    bash -c 'for _ in $(seq "$1"); do (while :; do :; done) & done; wait' load "$cores" &
    ;;
*)
    echo "STRESS_LOAD is build or spin, not $load_kind" >&2
    exit 2
    ;;
esac
load_pid=$!
set +m

started=$SECONDS
passed=0
tests=0
for i in $(seq "$runs"); do
    if ! kill -0 "$load_pid" 2>/dev/null; then
        keep_work=1
        echo "the load stopped; its log: $work/load.log" >&2
        exit 1
    fi
    log="$work/run-$i.log"
    run_started=$SECONDS
    if cargo test "${test_args[@]}" "${libtest_args[@]}" >"$log" 2>&1; then
        passed=$((passed + 1))
        tests=$(passed_in "$log")
        echo "run $i/$runs: passed, $tests tests in $((SECONDS - run_started)) s" \
            "(load average $(cut -d' ' -f1 /proc/loadavg))"
    else
        keep_work=1
        echo "run $i/$runs: FAILED after $((SECONDS - run_started)) s; the whole log: $log"
        grep -E "^test .* FAILED$|panicked at|^test result: FAILED|^error" "$log" | head -40 || true
        echo "== summary: $passed of $runs runs of \`$what\` passed before run $i failed" \
            "(load: $load_kind, $cores cores, $((SECONDS - started)) s)"
        exit 1
    fi
done
if ! kill -0 "$load_pid" 2>/dev/null; then
    keep_work=1
    echo "the load stopped during the runs; its log: $work/load.log" >&2
    exit 1
fi
echo "== summary: $passed of $runs runs of \`$what\` passed, $tests tests each, beside the" \
    "$load_kind load on $cores cores, in $((SECONDS - started)) s"

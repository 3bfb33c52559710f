# result-lib.sh: one figure of a benchmark, for bench/run-all's table.
# Sourced by the bench scripts. `result BENCH FIGURE SKYSTACK PEER RATIO GOAL`
# appends one tab-separated line to $SK_BENCH_RESULTS when it is set (by
# bench/run-all) and does nothing otherwise; PEER and RATIO are "-" for a
# figure without a peer. Values are as printed (units in FIGURE).
result() {
    [ -n "${SK_BENCH_RESULTS:-}" ] || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$SK_BENCH_RESULTS"
}

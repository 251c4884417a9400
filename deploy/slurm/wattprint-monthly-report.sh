#!/bin/sh
# The monthly wattprint report of a Slurm cluster, run by wattprint-report.service on the 1st:
# ingest the previous UTC month from Prometheus, import its Slurm jobs (optional), fetch its grid
# intensity (optional), then write the month's reports.
#
# Settings (environment; /etc/default/wattprint-report for the unit):
#   PROMETHEUS_URL     base URL of the Prometheus-compatible API (required)
#   PROMETHEUS_ARGS    more flags for `wattprint ingest`, e.g. "--prometheus-token-file /etc/wattprint/prom-token"
#   SACCT_IMPORT       "yes": import the month's jobs with `sacct --json` + `wattprint jobs import --format sacct-json`
#   SACCT_ARGS         more sacct flags, e.g. "--clusters jean-zay"
#   FETCH_INTENSITY    "SOURCE ZONE [flags]": `wattprint intensity fetch` for the month, e.g. "uk GB"
#   REPORT_FORMATS     `wattprint report --format` values, space-separated (default "html json")
#   REPORT_DIR         reports go to REPORT_DIR/<YYYY-MM>/wattprint-<YYYY-MM>.<format> (default /var/lib/wattprint/reports)
#   REPORT_MONTH       YYYY-MM to (re)build instead of the previous month
#   WATTPRINT          the wattprint command (default: wattprint on PATH)
# WATTPRINT_DB and WATTPRINT_CONFIG (read by wattprint itself) name the ledger and the cluster config.
# Exit status: that of the first step that failed (1 upstream or database, 2 bad input), else 0.
#
# POSIX sh with GNU date (coreutils).
set -eu

WATTPRINT=${WATTPRINT:-wattprint}
log() { printf 'wattprint-monthly-report: %s\n' "$*" >&2; }

run() {
    log "$*"
    rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        log "$1 $2 failed with exit status $rc"
        exit "$rc"
    fi
}

if [ -n "${REPORT_MONTH:-}" ]; then
    month=$REPORT_MONTH
else
    # The day before the 1st of this UTC month is in the previous month.
    month=$(date -u -d "$(date -u +%Y-%m-01) -1 day" +%Y-%m)
fi
case $month in
    [0-9][0-9][0-9][0-9]-0[1-9] | [0-9][0-9][0-9][0-9]-1[0-2]) ;;
    *) log "REPORT_MONTH=$month: expected YYYY-MM, e.g. 2024-03"; exit 2 ;;
esac
next=$(date -u -d "$month-01 +1 month" +%Y-%m)
start="$month-01T00:00:00Z"
end="$next-01T00:00:00Z"
log "month $month [$start, $end)"

: "${PROMETHEUS_URL:?set PROMETHEUS_URL (e.g. http://prometheus:9090) in /etc/default/wattprint-report}"
# shellcheck disable=SC2086  # PROMETHEUS_ARGS holds several flags
run "$WATTPRINT" ingest --prometheus "$PROMETHEUS_URL" ${PROMETHEUS_ARGS:-} --start "$start" --end "$end"

if [ "${SACCT_IMPORT:-no}" = yes ]; then
    jobs=$(mktemp "${TMPDIR:-/tmp}/wattprint-sacct.XXXXXX")
    trap 'rm -f "$jobs"' EXIT
    log "sacct --json for $start .. $end"
    # TZ=UTC: sacct reads --starttime/--endtime as local times.
    # shellcheck disable=SC2086
    if ! TZ=UTC sacct --allusers --json --starttime "$month-01T00:00:00" --endtime "$next-01T00:00:00" \
        ${SACCT_ARGS:-} >"$jobs"; then
        log "sacct failed"
        exit 1
    fi
    run "$WATTPRINT" jobs import "$jobs" --format sacct-json
fi

if [ -n "${FETCH_INTENSITY:-}" ]; then
    # shellcheck disable=SC2086
    set -- $FETCH_INTENSITY
    if [ $# -lt 2 ]; then log "FETCH_INTENSITY=$FETCH_INTENSITY: expected SOURCE ZONE [flags], e.g. uk GB"; exit 2; fi
    source=$1 zone=$2
    shift 2
    run "$WATTPRINT" intensity fetch --source "$source" --zone "$zone" --start "$start" --end "$end" "$@"
fi

out="${REPORT_DIR:-/var/lib/wattprint/reports}/$month"
mkdir -p -- "$out"
for format in ${REPORT_FORMATS:-html json}; do
    run "$WATTPRINT" report --month "$month" --format "$format" --out "$out/wattprint-$month.$format"
done
log "reports for $month in $out"

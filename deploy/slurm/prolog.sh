#!/bin/sh
# wattprint Slurm Prolog: record this job on each of its GPUs in the job-mapping directory.
#
# slurm.conf:  Prolog=/etc/slurm/prolog.d/wattprint.sh   (and PrologFlags=Alloc, see README.md)
#
# slurmd runs it as root on every node of the job (at allocation with PrologFlags=Alloc), with
# SLURM_JOB_ID and SLURM_JOB_GPUS in the environment. For each GPU number in SLURM_JOB_GPUS
# ("0,2": comma-separated, as Slurm sets it), the line "$SLURM_JOB_ID" is added to
# $WATTPRINT_MAPPING_DIR/<gpu> (default /run/wattprint/jobs), the directory that
# `wattprint-exporter --job-discovery mapping-dir` reads (dcgm-exporter's --hpc-job-mapping-dir format).
# CUDA_VISIBLE_DEVICES is not used: what it holds changed between Slurm releases (UUIDs since 25.11).
#
# Concurrency: jobs sharing a node start and end at the same time, so every change is made under
# flock(1) on $WATTPRINT_MAPPING_DIR.lock, and each file is rewritten whole into a temporary file
# beside the directory and renamed over the old one: the exporter reads either the old or the new
# file, never half of one, and no job's line is lost to a concurrent prolog or epilog.
# The lock and temporary files sit next to the directory, not in it, because the exporter counts
# every file in it that is not named <gpu> or <gpu>.<instance> as an error.
#
# It never fails the job: Slurm drains the node and requeues the job when a Prolog exits non-zero,
# so every problem is logged (stderr, and syslog via logger(1) when present) and it exits 0.
# A job whose GPUs are not recorded is still measured; its energy is booked to the GPU's idle.
#
# POSIX sh (tested with dash and bash); needs flock, mktemp, awk and mv (util-linux, coreutils).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin  # Slurm runs prologs without a PATH
export PATH
umask 022  # the exporter runs as another user and must read the files

TAG=wattprint-prolog
DIR=${WATTPRINT_MAPPING_DIR:-/run/wattprint/jobs}
JOB=${SLURM_JOB_ID:-}
GPUS=${SLURM_JOB_GPUS:-}
LOCK_WAIT=${WATTPRINT_LOCK_WAIT:-10}
tmp=

log() {
    printf '%s: %s\n' "$TAG" "$*" >&2
    if command -v logger >/dev/null 2>&1; then
        logger -t "$TAG" -p user.warning -- "$*" >/dev/null 2>&1 || :
    fi
}

# A temporary file of a run that stops half-way is removed.
trap 'if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi' EXIT
trap 'exit 0' HUP INT TERM

# Add the line $JOB to one mapping file, unless it is already there (a prolog run twice).
add_job() {
    file=$1
    src=$file
    [ -f "$file" ] || src=/dev/null
    if awk -v id="$JOB" '{ sub(/\r$/, ""); gsub(/^[ \t]+|[ \t]+$/, "") } $0 == id { found = 1; exit }
                         END { exit !found }' "$src"; then
        return 0
    fi
    tmp=$(mktemp "$DIR.XXXXXX") || { log "job $JOB: cannot create a temporary file beside $DIR"; return 1; }
    # awk re-ends every line, so a last line without a newline is not glued to ours.
    if ! { awk '{ print }' "$src" && printf '%s\n' "$JOB"; } >"$tmp"; then
        log "job $JOB: cannot write $tmp"
        return 1
    fi
    if ! { chmod 0644 "$tmp" && mv -f -- "$tmp" "$file"; }; then
        log "job $JOB: cannot replace $file"
        return 1
    fi
    tmp=
}

# Everything that touches the directory, run with the lock file open on descriptor 9.
record() {
    if ! flock -w "$LOCK_WAIT" 9; then
        log "job $JOB: $DIR.lock still held after ${LOCK_WAIT}s; job not recorded on GPUs $GPUS"
        return 0
    fi
    old_ifs=$IFS
    IFS=','
    set -f
    # shellcheck disable=SC2086  # split on commas on purpose, globbing off
    set -- $GPUS
    set +f
    IFS=$old_ifs
    for gpu in "$@"; do
        case $gpu in
            '' | NoDevFiles) continue ;;
            *[!0-9]*) log "job $JOB: SLURM_JOB_GPUS entry '$gpu' is not a GPU number; skipped"; continue ;;
        esac
        add_job "$DIR/$gpu" || :
    done
    return 0
}

main() {
    [ -n "$GPUS" ] || return 0  # no GPU in this job on this node: nothing to record
    case $JOB in
        '' | *[!0-9]*) log "SLURM_JOB_ID '$JOB' is not a job id; nothing recorded"; return 0 ;;
    esac
    if ! command -v flock >/dev/null 2>&1; then
        log "job $JOB: flock not found (util-linux); job not recorded"
        return 0
    fi
    if [ ! -d "$DIR" ] && ! mkdir -p -- "$DIR" 2>/dev/null; then
        log "job $JOB: cannot create $DIR; job not recorded on GPUs $GPUS"
        return 0
    fi
    # Checked in a subshell first: a failed redirection on a special built-in ends the shell.
    if ! (: >>"$DIR.lock") 2>/dev/null; then
        log "job $JOB: cannot open $DIR.lock; job not recorded on GPUs $GPUS"
        return 0
    fi
    record 9>>"$DIR.lock" || log "job $JOB: cannot open $DIR.lock; job not recorded on GPUs $GPUS"
    return 0
}

main
exit 0

#!/bin/sh
# wattprint Slurm Epilog: remove this job from the job-mapping directory.
#
# slurm.conf:  Epilog=/etc/slurm/epilog.d/wattprint.sh
#
# slurmd runs it as root on every node of the job when the allocation ends. It deletes the lines
# that are exactly "$SLURM_JOB_ID" from every file in $WATTPRINT_MAPPING_DIR (default
# /run/wattprint/jobs) and leaves every other line alone, so the other jobs sharing a GPU stay
# recorded; a file left with no job is removed. It looks in every file rather than only those in
# SLURM_JOB_GPUS because older Slurm releases documented that variable for the Prolog only, and a
# line left behind would keep a finished job on its GPU until the node reboots (/run is a tmpfs).
# A job with no GPU on this node changes nothing.
#
# Same locking and atomic rewrite as prolog.sh (flock on $WATTPRINT_MAPPING_DIR.lock, temporary
# file beside the directory, rename), and it never fails: Slurm drains the node when an Epilog
# exits non-zero, so problems are logged (stderr, and syslog via logger(1) when present) and it
# exits 0.
#
# POSIX sh (tested with dash and bash); needs flock, mktemp, awk and mv (util-linux, coreutils).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin  # Slurm runs epilogs without a PATH
export PATH
umask 022

TAG=wattprint-epilog
DIR=${WATTPRINT_MAPPING_DIR:-/run/wattprint/jobs}
JOB=${SLURM_JOB_ID:-}
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

# Remove the lines equal to $JOB (ignoring surrounding blanks and a CR) from one mapping file.
remove_job() {
    file=$1
    # Cheap check first: most files do not hold this job and are left untouched.
    awk -v id="$JOB" '{ sub(/\r$/, ""); gsub(/^[ \t]+|[ \t]+$/, "") } $0 == id { found = 1; exit }
                      END { exit !found }' "$file" || return 0
    tmp=$(mktemp "$DIR.XXXXXX") || { log "job $JOB: cannot create a temporary file beside $DIR"; return 1; }
    if ! awk -v id="$JOB" '{ line = $0; sub(/\r$/, "", line); gsub(/^[ \t]+|[ \t]+$/, "", line) }
                           line != id { print }' "$file" >"$tmp"; then
        log "job $JOB: cannot write $tmp"
        return 1
    fi
    if [ -s "$tmp" ]; then
        if ! { chmod 0644 "$tmp" && mv -f -- "$tmp" "$file"; }; then
            log "job $JOB: cannot replace $file"
            return 1
        fi
    else
        rm -f -- "$file" || { log "job $JOB: cannot remove $file"; return 1; }
        rm -f -- "$tmp"
    fi
    tmp=
}

# Everything that touches the directory, run with the lock file open on descriptor 9.
forget() {
    if ! flock -w "$LOCK_WAIT" 9; then
        log "job $JOB: $DIR.lock still held after ${LOCK_WAIT}s; job left in $DIR"
        return 0
    fi
    for file in "$DIR"/*; do
        case ${file##*/} in
            *[!0-9.]* | .* | '') continue ;;  # not a <gpu> or <gpu>.<instance> file
        esac
        [ -f "$file" ] || continue
        remove_job "$file" || :
    done
    return 0
}

main() {
    case $JOB in
        '' | *[!0-9]*) log "SLURM_JOB_ID '$JOB' is not a job id; nothing removed"; return 0 ;;
    esac
    [ -d "$DIR" ] || return 0  # no mapping directory on this node: nothing recorded, nothing to remove
    if ! command -v flock >/dev/null 2>&1; then
        log "job $JOB: flock not found (util-linux); job left in $DIR"
        return 0
    fi
    # Checked in a subshell first: a failed redirection on a special built-in ends the shell.
    if ! (: >>"$DIR.lock") 2>/dev/null; then
        log "job $JOB: cannot open $DIR.lock; job left in $DIR"
        return 0
    fi
    forget 9>>"$DIR.lock" || log "job $JOB: cannot open $DIR.lock; job left in $DIR"
    return 0
}

main
exit 0

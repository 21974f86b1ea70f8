"""The shell scripts of a detached program: its launch, its monitor and ``tree.sh``."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from django_remote_submission.transport.shell import quote

#: Finds and stops all of a job's processes, in whatever process group or session: see
#: "What cancel and timeout stop" in docs/running-jobs.rst. The launch writes it to the
#: control directory; the monitor records the program's tree with it while the program
#: runs, and the timeout's watchdog and ``Transport.stop`` stop the tree with it. Needs a
#: POSIX sh, awk and find, procps ``ps``, GNU ``sleep`` and Linux's /proc; not root.
TREE_SCRIPT = r"""# Written by django-remote-submission: finds and stops every process of one job.
#   tree.sh record CTL PID       adds the job's processes not recorded yet to CTL/tree
#                                ("pid start-time" lines); PID is the program's pid
#   tree.sh first CTL PID        adds the program itself, reading its status alone
#   tree.sh start CTL PID        first, then share (what the monitor runs)
#   tree.sh share CTL PID        hands the job to the login's one tracker (below),
#                                starting it unless it runs; fails where it cannot
#                                (no flock, no writable $HOME): then use track
#   tree.sh track CTL PID        record every 1, 2, 4, 8, then 16 s, until the
#                                program has ended (one job's own tracker)
#   tree.sh tracker DIR          the login's tracker: every second, one look at the
#                                login's processes records those of every job
#                                registered in DIR/jobs (a link named by the program's
#                                pid, to its CTL); ends when none is left. One runs at
#                                a time (a lock on DIR/lock).
#   tree.sh stop CTL PID GRACE   TERM to all of them, KILL to what is left after GRACE
#                                seconds; prints the processes still alive after that
#                                ("pid command", one a line) and writes them to
#                                CTL/survivors. Before each, it stops them all (STOP),
#                                so that none forks or leaves between a look and a signal.
# The job's processes are the members of the program's process group and session, the
# processes recorded in CTL/tree (and CTL/tree.stop) whose start time still matches (a
# pid reused by another process does not), and, as long as more are found, the children
# of those and the members of any process group or session one of them is in. Never pid
# 0 or 1, nor this script's ancestors, group or session. Only processes of this user are
# signalled, and a whole group only when all of its members are.
mode=$1 ctl=$2
DRS_CTL=$ctl DRS_ROOT=$3 DRS_SELF=$$ DRS_UID=
export DRS_CTL DRS_ROOT DRS_SELF DRS_UID
# This user's id, where a look needs it (each process a launch starts counts).
uid() { [ -n "$DRS_UID" ] || DRS_UID=$(id -u); }

# Reads /proc/PID/stat for each /proc/PID on its input and writes the job's processes:
# "pid start-time" of those not recorded yet (record; exit status 3: these lines are the
# whole record, 4: the program has ended), or "pid start-time pgid sid state mine
# whole-group-mine recorded" of each (stop).
SCAN='
function load(file,    line, f) {
    while ((getline line < file) > 0)
        if (split(line, f, " ") >= 2) { known[f[1] " " f[2]] = 1; recorded[f[1]] = 1 }
    close(file)
}
function add(p) {
    if ((p in member) || (p in ancestor) || (G[p] in bad) || (S[p] in bad)) return
    member[p] = 1; group[G[p]] = 1; session[S[p]] = 1; changed = 1
}
function mine(p,    file, line, f, yes) {
    file = "/proc/" p "/status"
    while ((getline line < file) > 0)
        if (line ~ /^Uid:/) { split(line, f, " "); yes = (f[2] == uid) }
    close(file)
    return yes ? 1 : 0
}
BEGIN {
    ctl = ENVIRON["DRS_CTL"]; root = ENVIRON["DRS_ROOT"]
    self = ENVIRON["DRS_SELF"]; uid = ENVIRON["DRS_UID"]
    load(ctl "/tree")
    if (mode == "stop") load(ctl "/tree.stop")
}
{
    # "pid (name) state ppid pgrp session ...": the name may hold spaces, ")" and even a
    # newline, so the fields are what follows the last ")".
    file = $0 "/stat"; entry = ""
    while ((getline line < file) > 0) entry = (entry == "") ? line : entry "\n" line
    close(file)
    lp = index(entry, " (")
    rest = entry; rp = 0
    while ((i = index(rest, ")")) > 0) { rp += i; rest = substr(rest, i + 1) }
    if (lp == 0 || rp <= lp || split(rest, f, " ") < 20) next  # gone meanwhile
    p = substr(entry, 1, lp - 1)
    n++; pids[n] = p
    state[p] = f[1]; P[p] = f[2]; G[p] = f[3]; S[p] = f[4]; T[p] = f[20]
}
END {
    bad[0] = 1; bad[1] = 1
    if (self in G) { bad[G[self]] = 1; bad[S[self]] = 1 }
    for (a = self; (a in P) && !(a in ancestor); a = P[a]) ancestor[a] = 1
    # The parent of the program (its monitor), its group and its session are never the
    # job: the program is in them from its start until its setsid(), and a look in
    # between would otherwise take them for part of the job.
    if ((root in T) && (P[root] in G) && (!(root in recorded) || ((root " " T[root]) in known))) {
        ancestor[P[root]] = 1; bad[G[P[root]]] = 1; bad[S[P[root]]] = 1
    }
    # A recorded pid still names a group or session of the job unless another process
    # has it now: the kernel gives no pid away while a group or session has it as its id.
    for (r in recorded) if (!(r in T) || ((r " " T[r]) in known)) trust[r] = 1
    if (!(root in recorded)) trust[root] = 1
    for (i = 1; i <= n; i++) {
        p = pids[i]
        if (((p " " T[p]) in known) || (G[p] in trust) || (S[p] in trust)) add(p)
    }
    do {
        changed = 0
        for (i = 1; i <= n; i++) {
            p = pids[i]
            if (!(p in member) && ((P[p] in member) || (G[p] in group) || (S[p] in session)))
                add(p)
        }
    } while (changed)
    if (mode == "stop") {
        for (p in member) own[p] = mine(p)
        for (i = 1; i <= n; i++) {
            p = pids[i]
            if ((G[p] in group) && !((p in member) && own[p])) mixed[G[p]] = 1
        }
        for (i = 1; i <= n; i++) {
            p = pids[i]
            if (p in member)
                print p, T[p], G[p], S[p], state[p], own[p], \
                    ((G[p] in mixed) ? 0 : 1), (((p " " T[p]) in known) ? 1 : 0)
        }
        exit 0
    }
    gone = !(root in T) || state[root] == "Z" || \
        ((root in recorded) && !((root " " T[root]) in known))
    # A long job that runs many short commands leaves many dead records: once they are
    # many, the live ones (and the program) are the whole record.
    dead = 0
    for (k in known) { split(k, f, " "); if (!(f[1] in T) || T[f[1]] != f[2]) dead++ }
    whole = !gone && dead > 1000
    if (whole) for (k in known) { split(k, f, " "); if (f[1] == root) print k }
    for (i = 1; i <= n; i++) {
        p = pids[i]
        if ((p in member) && state[p] != "Z" && (whole || !((p " " T[p]) in known)))
            print p, T[p]
    }
    exit (gone ? 4 : (whole ? 3 : 0))
}'

# The tracker's look, for all registered jobs at once: reads /proc/PID/stat for each
# /proc/PID on its input once, then for each job (ENVIRON DRS_JOBS: the programs' pids,
# DRS_DIR: where their links are) appends what "record" would to its tree, through
# indexes of children, groups and sessions (a look costs the processes plus the jobs'
# own, not the two multiplied). Prints "W pid" for a job whose record it rewrote into
# tree.new, "G pid" for a job whose program has ended.
TRACK='
function push(list,    items, i, k) {
    k = split(list, items, " ")
    for (i = 1; i <= k; i++) queue[++n] = items[i]
}
function look(root,    ctl, file, line, f, k, r, m, head, dead, gone, whole, up, upg, ups) {
    ctl = dir "/" root
    split("", known); split("", recorded); split("", trust)
    split("", member); split("", group); split("", session); split("", queue)
    file = ctl "/tree"
    while ((getline line < file) > 0)
        if (split(line, f, " ") >= 2) { known[f[1] " " f[2]] = 1; recorded[f[1]] = 1 }
    close(file)
    gone = !(root in T) || state[root] == "Z" || \
        ((root in recorded) && !((root " " T[root]) in known))
    for (r in recorded) if (!(r in T) || ((r " " T[r]) in known)) trust[r] = 1
    if (!(root in recorded)) trust[root] = 1
    n = 0; dead = 0
    for (k in known) {
        split(k, f, " ")
        if ((f[1] in T) && T[f[1]] == f[2]) queue[++n] = f[1]; else dead++
    }
    for (r in trust) { push(GM[r]); push(SM[r]) }
    # The parent of the program (its monitor), its group and its session: see SCAN.
    up = ""; upg = ""; ups = ""
    if ((root in T) && (P[root] in G) && ((root " " T[root]) in known)) {
        up = P[root]; upg = G[up]; ups = S[up]
    }
    for (head = 1; head <= n; head++) {
        m = queue[head]
        if ((m in member) || (m in ancestor) || (G[m] in bad) || (S[m] in bad)) continue
        if (up != "" && (m == up || G[m] == upg || S[m] == ups)) continue
        member[m] = 1
        if (!(G[m] in group)) { group[G[m]] = 1; push(GM[G[m]]) }
        if (!(S[m] in session)) { session[S[m]] = 1; push(SM[S[m]]) }
        push(KIDS[m])
    }
    whole = !gone && dead > 1000
    if (whole) {
        file = ctl "/tree.new"
        printf "" > file
        for (k in known) { split(k, f, " "); if (f[1] == root) print k > file }
    }
    for (m in member)
        if (state[m] != "Z" && (whole || !((m " " T[m]) in known))) print m, T[m] >> file
    close(file)
    if (whole) print "W", root
    if (gone) print "G", root
}
BEGIN { dir = ENVIRON["DRS_DIR"]; self = ENVIRON["DRS_SELF"] }
{
    file = $0 "/stat"; entry = ""
    while ((getline line < file) > 0) entry = (entry == "") ? line : entry "\n" line
    close(file)
    lp = index(entry, " (")
    rest = entry; rp = 0
    while ((i = index(rest, ")")) > 0) { rp += i; rest = substr(rest, i + 1) }
    if (lp == 0 || rp <= lp || split(rest, f, " ") < 20) next
    p = substr(entry, 1, lp - 1)
    state[p] = f[1]; P[p] = f[2]; G[p] = f[3]; S[p] = f[4]; T[p] = f[20]
    KIDS[f[2]] = KIDS[f[2]] " " p; GM[f[3]] = GM[f[3]] " " p; SM[f[4]] = SM[f[4]] " " p
}
END {
    bad[0] = 1; bad[1] = 1
    if (self in G) { bad[G[self]] = 1; bad[S[self]] = 1 }
    for (a = self; (a in P) && !(a in ancestor); a = P[a]) ancestor[a] = 1
    k = split(ENVIRON["DRS_JOBS"], roots, " ")
    for (j = 1; j <= k; j++) look(roots[j])
}'

scan() {
    uid
    if [ "$1" = stop ]; then
        printf '%s\n' /proc/[0-9]*
    else
        # This user's processes only: on a shared server most are others', and reading
        # their stat would cost most of each look. (A process of another user is not
        # signalled anyway; a child of ours under it is still found by its group.)
        find /proc/. ! -name . -prune -name '[0-9]*' -user "$DRS_UID" 2>/dev/null
    fi | awk -v mode="$1" "$SCAN"
}

record() {
    new=$(scan record); code=$?
    if [ "$code" = 3 ]; then
        printf '%s\n' "$new" > "$ctl/tree.new" && mv -f "$ctl/tree.new" "$ctl/tree"
    elif [ -n "$new" ]; then
        printf '%s\n' "$new" >> "$ctl/tree"
    fi
    return "$code"
}

# Sends signal $1 (then $2, if given) to each process of the job that is this user's and
# was not sent $1 since the last "sent= groups=" (a group at once, when it is all this
# user's; then its newcomers one by one). Records the processes it meets in CTL/tree.stop.
# Leaves: alive (the job's processes not dead yet), living (their pids), ours (those of
# them that are this user's), running (of those, the ones not stopped).
send() {
    alive=0 ours=0 running=0 living= targets= fresh=" "
    list=$(scan stop)
    while read -r pid start pg sid state own whole known; do
        case $state in '' | Z | X) continue ;; esac
        alive=$((alive + 1)) living=$living${living:+,}$pid
        [ "$known" = 1 ] || echo "$pid $start" >> "$ctl/tree.stop"
        [ "$own" = 1 ] || continue
        ours=$((ours + 1))
        case $state in T | t | D) ;; *) running=$((running + 1)) ;; esac
        [ -n "$1" ] || continue
        case $sent in *" $pid:$start "*) continue ;; esac
        sent="$sent$pid:$start "
        if [ "$whole" = 1 ] && [ "$pg" -gt 1 ]; then
            case $groups in
                *" $pg "*) case $fresh in *" $pg "*) ;; *) targets="$targets $pid" ;; esac ;;
                *) groups="$groups$pg " fresh="$fresh$pg " targets="$targets -$pg" ;;
            esac
        else
            targets="$targets $pid"
        fi
    done <<END_OF_LIST
$list
END_OF_LIST
    if [ -n "$targets" ]; then
        kill -"$1" $targets 2>/dev/null
        [ -z "$2" ] || kill -"$2" $targets 2>/dev/null
    fi
}

# Stops (SIGSTOP) every process of the job, again until none of them runs: a stopped
# process neither forks nor leaves the tree between a look and a signal.
freeze() {
    sent=" " groups=" "
    send STOP
    rounds=0
    while [ "$running" -gt 0 ] && [ "$rounds" -lt 50 ]; do
        sleep 0.02
        send STOP
        rounds=$((rounds + 1))
    done
}

stop() {
    # Half done, the job would be left stopped: nothing but KILL ends this.
    trap '' HUP INT QUIT PIPE TERM
    ticks=$(awk -v grace="$1" 'BEGIN { t = int(grace * 10); print ((t < 1) ? 1 : t) }')
    freeze
    # CONT after TERM: a stopped process acts on its TERM only once it runs again.
    sent=" " groups=" "
    send TERM CONT
    i=0
    while [ "$ours" -gt 0 ] && [ "$i" -lt "$ticks" ]; do
        sleep 0.1
        send TERM CONT
        i=$((i + 1))
    done
    if [ "$ours" -gt 0 ]; then
        freeze
        sent=" " groups=" "
        send KILL
        i=0
        while [ "$ours" -gt 0 ] && [ "$i" -lt 50 ]; do
            sleep 0.1
            send KILL
            i=$((i + 1))
        done
    fi
    survivors=
    [ -z "$living" ] || survivors=$(ps -ww -o pid=,args= -p "$living" 2>/dev/null)
    printf '%s' "$survivors" > "$ctl/survivors.tmp" && mv -f "$ctl/survivors.tmp" "$ctl/survivors"
    [ -z "$survivors" ] || printf '%s\n' "$survivors"
    exit 0
}

# The program itself, before anything can reap it (its pid and start time tell it from a
# later process with its pid): one file read, where "record" reads every process's. Once
# it leads a session of its own (the monitor starts it with setsid, which takes a moment
# to get there): until then it is in its monitor's group and session, and a look would
# find the monitor with it. At most 10 s; a program that ended is recorded at once.
first() {
    i=0
    while :; do
        stat=
        { IFS= read -r stat; } 2>/dev/null < "/proc/$DRS_ROOT/stat"
        rest=${stat##*") "}
        [ -n "$stat" ] && [ "$rest" != "$stat" ] || { record; return; }
        set -f
        # shellcheck disable=SC2086
        set -- $rest
        set +f
        [ "$#" -ge 20 ] || { record; return; }
        [ "$4" != "$DRS_ROOT" ] && [ "$1" != Z ] && [ "$i" -lt 1000 ] || break
        sleep 0.01
        i=$((i + 1))
    done
    shift 19
    printf '%s %s\n' "$DRS_ROOT" "$1" >> "$ctl/tree"
}

# The login's tracker (see "tracker" above); DIR/lock is held (flock) while it runs.
tracker() {
    dir=$ctl
    exec 8>>"$dir/lock" || exit 0
    flock -n 8 || exit 0
    uid
    while :; do
        ids=
        for entry in "$dir"/jobs/*; do
            id=${entry##*/}
            case $id in '' | *[!0-9]*) continue ;; esac
            if [ -d "$entry" ]; then ids="$ids $id"; else rm -f "$entry"; fi
        done
        if [ -z "$ids" ]; then
            # A job registered after that look found the lock held, and started no
            # tracker: look again once the lock is let go.
            flock -u 8
            for entry in "$dir"/jobs/*; do
                [ -e "$entry" ] || [ -L "$entry" ] || continue
                flock -n 8 && continue 2
                exit 0
            done
            exit 0
        fi
        find /proc/. ! -name . -prune -name '[0-9]*' -user "$DRS_UID" 2>/dev/null |
            DRS_DIR="$dir/jobs" DRS_JOBS="$ids" awk "$TRACK" 2>/dev/null |
            while read -r what id; do
                case $what in
                    W) mv -f "$dir/jobs/$id/tree.new" "$dir/jobs/$id/tree" ;;
                    G) rm -f "$dir/jobs/$id" ;;
                esac
            done
        sleep 1
    done
}

# Hands the job to the login's tracker; fails (status 1) where there can be none.
share() {
    command -v flock >/dev/null 2>&1 || return 1
    [ -n "$HOME" ] && [ -d "$HOME" ] || return 1
    dir=$HOME/.drs-tracker
    mkdir -p "$dir/jobs" 2>/dev/null || return 1
    ln -sfn "$ctl" "$dir/jobs/$DRS_ROOT" 2>/dev/null || return 1
    setsid /bin/sh "$ctl/tree.sh" tracker "$dir" </dev/null >/dev/null 2>&1 &
    return 0
}

case $mode in
    record) record ;;
    first) first ;;
    share) share ;;
    start) first; share ;;
    tracker) tracker ;;
    track)
        # Every second at first, then less and less often (up to every 16 s): a look
        # reads every process of the server, and a thousand jobs look at once. A process
        # that leaves the tree early is caught early; later ones are found at the stop,
        # as long as they stay in the tree or were recorded.
        pause=1
        while [ -d "$ctl" ]; do
            record
            [ "$?" = 4 ] && break
            sleep "$pause"
            [ "$pause" -lt 16 ] && pause=$((pause * 2))
        done
        ;;
    stop) stop "$4" ;;
    *)
        echo "usage: tree.sh record|first|share|start|track|stop CTL PID [GRACE] | tracker DIR" >&2
        exit 2
        ;;
esac
"""


def tree_script_writer() -> str:
    """Lines of the launch script that write ``tree.sh`` into ``$ctl`` (or ``die``)."""
    return (
        "write_tree_script() {\n"
        "cat <<'DRS_END_OF_TREE_SCRIPT'\n"
        f"{TREE_SCRIPT}"
        "DRS_END_OF_TREE_SCRIPT\n"
        "}\n"
        # Part of this script: no input to be cut short, and cat says when a write fails.
        'write_tree_script > "$ctl/tree.sh" 2> "$ctl/launch.err" ||\n'
        '  die "Writing $ctl/tree.sh failed: $(cat -- "$ctl/launch.err")"\n'
    )


#: One command starts a detached program (each round trip to a server costs): it prepares
#: the control directory, takes the monitor script from stdin, starts it and reports the
#: pids. Each step that fails stops it with what failed and why, its own first error (not a
#: later step's complaint about what the first one left missing); stdin is read to its
#: end first, so that the script never ends while its input is still on the way. A step's
#: error is read (in a subshell) only once it failed: each process a launch starts costs,
#: and a thousand jobs launch at once.
PREPARE = (
    r"""
die() {{ printf '%s\n' "$*" >&2; cat >/dev/null 2>&1; exit 1; }}
command -v setsid >/dev/null ||
  die "setsid is not installed on the server (it comes with util-linux)"
command -v awk >/dev/null ||
  die "awk is not installed on the server (it comes with gawk or mawk)"
command -v find >/dev/null ||
  die "find is not installed on the server (it comes with findutils)"
command -v ps >/dev/null ||
  die "ps is not installed on the server (it comes with procps)"
if [ ! -d {ctl} ]; then
  err=$(mkdir -p -- {ctl} 2>&1) || die "Creating the control directory failed: $err"
fi
# The control directory may be relative to where we are now, not to the job's directory.
here=$PWD
cd -- {ctl} >/dev/null 2>&1 || die "Entering the control directory failed"
ctl=$PWD
cd -- "$here" || die "Entering $here again failed"
# A control directory used before (a job run again) must not answer for this run.
for old in pgid monitor.pid exit_code timed_out canceled tree tree.stop survivors; do
  [ -e "$ctl/$old" ] || continue
  err=$(rm -f -- "$ctl/pgid" "$ctl/monitor.pid" "$ctl/exit_code" "$ctl/timed_out" \
    "$ctl/canceled" "$ctl/tree" "$ctl/tree.stop" "$ctl/survivors" 2>&1) ||
    die "Clearing the control directory $ctl failed: $err"
  break
done
outputs() {{ : > "$ctl/stdout" && : > "$ctl/stderr"; }}
outputs 2>/dev/null || die "Creating the output files in $ctl failed: $(outputs 2>&1)"
cat > "$ctl/monitor.sh" 2> "$ctl/launch.err" ||
  die "Writing $ctl/monitor.sh failed: $(cat -- "$ctl/launch.err")"
# A connection cut while the script was sent leaves it short, and cat content with that.
size=$(wc -c < "$ctl/monitor.sh")
[ "$size" -eq {size} ] ||
  die "Writing $ctl/monitor.sh failed: $size of {size} bytes were written (is the disk full?)"
"""
    # tree.sh: written here, not sent on stdin, which carries the monitor.
    + tree_script_writer().replace("{", "{{").replace("}", "}}")
    + r"""cd -- {cwd} >/dev/null 2>&1 ||
  die "Entering the job's directory failed: $(cd -- {cwd} 2>&1 >/dev/null)"
"""
)

#: The launch of a direct job: PREPARE, then the monitor started in a session of its own,
#: and its pids reported once it wrote them.
LAUNCH = (
    PREPARE
    + r"""setsid /bin/sh "$ctl/monitor.sh" "$ctl" </dev/null >/dev/null 2>&1 &
# Wait (at most 10 s) until the monitor has written both pids.
i=0
while [ ! -s "$ctl/pgid" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
if [ ! -s "$ctl/pgid" ] || [ ! -s "$ctl/monitor.pid" ]; then
  free=$(df -Pk -- "$ctl" 2>/dev/null | awk 'NR == 2 {{ print $4 }}')
  [ "$free" = 0 ] && die "The program was not started: no space left on the device of $ctl"
  die "The program was not started: its monitor wrote no process id to $ctl in 10 s"
fi
cat -- "$ctl/pgid" "$ctl/monitor.pid"
"""
)

#: The launch of a job through a batch scheduler: PREPARE, then the batch script written
#: into the control directory (the scheduler's header, then the same monitor as a direct
#: job's, so the program's output and exit code land where a direct job's do), submitted
#: from the job's directory; the scheduler's answer is printed. ``{batch}`` is the
#: script's text after its ``#!`` line; its header lines hold no newline (the schedulers'
#: header builders refuse one), so none of them can be the heredoc's last line.
#: ``{submit}`` is the submission command, which tells the script the control directory's
#: absolute path: as ``$1`` (sbatch), or by submitting from there (qsub: the script reads
#: ``$PBS_O_WORKDIR``). The script enters the job's directory, recorded in ``cwd``, and
#: passes the scheduler's stop (TERM) on to the program's whole tree.
SUBMIT = (
    PREPARE
    + r"""cat > "$ctl/batch.sh" <<'DRS_BATCH_SCRIPT_END' || die "Writing $ctl/batch.sh failed"
#!/bin/sh
{batch}# The control directory: sbatch passes it as $1; PBS runs the script from there.
ctl="${{DRS_CTL:-${{1:-$PBS_O_WORKDIR}}}}"
cd -- "$(cat -- "$ctl/cwd")" || exit 1
# The scheduler's stop (a cancel, the time limit) signals the batch script, and where it
# tracks processes by group, misses the program, which leads a session of its own: the
# whole tree of the program is stopped from here too.
trap 'pgid=$(cat -- "$ctl/pgid" 2>/dev/null) &&
  /bin/sh "$ctl/tree.sh" stop "$ctl" "$pgid" 2 >/dev/null 2>&1; exit 143' TERM INT
/bin/sh "$ctl/monitor.sh" "$ctl" &
wait $!
DRS_BATCH_SCRIPT_END
printf '%s' "$PWD" > "$ctl/cwd" || die "Writing $ctl/cwd failed"
answer=$( {submit} 2>"$ctl/launch.err") ||
  die "The scheduler refused the job: $(cat -- "$ctl/launch.err")"
printf '%s\n' "$answer"
"""
)


def monitor_script(argv: Sequence[str], time_limit: float | None, grace: float) -> str:
    q = shlex.quote
    lines = [
        "# Written by django-remote-submission: runs one job, detached from any connection.",
        "# $1 is the absolute path of the job's control directory.",
        'ctl="$1"',
        'echo $$ > "$ctl/monitor.pid"',
        f'setsid {quote(argv)} >>"$ctl/stdout" 2>>"$ctl/stderr" </dev/null &',
        "pgid=$!",
        # Before anything can reap the program, and before the launch hears of it: its
        # pid and start time head the record of the job's processes (they tell it from
        # a later process that reuses its pid). The login's one tracker records the
        # rest from now on; where there can be none, a tracker of its own.
        "tracker=",
        'if ! /bin/sh "$ctl/tree.sh" start "$ctl" "$pgid" </dev/null >/dev/null 2>&1; then',
        '  /bin/sh "$ctl/tree.sh" track "$ctl" "$pgid" </dev/null >/dev/null 2>&1 &',
        "  tracker=$!",
        "fi",
        'echo "$pgid" > "$ctl/pgid.tmp" && mv -f "$ctl/pgid.tmp" "$ctl/pgid"',
        "watchdog=",
    ]
    if time_limit:
        watchdog = (
            'sleep "$1"; echo "$1" > "$2/timed_out"; '
            'exec /bin/sh "$2/tree.sh" stop "$2" "$3" "$4" >/dev/null'
        )
        lines += [
            f"setsid /bin/sh -c {q(watchdog)} watchdog {float(time_limit):g} "
            f'"$ctl" "$pgid" {float(grace):g} </dev/null >/dev/null 2>&1 &',
            "watchdog=$!",
        ]
    lines += [
        'wait "$pgid"; code=$?',
        '[ -z "$tracker" ] || kill "$tracker" 2>/dev/null',
        'if [ -n "$watchdog" ]; then',
        '  if [ -e "$ctl/timed_out" ]; then wait "$watchdog"; '
        'else kill -KILL -"$watchdog" 2>/dev/null; fi',
        "fi",
        'echo "$code" > "$ctl/exit_code.tmp" && mv -f "$ctl/exit_code.tmp" "$ctl/exit_code"',
    ]
    return "\n".join(lines) + "\n"


#: The reader of many jobs' output, one per followed (server, login): every pass it looks
#: at the jobs listed in its list file and prints what their output files gained, framed,
#: then one line per job whose exit code appeared once its output was read to the end:
#:
#:   D <job> <stream 0|1> <offset> <length>\n<bytes>
#:   E <job> <exit code>\n
#:   G <job>\n                            (its monitor died without an exit code)
#:   H\n                                  (a pass ended)
#:
#: The list file holds ``<job> <stdout offset> <stderr offset> <control directory, hex>
#: <monitor pid>`` lines and ends with ``END``; the reader loads it again when it changes
#: (a list still being written has no END yet, and waits for the next pass), keeping its
#: own offsets for the jobs it knew. It exits when its list file is gone, or when nobody reads its
#: output any more (SIGPIPE). Perl, not sh: a pass over a thousand jobs starts no process
#: at all, where a shell would start several per file.
READER = r"""
use strict;
use warnings;
use Time::HiRes ();
$SIG{PIPE} = sub { exit 0 };
binmode STDOUT;
$| = 1;
my ($list, $busy, $idle, $cap) = @ARGV;
my %jobs;
my $stamp = '';
while (1) {
    # Its change is seen by its inode, size and mtime to the microsecond: a list written
    # again within the second, in place and as long (one job for another), changes the
    # mtime's fraction alone.
    my @st = Time::HiRes::stat($list);
    exit 0 unless @st;
    my $now = sprintf '%d:%.6f:%d', $st[1], $st[9], $st[7];
    if ($now ne $stamp && open(my $fh, '<', $list)) {
        my (%new, $complete);
        while (my $line = <$fh>) {
            chomp $line;
            if ($line eq 'END') { $complete = 1; last }
            my ($id, $o0, $o1, $hex, $monitor, $waiting) = split / /, $line;
            next unless defined $hex;
            $new{$id} = $jobs{$id} || [pack('H*', $hex), $o0 + 0, $o1 + 0, ($monitor || 0) + 0, 0,
                                       ($waiting || '') eq 'w'];
        }
        close $fh;
        if ($complete) { %jobs = %new; $stamp = $now }
    }
    my $got = 0;
    for my $id (keys %jobs) {
        my $job = $jobs{$id};
        my $ended = -e "$job->[0]/exit_code";
        if ($job->[5] && ($ended || -e "$job->[0]/pgid")) {
            # A job at a batch scheduler: its batch script has started the program.
            print "S $id\n";
            $job->[5] = 0;
        }
        my $more = 0;
        for my $s (0, 1) {
            my $path = $job->[0] . ($s ? '/stderr' : '/stdout');
            my $size = -s $path;
            next unless defined $size && $size > $job->[1 + $s];
            open(my $in, '<:raw', $path) or next;
            seek $in, $job->[1 + $s], 0;
            my $want = $size - $job->[1 + $s];
            if ($want > $cap) { $want = $cap; $more = 1 }
            my $n = read $in, my $buf, $want;
            close $in;
            next unless $n;
            print "D $id $s $job->[1 + $s] $n\n", $buf;
            $job->[1 + $s] += $n;
            $got += $n;
        }
        if (!$ended && !$more && $job->[3] > 0 && !kill(0, $job->[3])) {
            # Its monitor is gone and wrote no exit code (killed): after a few more
            # looks (it may be writing it now), say so.
            if (++$job->[4] > 5) { print "G $id\n"; delete $jobs{$id}; }
            next;
        }
        if ($ended && !$more && open(my $code_file, '<', "$job->[0]/exit_code")) {
            my $code = <$code_file>;
            close $code_file;
            if (defined $code && $code =~ /^(-?\d+)/) {
                print "E $id $1\n";
                delete $jobs{$id};
            }
        }
    }
    print "H\n";
    select undef, undef, undef, ($got ? $busy : $idle);
}
"""

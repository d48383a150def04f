# Sourced by case scripts (setup, run, teardown): helpers that build the sandbox layers.
# The lab sets CASE_ID, CASE_TMP (a scratch directory, mode 0755), LAB (this directory) and DIAG.

# A pids cgroup (v1 hierarchy) for this case, limited to $1 tasks.
lab_pids_cgroup() { echo "/sys/fs/cgroup/pids/diag-lab-$CASE_ID"; }
lab_pids_create() { mkdir -p "$(lab_pids_cgroup)" && echo "$1" > "$(lab_pids_cgroup)/pids.max"; }
lab_pids_enter() { echo $$ > "$(lab_pids_cgroup)/cgroup.procs"; }

# A devices cgroup (v1) for this case that refuses the device rule $1 (e.g. 'c 10:229 rwm').
lab_devices_cgroup() { echo "/sys/fs/cgroup/devices/diag-lab-$CASE_ID"; }
lab_devices_create() { mkdir -p "$(lab_devices_cgroup)" && echo "$1" > "$(lab_devices_cgroup)/devices.deny"; }
lab_devices_enter() { echo $$ > "$(lab_devices_cgroup)/cgroup.procs"; }

# Kills what is left in a cgroup of this case and removes it.
lab_cgroup_remove() {
    local cg=$1
    [ -d "$cg" ] || return 0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local pids
        pids=$(cat "$cg/cgroup.procs")
        [ -z "$pids" ] && break
        kill -9 $pids 2>/dev/null
        sleep 0.2
    done
    rmdir "$cg"
}

# Compiles lab/standins/$1.c into $CASE_TMP/$1 (setup steps only: gcc's own failures stay out
# of the traced run).
lab_cc() { gcc -O1 -o "$CASE_TMP/$1" "$LAB/standins/$1.c" -lpthread -lutil; }

# Runs a command under a Docker-style seccomp filter (python3-seccomp): every syscall allowed
# but the comma-separated list in $2, which fails with errno $1.
lab_seccomp() { /usr/bin/python3 "$LAB/tools/seccomp-run.py" "$@"; }

# A user for the cases that drop root (no passwd entry needed: a bare uid, as in containers).
LAB_UID=4242
lab_as_user() { setpriv --reuid=$LAB_UID --regid=$LAB_UID --clear-groups "$@"; }

# Builds lab/go/$1.go into $CASE_TMP/$1 (setup steps only).
lab_go() {
    mkdir -p /var/cache/diag-lab/go-build
    HOME=$CASE_TMP GOCACHE=/var/cache/diag-lab/go-build GOFLAGS=-mod=mod \
        go build -o "$CASE_TMP/$1" "$LAB/go/$1.go"
}

# Compiles lab/java/$1.java into $CASE_TMP (setup steps only).
lab_javac() { javac -d "$CASE_TMP" "$LAB/java/$1.java"; }

# Compiles lab/rust/$1.rs into $CASE_TMP/$1 (setup steps only).
lab_rustc() { rustc -O -o "$CASE_TMP/$1" "$LAB/rust/$1.rs"; }

# Another workload of the same uid: N sleeping tasks of LAB_UID (setup), their pids kept in
# $CASE_TMP/holders so the teardown ends exactly those.
lab_hold_tasks() {
    for _ in $(seq "$1"); do
        setpriv --reuid=$LAB_UID --regid=$LAB_UID --clear-groups setsid sleep 60 </dev/null >/dev/null 2>&1 &
        echo $! >> "$CASE_TMP/holders"
    done
    sleep 0.5
}
lab_release_tasks() {
    [ -f "$CASE_TMP/holders" ] || return 0
    local pids
    pids=$(cat "$CASE_TMP/holders")
    kill -9 $pids 2>/dev/null
    # Until init reaps them they still count against the uid's RLIMIT_NPROC.
    for _ in $(seq 50); do
        ps -p "$(echo $pids | tr ' ' ,)" >/dev/null || return 0
        sleep 0.1
    done
}

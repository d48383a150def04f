#!/bin/bash
# The lab's container engines, for the cases with a `container:` section: a dockerd of the lab's
# own (own data root, exec root and socket; no systemd here) and podman with its own storage and
# config, each with the image diaglab:1 imported from a busybox root filesystem (no registry is
# reachable). `start DIR ENGINE` prints the engine's environment (VAR=VALUE lines, IMAGE= last);
# `stop DIR` stops the dockerd by its pid and removes DIR.
set -eu
cmd=$1 dir=$2
# The caller made $dir root's alone. Anything else there (another user's directory or symlink in
# /tmp) would hand root their configs, image, socket and pid file: start nothing, remove nothing.
[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %u:%a "$dir")" = 0:700 ] ||
    { echo "$dir: not a directory of root's with mode 700" >&2; exit 2; }

rootfs_tar() {
    [ -f "$dir/rootfs.tar" ] && return
    local fs=$dir/rootfs
    mkdir -p "$fs"/bin "$fs"/tmp "$fs"/proc "$fs"/sys "$fs"/dev "$fs"/etc "$fs"/mnt "$fs"/gate
    cp /bin/busybox "$fs/bin/busybox"
    for applet in $("$fs/bin/busybox" --list); do
        [ -e "$fs/bin/$applet" ] || ln -s busybox "$fs/bin/$applet"
    done
    tar -C "$fs" -cf "$dir/rootfs.tar" .
}

case $cmd in
start)
    engine=$3
    command -v busybox >/dev/null || { echo "busybox (busybox-static) for the image" >&2; exit 3; }
    rootfs_tar
    case $engine in
    docker)
        command -v dockerd >/dev/null || { echo "dockerd (docker.io)" >&2; exit 3; }
        setsid dockerd --iptables=false --bridge=none --data-root "$dir/docker-data" \
            --exec-root "$dir/docker-exec" --pidfile "$dir/docker.pid" -H "unix://$dir/docker.sock" \
            </dev/null >"$dir/dockerd.log" 2>&1 &
        export DOCKER_HOST="unix://$dir/docker.sock"
        for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
        docker import "$dir/rootfs.tar" diaglab:1 >/dev/null
        echo "DOCKER_HOST=$DOCKER_HOST"
        echo "IMAGE=diaglab:1"
        ;;
    podman)
        command -v podman >/dev/null && command -v runc >/dev/null || { echo "podman and runc" >&2; exit 3; }
        # runc: crun refuses hybrid cgroups; no default ulimits: raising RLIMIT_NOFILE needs
        # CAP_SYS_RESOURCE, which root lacks on the lab's machine.
        mkdir -p "$dir/podman"
        printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
            > "$dir/podman/containers.conf"
        printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$dir/podman" "$dir/podman" \
            > "$dir/podman/storage.conf"
        export CONTAINERS_CONF="$dir/podman/containers.conf" CONTAINERS_STORAGE_CONF="$dir/podman/storage.conf"
        podman import "$dir/rootfs.tar" localhost/diaglab:1 >/dev/null
        echo "CONTAINERS_CONF=$CONTAINERS_CONF"
        echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
        echo "IMAGE=localhost/diaglab:1"
        ;;
    *) echo "no engine $engine" >&2; exit 2 ;;
    esac
    ;;
stop)
    if [ -f "$dir/docker.pid" ]; then
        pid=$(cat "$dir/docker.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
esac

#!/bin/sh
# Runs a command the way a container with a cgroup namespace of its own runs
# it (a Kubernetes pod on a cgroup v2 node): moved into cgroup v2 directory
# DIR, then in a new cgroup namespace (rooted at DIR) and a private mount
# namespace where the cgroup2 mount at ROOT is replaced by one of that
# namespace, so it shows DIR's sub-tree only. The host's mounts are untouched.
# usage: in-cgroupns.sh DIR ROOT COMMAND [ARG...]
set -e
dir=$1 root=$2
shift 2
echo $$ > "$dir/cgroup.procs"
exec unshare --cgroup --mount --propagation private /bin/sh -c \
    'umount "$0" && mount -t cgroup2 cgroup2 "$0" && exec "$@"' "$root" "$@"

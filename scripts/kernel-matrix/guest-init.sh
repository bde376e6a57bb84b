#!/bin/sh
# /init of a kernel-matrix guest (busybox sh). The kernel passes
# km_args=... from its command line in the environment. Results go to the
# second serial port (/dev/ttyS1), the console to the first.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname km-guest
ip link set lo up
if grep -q "security=selinux" /proc/cmdline; then
    # Debian's reference policy, from /etc/selinux (selinux-policy.sh);
    # enforcing=1 on the command line makes it enforce.
    load_policy -i >/dev/console 2>&1 || echo "km: load_policy failed" >/dev/console
    echo "km: SELinux enforce=$(cat /sys/fs/selinux/enforce 2>/dev/null) context=$(cat /proc/self/attr/current)" >/dev/console
fi
echo "km: $(uname -r) up, running: ${km_args:-}" >/dev/console
[ -n "${km_cmd64:-}" ] && km_cmd=$(echo "$km_cmd64" | base64 -d)
if [ -n "${km_cmd:-}" ]; then
    # scripts/kernel-matrix/guest-run.sh: one command, its output as the result.
    sh -c "$km_cmd" >/dev/ttyS1 2>&1
    rc=$?
else
    # shellcheck disable=SC2086
    python3 /km/scenarios.py --out /dev/ttyS1 ${km_args:-}
    rc=$?
fi
echo "KM-EXIT $rc" >/dev/ttyS1
sync
poweroff -f

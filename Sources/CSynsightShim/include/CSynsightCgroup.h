#ifndef CSYNSIGHT_CGROUP_H
#define CSYNSIGHT_CGROUP_H
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <sys/syscall.h>

#define SYN_O_PATH 010000000 /* O_PATH, declared only under _GNU_SOURCE */

/* readlink of /proc/self/fd/<fd> into buf (NUL-terminated): the length, or -1. */
static inline int syn_fd_path(int fd, char *buf, size_t len) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n <= 0) return -1;
    buf[n] = 0;
    return (int)n;
}

/* The path of the cgroup v2 directory with kernel id `id` (what
 * bpf_get_current_cgroup_id() returns), relative to the hierarchy's root
 * open as `rootfd` ("/" for the root): open_by_handle_at() with a kernfs
 * file handle (FILEID_KERNFS, the 64-bit id), then readlink of both fds.
 * Both paths are resolved against the calling thread's root, so a thread in
 * another mount namespace (where the mount is unreachable, or a detached
 * mount) gets a consistent pair: the root's path is stripped from the
 * directory's. Needs CAP_DAC_READ_SEARCH. Works while the directory
 * exists, also after the process that was in it died. Returns the length
 * written to `buf`, or -1. Called through syscall(): glibc declares the
 * wrapper and struct file_handle only under _GNU_SOURCE. */
static inline int syn_cgroup_path(int rootfd, uint64_t id, char *buf, size_t len) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } fh;
    fh.handle_bytes = 8;
    fh.handle_type = 0xfe; /* FILEID_KERNFS */
    memcpy(fh.f_handle, &id, 8);
    if (len < 2) return -1;
    int fd = (int)syscall(SYS_open_by_handle_at, rootfd, &fh, O_RDONLY | O_CLOEXEC | SYN_O_PATH);
    if (fd < 0) return -1;
    char dir[4096], root[4096];
    int n = syn_fd_path(fd, dir, sizeof dir);
    close(fd);
    int r = syn_fd_path(rootfd, root, sizeof root);
    if (n < 0 || r < 0) return -1;
    const char *rel = dir;
    if (!(r == 1 && root[0] == '/')) {
        if (strncmp(dir, root, (size_t)r) != 0 || (dir[r] != '/' && dir[r] != 0)) return -1;
        rel = dir[r] == 0 ? "/" : dir + r;
    }
    size_t m = strlen(rel);
    if (m + 1 > len) return -1;
    memcpy(buf, rel, m + 1);
    return (int)m;
}
#endif

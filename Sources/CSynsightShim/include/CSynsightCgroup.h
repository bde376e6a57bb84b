#ifndef CSYNSIGHT_CGROUP_H
#define CSYNSIGHT_CGROUP_H
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <sys/syscall.h>

#define SYN_O_PATH 010000000 /* O_PATH, declared only under _GNU_SOURCE */

/* The path of the cgroup v2 directory with kernel id `id` (what
 * bpf_get_current_cgroup_id() returns), relative to the v2 mount `mountfd`:
 * open_by_handle_at() with a kernfs file handle (FILEID_KERNFS, the 64-bit
 * id), then readlink of /proc/self/fd/N. Needs CAP_DAC_READ_SEARCH. Works
 * while the directory exists, also after the process that was in it died.
 * Returns the length written to `buf` (NUL-terminated, absolute path as
 * mounted), or -1. Called through syscall(): glibc declares the wrapper and
 * struct file_handle only under _GNU_SOURCE. */
static inline int syn_cgroup_path(int mountfd, uint64_t id, char *buf, size_t len) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } fh;
    fh.handle_bytes = 8;
    fh.handle_type = 0xfe; /* FILEID_KERNFS */
    memcpy(fh.f_handle, &id, 8);
    int fd = (int)syscall(SYS_open_by_handle_at, mountfd, &fh, O_RDONLY | O_CLOEXEC | SYN_O_PATH);
    if (fd < 0 || len < 2) return -1;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return (int)n;
}
#endif

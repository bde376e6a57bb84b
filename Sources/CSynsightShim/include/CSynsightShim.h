#ifndef CSYNSIGHT_SHIM_H
#define CSYNSIGHT_SHIM_H
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <malloc.h>
#include "CSynsightCgroup.h"

/* glibc's malloc_trim is not in Swift's Glibc module: hands the free pages
 * of the heap back to the kernel (after start-up, see Tracer.run). */
static inline int syn_malloc_trim(void) { return malloc_trim(0); }
/* Every thread allocates from the main malloc arena: memory a short-lived
 * thread freed (libbpf's parsed kernel BTF while it loads programs) is then
 * given back by syn_malloc_trim instead of staying resident in that
 * thread's arena. */
static inline int syn_single_malloc_arena(void) { return mallopt(M_ARENA_MAX, 1); }
/* Large blocks (256 KB and up: /proc/kallsyms, the kernel's BTF while
 * libbpf parses it) always get their own mapping, given back to the kernel
 * when freed. glibc otherwise raises this threshold to the largest block
 * freed so far, and the next ones stay in the heap until malloc_trim. */
static inline int syn_fixed_mmap_threshold(void) { return mallopt(M_MMAP_THRESHOLD, 256 * 1024); }

/* libbpf's print callback is variadic (va_list) and has no context pointer.
 * This trampoline formats each message and hands a plain C string to the
 * Swift handler. level: 0 warn, 1 info, 2 debug (libbpf_print_level). */
typedef void (*syn_log_fn)(int level, const char *message);
void syn_set_libbpf_logger(syn_log_fn fn);

/* Can this kernel attach a BPF trampoline (fentry) to the named kernel
 * function? Loads a two-instruction fentry program; returns 0 if yes, or a
 * negative errno (-EPERM where trampolines are refused, -ENOENT where the
 * function is not in BTF). Mirrors libbpf-tools' fentry_can_attach. */
int syn_probe_fentry(const char *func);
/* The same for fexit (same trampoline; the return value is an argument more). */
int syn_probe_fexit(const char *func);

/* Can this kernel load a tp_btf program for the named raw tracepoint? */
int syn_probe_tp_btf(const char *tp);

/* Does vmlinux BTF have the enum value `value` in `enum type`? 1 yes, 0 no,
 * negative errno if BTF cannot be read. */
int syn_btf_enum_has(const char *type, const char *value);

/* Calls fn(name, value, ctx) for every value of `enum type` (ENUM or
 * ENUM64) in the BTF of `module` (NULL: vmlinux; else the split BTF in
 * /sys/kernel/btf/<module>). With `type` NULL, every enum of that BTF whose
 * values have bits 16..31 equal to `high` (the drop-reason subsystems of
 * 6.4+, e.g. enum ovs_drop_reason). Returns the number of values, or a
 * negative errno (-ENOENT: no such BTF or enum). */
typedef void (*syn_enum_fn)(const char *name, int64_t value, void *ctx);
int syn_btf_enum_values(const char *module, const char *type, uint32_t high, syn_enum_fn fn, void *ctx);

/* Does vmlinux BTF have a type of the given kind ("func", "typedef",
 * "struct", "enum") and name? 1 yes, 0 no, negative errno if unreadable. */
int syn_btf_has(const char *kind, const char *name);

/* Number of arguments of the raw tracepoint `tp` (its btf_trace_<tp>
 * typedef, context pointer excluded), or a negative errno. */
int syn_btf_tp_nargs(const char *tp);

/* setns(fd, CLONE_NEWNET) for the calling thread (glibc declares setns
 * only under _GNU_SOURCE, which Swift's Glibc import does not define). */
int syn_setns_net(int fd);

/* The driver name of network device `ifname` (ETHTOOL_GDRVINFO) in the
 * calling thread's network namespace, into `out`; 0 or a negative errno.
 * The ethtool structs do not import into Swift. */
int syn_ethtool_driver(const char *ifname, char *out, size_t out_len);
/* The device's interface flags (SIOCGIFFLAGS) in the calling thread's
 * network namespace, into *flags; 0 or -errno. */
int syn_if_flags(const char *ifname, unsigned int *flags);

/* Gives the calling thread a mount namespace of its own (a slave: nothing
 * propagates to the host, the host's later mounts such as /run/netns/<name>
 * still arrive) and mounts tracefs at /sys/kernel/tracing in it. The host's
 * mounts are untouched. The thread's mount namespace and working directory
 * are saved first (*saved_ns, *saved_cwd; both -1 on failure) so that
 * syn_leave_private_tracefs can put the thread back: the private namespace
 * then disappears with its mount. 0 or a negative errno. */
/* The CPUs this thread may run on (its affinity mask: a cpuset or taskset
 * narrows it); at least 1. */
int syn_cpus_allowed(void);

/* Frees the kernel BTF the probes and syn_btf_enum_values parsed (about
 * 7 MB, kept between calls); the next call parses it again. */
void syn_release_vmlinux_btf(void);

int syn_private_tracefs(int *saved_ns, int *saved_cwd);
/* Moves the calling thread back to the mount namespace and working directory
 * syn_private_tracefs saved, and closes the saved fds; 0 or -errno. */
int syn_leave_private_tracefs(int saved_ns, int saved_cwd);

/* An O_RDONLY fd of the root of the cgroup v2 hierarchy, from a detached
 * mount of its own (fsopen/fsmount: attached nowhere, so no mount namespace
 * or mount point changes; it lives as long as the fd). The root is the one
 * of the calling thread's cgroup namespace. For hosts that mount no cgroup2,
 * and for synsight in a container whose /sys/fs/cgroup is its own sub-tree.
 * Files below it are reached as /proc/self/fd/<fd>/<path>. An fd or a
 * negative errno. */
int syn_cgroup2_detached_root(void);

/* Moves the calling thread into the cgroup namespace of the nsfs file `path`
 * (/proc/1/ns/cgroup): setns(CLONE_NEWCGROUP). Threads it starts afterwards
 * inherit it. 0 or a negative errno. */
int syn_join_cgroupns(const char *path);

/* Runs `sql` on the SQLite database `path`, opened read-only (waiting at
 * most `busy_ms` for a writer's lock), through libsqlite3.so.0 loaded with
 * dlopen. `*out` (malloc'd, the caller frees it) holds every row's first
 * `columns` columns as text, each a native-endian u32 length then its bytes
 * (length 0xffffffff and no bytes: NULL). 0, or a negative errno: ENOENT
 * no library, EIO the database could not be opened or read, EINVAL the
 * statement did not prepare (another schema). */
int syn_sqlite_query(const char *path, const char *sql, int columns, int busy_ms, char **out, size_t *out_len);

/* Runs the (raw_tp) program `prog_fd` once with BPF_PROG_TEST_RUN and no
 * context. 0 or a negative errno. */
int syn_prog_test_run(int prog_fd);

/* The same, and the program's return value in *retval. */
int syn_prog_test_run_retval(int prog_fd, uint32_t *retval);

/* Is the kprobe PMU present (CONFIG_KPROBES)? */
bool syn_kprobes_available(void);


struct bpf_object;
struct syn_config;

/* bpf_object__open_mem with the object named (LIBBPF_OPTS does not import
 * into Swift). NULL and errno set on failure. */
/* unshare(CLONE_FS) for the calling thread: a helper thread started inside
 * a private tracefs scope (syn_private_tracefs) shares its creator's
 * fs_struct, and setns() back to the saved mount namespace then fails
 * (EINVAL) until it stops sharing. 0 or -errno. */
int syn_unshare_fs(void);

struct bpf_object *syn_open_object(const void *buf, size_t len, const char *name);

/* As syn_open_object, for an object none of whose programs will load (the
 * maps' object): its CO-RE target is an empty BTF, so loading it does not
 * parse the kernel's (~10 ms, nothing to relocate). NULL and errno set on failure. */
struct bpf_object *syn_open_object_maps_only(const void *buf, size_t len, const char *name);

/* Writes `cfg` over the `cfg` variable of the object's .rodata, located
 * through the object's BTF (DATASEC ".rodata"). Between open and load.
 * 0 or a negative errno. */
int syn_set_config(struct bpf_object *obj, const struct syn_config *cfg);
/* synsight's own cost (issue 16). */

/* BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): while the returned fd is open the
 * kernel counts every BPF program's runs and run time (run_cnt,
 * run_time_ns), without the kernel.bpf_stats_enabled sysctl being written;
 * closing the fd turns the counting off again (unless someone else holds it
 * on). Needs CAP_SYS_ADMIN. An fd, or a negative errno. */
int syn_enable_bpf_stats(void);

/* run_cnt and run_time_ns of the program behind `prog_fd` (zero while BPF
 * statistics are off). 0 or a negative errno. */
int syn_prog_run_stats(int prog_fd, uint64_t *run_cnt, uint64_t *run_time_ns);
/* Instructions the verifier walked loading it (5.16+; 0 when unknown). */
uint32_t syn_prog_verified_insns(int prog_fd);

/* A read-only view of a BPF ring buffer's consumer and producer positions
 * (its first two pages; libbpf 1.1 has no ring__avail_data_size). */
struct syn_ring_positions {
	void *pages;
	size_t len;
	size_t page;
};

/* Maps the positions of the ring buffer map `map_fd`. 0 or a negative errno. */
int syn_ring_positions_map(int map_fd, struct syn_ring_positions *out);
/* Bytes written by BPF and not yet read by the consumer (producer minus
 * consumer position, record headers included). */
uint64_t syn_ring_positions_unread(const struct syn_ring_positions *p);
void syn_ring_positions_unmap(struct syn_ring_positions *p);
#endif

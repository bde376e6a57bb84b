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

/* Does vmlinux BTF have a type of the given kind ("func", "typedef",
 * "struct", "enum") and name? 1 yes, 0 no, negative errno if unreadable. */
int syn_btf_has(const char *kind, const char *name);

/* Number of arguments of the raw tracepoint `tp` (its btf_trace_<tp>
 * typedef, context pointer excluded), or a negative errno. */
int syn_btf_tp_nargs(const char *tp);

/* setns(fd, CLONE_NEWNET) for the calling thread (glibc declares setns
 * only under _GNU_SOURCE, which Swift's Glibc import does not define). */
int syn_setns_net(int fd);

/* Gives the calling thread a mount namespace of its own (a slave: nothing
 * propagates to the host, the host's later mounts such as /run/netns/<name>
 * still arrive) and mounts tracefs at /sys/kernel/tracing in it. The host's
 * mounts are untouched and nothing is left behind when the process exits.
 * 0 or a negative errno. */
int syn_private_tracefs(void);

/* Is the kprobe PMU present (CONFIG_KPROBES)? */
bool syn_kprobes_available(void);


struct bpf_object;
struct syn_config;

/* bpf_object__open_mem with the object named (LIBBPF_OPTS does not import
 * into Swift). NULL and errno set on failure. */
struct bpf_object *syn_open_object(const void *buf, size_t len, const char *name);

/* Writes `cfg` over the `cfg` variable of the object's .rodata, located
 * through the object's BTF (DATASEC ".rodata"). Between open and load.
 * 0 or a negative errno. */
int syn_set_config(struct bpf_object *obj, const struct syn_config *cfg);
#endif

#define _GNU_SOURCE /* vasprintf */
#include "CSynsightShim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <dlfcn.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "../../bpf/synsight_abi.h"

static syn_log_fn g_logger;

static int trampoline(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *buf = NULL;
	syn_log_fn fn = __atomic_load_n(&g_logger, __ATOMIC_ACQUIRE);
	if (!fn)
		return 0;
	/* Verifier logs run to many kilobytes: no fixed buffer. */
	if (vasprintf(&buf, fmt, ap) < 0 || !buf)
		return 0;
	size_t n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	fn((int)level, buf);
	free(buf);
	return 0;
}

void syn_set_libbpf_logger(syn_log_fn fn)
{
	__atomic_store_n(&g_logger, fn, __ATOMIC_RELEASE);
	libbpf_set_print(trampoline);
}

static struct btf *g_vmlinux;

static struct btf *vmlinux(void)
{
	if (!g_vmlinux) {
		struct btf *b = btf__load_vmlinux_btf();
		if (!b)
			return NULL;
		g_vmlinux = b;
	}
	return g_vmlinux;
}

void syn_release_vmlinux_btf(void)
{
	btf__free(g_vmlinux);
	g_vmlinux = NULL;
}

static int probe_tracing(const char *name, const char *prefix, enum bpf_attach_type type)
{
	char full[256];
	struct btf *btf = vmlinux();
	if (!btf)
		return errno ? -errno : -ENOENT;
	snprintf(full, sizeof(full), "%s%s", prefix, name);
	int id = btf__find_by_name_kind(btf, full, prefix[0] ? BTF_KIND_TYPEDEF : BTF_KIND_FUNC);
	if (id < 0)
		return -ENOENT;
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		.expected_attach_type = type,
		.attach_btf_id = id,
	);
	int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns, 2, &opts);
	if (fd < 0)
		return -errno;
	if (type == BPF_TRACE_FENTRY || type == BPF_TRACE_FEXIT) {
		/* Loading is not enough: the trampoline is built at attach, and
		 * refuses functions it cannot handle (6.1 x86: more than 6
		 * arguments, ENOTSUPP). Attach for a moment, then detach. */
		int link = bpf_raw_tracepoint_open(NULL, fd);
		if (link < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		close(link);
	}
	close(fd);
	return 0;
}

int syn_probe_fentry(const char *func)
{
	return probe_tracing(func, "", BPF_TRACE_FENTRY);
}

int syn_probe_fexit(const char *func)
{
	return probe_tracing(func, "", BPF_TRACE_FEXIT);
}

int syn_probe_tp_btf(const char *tp)
{
	return probe_tracing(tp, "btf_trace_", BPF_TRACE_RAW_TP);
}

int syn_btf_enum_has(const char *type, const char *value)
{
	struct btf *btf = vmlinux();
	if (!btf)
		return -ENOENT;
	int id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM);
	if (id < 0)
		id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM64);
	if (id < 0)
		return 0;
	const struct btf_type *t = btf__type_by_id(btf, id);
	if (btf_is_enum(t)) {
		const struct btf_enum *e = btf_enum(t);
		for (int i = 0; i < btf_vlen(t); i++, e++)
			if (strcmp(btf__name_by_offset(btf, e->name_off), value) == 0)
				return 1;
	}
	return 0;
}

static int enum_values(const struct btf *btf, const struct btf_type *t, bool by_high, uint32_t high,
		       syn_enum_fn fn, void *ctx)
{
	int n = 0;
	for (int i = 0; i < btf_vlen(t); i++) {
		const char *name;
		int64_t v;
		if (btf_is_enum(t)) {
			const struct btf_enum *e = btf_enum(t) + i;
			name = btf__name_by_offset(btf, e->name_off);
			v = btf_kflag(t) ? (int64_t)e->val : (int64_t)(uint32_t)e->val;
		} else {
			const struct btf_enum64 *e = btf_enum64(t) + i;
			name = btf__name_by_offset(btf, e->name_off);
			v = (int64_t)btf_enum64_value(e);
		}
		if (!name || (by_high && (((uint64_t)v >> 16) & 0xffff) != high))
			continue;
		fn(name, v, ctx);
		n++;
	}
	return n;
}

int syn_btf_enum_values(const char *module, const char *type, uint32_t high, syn_enum_fn fn, void *ctx)
{
	struct btf *base = vmlinux();
	if (!base)
		return -ENOENT;
	struct btf *btf = base;
	if (module) {
		char path[256];
		snprintf(path, sizeof(path), "/sys/kernel/btf/%s", module);
		btf = btf__parse_split(path, base);
		if (!btf)
			return errno ? -errno : -ENOENT;
	}
	int n = 0;
	if (type) {
		int id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM);
		if (id < 0)
			id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM64);
		n = id < 0 ? -ENOENT : enum_values(btf, btf__type_by_id(btf, id), false, 0, fn, ctx);
	} else {
		/* A module's own types follow the base's. */
		int first = module ? (int)btf__type_cnt(base) : 1;
		for (int id = first; id < (int)btf__type_cnt(btf); id++) {
			const struct btf_type *t = btf__type_by_id(btf, id);
			if (btf_is_enum(t) || btf_is_enum64(t))
				n += enum_values(btf, t, true, high, fn, ctx);
		}
	}
	if (btf != base)
		btf__free(btf);
	return n;
}

int syn_btf_has(const char *kind, const char *name)
{
	struct btf *btf = vmlinux();
	if (!btf)
		return -ENOENT;
	__u32 k;
	if (strcmp(kind, "func") == 0)
		k = BTF_KIND_FUNC;
	else if (strcmp(kind, "typedef") == 0)
		k = BTF_KIND_TYPEDEF;
	else if (strcmp(kind, "struct") == 0)
		k = BTF_KIND_STRUCT;
	else
		k = BTF_KIND_ENUM;
	return btf__find_by_name_kind(btf, name, k) >= 0 ? 1 : 0;
}

int syn_btf_tp_nargs(const char *tp)
{
	char full[256];
	struct btf *btf = vmlinux();
	if (!btf)
		return -ENOENT;
	snprintf(full, sizeof(full), "btf_trace_%s", tp);
	int id = btf__find_by_name_kind(btf, full, BTF_KIND_TYPEDEF);
	if (id < 0)
		return -ENOENT;
	const struct btf_type *t = btf__type_by_id(btf, id);
	t = btf__type_by_id(btf, t->type); /* pointer */
	if (!t || !btf_is_ptr(t))
		return -EINVAL;
	t = btf__type_by_id(btf, t->type); /* func proto */
	if (!t || !btf_is_func_proto(t))
		return -EINVAL;
	return btf_vlen(t) - 1;
}

bool syn_kprobes_available(void)
{
	return access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0;
}

struct bpf_object *syn_open_object(const void *buf, size_t len, const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	return bpf_object__open_mem(buf, len, &opts);
}

/* An empty raw BTF (header and the one empty string) in a memfd, created
 * once: libbpf parses its btf_custom_path only to relocate the programs it
 * loads, and otherwise skips the kernel's BTF when one is given. */
static char empty_btf[64];

static void make_empty_btf(void)
{
	struct btf_header hdr = {
		.magic = BTF_MAGIC, .version = BTF_VERSION, .hdr_len = sizeof(hdr),
		.type_off = 0, .type_len = 0, .str_off = 0, .str_len = 1,
	};
	char blob[sizeof(hdr) + 1] = {0};
	memcpy(blob, &hdr, sizeof(hdr));
	int m = memfd_create("synsight-empty-btf", MFD_CLOEXEC);
	if (m < 0)
		return;
	if (write(m, blob, sizeof(blob)) != (ssize_t)sizeof(blob)) {
		close(m);
		return;
	}
	snprintf(empty_btf, sizeof(empty_btf), "/proc/self/fd/%d", m);
}

static const char *empty_btf_path(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, make_empty_btf);
	return empty_btf[0] ? empty_btf : NULL;
}

struct bpf_object *syn_open_object_maps_only(const void *buf, size_t len, const char *name)
{
	const char *empty = empty_btf_path();
	if (!empty)
		return syn_open_object(buf, len, name);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .btf_custom_path = empty);
	return bpf_object__open_mem(buf, len, &opts);
}

int syn_set_config(struct bpf_object *obj, const struct syn_config *cfg)
{
	struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;
	if (!btf)
		return -ENOENT;
	int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (id < 0)
		return -ENOENT;
	const struct btf_type *sec = btf__type_by_id(btf, id);
	const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
	long offset = -1;
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, var->name_off), "cfg") == 0) {
			if (vs->size != sizeof(*cfg))
				return -EINVAL;
			offset = vs->offset;
			break;
		}
	}
	if (offset < 0)
		return -ENOENT;
	bpf_object__for_each_map(map, obj) {
		const char *n = bpf_map__name(map);
		size_t l = strlen(n);
		if (!bpf_map__is_internal(map) || l < 7 || strcmp(n + l - 7, ".rodata") != 0)
			continue;
		size_t size = 0;
		char *data = (char *)bpf_map__initial_value(map, &size);
		if (!data || size < offset + sizeof(*cfg))
			return -EINVAL;
		memcpy(data + offset, cfg, sizeof(*cfg));
		return 0;
	}
	return -ENOENT;
}

int syn_setns_net(int fd)
{
	return setns(fd, CLONE_NEWNET) == 0 ? 0 : -errno;
}

/* One interface ioctl `req` on `ifr` (its name set from `ifname`, the
 * rest as the caller filled it) through a datagram socket of the calling
 * thread's network namespace; 0 or -errno. */
static int ifreq_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	if (strlen(ifname) >= sizeof(ifr->ifr_name))
		return -EINVAL;
	strncpy(ifr->ifr_name, ifname, sizeof(ifr->ifr_name) - 1);
	ifr->ifr_name[sizeof(ifr->ifr_name) - 1] = 0;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = ioctl(fd, req, ifr) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int syn_ethtool_driver(const char *ifname, char *out, size_t out_len)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;
	if (!out || out_len == 0)
		return -EINVAL;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_data = (void *)&info;
	int rc = ifreq_ioctl(ifname, SIOCETHTOOL, &ifr);
	if (rc == 0)
		snprintf(out, out_len, "%.*s", (int)sizeof(info.driver), info.driver);
	return rc;
}

int syn_if_flags(const char *ifname, unsigned int *flags)
{
	struct ifreq ifr;
	if (!flags)
		return -EINVAL;
	memset(&ifr, 0, sizeof(ifr));
	int rc = ifreq_ioctl(ifname, SIOCGIFFLAGS, &ifr);
	if (rc == 0)
		*flags = (unsigned short)ifr.ifr_flags;
	return rc;
}

int syn_unshare_fs(void)
{
	return unshare(CLONE_FS) == 0 ? 0 : -errno;
}

int syn_private_tracefs(int *saved_ns, int *saved_cwd)
{
	*saved_ns = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
	*saved_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*saved_ns < 0 || *saved_cwd < 0)
		goto fail;
	if (unshare(CLONE_NEWNS) != 0)
		goto fail;
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0 ||
	    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0) {
		int e = errno;
		syn_leave_private_tracefs(*saved_ns, *saved_cwd);
		*saved_ns = *saved_cwd = -1;
		return -e;
	}
	return 0;
fail:;
	int e = errno;
	if (*saved_ns >= 0)
		close(*saved_ns);
	if (*saved_cwd >= 0)
		close(*saved_cwd);
	*saved_ns = *saved_cwd = -1;
	return -e;
}

int syn_leave_private_tracefs(int saved_ns, int saved_cwd)
{
	int rc = 0;
	/* setns() into a mount namespace resets the thread's working directory
	 * to the namespace's root: go back to the one it had. */
	if (setns(saved_ns, CLONE_NEWNS) != 0 || fchdir(saved_cwd) != 0)
		rc = -errno;
	close(saved_ns);
	close(saved_cwd);
	return rc;
}

int syn_cpus_allowed(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n > 0 ? n : 1;
}

int syn_enable_bpf_stats(void)
{
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	return fd >= 0 ? fd : -errno;
}

/* The kernel's view of the program behind `prog_fd`. 0 or a negative errno. */
static int prog_info(int prog_fd, struct bpf_prog_info *info)
{
	__u32 len = sizeof(*info);
	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(prog_fd, info, &len) != 0 ? -errno : 0;
}

int syn_prog_run_stats(int prog_fd, uint64_t *run_cnt, uint64_t *run_time_ns)
{
	struct bpf_prog_info info;
	int rc = prog_info(prog_fd, &info);
	if (rc != 0)
		return rc;
	*run_cnt = info.run_cnt;
	*run_time_ns = info.run_time_ns;
	return 0;
}

uint32_t syn_prog_verified_insns(int prog_fd)
{
	struct bpf_prog_info info;
	return prog_info(prog_fd, &info) == 0 ? info.verified_insns : 0;
}

int syn_ring_positions_map(int map_fd, struct syn_ring_positions *out)
{
	long page = sysconf(_SC_PAGESIZE);
	/* Page 0: consumer_pos, page 1: producer_pos (kernel/bpf/ringbuf.c).
	 * Read-only: the kernel allows a writable mapping of page 0 only, and
	 * the consumer (libbpf's ring_buffer) owns that one. */
	void *p = mmap(NULL, 2 * page, PROT_READ, MAP_SHARED, map_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	out->pages = p;
	out->len = 2 * page;
	out->page = page;
	return 0;
}

uint64_t syn_ring_positions_unread(const struct syn_ring_positions *p)
{
	if (!p->pages)
		return 0;
	const unsigned long *cons = (const unsigned long *)p->pages;
	const unsigned long *prod = (const unsigned long *)((const char *)p->pages + p->page);
	unsigned long c = __atomic_load_n(cons, __ATOMIC_ACQUIRE);
	unsigned long q = __atomic_load_n(prod, __ATOMIC_ACQUIRE);
	return q > c ? q - c : 0;
}

void syn_ring_positions_unmap(struct syn_ring_positions *p)
{
	if (p->pages)
		munmap(p->pages, p->len);
	p->pages = NULL;
}

int syn_cgroup2_detached_root(void)
{
	int fs = fsopen("cgroup2", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
		int e = errno;
		close(fs);
		return -e;
	}
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	int e = errno;
	close(fs);
	if (mnt < 0)
		return -e;
	/* fsmount's fd is O_PATH, which BPF attach and reads refuse: reopen it
	 * through its magic link; the open directory keeps the mount alive. */
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", mnt);
	int fd = open(link, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	e = errno;
	close(mnt);
	return fd >= 0 ? fd : -e;
}

int syn_join_cgroupns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = setns(fd, CLONE_NEWCGROUP);
	int e = errno;
	close(fd);
	return rc == 0 ? 0 : -e;
}

int syn_prog_test_run(int prog_fd)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	return bpf_prog_test_run_opts(prog_fd, &opts) == 0 ? 0 : -errno;
}

int syn_prog_test_run_retval(int prog_fd, uint32_t *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
		return -errno;
	*retval = opts.retval;
	return 0;
}

/* SQLite, loaded when first needed (dlopen of the runtime library every
 * Debian system has, libsqlite3.so.0: no build dependency and no header),
 * for Podman 5's state database. */
struct syn_sqlite_api {
	int (*open_v2)(const char *, void **, int, const char *);
	int (*busy_timeout)(void *, int);
	int (*prepare_v2)(void *, const char *, int, void **, const char **);
	int (*step)(void *);
	const unsigned char *(*column_text)(void *, int);
	int (*column_bytes)(void *, int);
	int (*finalize)(void *);
	int (*close_v2)(void *);
};

static int syn_sqlite_load(struct syn_sqlite_api *api)
{
	static void *lib;
	if (!lib)
		lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return -ENOENT;
	api->open_v2 = (int (*)(const char *, void **, int, const char *))dlsym(lib, "sqlite3_open_v2");
	api->busy_timeout = (int (*)(void *, int))dlsym(lib, "sqlite3_busy_timeout");
	api->prepare_v2 = (int (*)(void *, const char *, int, void **, const char **))dlsym(lib, "sqlite3_prepare_v2");
	api->step = (int (*)(void *))dlsym(lib, "sqlite3_step");
	api->column_text = (const unsigned char *(*)(void *, int))dlsym(lib, "sqlite3_column_text");
	api->column_bytes = (int (*)(void *, int))dlsym(lib, "sqlite3_column_bytes");
	api->finalize = (int (*)(void *))dlsym(lib, "sqlite3_finalize");
	api->close_v2 = (int (*)(void *))dlsym(lib, "sqlite3_close_v2");
	if (!api->open_v2 || !api->busy_timeout || !api->prepare_v2 || !api->step || !api->column_text ||
	    !api->column_bytes || !api->finalize || !api->close_v2)
		return -ENOSYS;
	return 0;
}

static int syn_buf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < *len + n)
			c *= 2;
		char *b = realloc(*buf, c);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

int syn_sqlite_query(const char *path, const char *sql, int columns, int busy_ms, char **out, size_t *out_len)
{
	struct syn_sqlite_api api;
	int rc = syn_sqlite_load(&api);
	if (rc)
		return rc;
	void *db = NULL, *st = NULL;
	if (api.open_v2(path, &db, 0x00000001 /* SQLITE_OPEN_READONLY */, NULL) != 0) {
		if (db)
			api.close_v2(db);
		return -EIO;
	}
	api.busy_timeout(db, busy_ms);
	if (api.prepare_v2(db, sql, -1, &st, NULL) != 0 || !st) {
		api.close_v2(db);
		return -EINVAL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int step, err = 0;
	while (!err && (step = api.step(st)) == 100 /* SQLITE_ROW */) {
		for (int c = 0; c < columns && !err; c++) {
			const unsigned char *text = api.column_text(st, c);
			uint32_t n = text ? (uint32_t)api.column_bytes(st, c) : UINT32_MAX;
			err = syn_buf_append(&buf, &len, &cap, &n, sizeof n);
			if (!err && text)
				err = syn_buf_append(&buf, &len, &cap, text, n);
		}
	}
	if (!err && step != 101 /* SQLITE_DONE */)
		err = -EIO;
	api.finalize(st);
	api.close_v2(db);
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The hooks-only floor of target 3 (scripts/bench/bench.py, "hooks_floor"):
 *
 *   floor-loader sections OBJ   prints "name section" for every program in
 *                               a BPF object (synsight's own; opened, not
 *                               loaded), so the benchmark can write a copy
 *                               of the programs `record` attaches with
 *                               empty bodies;
 *   floor-loader attach OBJ     loads that copy, attaches every program,
 *                               prints "floor: attached name..." and holds
 *                               them until SIGINT/SIGTERM.
 *
 * A C loader of its own, not synsight: what is measured is what attaching
 * those hooks costs when their programs do nothing at all.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* The root of the cgroup v2 hierarchy: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts. */
static int cgroup2_root(void)
{
	const char *at[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (unsigned i = 0; i < 2; i++) {
		struct statfs st;
		if (statfs(at[i], &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
			return open(at[i], O_RDONLY | O_DIRECTORY);
	}
	return -1;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "sections") && strcmp(argv[1], "attach"))) {
		fprintf(stderr, "usage: %s sections|attach OBJ\n", argv[0]);
		return 2;
	}
	struct bpf_object *obj = bpf_object__open_file(argv[2], NULL);
	if (!obj) {
		fprintf(stderr, "floor-loader: cannot open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	struct bpf_program *p;
	if (!strcmp(argv[1], "sections")) {
		bpf_object__for_each_program(p, obj)
			printf("%s %s\n", bpf_program__name(p), bpf_program__section_name(p));
		return 0;
	}
	int err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "floor-loader: cannot load %s: %s\n", argv[2], strerror(-err));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("floor: attached");
	bpf_object__for_each_program(p, obj) {
		/* cgroup programs attach to the root of the v2 hierarchy, as synsight does. */
		const char *sec = bpf_program__section_name(p);
		struct bpf_link *l;
		if (!strncmp(sec, "cgroup/", 7)) {
			int cg = cgroup2_root();
			l = cg >= 0 ? bpf_program__attach_cgroup(p, cg) : NULL;
		} else {
			l = bpf_program__attach(p);
		}
		if (!l) {
			fprintf(stderr, "floor-loader: cannot attach %s (%s): %s\n", bpf_program__name(p),
				bpf_program__section_name(p), strerror(errno));
			return 1;
		}
		printf(" %s", bpf_program__name(p));
	}
	printf("\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_object__close(obj);
	return 0;
}

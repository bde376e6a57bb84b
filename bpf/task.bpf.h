/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the current task, in process context: who it is,
 * its open sockets, its saved user registers.
 */
#pragma once

#include "defs.bpf.h"

static __always_inline void fill_task(struct syn_task *t)
{
	__u64 id = bpf_get_current_pid_tgid();
	t->pid = id >> 32;
	t->tid = (__u32)id;
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->_pad = 0;
	t->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

/* fill_task from the current task's fields, read with direct loads: one
 * helper call (bpf_get_current_task_btf, inlined from 6.15 on x86) instead
 * of four. For the hottest caller, cgroup/connect (every connect() on the
 * host): on this project's AMD test machine each helper call and return
 * costs ~50 ns (SRSO "Safe RET" return thunks), and the four cost ~240 ns
 * per connect() (docs/benchmarks.md, fixes). The same values: uid as
 * bpf_get_current_uid_gid gives it (the kuid, i.e. as the initial user
 * namespace sees it), the cgroup v2 id as bpf_get_current_cgroup_id. */
static __always_inline void fill_task_direct(struct syn_task *t)
{
	struct task_struct *task = bpf_get_current_task_btf();
	t->pid = task->tgid;
	t->tid = task->pid;
	t->uid = task->cred->uid.val;
	t->_pad = 0;
	t->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	__builtin_memcpy(t->comm, task->comm, sizeof(t->comm));
}

/* current->files->fdt->fd[fd]->private_data, if that file is a socket
 * (bounds-checked against max_fds). */
static __always_inline struct socket *fd_socket(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **files;
	struct file *f = NULL;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	files = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &files[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & 00170000) != 0140000) /* S_IFSOCK */
		return NULL;
	return BPF_CORE_READ(f, private_data);
}

/* The syscall's saved user registers (bpf_task_pt_regs, 5.15+): a syscall
 * exit reads its arguments there, with no entry program. */
static __always_inline struct pt_regs *user_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

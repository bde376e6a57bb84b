/* SPDX-License-Identifier: GPL-2.0 */
/*
 * synsight BPF library: the read-only configuration user space writes
 * before load (struct syn_config, synsight_abi.h). Its values are constants
 * to the verifier: a handler behind a flag that is off is not even verified.
 */
#pragma once

#include "defs.bpf.h"

const volatile struct syn_config cfg = {};

/* tcp_rcv_state_process's text (overflow.bpf.h's consume_skb filter), in a
 * data section of its own: user space writes it after loading, before
 * attaching (Tracer.writeTextRanges). Until then it is empty and matches nothing. */
struct syn_text_range trs_range SEC(".data.trs") = {};

static __always_inline bool cfg_flag(__u32 flag)
{
	return cfg.flags & flag;
}

/* inet_sock_set_state is not attached (SYN_CFG_NO_STATE_HOOK, issue 16). */
static __always_inline bool no_state_hook(void)
{
	return cfg_flag(SYN_CFG_NO_STATE_HOOK);
}

/* connect() is traced at its exit only (SYN_CFG_CONNECT_EXIT_ONLY). */
static __always_inline bool connect_exit_only(void)
{
	return cfg_flag(SYN_CFG_CONNECT_EXIT_ONLY);
}

/* The --port filter. */
static __always_inline bool port_wanted(__u16 port)
{
	if (cfg.nports == 0)
		return true;
#pragma unroll
	for (int i = 0; i < SYN_MAX_FILTER_PORTS; i++) {
		if (i < cfg.nports && cfg.ports[i] == port)
			return true;
	}
	return false;
}

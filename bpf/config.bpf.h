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

/* The --port filter's ports (struct syn_port_filter), written by user space
 * after loading and grown while tracing (Tracer.writePortFilter). */
struct syn_port_filter port_filter SEC(".data.ports") = {};

/* Is `port` one of the filter's? A global function: verified once, not at
 * each of its callers' sites (its loop reads a count the verifier cannot
 * know). Its argument and result are 64-bit (GLOBAL_ARG): a caller need
 * not zero-extend a narrower one, and clang's BPF code for this callee
 * compared a __u16 argument as 32 bits, so a port with stale upper bits in
 * its register missed the filter (refusals silently not reported). */
__noinline __u64 port_in_filter(__u64 wanted)
{
	__u16 port = (__u16)wanted;
	__u32 n = port_filter.nports;

	if (n == 0)
		return true;
	for (int i = 0; i < SYN_MAX_FILTER_PORTS; i++) {
		if (i >= n)
			break;
		if (port_filter.ports[i] == port)
			return true;
	}
	return false;
}

/* The --port filter: without --port (the flag a constant), no code at all. */
static __always_inline bool port_wanted(__u16 port)
{
	if (!cfg_flag(SYN_CFG_PORT_FILTER))
		return true;
	return port_in_filter(port) != 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * synsight: kernel side of no-listener refusal attribution.
 *
 * Decide in the kernel, report little: a healthy connection costs one map
 * update and one delete (the connect map) and no ring-buffer record. Records
 * cross to user space only for a refusal, for listener births and deaths,
 * for the exit of a process that once listened, and for a failed connect().
 *
 * Several programs serve the same purpose on different kernels (see
 * docs/kernel-notes.md §1, §2, §10). User space probes the running kernel and
 * enables exactly one of the "no-socket RST" programs with
 * bpf_program__set_autoload(); they are never chosen by kernel version.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "synsight_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

const volatile struct syn_config cfg = {};

static __always_inline bool no_state_hook(void)
{
	return cfg.flags & SYN_CFG_NO_STATE_HOOK;
}

/* Drops the listeners of `port` that are no longer listening (defined below). */
int listeners_reap(__u16 port);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by user space before load */
} events SEC(".maps");

/* Ring-buffer reservations that failed, per CPU: never lose silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Sockets in SYN_SENT -> who called connect(), captured in process context. */
struct connect_info {
	struct syn_task task;
	__u64 ts_ns;
	__u64 established_ns; /* 0 while in SYN_SENT */
	__u64 cookie;         /* the socket's cookie (SYN_CFG_NO_STATE_HOOK: entries are not deleted at CLOSE) */
};

/* A reset this soon after the handshake is a setup failure (e.g. the
 * listener's tcp_abort_on_overflow RST), reported as reset_by_peer. */
#define RESET_AFTER_SETUP_NS (10ULL * 1000 * 1000 * 1000)
#define ECONNRESET 104

/*
 * The connecting sockets: struct sock * -> struct connect_info, from connect()
 * (CLOSE->SYN_SENT) to CLOSE. Written and read several times per TCP
 * connection on the host, so it is not a BPF hash map: a hash or LRU update
 * at connect() and its delete at CLOSE (bucket locks, free lists shared
 * between CPUs) cost 4% of a Connection: close web server's requests/s
 * (docs/benchmarks.md, fix 8). Instead, a set-associative table in a BPF
 * array (lookups inlined by the verifier, no locks): CONN_WAYS sockets per
 * set, the set chosen by a hash of the socket's address. A slot is claimed
 * with a compare-and-swap (marked CONN_BUSY while it is written); a full set
 * gives up its oldest entry, the least likely to be asked about (only
 * SYN_SENT and the first seconds after setup matter). Readers copy an entry
 * and check that its key did not change meanwhile.
 */
#define CONN_SET_BITS 13
#define CONN_SETS (1 << CONN_SET_BITS)
#define CONN_WAYS 8
#define CONN_BUSY 1ULL /* low bit of a key: the slot is being written */

struct conn_set {
	__u64 sk[CONN_WAYS];
	__u16 dport[CONN_WAYS]; /* destination port: find_client's walk skips the rest */
	__u32 next;             /* the way a full set gives up next (first in, first out) */
	__u32 _pad;
	struct connect_info ci[CONN_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONN_SETS);
	__type(key, __u32);
	__type(value, struct conn_set);
} connecting SEC(".maps");

/* Per CPU: the socket of the latest connect() (a local client's first SYN,
 * and its ACK, are processed inside its connect() on this CPU), and
 * find_client's walk budget. */
struct conn_cpu {
	__u64 last_sk;
	__u64 window_ns;
	__u32 walks;
	__u32 _pad;
	__u64 scratch; /* sk_key */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_cpu);
} conn_cpu SEC(".maps");

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))
#define barrier() asm volatile("" ::: "memory")

/*
 * A socket's address as a number (the key of `connecting`). The verifier
 * allows no arithmetic on a BTF pointer, but a pointer stored in a map value
 * reads back as a plain number (privileged programs only, which synsight's
 * always are); cheaper than a bpf_probe_read_kernel of it.
 */
static __always_inline __u64 sk_key(const struct sock *sk)
{
	__u32 zero = 0;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
	if (!c)
		return 0;
	*(volatile const struct sock **)&c->scratch = sk;
	return READ_ONCE_U64(c->scratch);
}

static __always_inline struct conn_set *conn_set_of(__u64 sk)
{
	__u32 i = (__u32)((sk * 0x9E3779B97F4A7C15ULL) >> (64 - CONN_SET_BITS));
	return bpf_map_lookup_elem(&connecting, &i);
}

static __always_inline int conn_way(const struct conn_set *s, __u64 sk)
{
	for (int i = 0; i < CONN_WAYS; i++) {
		if (READ_ONCE_U64(s->sk[i]) == sk)
			return i;
	}
	return -1;
}

/* The entry of `sk` in place (for an update), or NULL. */
static __always_inline struct connect_info *conn_ref(__u64 sk, struct conn_set **set, int *way)
{
	struct conn_set *s = conn_set_of(sk);
	if (!s)
		return NULL;
	int w = conn_way(s, sk);
	if (w < 0)
		return NULL;
	w &= CONN_WAYS - 1;
	*set = s;
	*way = w;
	return &s->ci[w];
}

/* A copy of the entry of `sk`; false if there is none or it was replaced
 * while being copied. */
static __always_inline bool conn_get(__u64 sk, struct connect_info *out)
{
	struct conn_set *s;
	int w;
	struct connect_info *ci = conn_ref(sk, &s, &w);
	if (!ci)
		return false;
	*out = *ci;
	barrier();
	return READ_ONCE_U64(s->sk[w]) == sk;
}

static __always_inline void conn_put(__u64 sk, __u16 dport, const struct connect_info *ci)
{
	struct conn_set *s = conn_set_of(sk);
	if (!s)
		return;
	int w = -1;
	__u64 old = 0;
	for (int i = 0; i < CONN_WAYS; i++) {
		__u64 k = READ_ONCE_U64(s->sk[i]);
		if (k == sk || k == 0) { /* the same address reused, or free */
			w = i;
			old = k;
			break;
		}
	}
	if (w < 0) {
		/* Full (always, once entries outlive their sockets: see
		 * SYN_CFG_NO_STATE_HOOK): give up the way filled longest ago,
		 * reading only this set's first cache lines, not every entry's
		 * time (8 cache lines per connect()). */
		w = __sync_fetch_and_add(&s->next, 1) & (CONN_WAYS - 1);
		old = READ_ONCE_U64(s->sk[w]);
		if (old & CONN_BUSY)
			return;
	}
	w &= CONN_WAYS - 1;
	/* Lost a race for the slot with another CPU: this connect() is not
	 * remembered (its refusal is still reported, without the caller). */
	if (__sync_val_compare_and_swap(&s->sk[w], old, sk | CONN_BUSY) != old)
		return;
	s->ci[w] = *ci;
	s->dport[w] = dport;
	__sync_lock_test_and_set(&s->sk[w], sk); /* publish: a full barrier */
}

/* Remove the entry of `sk`; false if it was replaced meanwhile (then a copy
 * taken before may be torn). */
static __always_inline bool conn_del(struct conn_set *s, int way, __u64 sk)
{
	return __sync_val_compare_and_swap(&s->sk[way & (CONN_WAYS - 1)], sk, 0) == sk;
}

/* Thread-group ids that have called listen(): only their exits are reported.
 * User space seeds it with the listeners found in the start-up snapshot. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} listener_pids SEC(".maps");

/* Listening sockets, for the overflow programs (overflow.bpf.h): filled at
 * CLOSE->LISTEN and, for listeners that predate tracing, by the iter/tcp
 * program run by user space in each network namespace. */
struct listen_info {
	__u64 ino;
	__u64 last_emit_ns;  /* rate limit of non-drop overflow events */
	__u32 tgid;          /* 0 when the listener predates tracing */
	__u32 netns;
	__u32 drops_seen;    /* sk_drops when last looked at */
	__u32 suppressed;
	__u16 port;
	__u16 family;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * of the listener */
	__type(value, struct listen_info);
} listen_socks SEC(".maps");

/* Listeners by local port, across namespaces: where a SYN's namespace is no
 * longer readable (skb->dev is gone when tcp_rcv_state_process consumes it),
 * the listener whose own counters moved is the one. */
#define LISTEN_SLOTS 8
struct listen_slots {
	__u64 sk[LISTEN_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u16); /* local port */
	__type(value, struct listen_slots);
} listen_ports SEC(".maps");

static __always_inline void port_slot_add(__u16 port, __u64 sk)
{
	struct listen_slots empty = {};
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	if (!ls) {
		bpf_map_update_elem(&listen_ports, &port, &empty, BPF_NOEXIST);
		ls = bpf_map_lookup_elem(&listen_ports, &port);
		if (!ls)
			return;
	}
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == sk)
			return;
	}
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == 0) {
			ls->sk[i] = sk;
			return;
		}
	}
	/* Full: without the state-change hook closed listeners stay until
	 * found dead (listeners_reap). */
	if (no_state_hook() && listeners_reap(port) > 0) {
		for (int i = 0; i < LISTEN_SLOTS; i++) {
			if (ls->sk[i] == 0) {
				ls->sk[i] = sk;
				return;
			}
		}
	}
}

static __always_inline void port_slot_del(__u16 port, __u64 sk)
{
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	if (!ls)
		return;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		if (ls->sk[i] == sk)
			ls->sk[i] = 0;
	}
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost_events, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline void *reserve(__u32 size, __u8 kind)
{
	struct syn_hdr *h = bpf_ringbuf_reserve(&events, size, 0);
	if (!h) {
		count_lost();
		return NULL;
	}
	h->kind = kind;
	h->abi = SYN_ABI_VERSION;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_boot_ns();
	return h;
}

/*
 * Submit without waking the consumer for every record: a wakeup is an
 * irq_work plus a cross-CPU wakeup, and it dominated the cost of a refusal
 * (about 6 us of the 8 us spent in BPF per refusal on a 2-vCPU VM; see
 * docs/benchmarks.md). The consumer polls the ring at least every tick
 * (50 ms) anyway; it is woken early only when the unread data crosses
 * SYN_WAKEUP_BYTES, so a storm is drained in batches long before the ring
 * fills. A crossing missed by a race between CPUs costs at most one tick.
 */
#define SYN_WAKEUP_BYTES (256 * 1024)

static __always_inline void submit(void *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = ((struct syn_hdr *)e)->size + 8; /* + the ring's record header */
	__u64 flags = avail >= SYN_WAKEUP_BYTES && avail < SYN_WAKEUP_BYTES + size
		? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/*
 * Submit and wake the consumer now, at most once per URGENT_WAKEUP_NS on
 * this CPU: for records whose evidence can vanish within a tick (a firewall
 * drop's network namespace, deleted right after the drop by a crash-looping
 * container or a test harness, must be pinned by the consumer while it still
 * exists). A storm of them still wakes the consumer at most 200 times a
 * second per CPU.
 */
#define URGENT_WAKEUP_NS (5 * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_urgent_wakeup SEC(".maps");

static __always_inline void submit_urgent(void *e)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&last_urgent_wakeup, &zero);
	__u64 now = ((struct syn_hdr *)e)->ts_ns;
	if (last && now - *last >= URGENT_WAKEUP_NS) {
		*last = now;
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		return;
	}
	submit(e);
}

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

static __always_inline void v4_mapped(__u8 dst[16], __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * Parse a received TCP segment: local = its destination, remote = its
 * sender. Returns false if it is not TCP over IPv4/IPv6.
 */
static __always_inline bool parse_tcp(const struct sk_buff *skb, struct syn_tuple *t,
				      __u8 *tcp_flags)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 vbyte = 0;
	struct tcphdr tcp;

	if (!head || bpf_probe_read_kernel(&vbyte, 1, head + nh))
		return false;
	if ((vbyte >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return false;
		if (ip.protocol != IPPROTO_TCP)
			return false;
		/* transport_header is set by ip_local_deliver before tcp_v4_rcv,
		 * but compute it from ihl in case a caller has not. */
		th = nh + ip.ihl * 4;
		v4_mapped(t->local, ip.daddr);
		v4_mapped(t->remote, ip.saddr);
		t->family = AF_INET;
	} else if ((vbyte >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return false;
		/* Up to three extension headers (hop-by-hop, routing, destination
		 * options) before TCP; anything else (ICMPv6 behind a hop-by-hop
		 * header, as MLD sends it) is not TCP. */
		__u8 next = ip6.nexthdr;
		__u16 off = nh + sizeof(ip6);
		for (int i = 0; i < 3 && next != IPPROTO_TCP; i++) {
			__u8 ext[2];
			if (next != 0 && next != 43 && next != 60)
				return false;
			if (bpf_probe_read_kernel(ext, sizeof(ext), head + off))
				return false;
			next = ext[0];
			off += (ext[1] + 1) * 8;
		}
		if (next != IPPROTO_TCP)
			return false;
		th = off;
		__builtin_memcpy(t->local, &ip6.daddr, 16);
		__builtin_memcpy(t->remote, &ip6.saddr, 16);
		t->family = AF_INET6;
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return false;
	*tcp_flags = ((__u8 *)&tcp)[13];
	t->lport = bpf_ntohs(tcp.dest);
	t->rport = bpf_ntohs(tcp.source);
	t->_pad = 0;
	return true;
}

static __always_inline bool is_first_syn(__u8 flags)
{
	return (flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK);
}

/* A SYN for which no socket matched: local = the port nobody listens on. */
static __always_inline bool parse_syn(const struct sk_buff *skb,
				      struct syn_ev_no_socket_rst *e)
{
	__u8 flags = 0;
	if (!parse_tcp(skb, &e->t, &flags))
		return false;
	/* Only the first packet of a connection attempt: a SYN without ACK. A
	 * stray segment of a vanished connection is a different story. */
	if (!is_first_syn(flags))
		return false;
	e->tcp_flags = flags;
	return port_wanted(e->t.lport);
}

/* The conntrack entry of the SYN (skb->_nfct, attached in PREROUTING and
 * kept on tcp_v{4,6}_rcv's no-socket path): its original destination is the
 * address the client used before DNAT. nf_conn is in a module on many
 * kernels: without its BTF (module not loaded) the branch is compiled out. */
static __always_inline void read_conntrack(const struct sk_buff *skb, struct syn_ev_no_socket_rst *e)
{
	e->has_ct = 0;
	e->orig_dport = 0;
	__builtin_memset(e->orig_dst, 0, sizeof(e->orig_dst));
	__builtin_memset(e->_pad2, 0, sizeof(e->_pad2));
	if (!bpf_core_type_exists(struct nf_conn))
		return;
	unsigned long nfct = BPF_CORE_READ(skb, _nfct);
	struct nf_conn *ct = (struct nf_conn *)(nfct & ~7UL);
	if (!ct)
		return;
	union nf_inet_addr dst = {};
	__be16 port = 0;
	if (bpf_core_read(&dst, sizeof(dst), &ct->tuplehash[0].tuple.dst.u3) ||
	    bpf_core_read(&port, sizeof(port), &ct->tuplehash[0].tuple.dst.u.tcp.port))
		return;
	if (e->t.family == AF_INET) {
		e->orig_dst[10] = 0xff;
		e->orig_dst[11] = 0xff;
		__builtin_memcpy(&e->orig_dst[12], &dst.ip, 4);
	} else {
		__builtin_memcpy(e->orig_dst, &dst.ip6, 16);
	}
	e->orig_dport = bpf_ntohs(port);
	e->has_ct = 1;
}

static __always_inline int emit_no_socket_rst(const struct sk_buff *skb, __u8 source)
{
	struct syn_ev_no_socket_rst ev = {};
	struct syn_ev_no_socket_rst *e;

	if (!parse_syn(skb, &ev))
		return 0;
	/* Without the state-change hook, a listener that closed on this port
	 * is found now, and its close reaches user space before the refusal. */
	if (no_state_hook())
		listeners_reap(ev.t.lport);
	e = reserve(sizeof(*e), SYN_EV_NO_SOCKET_RST);
	if (!e)
		return 0;
	e->t = ev.t;
	e->tcp_flags = ev.tcp_flags;
	e->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	e->source = source;
	e->_pad = 0;
	read_conntrack(skb, e);
	submit(e);
	return 0;
}

/* 6.10+: tcp_send_reset fires for every RST, sk==NULL for "no socket"
 * (19822a980e19 "trace: tcp: fully support trace_tcp_send_reset"). */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(rst_tp_send_reset, const struct sock *sk, const struct sk_buff *skb,
	     enum sk_rst_reason reason)
{
	if (sk || !skb)
		return 0;
	if (reason != bpf_core_enum_value(enum sk_rst_reason, SK_RST_REASON_NO_SOCKET))
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_TP_SEND_RESET);
}

/* 5.17+: kfree_skb carries a drop reason; tcp_v{4,6}_rcv's no_tcp_socket path
 * frees the SYN with NO_SOCKET right after sending the RST. Only the first
 * three arguments are read, so the program loads on kernels with and without
 * the rx_sk argument (6.11). The enum's numbering differs between kernels:
 * CO-RE resolves NO_SOCKET from the running kernel's BTF. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(rst_kfree_skb, struct sk_buff *skb, void *location,
	     enum skb_drop_reason reason)
{
	if (reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET))
		return 0;
	if (!skb)
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_KFREE_SKB);
}

/* Before 6.10 (and with a trampoline-capable kernel): the function that sends
 * the no-socket RST. Only the first two arguments are read: 6.10 added a
 * third (the reset reason), and a program reading it does not load on 6.1. */
SEC("fentry/tcp_v4_send_reset")
int BPF_PROG(rst_fentry_v4, const struct sock *sk, struct sk_buff *skb)
{
	if (sk)
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_FENTRY);
}

SEC("fentry/tcp_v6_send_reset")
int BPF_PROG(rst_fentry_v6, const struct sock *sk, struct sk_buff *skb)
{
	if (sk)
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_FENTRY);
}

/* Kernels with kprobes but without BPF trampolines. */
SEC("kprobe/tcp_v4_send_reset")
int BPF_KPROBE(rst_kprobe_v4, const struct sock *sk, struct sk_buff *skb)
{
	if (sk)
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_KPROBE);
}

SEC("kprobe/tcp_v6_send_reset")
int BPF_KPROBE(rst_kprobe_v6, const struct sock *sk, struct sk_buff *skb)
{
	if (sk)
		return 0;
	return emit_no_socket_rst(skb, SYN_RST_SRC_KPROBE);
}

static __always_inline void sock_local(const struct sock *sk, struct syn_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct inet_sock *inet = (struct inet_sock *)sk;

	t->family = family;
	if (family == AF_INET) {
		v4_mapped(t->local, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(t->remote, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		bpf_core_read(t->local, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(t->remote, 16, &sk->__sk_common.skc_v6_daddr);
	}
	/* skc_num is already 0 at some ->CLOSE transitions (inet_put_port);
	 * inet_sport keeps the local port. */
	t->lport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->_pad = 0;
}

static __always_inline __u64 sock_inode(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

/*
 * Find the local connecting socket of a SYN (or of a handshake's ACK) by its
 * 4-tuple, in `connecting` (filled in process context at connect()). Used
 * only on rare paths (a dropped SYN or ACK). First the socket of this CPU's
 * latest connect(): a local client's first SYN and its ACK are processed
 * inside its own connect(). Otherwise (a retransmission, from a timer) the
 * table is walked, skipping entries for other destination ports; a walk
 * visits all CONN_SETS sets, so each CPU walks at most FIND_CLIENT_WALKS times
 * per FIND_CLIENT_WINDOW_NS: in an overflow storm the rest are reported
 * without their client (SYN_CLIENT_NOT_LOOKED_UP) rather than spending the
 * CPU the storm needs.
 */
#define FIND_CLIENT_WALKS 8
#define FIND_CLIENT_WINDOW_NS (100 * 1000 * 1000ULL)

struct find_client_ctx {
	struct syn_tuple want;   /* as the server saw it: local = server, remote = client */
	struct syn_task task;
	bool found;
};

/* Is `key` the client end of `want` (the server's view)? */
static __noinline bool sock_is_client(__u64 key, const struct syn_tuple *want)
{
	struct syn_tuple t = {};

	sock_local((const struct sock *)key, &t);
	if (t.lport != want->rport || t.rport != want->lport)
		return false;
	return __builtin_memcmp(t.local, want->remote, 16) == 0 &&
	       __builtin_memcmp(t.remote, want->local, 16) == 0;
}

static long find_client_cb(struct bpf_map *map, __u32 *key, struct conn_set *s,
			   struct find_client_ctx *ctx)
{
	for (int i = 0; i < CONN_WAYS; i++) {
		__u64 k = READ_ONCE_U64(s->sk[i]);
		if (k == 0 || (k & CONN_BUSY) || s->dport[i] != ctx->want.lport)
			continue;
		if (!sock_is_client(k, &ctx->want))
			continue;
		ctx->task = s->ci[i].task;
		barrier();
		if (READ_ONCE_U64(s->sk[i]) != k)
			continue;
		ctx->found = true;
		return 1;
	}
	return 0;
}

/* The first half of find_client, alone: this CPU's latest connect() only.
 * A local client's first SYN, and the SYN-ACK answering it, are processed
 * inside its connect() on its CPU. Without the walk it costs the verifier
 * little: each program calling find_client spent ~100 ms in BPF_PROG_LOAD
 * (strace, this 2-vCPU VM under load), which the kfree_skb program
 * (drops.bpf.h) does not pay. */
static __always_inline bool find_client_here(struct conn_cpu *c, const struct syn_tuple *server_view,
					     struct syn_task *out)
{
	struct connect_info ci;

	if (!c->last_sk || !sock_is_client(c->last_sk, server_view) || !conn_get(c->last_sk, &ci))
		return false;
	*out = ci.task;
	return true;
}

/* A global function: verified once, not inline in every overflow program. */
__noinline int find_client(const struct syn_tuple *server_view, struct syn_task *out)
{
	__u32 zero = 0;
	if (!server_view || !out)
		return SYN_CLIENT_NOT_FOUND;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);

	if (!c)
		return SYN_CLIENT_NOT_FOUND;
	if (find_client_here(c, server_view, out))
		return SYN_CLIENT_FOUND;
	__u64 now = bpf_ktime_get_boot_ns();
	if (now - c->window_ns >= FIND_CLIENT_WINDOW_NS) {
		c->window_ns = now;
		c->walks = 0;
	}
	if (c->walks >= FIND_CLIENT_WALKS)
		return SYN_CLIENT_NOT_LOOKED_UP;
	c->walks++;

	struct find_client_ctx ctx = {};
	ctx.want = *server_view;
	bpf_for_each_map_elem(&connecting, find_client_cb, &ctx, 0);
	if (!ctx.found)
		return SYN_CLIENT_NOT_FOUND;
	*out = ctx.task;
	return SYN_CLIENT_FOUND;
}

/* Remember this CPU's latest connecting socket (see find_client). */
static __always_inline void conn_mark_cpu(__u64 sk)
{
	__u32 zero = 0;
	struct conn_cpu *c = bpf_map_lookup_elem(&conn_cpu, &zero);
	if (c)
		c->last_sk = sk;
}

/* The client's failed connect, with the task captured at connect() time.
 * `filter`: apply the --port filter to the destination port. */
static __always_inline void emit_connect_error(const struct sock *sk, const struct connect_info *ci,
					       __u8 kind, int err, bool filter)
{
	struct syn_ev_connect_error *e = reserve(sizeof(*e), kind);
	if (!e)
		return;
	sock_local(sk, &e->t);
	if (filter && !port_wanted(e->t.rport)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	e->task = ci->task;
	e->connect_ts_ns = ci->ts_ns;
	e->netns = sock_netns(sk);
	e->err = err;
	submit(e);
}

static __always_inline void track_listener(const struct sock *sk, __u8 kind, const struct syn_ev_listen *e)
{
	__u64 key = (__u64)sk;

	if (kind == SYN_EV_LISTEN) {
		struct listen_info li = {
			.ino = e->sock_ino, .tgid = e->task.pid, .netns = e->netns,
			.drops_seen = BPF_CORE_READ(sk, sk_drops.counter),
			.port = e->t.lport, .family = e->t.family,
		};
		bpf_map_update_elem(&listen_socks, &key, &li, BPF_ANY);
		port_slot_add(e->t.lport, key);
	} else {
		bpf_map_delete_elem(&listen_socks, &key);
		port_slot_del(e->t.lport, key);
	}
}

static __always_inline int on_listen_change(const struct sock *sk, __u8 kind)
{
	struct syn_ev_listen *e = reserve(sizeof(*e), kind);
	if (!e)
		return 0;
	sock_local(sk, &e->t);
	__builtin_memset(e->t.remote, 0, 16);
	e->t.rport = 0;
	fill_task(&e->task);
	e->sock_ino = sock_inode(sk);
	e->netns = sock_netns(sk);
	e->ipv6only = e->t.family == AF_INET6 ?
		BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only) : 0;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	__u32 tgid = e->task.pid; /* e is gone after submit */
	track_listener(sk, kind, e);
	submit(e);

	if (kind == SYN_EV_LISTEN) {
		__u8 one = 1;
		bpf_map_update_elem(&listener_pids, &tgid, &one, BPF_ANY);
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	/* Runs ~10 times per TCP connection on the host: a direct load (sk is a
	 * BTF pointer here), not a bpf_probe_read_kernel call. */
	__u16 proto = BPF_CORE_READ_BITFIELD(sk, sk_protocol);

	if (proto != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_LISTEN && oldstate == TCP_CLOSE)
		return on_listen_change(sk, SYN_EV_LISTEN);
	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)
		return on_listen_change(sk, SYN_EV_LISTEN_CLOSE);

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		/* connect(): process context, the only moment the caller is known.
		 * The destination port is set already, the source port not yet. */
		struct connect_info ci = {};
		__u64 key = sk_key(sk);
		fill_task(&ci.task);
		ci.ts_ns = bpf_ktime_get_boot_ns();
		conn_put(key, bpf_ntohs(sk->__sk_common.skc_dport), &ci);
		conn_mark_cpu(key);
		return 0;
	}
	struct conn_set *set;
	int way;
	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
		/* Healthy. Remembered until CLOSE: the client of an ACK-stage
		 * overflow is ESTABLISHED already, and a reset right after setup
		 * is a failure of its own. */
		struct connect_info *ci = conn_ref(sk_key(sk), &set, &way);
		if (ci)
			ci->established_ns = bpf_ktime_get_boot_ns();
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	__u64 key = sk_key(sk);
	struct connect_info *ref = conn_ref(key, &set, &way);
	if (!ref)
		return 0;
	struct connect_info ci = *ref;
	barrier();
	if (!conn_del(set, way, key))
		return 0;
	int err = BPF_CORE_READ(sk, sk_err);
	bool failed = oldstate == TCP_SYN_SENT && err != 0;
	bool reset_after_setup = ci.established_ns != 0 && err == ECONNRESET &&
		bpf_ktime_get_boot_ns() - ci.established_ns < RESET_AFTER_SETUP_NS;
	if (failed || reset_after_setup)
		emit_connect_error(sk, &ci, SYN_EV_CONNECT_ERROR, err, false);
	return 0;
}

/*
 * Without inet_sock_set_state (SYN_CFG_NO_STATE_HOOK, issue 16): it runs
 * about 10 times per TCP connection on the host. Instead:
 *  - the connect() caller, once per connect() in its own context, from
 *    cgroup/connect4 and cgroup/connect6 on the root cgroup v2, kept in
 *    `connecting` with the socket's cookie (entries are not deleted at
 *    CLOSE: a full set gives up its oldest; socket-local storage costs an
 *    allocation per connect(), measured at about 1 us);
 *  - connection errors from inet_sk_error_report, which fires only on
 *    errors: refused, reset, timed out, unreachable;
 *  - listener births from listen()'s exit (syscalls.bpf.h), deaths found
 *    when a refusal or a SYN to the port needs them (listeners_reap).
 */
#define SOCK_STREAM 1

static __always_inline int on_connect(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk)
		return 1;
	struct connect_info ci = {};
	fill_task(&ci.task);
	ci.ts_ns = bpf_ktime_get_boot_ns();
	ci.cookie = bpf_get_socket_cookie(ctx);
	__u64 key = sk_key((const struct sock *)bsk);
	conn_put(key, bpf_ntohs((__u16)ctx->user_port), &ci);
	conn_mark_cpu(key);
	return 1; /* never refuse a connect() */
}

SEC("cgroup/connect4")
int conn_connect4(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

SEC("cgroup/connect6")
int conn_connect6(struct bpf_sock_addr *ctx) { return on_connect(ctx); }

/* A TCP socket's error: sk_err is set before the report. A connection that
 * never saw the peer's SYN-ACK has rcv_nxt 0 (tcp_connect_init): a failed
 * connect(); otherwise a reset within RESET_AFTER_SETUP_NS of connect() is a
 * setup failure of its own (reset_by_peer). */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(conn_error_report, const struct sock *sk)
{
	if (!sk || BPF_CORE_READ_BITFIELD(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	int err = sk->sk_err;
	if (err == 0)
		return 0;
	/* The table keeps entries past CLOSE: the cookie tells this socket's
	 * own connect() from an earlier socket's at the same address. */
	__u64 key = sk_key(sk);
	struct conn_set *set;
	int way;
	struct connect_info *ref = conn_ref(key, &set, &way);
	if (!ref)
		return 0;
	struct connect_info ci = *ref;
	barrier();
	if (ci.cookie != bpf_get_socket_cookie((void *)sk) || !conn_del(set, way, key))
		return 0; /* not this socket's, or already reported: one report per connection */
	bool failed = BPF_CORE_READ((struct tcp_sock *)sk, rcv_nxt) == 0;
	bool reset_after_setup = !failed && err == ECONNRESET &&
		bpf_ktime_get_boot_ns() - ci.ts_ns < RESET_AFTER_SETUP_NS;
	if (failed || reset_after_setup)
		emit_connect_error(sk, &ci, SYN_EV_CONNECT_ERROR, err, false);
	return 0;
}

/* Is the socket at `key` still a listener on `port`? TCP sockets are
 * SLAB_TYPESAFE_BY_RCU: a closed listener's memory stays a socket, reused
 * or not, so reading it is safe and tells. */
static __always_inline bool listener_alive(__u64 key, __u16 port)
{
	const struct sock *sk = (const struct sock *)key;
	return BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN &&
	       BPF_CORE_READ(sk, __sk_common.skc_num) == port;
}

/* A listener found dead: its close, as inet_sock_set_state would have
 * reported it (the closing process and the exact time unknown: task zero,
 * ts = now). */
static __always_inline void emit_lazy_close(const struct listen_info *li)
{
	struct syn_ev_listen *e = reserve(sizeof(*e), SYN_EV_LISTEN_CLOSE);
	if (!e)
		return;
	__builtin_memset(&e->t, 0, sizeof(e->t));
	e->t.lport = li->port;
	e->t.family = li->family;
	__builtin_memset(&e->task, 0, sizeof(e->task));
	e->sock_ino = li->ino;
	e->netns = li->netns;
	e->ipv6only = 0;
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
	submit(e);
}

/* A global function (verified once). Returns how many were reaped. */
__noinline int listeners_reap(__u16 port)
{
	struct listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &port);
	int reaped = 0;
	if (!ls)
		return 0;
	for (int i = 0; i < LISTEN_SLOTS; i++) {
		__u64 key = ls->sk[i];
		if (key == 0 || listener_alive(key, port))
			continue;
		struct listen_info *li = bpf_map_lookup_elem(&listen_socks, &key);
		if (li) {
			emit_lazy_close(li);
			bpf_map_delete_elem(&listen_socks, &key);
		}
		ls->sk[i] = 0;
		reaped++;
	}
	return reaped;
}

/* Listeners that closed while nothing asked about their port: user space
 * runs this program (BPF_PROG_TEST_RUN, not attached to anything) every
 * few seconds (Tracer.run), so that the registries on both sides stay
 * bounded. */
static long reap_cb(struct bpf_map *map, __u64 *key, struct listen_info *li, void *ctx)
{
	__u64 k = *key;
	if (listener_alive(k, li->port))
		return 0;
	emit_lazy_close(li);
	port_slot_del(li->port, k);
	bpf_map_delete_elem(&listen_socks, &k);
	return 0;
}

SEC("raw_tp")
int run_reap_listeners(void *ctx)
{
	bpf_for_each_map_elem(&listen_socks, reap_cb, NULL, 0);
	return 0;
}

/* Areas added by issue 3: each is a header of programs sharing the maps and
 * helpers above. */
#include "syscalls.bpf.h"
#include "timeouts.bpf.h"
#include "firewall.bpf.h"
#include "overflow.bpf.h"
#include "drops.bpf.h"

/* Only the first argument is read: 6.18 added group_dead, 6.12 has (p). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(proc_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (!bpf_map_lookup_elem(&listener_pids, &tgid))
		return 0;
	/* do_exit() decrements signal->live before this tracepoint: zero means
	 * this is the last thread of the process. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;

	struct syn_ev_exit *e = reserve(sizeof(*e), SYN_EV_EXIT);
	if (e) {
		fill_task(&e->task);
		e->task.pid = tgid;
		e->exit_code = BPF_CORE_READ(p, exit_code);
		e->_pad = 0;
		submit(e);
	}
	bpf_map_delete_elem(&listener_pids, &tgid);
	return 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * amesh TIME_WAIT hand-over (DESIGN.md §2): sk_lookup, attached to the node's network namespace,
 * the listener lookup of a SYN that met a TIME_WAIT socket (tcp_v4_rcv's TCP_TW_SYN path, which
 * capture.bpf.c's assign_established leaves the SYN to). Linked with capture.bpf.c into one
 * object (scripts/build-bpf.sh); it reads amesh_flows, which the tc program fills, and
 * amesh_listeners, which the agent fills after each load.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"
#include "maps.h"

/*
 * sk_lookup, attached to the node's network namespace: the listener lookup of a SYN that met a
 * TIME_WAIT socket (tcp_v4_rcv's TCP_TW_SYN path, which assign_established leaves the SYN to).
 * The stack looks for a listener on the original destination, finds none, and would answer with
 * an ACK, costing the client a reset and a retransmission 2 jiffies later. For a tuple whose
 * previous flow a listener of ours took (amesh_flows), the same listener is selected instead, so
 * the stack retires the TIME_WAIT entry and the listener takes the SYN at once, as the nftables
 * tproxy statement does. Every other lookup is left alone.
 */
SEC("sk_lookup")
int amesh_tw_syn(struct bpf_sk_lookup *ctx)
{
	struct amesh_flow_key key = {};
	struct amesh_flow_value *flow;
	struct bpf_sock *sk;
	__u32 listener;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (ctx->family == 2 /* AF_INET */) {
		__be32 *s = (__be32 *)key.saddr, *d = (__be32 *)key.daddr;

		s[2] = d[2] = bpf_htonl(0x0000ffff);
		s[3] = ctx->remote_ip4;
		d[3] = ctx->local_ip4;
	} else if (ctx->family == 10 /* AF_INET6 */) {
		__builtin_memcpy(key.saddr, (void *)ctx->remote_ip6, AMESH_ADDR_SIZE);
		__builtin_memcpy(key.daddr, (void *)ctx->local_ip6, AMESH_ADDR_SIZE);
	} else {
		return SK_PASS;
	}
	key.sport = ctx->remote_port;
	key.dport = bpf_htons(ctx->local_port);
	flow = bpf_map_lookup_elem(&amesh_flows, &key);
	if (!flow)
		return SK_PASS;
	switch (flow->reason) {
	case AMESH_REASON_REDIRECT_OUTBOUND:
		listener = AMESH_LISTENER_OUTBOUND;
		break;
	case AMESH_REASON_REDIRECT_INBOUND_PLAINTEXT:
		listener = AMESH_LISTENER_INBOUND_PLAINTEXT;
		break;
	case AMESH_REASON_REDIRECT_INBOUND_HBONE:
		listener = AMESH_LISTENER_INBOUND_HBONE;
		break;
	default:
		return SK_PASS;
	}
	listener = 2 * listener + (ctx->family == 10 /* AF_INET6 */);
	sk = bpf_map_lookup_elem(&amesh_listeners, &listener);
	if (!sk)
		return SK_PASS;
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}

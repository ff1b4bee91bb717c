// SPDX-License-Identifier: Apache-2.0
/*
 * amesh traffic capture (DESIGN.md §2), attached on tc clsact ingress of every pod's host-side
 * veth and of the node uplinks.
 *
 * For each TCP segment:
 *   1. a packet of a flow the node already has a socket for (the proxy's accepted or outbound
 *      side) is assigned to that socket and marked (a TIME_WAIT one: marked only);
 *   2. otherwise a later segment of a flow set up through a socket here (amesh_flows) is marked
 *      so the local stack resets it, other non-SYN segments pass, and only a pure SYN is
 *      considered further; exempt destinations pass;
 *   3. an enrolled source goes to the outbound listener, an enrolled destination to the HBONE
 *      listener (dport 15008) or the inbound plaintext listener;
 *   4. the listener must be in LISTEN state and carry the agent's SO_MARK, so no other process
 *      can bind the port and receive captured traffic; then the SYN is assigned to it and
 *      marked so policy routing (fwmark → local table) delivers it.
 * No usable listener means drop (fail closed) unless fail_open is set at load time.
 *
 * Every decision is counted in amesh_reasons. The helpers return 0 to continue or
 * -AMESH_REASON_* for a final decision; the entry point turns the reason into a verdict.
 *
 * Step 1 for a SYN that meets one of the agent's TIME_WAIT sockets is finished by amesh_tw_syn
 * (tw-syn.bpf.c, sk_lookup): it picks the listener that took the tuple's previous flow. The two
 * files are linked into one object (scripts/build-bpf.sh, bpftool gen object), which the loader
 * takes whole; the maps of maps.h are shared between them.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"
#include "maps.h"
#include "packet.h"

/* Load-time knobs, written into .rodata by the loader (encodeRodata in bpf-contract.ts). */
const volatile __u32 capture_mark = AMESH_DEFAULT_CAPTURE_MARK;
const volatile __u32 listener_mark = AMESH_DEFAULT_LISTENER_MARK;
const volatile __u16 outbound_port = AMESH_DEFAULT_OUTBOUND_PORT;
const volatile __u16 inbound_plaintext_port = AMESH_DEFAULT_INBOUND_PLAINTEXT_PORT;
const volatile __u16 hbone_port = AMESH_DEFAULT_HBONE_PORT;
const volatile __u8 fail_open = 0;

struct amesh_target {
	__u16 port;   /* host order */
	__u32 reason; /* the REDIRECT_* reason counted on success */
};

static __always_inline void count_reason(__u32 reason)
{
	__u64 *counter = bpf_map_lookup_elem(&amesh_reasons, &reason);

	if (counter)
		*counter += 1;
}

/* The lookup tuple for (packet source) → (daddr, dport); returns its size for the helpers. */
static __always_inline __u32 fill_tuple(struct bpf_sock_tuple *tuple, const struct amesh_packet *pkt,
					const __be32 *daddr, __be16 dport)
{
	if (pkt->family == 4) {
		tuple->ipv4.saddr = pkt->saddr[3];
		tuple->ipv4.daddr = daddr[3];
		tuple->ipv4.sport = pkt->sport;
		tuple->ipv4.dport = dport;
		return sizeof(tuple->ipv4);
	}
	__builtin_memcpy(tuple->ipv6.saddr, pkt->saddr, AMESH_ADDR_SIZE);
	__builtin_memcpy(tuple->ipv6.daddr, daddr, AMESH_ADDR_SIZE);
	tuple->ipv6.sport = pkt->sport;
	tuple->ipv6.dport = dport;
	return sizeof(tuple->ipv6);
}

static __always_inline void fill_flow_key(struct amesh_flow_key *key, const struct amesh_packet *pkt)
{
	__builtin_memcpy(key->saddr, pkt->saddr, AMESH_ADDR_SIZE);
	__builtin_memcpy(key->daddr, pkt->daddr, AMESH_ADDR_SIZE);
	key->sport = pkt->sport;
	key->dport = pkt->dport;
}

static __always_inline void remember_flow(const struct amesh_packet *pkt, __u32 reason)
{
	struct amesh_flow_key key;
	struct amesh_flow_value value = { .reason = reason };

	fill_flow_key(&key, pkt);
	bpf_map_update_elem(&amesh_flows, &key, &value, BPF_ANY);
}

/*
 * Keeps a flow that is sending (PSH, FIN) from being the least recently used entry: a lookup
 * sets the entry's reference bit, which spares it at the next eviction, and costs no lock. An
 * entry already evicted (a flow idle through 32 768 newer ones) is added back.
 */
static __always_inline void touch_flow(const struct amesh_packet *pkt, __u32 reason)
{
	struct amesh_flow_key key;
	struct amesh_flow_value value = { .reason = reason };

	fill_flow_key(&key, pkt);
	if (!bpf_map_lookup_elem(&amesh_flows, &key))
		bpf_map_update_elem(&amesh_flows, &key, &value, BPF_ANY);
}

static __always_inline void forget_flow(const struct amesh_packet *pkt)
{
	struct amesh_flow_key key;

	fill_flow_key(&key, pkt);
	bpf_map_delete_elem(&amesh_flows, &key);
}

/*
 * Step 1: a flow the node already holds a socket for. LISTEN is skipped (the lookup falls
 * back to listeners on daddr:dport, which says nothing about capture). If the assign fails
 * the mark alone still routes the packet to the local stack, where the normal lookup finds
 * the same socket.
 *
 * TIME_WAIT is marked but not assigned, whatever the flags: the stack's own lookup hands the
 * segment to the TIME_WAIT socket (tcp_timewait_state_process). That matters for a SYN reusing
 * the tuple, which is common: the agent closes towards the client first when the server does,
 * so it holds TIME_WAIT for tuples the client, which holds none, reuses at once. Assigned to the
 * listener instead, such a SYN gets a request sock that collides with the TIME_WAIT entry in
 * the established hash and is dropped without a trace, so the client retransmits it until the
 * entry expires (60 s). Given to the TIME_WAIT socket, the SYN is answered with an ACK, the
 * client's RST for it retires the entry (RFC 1337 assassination, sysctl tcp_rfc1337=0) and the
 * client's SYN, retransmitted TCP_TIMEOUT_MIN (2 jiffies) later, finds the listener: what the
 * nftables path does (its `socket transparent` rule matches TIME_WAIT too). The RST and any
 * late segment of the old flow (a retransmitted FIN) need the same delivery, or they would be
 * forwarded to the pod the TIME_WAIT socket stands in for. Counted as ASSIGN_ESTABLISHED: a
 * reason of its own needs a larger amesh_reasons, so a new pin directory version.
 */
static __always_inline int assign_established(struct __sk_buff *skb, const struct amesh_packet *pkt)
{
	struct bpf_sock_tuple tuple = {};
	__u32 size = fill_tuple(&tuple, pkt, pkt->daddr, pkt->dport);
	struct bpf_sock *sk;

	sk = bpf_skc_lookup_tcp(skb, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	if (sk->state == BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return 0;
	}
	if (sk->state != BPF_TCP_TIME_WAIT) {
		bpf_sk_assign(skb, sk, 0);
		/*
		 * A SYN-ACK answering a socket of ours (the agent dialling a pod or a peer's 15008)
		 * starts a flow to remember; data and FINs keep one remembered while it is in use,
		 * since its socket may be reset at any moment, say by an agent that crashed.
		 */
		if (pkt->tcp_flags & AMESH_TCP_FLAG_SYN)
			remember_flow(pkt, AMESH_REASON_ASSIGN_ESTABLISHED);
		else if (pkt->tcp_flags & (AMESH_TCP_FLAG_PSH | AMESH_TCP_FLAG_FIN))
			touch_flow(pkt, AMESH_REASON_ASSIGN_ESTABLISHED);
	}
	bpf_sk_release(sk);
	return -AMESH_REASON_ASSIGN_ESTABLISHED;
}

/*
 * Step 2, for a segment no socket here owns. A segment without SYN of a flow in amesh_flows
 * belongs to a connection the proxy has already closed, typically a reset it sent crossing
 * data the client had just written (a refused connection): forwarded, it would carry the
 * client's plaintext onto the wire towards the original destination. Marked instead (the
 * reason of a socket-owned segment; one of its own needs a larger amesh_reasons, so a new pin
 * directory version), it is routed to the local stack, which finds no socket and answers
 * with a reset. Any other segment without SYN passes: flows opened before the pod was enrolled
 * keep flowing. A SYN-ACK nothing here owns starts a flow that is not ours, so an entry left
 * on its tuple by an earlier flow is dropped.
 */
static __always_inline int check_pure_syn(const struct amesh_packet *pkt)
{
	struct amesh_flow_key key;

	if (!(pkt->tcp_flags & AMESH_TCP_FLAG_SYN)) {
		fill_flow_key(&key, pkt);
		if (bpf_map_lookup_elem(&amesh_flows, &key))
			return -AMESH_REASON_ASSIGN_ESTABLISHED;
		return -AMESH_REASON_PASS_NOT_SYN;
	}
	if (pkt->tcp_flags & AMESH_TCP_FLAG_ACK) {
		forget_flow(pkt);
		return -AMESH_REASON_PASS_NOT_SYN;
	}
	return 0;
}

static __always_inline int check_exempt(const struct amesh_packet *pkt)
{
	struct amesh_lpm_key key = { .prefixlen = AMESH_ADDR_SIZE * 8 };

	__builtin_memcpy(key.addr, pkt->daddr, AMESH_ADDR_SIZE);
	if (bpf_map_lookup_elem(&amesh_exempt, &key))
		return -AMESH_REASON_PASS_EXEMPT;
	return 0;
}

static __always_inline int is_enrolled(const __be32 *addr)
{
	struct amesh_pod_key key;
	struct amesh_pod_value *value;

	__builtin_memcpy(key.addr, addr, AMESH_ADDR_SIZE);
	value = bpf_map_lookup_elem(&amesh_pods, &key);
	return value && (value->flags & AMESH_POD_FLAG_ENROLLED);
}

/* Step 3: which listener a captured SYN belongs to. */
static __always_inline int select_target(const struct amesh_packet *pkt, struct amesh_target *target)
{
	if (is_enrolled(pkt->saddr)) {
		target->port = outbound_port;
		target->reason = AMESH_REASON_REDIRECT_OUTBOUND;
		return 0;
	}
	if (is_enrolled(pkt->daddr)) {
		if (pkt->dport == bpf_htons(hbone_port)) {
			target->port = hbone_port;
			target->reason = AMESH_REASON_REDIRECT_INBOUND_HBONE;
		} else {
			target->port = inbound_plaintext_port;
			target->reason = AMESH_REASON_REDIRECT_INBOUND_PLAINTEXT;
		}
		return 0;
	}
	return -AMESH_REASON_PASS_NOT_ENROLLED;
}

/* Step 4: the agent's listener on loopback, proven by its SO_MARK, takes the SYN. */
static __always_inline int assign_listener(struct __sk_buff *skb, const struct amesh_packet *pkt,
					   const struct amesh_target *target)
{
	struct bpf_sock_tuple tuple = {};
	__be32 loopback[4] = {};
	struct bpf_sock *sk;
	__u32 size;
	long err;

	if (pkt->family == 4)
		loopback[3] = bpf_htonl(0x7f000001); /* 127.0.0.1 */
	else
		loopback[3] = bpf_htonl(1);          /* ::1 */
	size = fill_tuple(&tuple, pkt, loopback, bpf_htons(target->port));

	sk = bpf_sk_lookup_tcp(skb, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return -AMESH_REASON_DROP_NO_LISTENER;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return -AMESH_REASON_DROP_NO_LISTENER;
	}
	if (sk->mark != listener_mark) {
		bpf_sk_release(sk);
		return -AMESH_REASON_DROP_LISTENER_MARK;
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return -AMESH_REASON_DROP_ASSIGN_FAILED;
	return -(int)target->reason;
}

static __always_inline int capture(struct __sk_buff *skb)
{
	struct amesh_packet pkt = {};
	struct amesh_target target = {};
	int ret;

	ret = amesh_parse_packet(skb, &pkt);
	if (ret < 0)
		return ret;
	ret = assign_established(skb, &pkt);
	if (ret < 0)
		return ret;
	ret = check_pure_syn(&pkt);
	if (ret < 0)
		return ret;
	ret = check_exempt(&pkt);
	if (ret == 0)
		ret = select_target(&pkt, &target);
	if (ret == 0)
		ret = assign_listener(skb, &pkt, &target);
	/* A SYN a listener took starts a flow of ours; any other starts one that is not. */
	if (ret == -(int)target.reason && target.reason)
		remember_flow(&pkt, target.reason);
	else
		forget_flow(&pkt);
	return ret;
}

/* Count the decision and turn it into a tc verdict. */
static __always_inline int apply_verdict(struct __sk_buff *skb, __u32 reason)
{
	count_reason(reason);
	switch (reason) {
	case AMESH_REASON_ASSIGN_ESTABLISHED:
	case AMESH_REASON_REDIRECT_OUTBOUND:
	case AMESH_REASON_REDIRECT_INBOUND_PLAINTEXT:
	case AMESH_REASON_REDIRECT_INBOUND_HBONE:
		skb->mark = capture_mark;
		return TC_ACT_OK;
	case AMESH_REASON_DROP_NO_LISTENER:
	case AMESH_REASON_DROP_LISTENER_MARK:
	case AMESH_REASON_DROP_ASSIGN_FAILED:
		if (fail_open) {
			count_reason(AMESH_REASON_PASS_FAIL_OPEN);
			return TC_ACT_OK;
		}
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

SEC("tc")
int amesh_capture(struct __sk_buff *skb)
{
	return apply_verdict(skb, (__u32)-capture(skb));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

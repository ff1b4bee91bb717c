/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel/userspace contract of the capture program: map names, key and value layouts,
 * reason codes. Written once here; the TypeScript mirror is
 * src/node-agent/capture/bpf-contract.ts, and test/unit/bpf-contract.test.ts parses this file
 * and fails when the two drift. Change both together, and bump the pin directory version
 * (maps pinned by an older agent are reused by name, so a layout change needs a new directory).
 *
 * Only plain C here (no BPF helpers), so the file reads as a specification.
 */
#ifndef AMESH_CAPTURE_H
#define AMESH_CAPTURE_H

#include <linux/types.h>

/* Program and map names as userspace sees them. */
#define AMESH_PROGRAM_NAME      "amesh_capture"
#define AMESH_MAP_PODS_NAME     "amesh_pods"
#define AMESH_MAP_EXEMPT_NAME   "amesh_exempt"
#define AMESH_MAP_REASONS_NAME  "amesh_reasons"
#define AMESH_MAP_FLOWS_NAME    "amesh_flows"
#define AMESH_MAP_LISTENERS_NAME "amesh_listeners"
#define AMESH_SK_LOOKUP_PROGRAM_NAME "amesh_tw_syn"

#define AMESH_PODS_MAX_ENTRIES    65536
#define AMESH_EXEMPT_MAX_ENTRIES  1024
#define AMESH_FLOWS_MAX_ENTRIES   32768

/*
 * amesh_listeners (SOCKMAP): key = 2 × one of these + 1 for IPv6 (0 for IPv4), value = the
 * agent's listening socket of that kind and family.
 */
#define AMESH_LISTENER_OUTBOUND           0
#define AMESH_LISTENER_INBOUND_PLAINTEXT  1
#define AMESH_LISTENER_INBOUND_HBONE      2
#define AMESH_LISTENERS_MAX_ENTRIES       6

/* Defaults of the load-time knobs (the const volatile globals of capture.bpf.c). */
#define AMESH_DEFAULT_CAPTURE_MARK            0x111
#define AMESH_DEFAULT_LISTENER_MARK           0x539
#define AMESH_DEFAULT_OUTBOUND_PORT           15001
#define AMESH_DEFAULT_INBOUND_PLAINTEXT_PORT  15006
#define AMESH_DEFAULT_HBONE_PORT              15008

/* Addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one map serves both. */
#define AMESH_ADDR_SIZE  16

/* amesh_pods: key = pod address, value = flags. */
struct amesh_pod_key {
	__u8 addr[AMESH_ADDR_SIZE];
};

struct amesh_pod_value {
	__u32 flags;
};

#define AMESH_POD_FLAG_ENROLLED  (1U << 0)

/* amesh_exempt: LPM trie key; IPv4 prefixes are mapped, so their prefixlen is len + 96. */
struct amesh_lpm_key {
	__u32 prefixlen;
	__u8 addr[AMESH_ADDR_SIZE];
};

struct amesh_exempt_value {
	__u32 flags;
};

/*
 * amesh_flows (LRU): TCP flows the node held a socket for when they were set up, keyed as the
 * segments of one direction carry them at the hook (source → destination, ports in network
 * order). The value is the reason that recorded the flow. Written and read by the program only.
 */
struct amesh_flow_key {
	__u8 saddr[AMESH_ADDR_SIZE];
	__u8 daddr[AMESH_ADDR_SIZE];
	__be16 sport;
	__be16 dport;
};

struct amesh_flow_value {
	__u32 reason;
};

/* Layouts userspace encodes byte by byte (bpf-contract.ts): no padding allowed. */
_Static_assert(sizeof(struct amesh_pod_key) == AMESH_ADDR_SIZE, "amesh_pod_key must be 16 bytes");
_Static_assert(sizeof(struct amesh_pod_value) == 4, "amesh_pod_value must be 4 bytes");
_Static_assert(sizeof(struct amesh_lpm_key) == 4 + AMESH_ADDR_SIZE, "amesh_lpm_key must be 20 bytes");
_Static_assert(sizeof(struct amesh_exempt_value) == 4, "amesh_exempt_value must be 4 bytes");
_Static_assert(sizeof(struct amesh_flow_key) == 2 * AMESH_ADDR_SIZE + 4, "amesh_flow_key must be 36 bytes");
_Static_assert(sizeof(struct amesh_flow_value) == 4, "amesh_flow_value must be 4 bytes");

/*
 * Why the program decided what it did; amesh_reasons[reason] counts packets per CPU.
 * PASS_* let the packet through untouched, ASSIGN_ and REDIRECT_* assign a socket and set the
 * capture mark, DROP_* drop it (fail closed). With fail_open set a would-be drop passes instead:
 * both its DROP_* counter and PASS_FAIL_OPEN are incremented. Values are explicit and stable.
 */
enum amesh_reason {
	AMESH_REASON_NONE                       = 0,
	AMESH_REASON_PASS_NOT_IP                = 1,
	AMESH_REASON_PASS_NOT_TCP               = 2,
	AMESH_REASON_PASS_MALFORMED             = 3,
	AMESH_REASON_ASSIGN_ESTABLISHED         = 4,
	AMESH_REASON_PASS_NOT_SYN               = 5,
	AMESH_REASON_PASS_EXEMPT                = 6,
	AMESH_REASON_PASS_NOT_ENROLLED          = 7,
	AMESH_REASON_REDIRECT_OUTBOUND          = 8,
	AMESH_REASON_REDIRECT_INBOUND_PLAINTEXT = 9,
	AMESH_REASON_REDIRECT_INBOUND_HBONE     = 10,
	AMESH_REASON_DROP_NO_LISTENER           = 11,
	AMESH_REASON_DROP_LISTENER_MARK         = 12,
	AMESH_REASON_DROP_ASSIGN_FAILED         = 13,
	AMESH_REASON_PASS_FAIL_OPEN             = 14,
	AMESH_REASON_MAX                        = 15,
};

#endif /* AMESH_CAPTURE_H */

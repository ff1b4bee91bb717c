/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BTF-defined maps of the capture program, pinned by name under the loader's pin root
 * (/sys/fs/bpf/amesh/<version>/) so enrolment survives an agent restart. The identifiers are
 * the map names userspace sees; they must equal the AMESH_MAP_*_NAME strings of capture.h
 * (test/unit/bpf-contract.test.ts checks it).
 *
 * Every program source includes this header, and scripts/build-bpf.sh links their objects into
 * one: the definitions are weak so that libbpf's static linker merges the identical copies into
 * one map each instead of refusing them as conflicting.
 */
#ifndef AMESH_MAPS_H
#define AMESH_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "capture.h"

/* Enrolled pod addresses (IPv4-mapped for IPv4). Written by the agent, read per SYN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AMESH_PODS_MAX_ENTRIES);
	__type(key, struct amesh_pod_key);
	__type(value, struct amesh_pod_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} amesh_pods SEC(".maps") __weak;

/* Destinations never captured: node addresses, link-local, operator extras. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, AMESH_EXEMPT_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct amesh_lpm_key);
	__type(value, struct amesh_exempt_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} amesh_exempt SEC(".maps") __weak;

/* Per-CPU decision counters indexed by enum amesh_reason; per-CPU so counting needs no atomics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AMESH_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} amesh_reasons SEC(".maps") __weak;

/*
 * Flows set up through a socket of this node (a SYN given to a listener, a SYN-ACK to a
 * connecting socket), so a late segment of one whose socket is already gone is delivered to
 * the local stack, which resets it, instead of being forwarded in plaintext. LRU: flows that
 * sent nothing for longest make room (data and FINs refresh an entry); a late segment comes
 * within milliseconds of the reset, from a flow that was sending. 32 768 entries: ~3.7 MB.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AMESH_FLOWS_MAX_ENTRIES);
	__type(key, struct amesh_flow_key);
	__type(value, struct amesh_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} amesh_flows SEC(".maps") __weak;

/*
 * The agent's listening sockets (three kinds, IPv4 and IPv6), for the sk_lookup program (the
 * TIME_WAIT hand-over). Not pinned: the agent fills it after each load, and a socket leaves the
 * map when it is closed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, AMESH_LISTENERS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} amesh_listeners SEC(".maps") __weak;

#endif /* AMESH_MAPS_H */

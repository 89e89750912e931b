// SPDX-License-Identifier: MIT OR Apache-2.0
// The structs uvs's kernel programs keep in their maps, shared by the
// program (uvs.bpf.c) and the layout probe (layout.c), so that build.rs
// checks the Rust mirrors (maps.rs) against these very definitions.
#ifndef UVS_MAPS_H
#define UVS_MAPS_H

#include <linux/types.h>

// The key of nat_servers: a NAT real server's address, port and protocol,
// the source of its replies (network order).
struct rs_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

// The key of nat_servers6: an IPv6 NAT real server's address, port and
// protocol (network order), as rs_key.
struct rs6_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad;
};

// The key of flows: an offloaded flow's client-side 5-tuple (network
// order) ...
struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

// The key of flows6: an offloaded IPv6 flow's client-side 5-tuple
// (network order), as flow_key with 16-byte addresses; its value is the
// same struct flow.
struct flow6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

// ... and the value of both: the MACs of its next hop (the real server's, and
// ours on the same link), for TUN the outer header's addresses, what the
// program forwarded (folded into uvs's counters when uvs takes the flow
// back), and when a frame last went up to uvs.
struct flow {
	__u8 dmac[6];
	__u8 smac[6];
	// FLOW_SYN: the program scheduled this TCP flow at its SYN and tells
	// uvs when the client's first ACK passes (its state, established).
	__u8 state;
	__u8 pad[3];
	// TUN (IPv4-in-IPv4, network order): the director's tunnel source and
	// the real server; tun_daddr 0: DR, no outer header.
	__u32 tun_saddr;
	__u32 tun_daddr;
	__u64 packets;
	__u64 bytes;
	__u64 up_ns;
	// A frame goes up to uvs this often (a share of the flow's timeout),
	// so uvs's timer for it runs on without uvs asking the map.
	__u64 every_ns;
	// uvs's id of the flow's real server: where real_counts counts its
	// frames, and what EVENT_SEEN names.
	__u64 id;
};

// The value of real_counts (per CPU, by uvs's id of a real server): what
// the program forwarded to it, which uvs adds to its counters as it goes.
struct real_count {
	__u64 packets;
	__u64 bytes;
};

// flow.state: nothing to report; the program scheduled this TCP flow at
// its SYN and reports the first ACK (FLOW_SYN); the program scheduled
// this UDP flow and reports its second datagram (FLOW_ONE: until then
// uvs may evict it as a one-packet entry without asking the map).
#define FLOW_QUIET 0
#define FLOW_SYN 1
#define FLOW_ONE 2
// The client's FIN was reported: the program forwards the rest of the
// flow's frames (IPVS's FIN_WAIT), and a SYN that reuses its tuple is a
// new flow. FLOW_CLOSED: the same after an RST (IPVS's CLOSE), nothing
// more reported.
#define FLOW_CLOSING 3
#define FLOW_CLOSED 4

// The key of services: a virtual service whose new flows the programs
// schedule themselves (network order; an IPv4 address in the first four
// bytes, the rest zero).
struct svc_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	// 4 or 6.
	__u8 family;
};

// How a service's slot is found (svc.kind).
#define SCHED_SH 1
#define SCHED_MH 2
#define SCHED_SEQ 3

// The value of services: where its slots are in `slots` and how a new
// flow picks one. SCHED_SH: hash_32 of the client's folded address (plus
// its port with sh-port), ip_vs_sh's bucket; SCHED_MH: ip_vs_mh's slot of
// the client (uvs's mix); SCHED_SEQ: the next of a position shared by all CPUs in
// a sequence that uvs precomputed from the weights (rr, wrr, and the
// schedulers whose choice is one server: fo, dh).
struct svc {
	// The service's position in `seq_pos`.
	__u32 index;
	__u32 first;
	__u32 count;
	__u8 kind;
	// sh-port / mh-port: the client's port is hashed too.
	__u8 port;
	__u8 pad[2];
	// A new flow's frame goes up to uvs this often (flow.every_ns) ...
	__u64 every_ns;
	// ... and once the client's first ACK established a TCP one, this
	// often (the program sets it: a rewrite of the flow by uvs would
	// lose what the program counts meanwhile).
	__u64 est_every_ns;
};

// A value of `slots`: no real server the program can send to (the frame
// goes up to uvs, which decides).
#define NO_REAL 0xffffffff

// The most data-plane workers the programs report to (io/fanout's
// MAX_WORKERS).
#define MAX_WORKERS 64

// The value of reals (by the index a slot holds): a DR or TUN real server
// on this link (for TUN, the next hop's MAC), its MAC and ours, the outer
// header's addresses as in struct flow (0: DR), and uvs's id for it.
struct real {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 pad;
	__u32 tun_saddr;
	__u32 tun_daddr;
	__u64 id;
};

// flow_event.what.
#define EVENT_NEW 1
#define EVENT_ESTABLISHED 2
#define EVENT_SEEN 3
#define EVENT_CLOSE 4

// What the programs tell uvs through the ring buffer `events`: a flow
// they scheduled (EVENT_NEW, with the client's MAC, the first frame's TCP
// flags and size and the real server's id), a TCP flow of theirs that the
// client's first ACK established, or a UDP flow of theirs that sent a
// second datagram (EVENT_SEEN, with the real server's id again: uvs
// enters the flow anew if it had evicted it meanwhile), or a TCP flow of
// theirs whose client sent its FIN or an RST (EVENT_CLOSE, with that
// frame's flags).
// Addresses as in svc_key.
struct flow_event {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 what;
	__u8 tcp_flags;
	__u8 cmac[6];
	// EVENT_NEW: the first frame, forwarded by the program and counted by
	// uvs from here (the flow's own counts start after it): frames on the
	// wire (a super-frame is several) and IP bytes.
	__u16 segs;
	__u64 id;
	__u32 bytes;
	__u32 pad;
};

#endif

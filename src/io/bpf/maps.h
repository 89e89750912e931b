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
// ours on the same link), what the program forwarded (folded into uvs's
// counters when uvs takes the flow back), and when a frame last went up
// to uvs.
struct flow {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 pad;
	__u64 packets;
	__u64 bytes;
	__u64 up_ns;
	// A frame goes up to uvs this often (a share of the flow's timeout),
	// so uvs's timer for it runs on without uvs asking the map.
	__u64 every_ns;
};

#endif

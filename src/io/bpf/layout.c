// SPDX-License-Identifier: MIT OR Apache-2.0
// The size of every struct in maps.h and the offset and size of each of
// its fields, as the BPF target lays them out: build.rs compiles this to
// assembly, reads the constants back and hands them to maps.rs, whose Rust
// mirrors must match them or the build fails. A field added to maps.h
// belongs here too (and in maps.rs, or the build fails).
#include <stddef.h>
#include "maps.h"

#define SIZE(s) const unsigned long long uvs_layout__##s = sizeof(struct s);
// A field: its offset, then its size.
#define FIELD(s, f)                                          \
	const unsigned long long uvs_layout__##s##__##f[2] = { \
		offsetof(struct s, f), sizeof(((struct s *)0)->f) \
	};

SIZE(rs_key)
FIELD(rs_key, addr)
FIELD(rs_key, port)
FIELD(rs_key, proto)
FIELD(rs_key, pad)

SIZE(rs6_key)
FIELD(rs6_key, addr)
FIELD(rs6_key, port)
FIELD(rs6_key, proto)
FIELD(rs6_key, pad)

SIZE(flow_key)
FIELD(flow_key, saddr)
FIELD(flow_key, daddr)
FIELD(flow_key, sport)
FIELD(flow_key, dport)
FIELD(flow_key, proto)
FIELD(flow_key, pad)

SIZE(flow6_key)
FIELD(flow6_key, saddr)
FIELD(flow6_key, daddr)
FIELD(flow6_key, sport)
FIELD(flow6_key, dport)
FIELD(flow6_key, proto)
FIELD(flow6_key, pad)

SIZE(flow)
FIELD(flow, dmac)
FIELD(flow, smac)
FIELD(flow, state)
FIELD(flow, pad)
FIELD(flow, tun_saddr)
FIELD(flow, tun_daddr)
FIELD(flow, packets)
FIELD(flow, bytes)
FIELD(flow, up_ns)
FIELD(flow, every_ns)
FIELD(flow, id)

SIZE(real_count)
FIELD(real_count, packets)
FIELD(real_count, bytes)

SIZE(svc_key)
FIELD(svc_key, addr)
FIELD(svc_key, port)
FIELD(svc_key, proto)
FIELD(svc_key, family)

SIZE(svc)
FIELD(svc, index)
FIELD(svc, first)
FIELD(svc, count)
FIELD(svc, kind)
FIELD(svc, port)
FIELD(svc, pad)
FIELD(svc, every_ns)
FIELD(svc, est_every_ns)

SIZE(real)
FIELD(real, dmac)
FIELD(real, smac)
FIELD(real, pad)
FIELD(real, tun_saddr)
FIELD(real, tun_daddr)
FIELD(real, id)

SIZE(flow_event)
FIELD(flow_event, saddr)
FIELD(flow_event, daddr)
FIELD(flow_event, sport)
FIELD(flow_event, dport)
FIELD(flow_event, proto)
FIELD(flow_event, family)
FIELD(flow_event, what)
FIELD(flow_event, tcp_flags)
FIELD(flow_event, cmac)
FIELD(flow_event, segs)
FIELD(flow_event, id)
FIELD(flow_event, bytes)
FIELD(flow_event, pad)

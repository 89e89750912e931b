// SPDX-License-Identifier: MIT OR Apache-2.0
// New flows scheduled by uvs's kernel programs themselves (io/bpf/
// sched.rs writes the tables): the maps of the services they schedule,
// their slots and real servers, the shared rr/wrr positions, the ring
// that tells uvs of each flow, and the functions that pick a flow's real
// server and report it. Included once, by uvs.bpf.c, after fast_is.
#ifndef UVS_SCHED_H
#define UVS_SCHED_H

// The services whose new flows the programs schedule (maps.h: svc_key,
// svc), their slots (a `reals` index each, or NO_REAL) and the DR and TUN
// real servers on this link. uvs writes a new table's slots and reals into the
// half of each array the current services do not use, then points the
// services at them, so a frame never reads a half-written table.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct svc_key);
	__type(value, struct svc);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 65536);
	__type(key, __u32);
	__type(value, __u32);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 8192);
	__type(key, __u32);
	__type(value, struct real);
} reals SEC(".maps");

// uvs's ids of the real servers in `reals` (either half): a flow the
// program scheduled to one that has left the table since goes up to uvs
// at its next frame (real_left), as its entry in uvs may be gone already
// (an evicted one-packet flow: adopt.rs).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 8192);
	__type(key, __u64);
	__type(value, __u32);
} real_ids SEC(".maps");

// Each service's position in its sequence (SCHED_SEQ), one for all CPUs
// (an atomic add, as IPVS's rr and wrr hold one position under a lock):
// the order is uvs's own, the proportions the weights'.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} seq_pos SEC(".maps");

// What the programs tell uvs (maps.h: flow_event): the flows they
// scheduled and those the client's ACK established. A flow is scheduled
// only once its event is reserved, so uvs learns of every one; a full
// ring sends the frame up to uvs instead.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 21);
} events SEC(".maps");

// With several workers (`--workers`, fast[2] of them): worker w's ring
// at [w] (1 and up; worker 0 reads `events`), so that each flow's reports
// reach the worker whose fanout socket gets its frames (worker_of).
struct event_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 21);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_WORKERS);
	__type(key, __u32);
	__array(values, struct event_ring);
} worker_events SEC(".maps");

// [w]: 1 while worker w's connection table has room for the flows the
// programs schedule for it; written by that worker.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u32);
} room SEC(".maps");

// The worker (of fast[2], 0 or 1 meaning one) that holds the flows of
// the client of report template `t`, whose address is `caddr` (folded,
// host order): uvs's fanout hash of address and port (io/fanout:
// worker_of), so reports and frames meet at one worker. Asked only of a
// frame that may report (not of every frame of a flow).
static __always_inline __u32 worker_of(__u32 caddr, struct flow_event *t)
{
	__u32 i = 2, *n = bpf_map_lookup_elem(&fast, &i);

	if (!n || *n <= 1 || *n > MAX_WORKERS)
		return 0;
	return ((caddr ^ bpf_ntohs(t->sport)) * 0x9E3779B1u >> 16) % *n;
}

// [w]: when worker w was last woken for a report (bpf_ktime_get_ns).
// A report wakes its worker only if none did in the last WAKE_EVERY_NS;
// one within that time waits for the worker's next read, which uvs
// makes at most that long after it last found a report (dataplane/
// adopt.rs: the drain deadline). A wake-up per report cost uvs a context
// switch on the director's CPU per new flow, establishment and close (a
// web front end's short connections: 0.52x of direct, 0.65x without,
// the kernel's forwarding 0.63x: docs/performance.md).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u64);
} woke SEC(".maps");

#define WAKE_EVERY_NS 1000000

// Submits report `ev` to worker `w`'s ring, waking the worker only if
// no report did in the last WAKE_EVERY_NS.
static __always_inline void submit(struct flow_event *ev, __u32 w)
{
	__u64 now = bpf_ktime_get_ns(), *last = bpf_map_lookup_elem(&woke, &w);

	if (last && now - *last < WAKE_EVERY_NS) {
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
		return;
	}
	if (last)
		*last = now;
	bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
}

// Per CPU: [0] flows scheduled, [1] new flows sent up because the ring
// was full, [2] establishments and second datagrams not reported yet for
// the same reason.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} sched_counts SEC(".maps");

// Adds one to per-CPU counter `i` of sched_counts.
static __always_inline void count_sched(__u32 i)
{
	__u64 *n = bpf_map_lookup_elem(&sched_counts, &i);

	if (n)
		*n += 1;
}

// A report of `what` on the frame `tmpl` describes, from the client whose
// MAC is `eth`'s source, naming real server `id`: reserved in worker
// `w`'s ring (worker_of) for the caller to submit (or discard), or 0 when
// the ring is full (counted in sched_counts[`full`]).
static __always_inline struct flow_event *report(struct flow_event *tmpl, struct ethhdr *eth,
						  __u8 what, __u64 id, __u32 full, __u32 w)
{
	struct flow_event *ev;
	void *ring = &events;

	// A worker without its ring yet: as if full (the frame goes up).
	if (w)
		ring = bpf_map_lookup_elem(&worker_events, &w);
	ev = ring ? bpf_ringbuf_reserve(ring, sizeof(*ev), 0) : 0;
	if (!ev) {
		count_sched(full);
		return 0;
	}
	__builtin_memcpy(ev, tmpl, sizeof(*ev));
	ev->what = what;
	ev->id = id;
	__builtin_memcpy(ev->cmac, eth->h_source, ETH_ALEN);
	return ev;
}

// A flow the program scheduled at its SYN (of service `sk`), whose client
// now sent an ACK: uvs is told (its entry becomes established), and the
// flow's frames go up at the established state's interval, set before
// uvs can read the report (uvs then finds the entry as it would write
// it, and leaves it). A full ring tells uvs at a later ACK.
static __always_inline void report_established(struct flow *f, struct flow_event *tmpl,
					       struct ethhdr *eth, struct svc_key *sk, __u32 w)
{
	struct flow_event *ev = report(tmpl, eth, EVENT_ESTABLISHED, f->id, 2, w);
	struct svc *s;

	if (!ev)
		return;
	f->state = FLOW_QUIET;
	s = bpf_map_lookup_elem(&services, sk);
	if (s)
		f->every_ns = s->est_every_ns;
	submit(ev, w);
}

// The client's FIN or RST (`rst`) on a TCP flow the program carries: uvs
// is told (its entry moves to FIN_WAIT or CLOSE, as the frame would have
// moved it), and the program forwards the frame and the flow's last ones
// itself until uvs's timer takes the flow back. A FIN is reported on an
// established flow (one uvs handed over, or one the program scheduled
// and reported established), an RST on any but a closed one; a FIN again
// is forwarded unreported. 0 when the frame must go up instead (a FIN
// before the establishment was reported, a full ring): uvs takes the
// flow back then.
static __always_inline int report_close(struct flow *f, struct flow_event *tmpl,
					struct ethhdr *eth, int rst, __u32 w)
{
	struct flow_event *ev;

	if (f->state == FLOW_CLOSED || (!rst && f->state == FLOW_CLOSING))
		return 1;
	if (f->state == FLOW_ONE || (!rst && f->state != FLOW_QUIET))
		return 0;
	ev = report(tmpl, eth, EVENT_CLOSE, f->id, 2, w);
	if (!ev)
		return 0;
	f->state = rst ? FLOW_CLOSED : FLOW_CLOSING;
	submit(ev, w);
	return 1;
}

// Whether flow `f` (scheduled by the program) names a real server that
// has left the table: the entry goes and the frame goes up, and uvs
// decides (its own entry for the flow, or a new one).
static __always_inline int real_left(struct flow *f, void *map, void *fkey)
{
	if (bpf_map_lookup_elem(&real_ids, &f->id))
		return 0;
	bpf_map_delete_elem(map, fkey);
	return 1;
}

// A UDP flow the program scheduled sent its second datagram: uvs is told
// (its entry is no longer a one-packet one, which uvs evicts first and
// without taking it back from the map). A full ring tells uvs at a later
// datagram.
static __always_inline void report_seen(struct flow *f, struct flow_event *tmpl,
					struct ethhdr *eth, __u32 w)
{
	struct flow_event *ev = report(tmpl, eth, EVENT_SEEN, f->id, 2, w);

	if (!ev)
		return;
	f->state = FLOW_QUIET;
	submit(ev, w);
}

// Whether two MACs are equal (the BPF target has no memcmp).
static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	int i, d = 0;

#pragma unroll
	for (i = 0; i < ETH_ALEN; i++)
		d |= a[i] ^ b[i];
	return !d;
}

// The kernel's hash_32 as ip_vs_sh's bucket takes it (8 bits).
static __always_inline __u32 sh_bucket(__u32 v)
{
	return (v * 0x61C88647u) >> 24;
}

// uvs's mh slot hash (lvs/sched/mh.rs): splitmix64's finaliser of the
// address and port against the first key, folded to 32 bits.
static __always_inline __u32 mh_hash(__u32 addr, __u16 port)
{
	__u64 z = (((__u64)addr << 32) | ((__u64)port << 16)) ^ 2654435761ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z = z ^ (z >> 31);
	return (__u32)(z ^ (z >> 32));
}

// The slot of service `s` for a new flow from `caddr` (folded to 32 bits
// as IPVS's hashing schedulers fold IPv6, host order) and `cport` (host
// order), or -1.
static __always_inline __s64 slot_of(struct svc *s, __u32 caddr, __u16 cport)
{
	__u16 port = s->port ? cport : 0;
	__u64 *pos;

	if (!s->count)
		return -1;
	switch (s->kind) {
	case SCHED_SH:
		return sh_bucket(caddr + port) % s->count;
	case SCHED_MH:
		return mh_hash(caddr, port) % s->count;
	case SCHED_SEQ:
		pos = bpf_map_lookup_elem(&seq_pos, &s->index);
		if (!pos)
			return -1;
		return __sync_fetch_and_add(pos, 1) % s->count;
	}
	return -1;
}

// Schedules a new flow (key `fkey` in `map`) of service `sk` from client
// `caddr`:`cport` (folded address, host order), as uvs would: its real
// server from the service's slots, the flow entered with that server's
// MACs and uvs told through `events` (`tmpl` holds the frame's addresses,
// ports and size already: uvs counts this first frame, the flow's own
// counts start at the next). 0 when the frame must go up to uvs: no such
// service (or one uvs keeps: persistence, lc...), no real server the
// program can send to, a frame not addressed to this link's MAC, uvs's
// table without room, a full ring, a TUN server unless `tun` (the tc
// program, an IPv4 frame it can wrap: uvs.bpf.c's wrappable, so the
// first frame of a flow it schedules always leaves by the program).
static __always_inline struct flow *schedule(struct svc_key *sk, __u32 caddr, __u16 cport,
					     void *map, void *fkey, struct ethhdr *eth,
					     struct flow_event *tmpl, int tun)
{
	__u32 w = worker_of(caddr, tmpl), *ri, *ok, idx;
	struct flow_event *ev;
	struct real *r;
	struct svc *s;
	__s64 slot;

	s = bpf_map_lookup_elem(&services, sk);
	if (!s || !fast_is(1))
		return 0;
	ok = bpf_map_lookup_elem(&room, &w);
	if (!ok || !*ok)
		return 0;
	slot = slot_of(s, caddr, cport);
	if (slot < 0)
		return 0;
	idx = s->first + (__u32)slot;
	ri = bpf_map_lookup_elem(&slots, &idx);
	if (!ri || *ri == NO_REAL)
		return 0;
	r = bpf_map_lookup_elem(&reals, ri);
	if (!r || !mac_eq(eth->h_dest, r->smac) || (r->tun_daddr && !tun))
		return 0;
	ev = report(tmpl, eth, EVENT_NEW, r->id, 1, w);
	if (!ev)
		return 0;
	{
		struct flow nf = {
			.state = tmpl->proto == IPPROTO_UDP ? FLOW_ONE
				 : tmpl->tcp_flags & TCP_SYN ? FLOW_SYN : FLOW_QUIET,
			.id = r->id,
			.up_ns = bpf_ktime_get_coarse_ns(),
			.every_ns = s->every_ns,
			.tun_saddr = r->tun_saddr,
			.tun_daddr = r->tun_daddr,
		};
		__builtin_memcpy(nf.dmac, r->dmac, ETH_ALEN);
		__builtin_memcpy(nf.smac, r->smac, ETH_ALEN);
		if (bpf_map_update_elem(map, fkey, &nf, BPF_NOEXIST)) {
			bpf_ringbuf_discard(ev, 0);
			return 0;
		}
	}
	submit(ev, w);
	count_sched(0);
	return bpf_map_lookup_elem(map, fkey);
}

#endif

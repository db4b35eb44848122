// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// skiff's security-group data plane: two TC classifiers on every VM tap.
//
//   skiff_from_vm  tc ingress of the tap = what the VM sends (OUTBOUND rules)
//   skiff_to_vm    tc egress of the tap  = what the VM receives (INBOUND rules)
//
// The control plane (src/network/firewall) compiles the security groups of a NIC
// into hash maps searched by prefix length ("tuple space search"), so a packet costs
// the same for 1 or 10,000 rules; only the number of distinct prefix lengths in use
// (at most 33 + 17 for IPv4, 129 + 17 for IPv6) bounds the lookups:
//
//   skf_remote  {slot, dir, family, len, remote address/len} -> class
//               (a class = the rules whose remote prefix covers that prefix; the
//               longest present length is tried first)
//   skf_ports   {slot, class, protocol, len, port/len}       -> rule id
//               (port ranges split into aligned blocks; protocol 255 = ALL)
//   skf_masks   slot -> which lengths are present
//
// A NIC's rules live in one of two slots (nic*2 + gen); the control plane writes the
// other slot and then flips `gen` in skf_nics, so a change applies atomically.
// Connections are tracked in skf_ct (LRU); an entry admitted under an older rule
// version is checked again against the current rules on its next packet.
// The semantics are specified in docs/security-groups.md and mirrored, line by
// line, by the Rust evaluator in src/network/firewall/eval.rs (the test oracle).
// Every layout here has a #[repr(C)] twin in src/network/firewall/maps.rs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define F_FILTERED 1
#define F_EGRESS_RESTRICTED 2

#define DIR_IN 0
#define DIR_OUT 1

#define PROTO_ANY 255

#define T_TCP 0
#define T_UDP 1
#define T_ICMP 2
#define T_OTHER 3

struct nic_cfg {
	__u32 nic;
	__u32 gen;
	__u32 version;
	__u32 flags;
	__u8 mac[6];
	__u8 pad[2];
};

struct addr_key {
	__u32 ifindex;
	__u32 family;
	__u8 addr[16];
};

struct remote_key {
	__u32 slot;
	__u8 dir;
	__u8 family;
	__u8 len;
	__u8 pad;
	__u8 addr[16]; /* masked to len */
};

struct port_key {
	__u32 slot;
	__u32 cls;
	__u8 proto;
	__u8 len;
	__be16 port; /* masked to len */
};

/* The prefix lengths a slot uses, longest first, so a search tries only those. */
struct masks {
	__u8 v4_n[2];       /* [dir] */
	__u8 v6_n[2];
	__u8 ports_n;
	__u8 pad[3];
	__u8 v4[2][33];     /* [dir][k]: the k-th longest length in use */
	__u8 v6[2][129];
	__u8 ports[17];
	__u8 pad2[5];
};

struct ct_key {
	__u32 nic;
	__u8 family;
	__u8 proto;
	__u16 vm_port;
	__u16 remote_port;
	__u16 pad;
	__u8 vm_addr[16];
	__u8 remote_addr[16];
};

struct ct_val {
	__u64 seen;
	__u64 rule;
	__u32 version;
	__u8 origin;
	__u8 pad;
	__u16 lport;
};

struct stat {
	__u64 packets;
	__u64 bytes;
};

struct settings {
	__u64 timeout_ns[4]; /* T_TCP, T_UDP, T_ICMP, T_OTHER */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct nic_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_nics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct addr_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct remote_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_remote SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct port_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct masks);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_masks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct stat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_settings SEC(".maps");

/* A parsed packet. Ports are in host order; for ICMP echo, sport = dport = id. */
struct pkt {
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 frag;   /* a non-first fragment: no L4 header */
	__u8 l4;     /* the L4 header was parsed */
	__u8 icmp_type;
	__u8 tcp_syn; /* SYN without ACK */
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u8 src[16];
	__u8 dst[16];
	__u8 nd_target[16]; /* neighbour advertisements */
	__u8 has_target;
	__u16 l4_off; /* where the L4 header starts (ICMP errors: the embedded packet + 8) */
};

static __always_inline int is_icmp(const struct pkt *p)
{
	return (p->family == 4 && p->proto == IPPROTO_ICMP) ||
	       (p->family == 6 && p->proto == IPPROTO_ICMPV6);
}

static __always_inline int icmp_echo(const struct pkt *p, int request)
{
	if (p->family == 4)
		return p->icmp_type == (request ? 8 : 0);
	return p->icmp_type == (request ? 128 : 129);
}

/* Parses the L4 header at `off`. Returns -1 when it is truncated. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	if (p->frag)
		return 0;
	p->l4_off = off;
	if (p->proto == IPPROTO_TCP) {
		__u8 h[14];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return -1;
		p->sport = (h[0] << 8) | h[1];
		p->dport = (h[2] << 8) | h[3];
		p->tcp_syn = (h[13] & 0x12) == 0x02;
		p->l4 = 1;
	} else if (p->proto == IPPROTO_UDP) {
		__u8 h[4];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return -1;
		p->sport = (h[0] << 8) | h[1];
		p->dport = (h[2] << 8) | h[3];
		p->l4 = 1;
	} else if (is_icmp(p)) {
		__u8 h[8];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return -1;
		p->icmp_type = h[0];
		if (icmp_echo(p, 1) || icmp_echo(p, 0)) {
			p->sport = (h[4] << 8) | h[5];
			p->dport = p->sport;
		}
		if (p->family == 6 && p->icmp_type == 136) {
			if (bpf_skb_load_bytes(skb, off + 8, p->nd_target, 16))
				return -1;
			p->has_target = 1;
		}
		p->l4 = 1;
	}
	return 0;
}

/* The common case without copies: an IPv4 header without options or an IPv6 header
 * without extension headers, followed by a whole TCP or UDP header, in the linear part
 * of the skb. Returns 1 when it does not apply (then parse_ip decides), else 0. The
 * result is the same as parse_ip's. */
static __always_inline int parse_fast(struct __sk_buff *skb, __u16 eth_proto, struct pkt *p)
{
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *end = (__u8 *)(long)skb->data_end;
	__u8 *h = data + ETH_HLEN;
	__u8 *l4;
	if (eth_proto == ETH_P_IP) {
		if (h + 20 > end || h[0] != 0x45 || ((h[6] & 0x1f) | h[7]))
			return 1;
		p->family = 4;
		p->proto = h[9];
		__builtin_memcpy(p->src, &h[12], 4);
		__builtin_memcpy(p->dst, &h[16], 4);
		l4 = h + 20;
	} else {
		if (h + 40 > end || (h[0] >> 4) != 6)
			return 1;
		p->family = 6;
		p->proto = h[6];
		__builtin_memcpy(p->src, &h[8], 16);
		__builtin_memcpy(p->dst, &h[24], 16);
		l4 = h + 40;
	}
	if (p->proto == IPPROTO_TCP) {
		if (l4 + 14 > end)
			return 1;
		p->tcp_syn = (l4[13] & 0x12) == 0x02;
	} else if (p->proto == IPPROTO_UDP) {
		if (l4 + 4 > end)
			return 1;
	} else {
		return 1;
	}
	p->sport = (l4[0] << 8) | l4[1];
	p->dport = (l4[2] << 8) | l4[3];
	p->l4 = 1;
	return 0;
}

/* Parses IPv4 or IPv6 after the Ethernet header. Returns -1 when malformed. */
static __always_inline int parse_ip(struct __sk_buff *skb, __u16 eth_proto, struct pkt *p)
{
	if (!parse_fast(skb, eth_proto, p))
		return 0;
	__builtin_memset(p, 0, sizeof(*p));
	__u32 off = ETH_HLEN;
	if (eth_proto == ETH_P_IP) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return -1;
		if ((h[0] >> 4) != 4 || (h[0] & 0xf) < 5)
			return -1;
		p->family = 4;
		p->proto = h[9];
		p->frag = (((h[6] & 0x1f) << 8) | h[7]) != 0;
		__builtin_memcpy(p->src, &h[12], 4);
		__builtin_memcpy(p->dst, &h[16], 4);
		return parse_l4(skb, off + (h[0] & 0xf) * 4, p);
	}
	__u8 h[40];
	if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
		return -1;
	if ((h[0] >> 4) != 6)
		return -1;
	p->family = 6;
	__builtin_memcpy(p->src, &h[8], 16);
	__builtin_memcpy(p->dst, &h[24], 16);
	__u8 next = h[6];
	off += 40;
	/* At most four extension headers; what follows them is taken as the protocol. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (next != 0 && next != 43 && next != 60 && next != 44)
			break;
		__u8 e[4];
		if (bpf_skb_load_bytes(skb, off, e, sizeof(e)))
			return -1;
		if (next == 44) {
			if (((e[2] << 8) | e[3]) >> 3) {
				p->proto = e[0];
				p->frag = 1;
				return 0;
			}
			off += 8;
		} else {
			off += (e[1] + 1) * 8;
		}
		next = e[0];
	}
	p->proto = next;
	return parse_l4(skb, off, p);
}

static __always_inline int addr_known(__u32 ifindex, __u8 family, const __u8 *addr)
{
	struct addr_key k = {};
	k.ifindex = ifindex;
	k.family = family;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&skf_addrs, &k) != 0;
}

static __always_inline int is_zero16(const __u8 *a)
{
	__u64 x, y;
	__builtin_memcpy(&x, a, 8);
	__builtin_memcpy(&y, a + 8, 8);
	return (x | y) == 0;
}

/* ICMPv6 neighbour discovery and MLD: never subject to rules. */
static __always_inline int nd_in(const struct pkt *p)
{
	return p->family == 6 && p->proto == IPPROTO_ICMPV6 && p->l4 &&
	       ((p->icmp_type >= 130 && p->icmp_type <= 137) || p->icmp_type == 143);
}

static __always_inline int nd_out(const struct pkt *p)
{
	return nd_in(p) && p->icmp_type != 134 && p->icmp_type != 137;
}

static __always_inline int lookup_port(const struct pkt *p)
{
	if (p->frag || !p->l4)
		return 0;
	if (is_icmp(p))
		return p->icmp_type;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)
		return p->dport;
	return 0;
}

static __always_inline int timeout_class(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return T_TCP;
	if (proto == IPPROTO_UDP)
		return T_UDP;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return T_ICMP;
	return T_OTHER;
}

/* A search over the prefix lengths in use, longest first, one hash lookup each. The
 * loops run through bpf_loop so that the verifier checks each step once. */
struct search {
	const struct masks *m;
	__u64 hi, lo; /* the remote address (IPv4: in hi) */
	struct remote_key rk;
	__u32 cls;
	__u32 found;
};

/* Looks up the key the step built; 1 (stop) on a hit. */
static __always_inline long remote_hit(struct search *s)
{
	__u32 *cls = bpf_map_lookup_elem(&skf_remote, &s->rk);
	if (!cls)
		return 0;
	s->cls = *cls;
	s->found = 1;
	return 1;
}

static long v4_step(__u32 i, void *ctx)
{
	struct search *s = ctx;
	if (i >= 33)
		return 1;
	__u32 len = s->rk.dir ? s->m->v4[1][i] : s->m->v4[0][i];
	if (len > 32)
		return 1;
	__u32 x = len ? (__u32)s->hi & (0xffffffffu << (32 - len)) : 0;
	s->rk.len = len;
	s->rk.addr[0] = x >> 24;
	s->rk.addr[1] = x >> 16;
	s->rk.addr[2] = x >> 8;
	s->rk.addr[3] = x;
	return remote_hit(s);
}

static long v6_step(__u32 i, void *ctx)
{
	struct search *s = ctx;
	if (i >= 129)
		return 1;
	__u32 len = s->rk.dir ? s->m->v6[1][i] : s->m->v6[0][i];
	if (len > 128)
		return 1;
	__u64 h = len >= 64 ? s->hi : (len ? s->hi & (~0ull << (64 - len)) : 0);
	__u64 l = len >= 128 ? s->lo : (len > 64 ? s->lo & (~0ull << (128 - len)) : 0);
	s->rk.len = len;
	for (int k = 0; k < 8; k++) {
		s->rk.addr[k] = h >> (56 - 8 * k);
		s->rk.addr[8 + k] = l >> (56 - 8 * k);
	}
	return remote_hit(s);
}

struct port_search {
	const struct masks *m;
	struct port_key pk;
	__u32 lport;
	__u64 rule;
	__u32 found;
};

static long port_step(__u32 i, void *ctx)
{
	struct port_search *s = ctx;
	if (i >= 17)
		return 1;
	__u32 len = s->m->ports[i];
	if (len > 16)
		return 1;
	s->pk.len = len;
	s->pk.port = bpf_htons(len ? s->lport & (0xffff << (16 - len)) : 0);
	__u64 *r = bpf_map_lookup_elem(&skf_ports, &s->pk);
	if (!r)
		return 0;
	s->rule = *r;
	s->found = 1;
	return 1;
}

/* The rules' verdict for a new flow: 0 allows (rule id in *rule, 0 for the open egress
 * default), -1 denies. */
static __always_inline int decide(const struct nic_cfg *nic, __u8 dir, __u8 family,
				  const __u8 *remote, __u8 proto, __u16 lport, __u8 frag,
				  __u64 *rule)
{
	if (dir == DIR_OUT && !(nic->flags & F_EGRESS_RESTRICTED)) {
		*rule = 0;
		return 0;
	}
	__u32 slot = nic->nic * 2 + nic->gen;
	struct masks *m = bpf_map_lookup_elem(&skf_masks, &slot);
	if (!m)
		return -1;
	struct search s = {};
	s.m = m;
	s.rk.slot = slot;
	s.rk.dir = dir;
	s.rk.family = family;
	if (family == 4) {
		s.hi = ((__u64)remote[0] << 24) | ((__u64)remote[1] << 16) |
		       ((__u64)remote[2] << 8) | remote[3];
		bpf_loop(dir ? m->v4_n[1] : m->v4_n[0], v4_step, &s, 0);
	} else {
		for (int i = 0; i < 8; i++) {
			s.hi = (s.hi << 8) | remote[i];
			s.lo = (s.lo << 8) | remote[8 + i];
		}
		bpf_loop(dir ? m->v6_n[1] : m->v6_n[0], v6_step, &s, 0);
	}
	if (!s.found)
		return -1;
	struct port_search ps = {};
	ps.m = m;
	ps.pk.slot = slot;
	ps.pk.cls = s.cls;
	if (!frag) {
		ps.pk.proto = proto;
		ps.lport = lport;
		bpf_loop(m->ports_n, port_step, &ps, 0);
		if (ps.found) {
			*rule = ps.rule;
			return 0;
		}
	}
	ps.pk.proto = PROTO_ANY;
	ps.pk.len = 0;
	ps.pk.port = 0;
	__u64 *r = bpf_map_lookup_elem(&skf_ports, &ps.pk);
	if (!r)
		return -1;
	*rule = *r;
	return 0;
}

static __always_inline void count(__u64 rule, __u32 len)
{
	if (!rule)
		return;
	struct stat *s = bpf_map_lookup_elem(&skf_stats, &rule);
	if (s) {
		s->packets += 1;
		s->bytes += len;
	}
}

/* How long a connection of `proto` may be idle. */
static __always_inline __u64 timeout_ns(__u8 proto)
{
	__u32 zero = 0;
	struct settings *s = bpf_map_lookup_elem(&skf_settings, &zero);
	if (!s)
		return 0;
	int t = timeout_class(proto);
	if (t == T_TCP)
		return s->timeout_ns[T_TCP];
	if (t == T_UDP)
		return s->timeout_ns[T_UDP];
	if (t == T_ICMP)
		return s->timeout_ns[T_ICMP];
	return s->timeout_ns[T_OTHER];
}

static __always_inline int icmp_error(const struct pkt *p)
{
	if (p->family == 4)
		return p->icmp_type == 3 || p->icmp_type == 11 || p->icmp_type == 12;
	return p->icmp_type >= 1 && p->icmp_type <= 4;
}

/* An ICMP error about a tracked connection of this NIC (its embedded packet is one of
 * the connection's, sent the other way): returns 1 and the connection's rule. Errors
 * about connections admitted under older rules go to the rules. */
static __always_inline int related(struct __sk_buff *skb, const struct nic_cfg *nic,
				   const struct pkt *p, __u8 dir, __u64 now, __u64 *rule)
{
	__u32 off = p->l4_off + 8;
	__u8 src[16] = {}, dst[16] = {};
	__u8 proto;
	if (p->family == 4) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return 0;
		if ((h[0] >> 4) != 4 || (h[0] & 0xf) < 5 || ((h[6] & 0x1f) | h[7]))
			return 0;
		proto = h[9];
		__builtin_memcpy(src, &h[12], 4);
		__builtin_memcpy(dst, &h[16], 4);
		off += (h[0] & 0xf) * 4;
	} else {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return 0;
		if ((h[0] >> 4) != 6)
			return 0;
		proto = h[6];
		__builtin_memcpy(src, &h[8], 16);
		__builtin_memcpy(dst, &h[24], 16);
		off += 40;
	}
	struct ct_key k = {};
	k.nic = nic->nic;
	k.family = p->family;
	k.proto = proto;
	__u8 l[8];
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, l, 4))
			return 0;
		__u16 sp = (l[0] << 8) | l[1], dp = (l[2] << 8) | l[3];
		/* Arriving at the VM, the error is about a packet the VM sent. */
		k.vm_port = dir == DIR_IN ? sp : dp;
		k.remote_port = dir == DIR_IN ? dp : sp;
	} else if (proto == (p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) {
		if (bpf_skb_load_bytes(skb, off, l, 8))
			return 0;
		if (l[0] != (p->family == 4 ? 8 : 128))
			return 0;
		k.vm_port = (l[4] << 8) | l[5];
	}
	__builtin_memcpy(k.vm_addr, dir == DIR_IN ? src : dst, 16);
	__builtin_memcpy(k.remote_addr, dir == DIR_IN ? dst : src, 16);
	struct ct_val *v = bpf_map_lookup_elem(&skf_ct, &k);
	if (!v || v->version != nic->version || now - v->seen > timeout_ns(proto))
		return 0;
	*rule = v->rule;
	return 1;
}

/* Rules and connection tracking for an IP packet of a filtered NIC. */
static __always_inline int filter(struct __sk_buff *skb, const struct nic_cfg *nic,
				  const struct pkt *p, __u8 dir)
{
	const __u8 *vm = dir == DIR_OUT ? p->src : p->dst;
	const __u8 *remote = dir == DIR_OUT ? p->dst : p->src;
	__u16 lport = lookup_port(p);
	int echo = is_icmp(p) && (icmp_echo(p, 1) || icmp_echo(p, 0));
	int tracked = !p->frag && (!is_icmp(p) || echo);
	__u64 rule = 0;
	__u64 now = bpf_ktime_get_coarse_ns(); /* timeouts are in seconds */

	if (is_icmp(p) && p->l4 && icmp_error(p) && related(skb, nic, p, dir, now, &rule)) {
		count(rule, skb->len);
		return TC_ACT_OK;
	}

	struct ct_key k = {};
	if (tracked) {
		k.nic = nic->nic;
		k.family = p->family;
		k.proto = p->proto;
		if (echo) {
			k.vm_port = p->sport;
		} else if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
			k.vm_port = dir == DIR_OUT ? p->sport : p->dport;
			k.remote_port = dir == DIR_OUT ? p->dport : p->sport;
		}
		__builtin_memcpy(k.vm_addr, vm, 16);
		__builtin_memcpy(k.remote_addr, remote, 16);
		struct ct_val *v = bpf_map_lookup_elem(&skf_ct, &k);
		/* An echo request sent the other way, or a reply the same way, with the same
		 * id is not part of this flow: the rules decide it. */
		if (v && echo && (icmp_echo(p, 1) ? v->origin != dir : v->origin == dir))
			v = 0;
		if (v) {
			int alive = now - v->seen <= timeout_ns(p->proto);
			if (alive && v->version != nic->version) {
				if (decide(nic, v->origin, p->family, remote, p->proto, v->lport, 0,
					   &rule) == 0) {
					v->rule = rule;
					v->version = nic->version;
				} else {
					alive = 0;
				}
			}
			if (alive) {
				v->seen = now;
				count(v->rule, skb->len);
				return TC_ACT_OK;
			}
			bpf_map_delete_elem(&skf_ct, &k);
		}
	}

	if (decide(nic, dir, p->family, remote, p->proto, lport, p->frag, &rule))
		return TC_ACT_SHOT;
	int opens = tracked && (p->proto != IPPROTO_TCP || p->tcp_syn) &&
		    (!echo || icmp_echo(p, 1));
	if (opens) {
		struct ct_val v = {};
		v.seen = now;
		v.rule = rule;
		v.version = nic->version;
		v.origin = dir;
		v.lport = lport;
		bpf_map_update_elem(&skf_ct, &k, &v, BPF_ANY);
	}
	count(rule, skb->len);
	return TC_ACT_OK;
}

/* The Ethernet type; copies the destination and source MACs (8-byte buffers). */
static __always_inline int eth_proto(struct __sk_buff *skb, __u8 *dst_mac, __u8 *src_mac)
{
	__u8 *data = (__u8 *)(long)skb->data;
	if (data + ETH_HLEN <= (__u8 *)(long)skb->data_end) {
		__builtin_memcpy(dst_mac, &data[0], 6);
		__builtin_memcpy(src_mac, &data[6], 6);
		return (data[12] << 8) | data[13];
	}
	__u8 h[ETH_HLEN];
	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
		return -1;
	__builtin_memcpy(dst_mac, &h[0], 6);
	__builtin_memcpy(src_mac, &h[6], 6);
	return (h[12] << 8) | h[13];
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

/* 802.1Q / 802.1ad: a VM neither sends nor receives tagged frames. The kernel may have
 * moved the tag into the skb's metadata before TC runs, so both places are checked. */
static __always_inline int tagged(struct __sk_buff *skb, int proto)
{
	return skb->vlan_present || proto == 0x8100 || proto == 0x88a8;
}

/* What a VM may receive: its own MAC, broadcast, and IPv4/IPv6 multicast (ARP,
 * neighbour discovery, DHCP need them); never another VM's unicast flooded by the
 * bridge, nor link-local control multicast (STP, LLDP). */
static __always_inline int dst_mac_ok(const __u8 *d, const __u8 *own)
{
	if (mac_eq(d, own))
		return 1;
	if ((d[0] & d[1] & d[2] & d[3] & d[4] & d[5]) == 0xff)
		return 1;
	if (d[0] == 0x33 && d[1] == 0x33)
		return 1;
	return d[0] == 0x01 && d[1] == 0x00 && d[2] == 0x5e && !(d[3] & 0x80);
}

/* Neighbour discovery a VM sends: its link-layer address options (source or target)
 * must name its own MAC. Options start after the fixed part (RS 8, NS and NA 24
 * bytes); a zero-length option, a malformed address option or more than four options
 * drop the packet. */
static __always_inline int nd_options_ok(struct __sk_buff *skb, const struct pkt *p,
					 const __u8 *own)
{
	if (p->family != 6 || p->proto != IPPROTO_ICMPV6 || !p->l4 || p->frag)
		return 1;
	__u32 off;
	if (p->icmp_type == 133)
		off = p->l4_off + 8;
	else if (p->icmp_type == 135 || p->icmp_type == 136)
		off = p->l4_off + 24;
	else
		return 1;
	__u32 len = skb->len;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u8 o[8];
		if (off + 2 > len)
			return 1;
		if (bpf_skb_load_bytes(skb, off, o, 2))
			return 0;
		if (o[1] == 0)
			return 0;
		if (o[0] == 1 || o[0] == 2) {
			if (o[1] != 1 || off + 8 > len)
				return 0;
			if (bpf_skb_load_bytes(skb, off, o, 8))
				return 0;
			if (!mac_eq(&o[2], own))
				return 0;
		}
		off += (__u32)o[1] * 8;
	}
	return off + 2 > len;
}

SEC("classifier")
int skiff_from_vm(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct nic_cfg *nic = bpf_map_lookup_elem(&skf_nics, &ifindex);
	/* A tap carries these programs only for a NIC skiff filters: without its
	 * policy (not written yet, or removed) nothing passes. Fail closed. */
	if (!nic)
		return TC_ACT_SHOT;
	__u8 dmac[8] = {}, mac[8] = {};
	int proto = eth_proto(skb, dmac, mac);
	if (proto < 0 || tagged(skb, proto) || !mac_eq(mac, nic->mac))
		return TC_ACT_SHOT;

	if (proto == ETH_P_ARP) {
		__u8 a[28];
		if (bpf_skb_load_bytes(skb, ETH_HLEN, a, sizeof(a)))
			return TC_ACT_SHOT;
		if (a[2] != 0x08 || a[3] != 0x00 || a[4] != 6 || a[5] != 4)
			return TC_ACT_SHOT;
		/* Requests and replies only. */
		if (a[6] != 0 || (a[7] != 1 && a[7] != 2))
			return TC_ACT_SHOT;
		if (!mac_eq(&a[8], nic->mac))
			return TC_ACT_SHOT;
		__u8 spa[16] = {};
		__builtin_memcpy(spa, &a[14], 4);
		if (is_zero16(spa) || addr_known(ifindex, 4, spa))
			return TC_ACT_OK;
		return TC_ACT_SHOT;
	}
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return TC_ACT_SHOT;

	struct pkt p = {};
	if (parse_ip(skb, proto, &p))
		return TC_ACT_SHOT;

	/* Anti-spoofing: the NIC's own addresses; DHCP and neighbour discovery before
	 * there is one. A guest never answers as a DHCP server or a router. */
	if (p.family == 4) {
		if (p.proto == IPPROTO_UDP && p.l4 && p.sport == 67)
			return TC_ACT_SHOT;
		if (!addr_known(ifindex, 4, p.src)) {
			if (is_zero16(p.src) && p.proto == IPPROTO_UDP && p.l4 && p.sport == 68 &&
			    p.dport == 67)
				return TC_ACT_OK;
			return TC_ACT_SHOT;
		}
	} else {
		if (p.proto == IPPROTO_UDP && p.l4 && p.sport == 547)
			return TC_ACT_SHOT;
		/* Nor as a router: no router advertisements, no redirects. */
		if (p.proto == IPPROTO_ICMPV6 && p.l4 && (p.icmp_type == 134 || p.icmp_type == 137))
			return TC_ACT_SHOT;
		if (p.has_target && !addr_known(ifindex, 6, p.nd_target))
			return TC_ACT_SHOT;
		if (!nd_options_ok(skb, &p, nic->mac))
			return TC_ACT_SHOT;
		if (!addr_known(ifindex, 6, p.src)) {
			int local = (p.src[0] == 0xfe && (p.src[1] & 0xc0) == 0x80) || is_zero16(p.src);
			if (!local)
				return TC_ACT_SHOT;
			if (nd_out(&p))
				return TC_ACT_OK;
			if (p.proto == IPPROTO_UDP && p.l4 && p.sport == 546 && p.dport == 547)
				return TC_ACT_OK;
			return TC_ACT_SHOT;
		}
		if (nd_out(&p))
			return TC_ACT_OK;
	}
	if (!(nic->flags & F_FILTERED))
		return TC_ACT_OK;
	if (p.family == 4 && p.proto == IPPROTO_UDP && p.l4 && p.sport == 68 && p.dport == 67)
		return TC_ACT_OK;
	if (p.family == 6 && p.proto == IPPROTO_UDP && p.l4 && p.sport == 546 && p.dport == 547)
		return TC_ACT_OK;
	return filter(skb, nic, &p, DIR_OUT);
}

SEC("classifier")
int skiff_to_vm(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct nic_cfg *nic = bpf_map_lookup_elem(&skf_nics, &ifindex);
	/* A tap carries these programs only for a NIC skiff filters: without its
	 * policy (not written yet, or removed) nothing passes. Fail closed. */
	if (!nic)
		return TC_ACT_SHOT;
	__u8 dmac[8] = {}, smac[8] = {};
	int proto = eth_proto(skb, dmac, smac);
	if (proto < 0 || tagged(skb, proto) || !dst_mac_ok(dmac, nic->mac))
		return TC_ACT_SHOT;
	if (!(nic->flags & F_FILTERED))
		return TC_ACT_OK;
	if (proto == ETH_P_ARP)
		return TC_ACT_OK;
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return TC_ACT_SHOT;
	struct pkt p = {};
	if (parse_ip(skb, proto, &p))
		return TC_ACT_SHOT;
	if (p.family == 4 && p.proto == IPPROTO_UDP && p.l4 && p.sport == 67 && p.dport == 68)
		return TC_ACT_OK;
	if (p.family == 6 && p.proto == IPPROTO_UDP && p.l4 && p.sport == 547 && p.dport == 546)
		return TC_ACT_OK;
	if (nd_in(&p))
		return TC_ACT_OK;
	return filter(skb, nic, &p, DIR_IN);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

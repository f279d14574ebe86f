/* katran: a Katran-like layer-4 load balancer (the XDP paper's Sec. 4.5 / Fig. 7 use
 * Facebook's Katran).
 *
 * For a UDP or TCP frame to a virtual IP in `vips` it hashes the 5-tuple, picks a
 * real server from the VIP's slice of the consistent-hashing `ring`, remembers the
 * choice in the LRU `conns` table (later frames of the flow take it from there),
 * counts the frame per VIP, and encapsulates the frame in an outer IPv4 header to the
 * real (IPIP, as Katran does) with bpf_xdp_adjust_head, then sends it back out
 * (XDP_TX).  Frames to no VIP pass.                                                */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RING_SIZE 64
#define MAX_VIPS 16

struct vip_key { __be32 addr; __be16 port; __u8 proto, pad; };
struct vip_meta { __u32 index; __u32 flags; };
struct flow_key { __be32 src, dst; __be16 sport, dport; __u8 proto, pad[3]; };
struct ports { __be16 source, dest; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, MAX_VIPS);
         __type(key, struct vip_key); __type(value, struct vip_meta); } vips SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, MAX_VIPS * RING_SIZE);
         __type(key, __u32); __type(value, __u32); } ring SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 256);
         __type(key, __u32); __type(value, __be32); } reals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 65536);
         __type(key, struct flow_key); __type(value, __u32); } conns SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, MAX_VIPS);
         __type(key, __u32); __type(value, __u64); } stats SEC(".maps");

static __always_inline __u32 rol(__u32 x, int k) { return (x << k) | (x >> (32 - k)); }

/* Bob Jenkins' final mix over the three words of the flow, as Katran's jhash_3words */
static __always_inline __u32 hash3(__u32 a, __u32 b, __u32 c)
{
    a += 0xdeadbeef; b += 0xdeadbeef; c += 0xdeadbeef;
    c ^= b; c -= rol(b, 14);
    a ^= c; a -= rol(c, 11);
    b ^= a; b -= rol(a, 25);
    c ^= b; c -= rol(b, 16);
    a ^= c; a -= rol(c, 4);
    b ^= a; b -= rol(a, 14);
    c ^= b; c -= rol(b, 24);
    return c;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return ~sum;
}

SEC("xdp")
int katran(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ihl != 5)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
        return XDP_PASS;
    struct ports *l4 = (void *)(ip + 1);
    if ((void *)(l4 + 1) > end)
        return XDP_PASS;
    struct vip_key vk = { .addr = ip->daddr, .port = l4->dest, .proto = ip->protocol };
    struct vip_meta *vip = bpf_map_lookup_elem(&vips, &vk);
    if (!vip)
        return XDP_PASS;
    __u32 vindex = vip->index;
    __u32 *stat = bpf_map_lookup_elem(&stats, &vindex);
    if (stat)
        *stat += 1;
    struct flow_key fk = { .src = ip->saddr, .dst = ip->daddr, .sport = l4->source,
                           .dport = l4->dest, .proto = ip->protocol };
    __u32 *cached = bpf_map_lookup_elem(&conns, &fk);
    __u32 real;
    if (cached) {
        real = *cached;
    } else {
        __u32 slot = vindex * RING_SIZE +
            hash3(fk.src, fk.sport | ((__u32)fk.dport << 16), fk.proto) % RING_SIZE;
        __u32 *r = bpf_map_lookup_elem(&ring, &slot);
        if (!r)
            return XDP_DROP;
        real = *r;
        bpf_map_update_elem(&conns, &fk, &real, BPF_ANY);
    }
    __be32 *daddr = bpf_map_lookup_elem(&reals, &real);
    if (!daddr || !*daddr)
        return XDP_DROP;
    __be32 dst = *daddr, src = ip->saddr;
    __u16 inner_len = bpf_ntohs(ip->tot_len);
    if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
        return XDP_DROP;
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    struct ethhdr *neth = data;
    struct iphdr *outer = (void *)(neth + 1);
    if ((void *)(outer + 1) > end)
        return XDP_DROP;
    struct ethhdr *old = (void *)outer + sizeof(struct iphdr);
    if ((void *)(old + 1) > end)
        return XDP_DROP;
    __builtin_memcpy(neth->h_dest, old->h_source, ETH_ALEN);
    __builtin_memcpy(neth->h_source, old->h_dest, ETH_ALEN);
    neth->h_proto = bpf_htons(ETH_P_IP);
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = 0;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = 0;
    outer->ttl = 64;
    outer->protocol = IPPROTO_IPIP;
    outer->check = 0;
    outer->saddr = src;
    outer->daddr = dst;
    __u32 sum = 0;
    __u16 *w = (__u16 *)outer;
#pragma unroll
    for (int i = 0; i < 10; i++)
        sum += w[i];
    outer->check = csum_fold(sum);
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";

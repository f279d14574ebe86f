/* dispatch: an XDP parser in stages joined by tail calls, as large XDP programs are
 * built (each stage verified on its own, stages swapped at run time in the prog array).
 *
 * `dispatch` reads the Ethernet header (through one VLAN tag), keeps the network
 * header's offset in a per-CPU scratch slot and tail calls the stage of its
 * ethertype; the IPv4 stage tail calls the stage of its L4 protocol.  Every stage
 * counts the packets it saw in `seen` (slot = the stage's index in `stages`, 4 for
 * dispatch itself).  UDP from source ports below 4096 and TCP SYNs to port 23 are
 * dropped; a frame with no stage for it passes (a failed tail call goes on after
 * the call).  Run it over the shipped capture:
 *     xsim run examples/nic/dispatch.o --prog dispatch --pcap examples/nic/traffic.pcap */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { STAGE_IPV4, STAGE_IPV6, STAGE_UDP, STAGE_TCP, DISPATCH, STAGES };

int stage_ipv4(struct xdp_md *ctx);
int stage_ipv6(struct xdp_md *ctx);
int stage_udp(struct xdp_md *ctx);
int stage_tcp(struct xdp_md *ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __uint(key_size, 4);
    __array(values, int (struct xdp_md *));
} stages SEC(".maps") = {
    .values = { [STAGE_IPV4] = (void *)&stage_ipv4, [STAGE_IPV6] = (void *)&stage_ipv6,
                [STAGE_UDP] = (void *)&stage_udp, [STAGE_TCP] = (void *)&stage_tcp },
};

/* what one stage leaves the next: the network header's and the L4 header's offsets */
struct scratch { __u32 l3; __u32 l4; };

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, STAGES);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

struct vlan_hdr { __be16 tci; __be16 proto; };

static __always_inline void count(__u32 stage)
{
    __u64 *n = bpf_map_lookup_elem(&seen, &stage);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline struct scratch *state(void)
{
    __u32 k = 0;
    return bpf_map_lookup_elem(&scratch, &k);
}

/* the header of `size` bytes at offset `at` (at most `max`) of the frame, or NULL */
static __always_inline void *header(struct xdp_md *ctx, __u32 at, __u32 max, __u32 size)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

    if (at > max || data + at + size > end)
        return NULL;
    return data + at;
}

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct scratch *s = state();
    __u32 l3 = sizeof(*eth);
    __u16 proto;

    count(DISPATCH);
    if (!s || (void *)(eth + 1) > end)
        return XDP_PASS;
    proto = eth->h_proto;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        struct vlan_hdr *vlan = (void *)(eth + 1);
        if ((void *)(vlan + 1) > end)
            return XDP_PASS;
        proto = vlan->proto;
        l3 += sizeof(*vlan);
    }
    s->l3 = l3;
    if (proto == bpf_htons(ETH_P_IP))
        bpf_tail_call(ctx, &stages, STAGE_IPV4);
    else if (proto == bpf_htons(ETH_P_IPV6))
        bpf_tail_call(ctx, &stages, STAGE_IPV6);
    return XDP_PASS;
}

SEC("xdp")
int stage_ipv4(struct xdp_md *ctx)
{
    struct scratch *s = state();
    struct iphdr *ip;

    count(STAGE_IPV4);
    if (!s || !(ip = header(ctx, s->l3, 64, sizeof(*ip))) || ip->ihl < 5)
        return XDP_PASS;
    s->l4 = s->l3 + ip->ihl * 4;
    if (ip->protocol == IPPROTO_UDP)
        bpf_tail_call(ctx, &stages, STAGE_UDP);
    else if (ip->protocol == IPPROTO_TCP)
        bpf_tail_call(ctx, &stages, STAGE_TCP);
    return XDP_PASS;
}

SEC("xdp")
int stage_ipv6(struct xdp_md *ctx)
{
    struct scratch *s = state();
    struct ipv6hdr *ip6;

    count(STAGE_IPV6);
    if (!s || !(ip6 = header(ctx, s->l3, 64, sizeof(*ip6))))
        return XDP_PASS;
    s->l4 = s->l3 + sizeof(*ip6);
    if (ip6->nexthdr == IPPROTO_UDP)
        bpf_tail_call(ctx, &stages, STAGE_UDP);
    return XDP_PASS;
}

SEC("xdp")
int stage_udp(struct xdp_md *ctx)
{
    struct scratch *s = state();
    struct udphdr *udp;

    count(STAGE_UDP);
    if (!s || !(udp = header(ctx, s->l4, 128, sizeof(*udp))))
        return XDP_PASS;
    return bpf_ntohs(udp->source) < 4096 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int stage_tcp(struct xdp_md *ctx)
{
    struct scratch *s = state();
    struct tcphdr *tcp;

    count(STAGE_TCP);
    if (!s || !(tcp = header(ctx, s->l4, 128, sizeof(*tcp))))
        return XDP_PASS;
    return tcp->syn && !tcp->ack && tcp->dest == bpf_htons(23) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

/* l4_lb: an XDP layer-4 load balancer for one UDP virtual service.
 *
 * Datagrams to 192.168.1.1:53 are sent to a backend picked by a hash of the
 * source address and port: the destination address and port are rewritten,
 * the IPv4 checksum is recomputed with bpf_csum_diff and the UDP checksum
 * (when there is one) patched incrementally, then the frame goes back out
 * (XDP_TX).  `backends` holds the backend addresses and ports; `picks`
 * counts the packets sent to each.                                          */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NBACKENDS 4
struct backend { __be32 addr; __be16 port; __u16 pad; };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, NBACKENDS);
         __type(key, __u32); __type(value, struct backend); } backends SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, NBACKENDS);
         __type(key, __u32); __type(value, __u64); } picks SEC(".maps");

static __always_inline __u16 fold(__u64 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}

SEC("xdp")
int l4_lb(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end)
        return XDP_PASS;
    if (ip->daddr != bpf_htonl(0xc0a80101) || udp->dest != bpf_htons(53))
        return XDP_PASS;
    __u32 key = (bpf_ntohl(ip->saddr) ^ bpf_ntohs(udp->source)) % NBACKENDS;
    struct backend *be = bpf_map_lookup_elem(&backends, &key);
    if (!be || !be->addr)
        return XDP_DROP;
    __be32 old_addr = ip->daddr;
    __be16 old_port = udp->dest;
    ip->daddr = be->addr;
    udp->dest = be->port;
    ip->check = 0;
    ip->check = ~fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
    if (udp->check) {                              /* RFC 1624 incremental update */
        __u64 sum = (__u16)~udp->check;
        sum += (__u16)~(old_addr & 0xffff) + (__u16)~(old_addr >> 16);
        sum += (be->addr & 0xffff) + (be->addr >> 16);
        sum += (__u16)~old_port + be->port;
        udp->check = ~fold(sum);
    }
    __u64 *n = bpf_map_lookup_elem(&picks, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";

/* ipip: encapsulate and decapsulate IPv4-in-IPv4 (RFC 2003) with bpf_xdp_adjust_head.
 *
 * `encap` wraps every IPv4 packet in an outer IPv4 header from 10.0.0.254 to
 * 10.0.0.1 (protocol 4, a fresh checksum) and sends it back out (XDP_TX);
 * `decap` strips the outer header of protocol-4 packets and passes the inner
 * one.  Everything else passes untouched.                                   */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define IPPROTO_IPIP 4

static __always_inline __u16 ip_checksum(struct iphdr *ip)
{
    __u64 sum = bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return ~sum;
}

SEC("xdp")
int encap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *inner = (void *)(eth + 1);
    if ((void *)(inner + 1) > end)
        return XDP_PASS;
    __u16 inner_len = bpf_ntohs(inner->tot_len);
    struct ethhdr copy = *eth;
    if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    struct iphdr *outer = (void *)(eth + 1);
    if ((void *)(outer + 1) > end)
        return XDP_ABORTED;
    *eth = copy;
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = 0;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = bpf_htons(0x4000);
    outer->ttl = 64;
    outer->protocol = IPPROTO_IPIP;
    outer->check = 0;
    outer->saddr = bpf_htonl(0x0a0000fe);
    outer->daddr = bpf_htonl(0x0a000001);
    outer->check = ip_checksum(outer);
    return XDP_TX;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *outer = (void *)(eth + 1);
    if ((void *)(outer + 1) > end || outer->protocol != IPPROTO_IPIP || outer->ihl != 5)
        return XDP_PASS;
    struct ethhdr copy = *eth;
    if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_ABORTED;
    *eth = copy;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

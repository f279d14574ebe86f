/* A map key read straight from the packet: the NFP takes keys only from the stack. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 256);
         __type(key, __u32); __type(value, __u32); } blocked SEC(".maps");

SEC("xdp")
int pktkey(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip)
        return XDP_PASS;
    return bpf_map_lookup_elem(&blocked, &ip->saddr) ? XDP_DROP : XDP_PASS;
}

/* An LRU hash map: the NFP offloads only hash and array maps. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 1024);
         __type(key, __u32); __type(value, __u64); } flows SEC(".maps");

SEC("xdp")
int lru(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip)
        return XDP_PASS;
    __u32 src = ip->saddr;
    return bpf_map_lookup_elem(&flows, &src) ? XDP_DROP : XDP_PASS;
}

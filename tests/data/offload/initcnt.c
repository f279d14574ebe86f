/* A counter initialised to 1 by bpf_map_update_elem(): the NFP keeps atomic counters
 * big endian and needs them created as zero. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, __u32); __type(value, __u64); } per_source SEC(".maps");

SEC("xdp")
int initcnt(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip)
        return XDP_PASS;
    __u32 src = ip->saddr;
    __u64 *n = bpf_map_lookup_elem(&per_source, &src);
    if (n) {
        xadd64(n, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&per_source, &src, &one, BPF_NOEXIST);
    }
    return XDP_PASS;
}

/* A 64-bit multiply of a map value: the NFP multiplies only numbers that fit 32 bits. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u64); } factors SEC(".maps");

SEC("xdp")
int mul64(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *f = bpf_map_lookup_elem(&factors, &k);
    if (!f)
        return XDP_PASS;
    __u64 scaled = *f * 1000003;
    k = 1;
    bpf_map_update_elem(&factors, &k, &scaled, BPF_ANY);
    return XDP_PASS;
}

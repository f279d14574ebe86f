/* bpf_ktime_get_ns: not among the NFP's helpers. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } last SEC(".maps");

SEC("xdp")
int ktime(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 now = bpf_ktime_get_ns();
    bpf_map_update_elem(&last, &k, &now, BPF_ANY);
    return XDP_PASS;
}

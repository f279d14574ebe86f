/* Four million entries: more than the NFP firmware's pool for all maps. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4000000);
         __type(key, __u32); __type(value, __u32); } huge SEC(".maps");

SEC("xdp")
int bigmap(struct xdp_md *ctx)
{
    __u32 k = 0;
    return bpf_map_lookup_elem(&huge, &k) ? XDP_DROP : XDP_PASS;
}

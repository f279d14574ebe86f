/* A 16-byte key and a 56-byte value: 72 bytes an element, over the NFP's 64. */
#include "common.h"

struct flow { __u32 saddr, daddr, ports, proto; };
struct stats { __u64 v[7]; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 256);
         __type(key, struct flow); __type(value, struct stats); } flow_stats SEC(".maps");

SEC("xdp")
int bigvalue(struct xdp_md *ctx)
{
    struct flow f = {};
    return bpf_map_lookup_elem(&flow_stats, &f) ? XDP_DROP : XDP_PASS;
}

/* What hXDP takes (built for -mcpu=v2: no 32-bit jumps): a hash map, a devmap
 * redirect, a checksum helper, a plain read-modify-write of a map value. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, __u32); __type(value, __u64); } by_dest SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u32); } ports SEC(".maps");

SEC("xdp")
int hxdp_ok(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip)
        return XDP_PASS;
    __u32 dst = ip->daddr;
    __u64 *n = bpf_map_lookup_elem(&by_dest, &dst);
    if (!n)
        return XDP_DROP;
    *n += 1;
    ip->check = 0;
    ip->check = ~bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0);
    return bpf_redirect_map(&ports, dst & 3, 0);
}

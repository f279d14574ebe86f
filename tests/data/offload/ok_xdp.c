/* What the NFP offload takes: hash and array maps keyed from the stack, a result-less
 * atomic add, a random number, a 32-bit multiply, a division by a constant, a perf
 * event to the host with BPF_F_CURRENT_CPU. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, __u32); __type(value, __u64); } by_source SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } totals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");

SEC("xdp")
int ok_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip)
        return XDP_PASS;
    __u32 src = ip->saddr;
    __u64 *seen = bpf_map_lookup_elem(&by_source, &src);
    if (seen) {
        xadd64(seen, 1);
    } else {
        __u64 zero = 0;
        bpf_map_update_elem(&by_source, &src, &zero, BPF_NOEXIST);
    }
    __u32 slot = (bpf_get_prandom_u32() & 0xff) * (__u32)ip->ttl / 3 % 4 ? 1 : 0;
    __u64 *total = bpf_map_lookup_elem(&totals, &slot);
    if (total)
        xadd64(total, bpf_ntohs(ip->tot_len));
    if (ip->ttl == 1)
        bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &src, sizeof(src));
    return ip->ttl ? XDP_PASS : XDP_DROP;
}

/* The CPU a program runs on, under the native runner (tests/test_native.py): the inlined
 * bpf_get_smp_processor_id (a per-CPU variable read through gs) beside an inlined per-CPU
 * array lookup, the CPU number written into the frame and counted on that CPU.         */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

SEC("xdp") int native_cpu(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    __u32 cpu = bpf_get_smp_processor_id();
    __u32 key = 1;
    __u64 *h = bpf_map_lookup_elem(&hits, &key);
    if (h)
        *h += cpu + 1;
    if (data + 1 > end)
        return XDP_ABORTED;
    data[0] = cpu;
    return cpu & 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

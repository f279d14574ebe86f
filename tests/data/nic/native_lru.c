/* An LRU hash's inlined lookup under the native runner (tests/test_native.py): the
 * value is written through the pointer the lookup returned, that pointer is handed to
 * a helper, and the verdict reads the value back.                                     */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} copies SEC(".maps");

SEC("xdp") int native_lru(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 1 > end)
        return XDP_ABORTED;
    __u32 key = data[0] & 7;            /* 8 keys in a 4-entry LRU: evictions */
    __u64 *count = bpf_map_lookup_elem(&seen, &key);
    if (!count) {
        __u64 one = 1;
        bpf_map_update_elem(&seen, &key, &one, BPF_ANY);
        return XDP_PASS;
    }
    *count += 1;
    bpf_map_update_elem(&copies, &key, count, BPF_ANY);
    return *count & 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

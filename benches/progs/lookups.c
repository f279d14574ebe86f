/* Bench program: n map lookups in a loop, on an array (served inside the
 * compiled interpreter) and on a hash map (a helper call). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } hash SEC(".maps");

SEC("syscall") int array_lookups(__u32 *ctx)
{
    __u64 sum = 0;
    for (__u32 i = 0; i < ctx[0]; i++) {
        __u32 key = i & 63;
        __u64 *v = bpf_map_lookup_elem(&arr, &key);
        if (v)
            sum += *v;
    }
    return (int)sum;
}

SEC("syscall") int hash_lookups(__u32 *ctx)
{
    __u64 sum = 0;
    for (__u32 i = 0; i < ctx[0]; i++) {
        __u32 key = i & 63;
        __u64 *v = bpf_map_lookup_elem(&hash, &key);
        if (v)
            sum += *v;
    }
    return (int)sum;
}

char LICENSE[] SEC("license") = "GPL";

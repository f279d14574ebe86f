/* Loader/runtime test object: bpf_loop and bpf_for_each_map_elem callbacks. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } hash SEC(".maps");

struct loop_ctx { __u64 sum; __u32 stop_at; };

static long add_one(__u64 i, struct loop_ctx *c)
{
    if (i == c->stop_at)
        return 1;
    c->sum += i * i;
    return 0;
}

static long sum_elem(void *map, __u32 *key, __u64 *value, struct loop_ctx *c)
{
    c->sum += *key * 1000 + *value;
    *value += 1;              /* values are writable in place */
    return 0;
}

SEC("syscall") int loop_prog(__u32 *ctx)
{
    struct loop_ctx c = { .sum = 0, .stop_at = ctx[1] };
    long n = bpf_loop(ctx[0], add_one, &c, 0);
    return (int)(c.sum * 100 + n);
}

SEC("syscall") int each_prog(void *ctx)
{
    struct loop_ctx c = { 0, 0 };
    long n = bpf_for_each_map_elem(&hash, sum_elem, &c, 0);
    long m = bpf_for_each_map_elem(&arr, sum_elem, &c, 0);
    return (int)(c.sum * 100 + n * 10 + m);
}

char LICENSE[] SEC("license") = "GPL";

/* Bench object for load time: 10 maps of several types and 5 programs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define HASH(name, n) struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, n); \
                              __type(key, __u32); __type(value, __u64); } name SEC(".maps")
#define ARRAY(name, n) struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, n); \
                               __type(key, __u32); __type(value, __u64); } name SEC(".maps")
HASH(h1, 1024); HASH(h2, 1024); HASH(h3, 256);
ARRAY(a1, 256); ARRAY(a2, 16);
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } pa SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 512);
         __type(key, __u64); __type(value, __u64); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 64);
         __uint(value_size, 8); } q SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 65536); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 64); __uint(key_size, 8);
         __uint(value_size, 4); __uint(map_flags, BPF_F_NO_PREALLOC); } lpm SEC(".maps");

static __noinline __u64 bump(void *map, __u32 k)
{
    __u64 *v = bpf_map_lookup_elem(map, &k);
    if (!v)
        return 0;
    *v += 1;
    return *v;
}

SEC("syscall") int p1(__u32 *ctx) { return bump(&h1, ctx[0]) + bump(&a1, ctx[0]); }
SEC("syscall") int p2(__u32 *ctx) { return bump(&h2, ctx[0]) + bump(&a2, ctx[0]); }
SEC("syscall") int p3(__u32 *ctx) { return bump(&h3, ctx[0]) + bump(&pa, ctx[0]); }
SEC("syscall") int p4(__u32 *ctx) { __u64 k = ctx[0]; __u64 v = 1;
                                     bpf_map_update_elem(&lru, &k, &v, 0);
                                     return bpf_map_push_elem(&q, &v, 0); }
SEC("syscall") int p5(__u32 *ctx) { __u64 v = ctx[0]; bpf_ringbuf_output(&rb, &v, 8, 0);
                                     __u64 key = 0x0a000018; return bpf_map_lookup_elem(&lpm, &key) != 0; }
char LICENSE[] SEC("license") = "GPL";

/* LPM trie and bloom filter: the kernel refuses both in sleepable (syscall) programs,
 * so these are raw tracepoint programs (ctx: u64 args, read-only); results go to an
 * array.  lpm_sleepable is the syscall version the kernel refuses.              */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct lpm_key { __u32 prefixlen; __u8 addr[4]; };

struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 8);
         __type(key, struct lpm_key); __type(value, __u32);
         __uint(map_flags, BPF_F_NO_PREALLOC); } lpm SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 16);
         __uint(value_size, 8); __uint(map_extra, 3);
         __uint(map_flags, BPF_F_ZERO_SEED); } bloom SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16);
         __type(key, __u32); __type(value, __s64); } results SEC(".maps");

static __always_inline void out(__u32 i, __s64 v)
{
    __s64 *slot = bpf_map_lookup_elem(&results, &i);

    if (slot)
        *slot = v;
}

static __always_inline __s64 match(__u8 a, __u8 b, __u8 c, __u8 d)
{
    struct lpm_key key = {32, {a, b, c, d}};
    __u32 *v = bpf_map_lookup_elem(&lpm, &key);

    return v ? *v : -1;
}

static __always_inline long add(__u32 plen, __u8 a, __u8 b, __u8 c, __u32 value, __u64 flags)
{
    struct lpm_key key = {plen, {a, b, c, 0}};

    return bpf_map_update_elem(&lpm, &key, &value, flags);
}

SEC("raw_tp") int lpm_ops(__u64 *ctx)
{
    struct lpm_key key = {16, {10, 1, 0, 0}};

    out(0, add(8, 10, 0, 0, 1, BPF_ANY));
    out(1, add(16, 10, 1, 0, 2, BPF_ANY));
    out(2, add(24, 10, 1, 2, 3, BPF_NOEXIST));
    out(3, add(24, 10, 1, 2, 4, BPF_NOEXIST));          /* -EEXIST */
    out(4, add(24, 10, 9, 9, 5, BPF_EXIST));            /* -ENOENT */
    out(5, match(10, 1, 2, 3));                         /* /24 */
    out(6, match(10, 1, 7, 7));                         /* /16 */
    out(7, match(10, 200, 0, 1));                       /* /8 */
    out(8, match(11, 0, 0, 1));                         /* none */
    out(9, bpf_map_delete_elem(&lpm, &key));
    out(10, match(10, 1, 7, 7));                        /* /8 now */
    out(11, bpf_map_delete_elem(&lpm, &key));           /* -ENOENT */
    out(12, add(ctx[0], 192, 168, 0, 6, BPF_ANY));      /* prefix length from ctx */
    return 0;
}

SEC("raw_tp") int bloom_ops(__u64 *ctx)
{
    __u64 v = ctx[0];

    out(0, bpf_map_push_elem(&bloom, &v, BPF_ANY));
    out(1, bpf_map_peek_elem(&bloom, &v));              /* present: 0 */
    v = 0x77;                                           /* pushed through maps_in */
    out(2, bpf_map_peek_elem(&bloom, &v));
    out(3, bpf_map_push_elem(&bloom, &v, BPF_EXIST));   /* -EINVAL */
    v = ctx[0] + 1;
    out(4, bpf_map_peek_elem(&bloom, &v) == 0);         /* absent (zero seed: no chance) */
    return 0;
}

SEC("syscall") int lpm_sleepable(void *ctx)
{
    return match(10, 1, 2, 3);
}

char LICENSE[] SEC("license") = "GPL";

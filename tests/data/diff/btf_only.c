/* A map whose value holds a bpf_spin_lock: the kernel needs BTF for it, so the
 * kernel backend (BTF-less) does not create it; a program using it cannot load.  */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct locked { struct bpf_spin_lock lock; __u64 n; };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct locked); } locked SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } plain SEC(".maps");

SEC("syscall") int uses_plain(void *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&plain, &k);

    return v ? 1 : 0;
}

SEC("syscall") int uses_locked(void *ctx)
{
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locked, &k);

    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    v->n++;
    bpf_spin_unlock(&v->lock);
    return 1;
}

char LICENSE[] SEC("license") = "GPL";

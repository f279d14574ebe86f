/* Map-in-map: an array of maps and a hash of maps initialised in C; the program
 * looks an inner map up, then a value in it, and changes it.                    */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct ictx { __u32 outer_key; __u32 inner_key; __s64 out[6]; };

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
               __type(key, __u32); __type(value, __u64); };
struct inner inner_a SEC(".maps"), inner_b SEC(".maps");
struct hinner { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
                __type(key, __u32); __type(value, __u64); };
struct hinner hin SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 4);
         __type(key, __u32); __array(values, struct inner); } outer_arr SEC(".maps") = {
    .values = { [0] = &inner_a, [2] = &inner_b },
};
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 4);
         __type(key, __u32); __array(values, struct hinner); } outer_hash SEC(".maps") = {
    .values = { [5] = &hin },
};

SEC("syscall") int map_in_map(struct ictx *ctx)
{
    __u32 ok = ctx->outer_key, ik = ctx->inner_key, hk = 5;
    __u64 v = 1000, *p;
    void *in;
    __s64 o0 = -1, o1 = -1, o2 = -1, o3 = -1;

    in = bpf_map_lookup_elem(&outer_arr, &ok);
    if (in) {
        p = bpf_map_lookup_elem(in, &ik);
        o0 = p ? (__s64)*p : -2;
        if (p)
            *p += 40 + ok;
    }
    ok = 1;                                   /* empty slot */
    o1 = bpf_map_lookup_elem(&outer_arr, &ok) == 0;
    in = bpf_map_lookup_elem(&outer_hash, &hk);
    if (in) {
        o2 = bpf_map_update_elem(in, &ik, &v, BPF_NOEXIST);
        p = bpf_map_lookup_elem(in, &ik);
        o3 = p ? (__s64)*p : -2;
    }
    hk = 6;
    ctx->out[4] = bpf_map_lookup_elem(&outer_hash, &hk) == 0;
    ctx->out[0] = o0;
    ctx->out[1] = o1;
    ctx->out[2] = o2;
    ctx->out[3] = o3;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";

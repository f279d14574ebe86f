/* Loader test object: the legacy "maps" section of struct bpf_map_def. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };

struct bpf_map_def SEC("maps") legacy_hash = { BPF_MAP_TYPE_HASH, 4, 8, 32, 0 };
struct bpf_map_def SEC("maps") legacy_arr = { BPF_MAP_TYPE_ARRAY, 4, 4, 2, 0 };

SEC("socket") int sock(void *ctx)
{
    __u32 k = 0;
    __u32 *v = bpf_map_lookup_elem(&legacy_arr, &k);
    return v ? *v : 1;
}
char LICENSE[] SEC("license") = "Dual BSD/GPL";
__u32 _version SEC("version") = 0x060100;

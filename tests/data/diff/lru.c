/* LRU maps driven by a script: tests/test_lru_differential.py writes up to NOPS
 * operations into the "script" array and runs lru_script (on a pinned CPU, several
 * times on the same maps); each operation's result goes to script.ret.          */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NOPS 48

enum { OP_END, OP_UPDATE, OP_LOOKUP, OP_DELETE, OP_LOOKUP_PERCPU };

struct op {
    __u8 code;          /* OP_* */
    __u8 map;           /* which map, see do_op */
    __u8 flags;         /* update flags; the CPU of OP_LOOKUP_PERCPU */
    __u8 pad;
    __u32 key;
    __u64 value;
};

struct script {
    struct op ops[NOPS];
    __s64 ret[NOPS];
};

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct script); } script SEC(".maps");

/* 0: common LRU, 8 nodes (target_free 2 on 2 CPUs) */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } lru8 SEC(".maps");
/* 1: common LRU, 64 nodes (target_free 16 on 2 CPUs) */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } lru64 SEC(".maps");
/* 2: common LRU, 3 nodes (target_free 1) */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 3);
         __type(key, __u32); __type(value, __u64); } lru3 SEC(".maps");
/* 6: common LRU, 1 node: a CPU that finds no node anywhere steals another CPU's */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } lru1 SEC(".maps");
/* 3: per-CPU LRU lists (5 nodes each on 2 CPUs) */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 10);
         __uint(map_flags, BPF_F_NO_COMMON_LRU);
         __type(key, __u32); __type(value, __u64); } lru_nc SEC(".maps");
/* 4: per-CPU values, common LRU */
struct { __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } pcpu SEC(".maps");
/* 5: per-CPU values, per-CPU LRU lists */
struct { __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH); __uint(max_entries, 10);
         __uint(map_flags, BPF_F_NO_COMMON_LRU);
         __type(key, __u32); __type(value, __u64); } pcpu_nc SEC(".maps");

#define DO(m, code, flags, k, v) ({                                                   \
    __s64 r_ = -1;                                                                    \
    __u64 *p_;                                                                        \
    if (code == OP_UPDATE) {                                                          \
        r_ = bpf_map_update_elem(&m, &k, &v, flags);                                  \
    } else if (code == OP_LOOKUP) {                                                   \
        p_ = bpf_map_lookup_elem(&m, &k);                                             \
        r_ = p_ ? (__s64)*p_ : -2;                                                    \
    } else if (code == OP_DELETE) {                                                   \
        r_ = bpf_map_delete_elem(&m, &k);                                             \
    }                                                                                 \
    r_; })

/* the per-CPU maps also take bpf_map_lookup_percpu_elem (of CPU ``flags``) */
#define DO_PCPU(m, code, flags, k, v) ({                                              \
    __s64 r_;                                                                         \
    __u64 *p_;                                                                        \
    if (code == OP_LOOKUP_PERCPU) {                                                   \
        p_ = bpf_map_lookup_percpu_elem(&m, &k, flags);                               \
        r_ = p_ ? (__s64)*p_ : -2;                                                    \
    } else {                                                                          \
        r_ = DO(m, code, flags, k, v);                                                \
    }                                                                                 \
    r_; })

SEC("syscall") int lru_script(void *ctx)
{
    __u32 zero = 0;
    struct script *s = bpf_map_lookup_elem(&script, &zero);
    int i, n = 0;

    if (!s)
        return -1;
    for (i = 0; i < NOPS; i++) {
        __u8 code = s->ops[i].code, which = s->ops[i].map, flags = s->ops[i].flags;
        __u32 k = s->ops[i].key;
        __u64 v = s->ops[i].value;
        __s64 r;

        if (code == OP_END)
            break;
        switch (which) {
        case 0: r = DO(lru8, code, flags, k, v); break;
        case 1: r = DO(lru64, code, flags, k, v); break;
        case 2: r = DO(lru3, code, flags, k, v); break;
        case 3: r = DO(lru_nc, code, flags, k, v); break;
        case 4: r = DO_PCPU(pcpu, code, flags, k, v); break;
        case 5: r = DO_PCPU(pcpu_nc, code, flags, k, v); break;
        case 6: r = DO(lru1, code, flags, k, v); break;
        default: r = -1000;
        }
        s->ret[i] = r;
        n++;
    }
    return n;
}

char LICENSE[] SEC("license") = "GPL";

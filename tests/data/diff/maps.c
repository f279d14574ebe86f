/* Map types from syscall programs: each program exercises one family and records
 * the helpers' return codes in ctx->out; the test compares ctx and every map.    */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct mctx {
    __u64 in[4];
    __s64 out[24];
};

/* The kernel allows only constant offsets from ctx: results go to the stack first. */
#define BEGIN __s64 o[24] = {}; int i = 0
#define OUT(v) (o[i++ & 23] = (v))
#define END ({ __builtin_memcpy(ctx->out, o, sizeof(o)); i; })

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } array SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u32); } pcpu_array SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 4);
         __type(key, __u64); __type(value, __u64); } pcpu_hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u32); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } lru_pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 3);
         __uint(value_size, 4); } queue SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK); __uint(max_entries, 3);
         __uint(value_size, 4); } stack SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");

SEC("syscall") int hash_ops(struct mctx *ctx)
{
    __u32 k;
    __u64 v, *p;
    BEGIN;

    /* no loops: the verifier loses a stack key's value after the helper reads it */
#define PUT(n) (k = (n), v = (n) * 100 + ctx->in[0], \
                OUT(bpf_map_update_elem(&hash, &k, &v, BPF_NOEXIST)))
    PUT(1); PUT(2); PUT(3); PUT(4);
    PUT(5);                             /* does not fit: -E2BIG */
    k = 2;
    OUT(bpf_map_update_elem(&hash, &k, &v, BPF_NOEXIST));   /* -EEXIST */
    k = 9;
    OUT(bpf_map_update_elem(&hash, &k, &v, BPF_EXIST));     /* -ENOENT */
    k = 3;
    OUT(bpf_map_delete_elem(&hash, &k));
    OUT(bpf_map_delete_elem(&hash, &k));                    /* -ENOENT */
    k = 7;
    OUT(bpf_map_update_elem(&hash, &k, &v, BPF_ANY));       /* fits again */
    k = 1;
    p = bpf_map_lookup_elem(&hash, &k);
    if (p) {
        __sync_fetch_and_add(p, 5);
        OUT(*p);
    }
    k = 3;
    OUT(bpf_map_lookup_elem(&hash, &k) == 0);
    return END;
}

SEC("syscall") int array_ops(struct mctx *ctx)
{
    __u32 k = 1;
    __u64 v = ctx->in[0], *p;
    BEGIN;

    OUT(bpf_map_update_elem(&array, &k, &v, BPF_ANY));
    OUT(bpf_map_update_elem(&array, &k, &v, BPF_NOEXIST));  /* -EEXIST */
    k = 4;
    OUT(bpf_map_update_elem(&array, &k, &v, BPF_ANY));      /* -E2BIG */
    OUT(bpf_map_lookup_elem(&array, &k) == 0);
    k = 0;
    OUT(bpf_map_delete_elem(&array, &k));                   /* -EINVAL */
    p = bpf_map_lookup_elem(&array, &k);
    if (p) {
        *p = 0xdeadbeef;
        __sync_fetch_and_or(p, 0x100000000ULL);
    }
    k = 3;
    p = bpf_map_lookup_elem(&array, &k);
    if (p)
        OUT(__sync_fetch_and_add(p, 7));                    /* maps_in value */
    return END;
}

SEC("syscall") int percpu_ops(struct mctx *ctx)
{
    __u32 k = 1, cpu = bpf_get_smp_processor_id(), *c;
    __u64 hk = 0x1234, v = 11, *p;
    BEGIN;

    c = bpf_map_lookup_elem(&pcpu_array, &k);
    if (c)
        *c += 3;
    c = bpf_map_lookup_percpu_elem(&pcpu_array, &k, 1);       /* another CPU's slot */
    if (c)
        OUT(*c);
    OUT(bpf_map_lookup_percpu_elem(&pcpu_array, &k, 4096) == 0);
    OUT(bpf_map_update_elem(&pcpu_hash, &hk, &v, BPF_ANY));
    p = bpf_map_lookup_elem(&pcpu_hash, &hk);
    if (p)
        *p += cpu + 1;
    hk = 0x99;
    p = bpf_map_lookup_elem(&pcpu_hash, &hk);                 /* maps_in: every CPU */
    if (p)
        OUT(*p);
    p = bpf_map_lookup_percpu_elem(&pcpu_hash, &hk, 1);
    if (p)
        OUT(*p);
    return END;
}

SEC("syscall") int lru_ops(struct mctx *ctx)
{
    __u32 k, v, *p;
    __u64 w = 5, *q;
    BEGIN;

#define LRU(n) (k = (n), v = (n) * 3, OUT(bpf_map_update_elem(&lru, &k, &v, BPF_ANY)))
    LRU(1); LRU(2); LRU(3); LRU(4);
    k = 2;
    p = bpf_map_lookup_elem(&lru, &k);
    if (p)
        OUT(*p);
    OUT(bpf_map_update_elem(&lru, &k, &v, BPF_NOEXIST));    /* -EEXIST */
    OUT(bpf_map_delete_elem(&lru, &k));
    k = 6;
    OUT(bpf_map_update_elem(&lru_pcpu, &k, &w, BPF_ANY));
    q = bpf_map_lookup_elem(&lru_pcpu, &k);
    if (q)
        *q *= 3;
    OUT(bpf_map_update_elem(&lru_pcpu, &k, &w, BPF_NOEXIST));
    return END;
}

/* Overflowing an LRU hash: the kernel evicts in batches to refill the CPU's free list. */
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u32); } lru_full SEC(".maps");

SEC("syscall") int lru_evict(struct mctx *ctx)
{
    __u32 k, v = 1;

#define FILL(n) (k = (n), bpf_map_update_elem(&lru_full, &k, &v, BPF_ANY))
    FILL(1); FILL(2); FILL(3); FILL(4); FILL(5); FILL(6); FILL(7); FILL(8);
    k = 1;
    bpf_map_lookup_elem(&lru_full, &k);           /* 1 is referenced: kept */
    FILL(9); FILL(10); FILL(11);
    return 0;
}

SEC("syscall") int queue_stack(struct mctx *ctx)
{
    __u32 v, got = 0;
    BEGIN;

#define PUSH(n) (v = (n), OUT(bpf_map_push_elem(&queue, &v, 0)), \
                 OUT(bpf_map_push_elem(&stack, &v, 0)))
    PUSH(10); PUSH(11); PUSH(12);
    PUSH(13);                           /* full: -E2BIG on both */
    v = 99;
    OUT(bpf_map_push_elem(&queue, &v, BPF_EXIST));   /* drops the oldest */
    OUT(bpf_map_peek_elem(&queue, &got));
    OUT(got);
    OUT(bpf_map_pop_elem(&stack, &got));
    OUT(got);
    OUT(bpf_map_peek_elem(&stack, &got));
    OUT(got);
    OUT(bpf_map_pop_elem(&queue, &got));
    OUT(got);
    return END;
}

SEC("syscall") int ringbuf_ops(struct mctx *ctx)
{
    __u64 rec[2] = {}, *r;
    BEGIN;

    rec[0] = ctx->in[0];
    rec[1] = 0x5a5a;
    OUT(bpf_ringbuf_output(&rb, rec, sizeof(rec), 0));
    OUT(bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA));
    r = bpf_ringbuf_reserve(&rb, 8, 0);
    if (r) {
        *r = 0x1111;
        bpf_ringbuf_submit(r, 0);
    }
    r = bpf_ringbuf_reserve(&rb, 16, 0);
    if (r) {
        r[0] = 0x2222;
        bpf_ringbuf_discard(r, 0);
    }
    OUT(bpf_ringbuf_output(&rb, rec, 4, 0));          /* not a multiple of 8 */
    r = bpf_ringbuf_reserve(&rb, 8192, 0);                     /* too big */
    if (r)
        bpf_ringbuf_discard(r, 0);
    OUT(r == 0);
    OUT(bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA));
    OUT(bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE));
    OUT(bpf_ringbuf_query(&rb, BPF_RB_CONS_POS));
    OUT(bpf_ringbuf_query(&rb, BPF_RB_PROD_POS));
    return END;
}

char LICENSE[] SEC("license") = "GPL";

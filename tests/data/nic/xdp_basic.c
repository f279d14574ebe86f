/* XDP test object: context reads, the adjust helpers, load/store bytes, redirects. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4);
         __uint(key_size, 4); __uint(value_size, 4); } ports SEC(".maps");

static void note(__u32 k, __u64 v) { bpf_map_update_elem(&seen, &k, &v, BPF_ANY); }

SEC("xdp") int lengths(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    void *meta = (void *)(long)ctx->data_meta;
    note(0, end - data);
    note(1, data - meta);
    note(2, ctx->ingress_ifindex);
    note(3, ctx->rx_queue_index);
    note(4, bpf_xdp_get_buff_len(ctx));
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_ABORTED;
    return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

SEC("xdp") int encap(struct xdp_md *ctx)
{
    long r1 = bpf_xdp_adjust_head(ctx, -8);          /* room for an 8-byte tag */
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 8 + sizeof(struct ethhdr) > end)
        return XDP_ABORTED;
    __builtin_memmove(data, data + 8, 12);            /* MACs to the front */
    __u64 tag = 0x1122334455667788ULL;
    __builtin_memcpy(data + 12, &tag, 8);
    long r2 = bpf_xdp_adjust_tail(ctx, 4);            /* a 4-byte trailer of zeros */
    long r3 = bpf_xdp_adjust_head(ctx, -300);         /* too far: -EINVAL */
    long r4 = bpf_xdp_adjust_meta(ctx, -4);
    note(0, r1); note(1, r2); note(2, r3); note(3, r4);
    if (r4 == 0) {
        void *meta = (void *)(long)ctx->data_meta;
        data = (void *)(long)ctx->data;
        if (meta + 4 <= data)
            *(__u32 *)meta = 0xabcd;
    }
    return XDP_TX;
}

SEC("xdp") int shrink(struct xdp_md *ctx)
{
    long r = bpf_xdp_adjust_tail(ctx, -10);
    note(0, r);
    note(1, bpf_xdp_adjust_tail(ctx, -100000));
    return XDP_PASS;
}

SEC("xdp") int bytes(struct xdp_md *ctx)
{
    __u8 buf[6];
    note(0, bpf_xdp_load_bytes(ctx, 6, buf, 6));      /* the source MAC */
    note(1, bpf_xdp_store_bytes(ctx, 0, buf, 6));     /* over the destination */
    note(2, bpf_xdp_load_bytes(ctx, 100000, buf, 6));
    return XDP_PASS;
}

SEC("xdp") int redirects(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *mode = bpf_map_lookup_elem(&seen, &k);
    if (!mode)
        return XDP_ABORTED;
    if (*mode == 0) return bpf_redirect_map(&ports, 1, XDP_PASS);   /* empty slot */
    if (*mode == 1) return bpf_redirect_map(&ports, 2, 0);          /* filled slot */
    if (*mode == 2) return bpf_redirect(1, 0);
    if (*mode == 3) return bpf_redirect(1, 1);                      /* flags: aborted */
    return 7;                                                        /* outside the enum */
}

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int frags_tail(struct xdp_md *ctx)
{
    __u32 k = 1;
    __u64 *mode = bpf_map_lookup_elem(&seen, &k);
    long delta = mode ? (long)*mode : 0;
    note(0, bpf_xdp_adjust_tail(ctx, (int)delta));
    note(2, bpf_xdp_get_buff_len(ctx));
    return XDP_PASS;
}

SEC("xdp") int port_lookups(struct xdp_md *ctx)
{
    /* every slot of the devmap and one past it: the ifindex, or -1 where it is empty */
#pragma unroll
    for (__u32 i = 0; i < 5; i++) {
        __u32 k = i;
        __u32 *ifindex = bpf_map_lookup_elem(&ports, &k);
        note(i, ifindex ? *ifindex : (__u64)-1);
    }
    return XDP_PASS;
}

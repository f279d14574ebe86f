/* TC test object: __sk_buff fields, writes, and the skb helpers. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#define BPF_HDR_START_MAC 0
#define BPF_HDR_START_NET 1
#include <bpf/bpf_endian.h>

#define F_RECOMPUTE_CSUM (1ULL << 0)
#define F_INVALIDATE_HASH (1ULL << 1)
#define F_PSEUDO_HDR (1ULL << 4)
#define F_MARK_MANGLED_0 (1ULL << 5)

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 40);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

static void note(__u32 k, __u64 v) { bpf_map_update_elem(&seen, &k, &v, BPF_ANY); }

SEC("tc") int fields(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    void *meta = (void *)(long)skb->data_meta;
    note(0, skb->len); note(1, skb->pkt_type); note(2, skb->mark);
    note(3, skb->queue_mapping); note(4, skb->protocol); note(5, skb->vlan_present);
    note(6, skb->vlan_tci); note(7, skb->vlan_proto); note(8, skb->priority);
    note(9, skb->ingress_ifindex); note(10, skb->ifindex); note(11, skb->tc_index);
    note(12, skb->cb[0]); note(13, skb->cb[4]); note(14, skb->hash);
    note(15, skb->tc_classid); note(16, end - data); note(17, data - meta);
    note(18, skb->napi_id); note(19, skb->tstamp); note(20, skb->wire_len);
    note(21, skb->gso_segs); note(22, skb->gso_size); note(23, skb->hwtstamp);
    note(24, *(volatile __u16 *)((char *)skb + 16));    /* narrow: protocol's low half */
    note(25, *(volatile __u8 *)((char *)skb + 1));      /* narrow: len's second byte */
    note(26, skb->tstamp_type);
    return TC_ACT_OK;
}

#define W(field, v) (*(volatile typeof(skb->field) *)&skb->field = (v))

SEC("tc") int writes(struct __sk_buff *skb)
{
    W(mark, 0x1234); W(priority, 7); W(tc_classid, 0x10002);
    W(cb[0], 0xaa); W(cb[4], 0xbb); W(tc_index, 3); W(queue_mapping, 0);
    W(tstamp, 99);
    note(0, skb->mark); note(1, skb->tc_classid); note(2, skb->tc_index);
    note(3, skb->tstamp);
    return TC_ACT_SHOT;
}

SEC("tc") int headers(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return TC_ACT_SHOT;
    note(0, eth->h_proto);
    note(1, load_half(skb, 12));
    note(2, load_byte(skb, 14));
    note(3, load_word(skb, 26));
    return skb->len;
}

SEC("tc") int ld_abs_oob(struct __sk_buff *skb)
{
    note(0, 1);
    note(1, load_word(skb, skb->len - 2));      /* past the end: the program returns 0 */
    return 5;
}

SEC("tc") int load_store(struct __sk_buff *skb)
{
    __u8 buf[6];
    note(0, bpf_skb_load_bytes(skb, 6, buf, 6));
    note(1, bpf_skb_store_bytes(skb, 0, buf, 6, 0));
    note(2, bpf_skb_load_bytes(skb, 100000, buf, 6));
    note(3, bpf_skb_store_bytes(skb, 0, buf, 6, 1ULL << 5));   /* bad flag */
    __u32 v = 0xdeadbeef;
    note(4, bpf_skb_store_bytes(skb, 30, &v, 4, F_RECOMPUTE_CSUM | F_INVALIDATE_HASH));
    note(5, bpf_skb_load_bytes(skb, skb->len - 4, buf, 4));
    note(6, bpf_skb_load_bytes(skb, skb->len - 3, buf, 4));
    return TC_ACT_OK;
}

SEC("tc") int csums(struct __sk_buff *skb)
{
    /* IPv4 header at 14: change the TTL/protocol word and the source address */
    __u32 old_src = load_word(skb, 26), new_src = 0x0a000001;
    __u32 old_s = bpf_htonl(old_src), new_s = bpf_htonl(new_src);
    note(0, bpf_skb_store_bytes(skb, 26, &new_s, 4, 0));
    note(1, bpf_l3_csum_replace(skb, 24, old_s, new_s, 4));
    note(2, bpf_l4_csum_replace(skb, 40, old_s, new_s, F_PSEUDO_HDR | 4));
    __u16 o16 = bpf_htons(0x4011), n16 = bpf_htons(0x2011);
    note(3, bpf_l3_csum_replace(skb, 24, o16, n16, 2));
    note(4, bpf_l3_csum_replace(skb, 24, 0, 0, 3));           /* bad size */
    note(5, bpf_l4_csum_replace(skb, 40, 1, 2, 8));           /* bad size */
    note(6, bpf_l3_csum_replace(skb, 100000, 0, 0, 2));
    note(7, bpf_l4_csum_replace(skb, 50, o16, n16, F_MARK_MANGLED_0 | 2));
    note(8, bpf_l3_csum_replace(skb, 24, 0, 0x1234, 0));      /* size 0: a diff */
    return TC_ACT_OK;
}

SEC("tc") int hashes(struct __sk_buff *skb)
{
    note(0, skb->hash);
    note(1, bpf_set_hash(skb, 0x55aa));
    note(2, skb->hash);
    note(3, bpf_get_hash_recalc(skb));
    note(4, bpf_skb_pull_data(skb, 20));
    note(5, bpf_skb_pull_data(skb, 100000));
    note(6, (long)skb->data_end - (long)skb->data);
    return TC_ACT_OK;
}

SEC("tc") int redirects(struct __sk_buff *skb)
{
    __u32 k = 0;
    __u64 *mode = bpf_map_lookup_elem(&seen, &k);
    if (!mode)
        return TC_ACT_SHOT;
    if (*mode == 0) return bpf_redirect(1, 0);
    if (*mode == 1) return bpf_redirect(1, BPF_F_INGRESS);
    if (*mode == 2) return bpf_redirect(1, 4);              /* bad flag: shot */
    return TC_ACT_UNSPEC;
}

SEC("action") int act(struct __sk_buff *skb)
{
    note(0, skb->len);
    note(1, skb->protocol);
    return TC_ACT_PIPE;
}

char LICENSE[] SEC("license") = "GPL";

SEC("tc") int relative(struct __sk_buff *skb)
{
    __u32 v = 0;
    note(0, bpf_skb_load_bytes_relative(skb, 6, &v, 4, BPF_HDR_START_MAC));
    note(1, v);
    note(2, bpf_skb_load_bytes_relative(skb, 12, &v, 4, BPF_HDR_START_NET));
    note(3, v);
    note(4, bpf_skb_load_bytes_relative(skb, 38, &v, 4, BPF_HDR_START_NET));
    note(5, bpf_skb_load_bytes_relative(skb, 0, &v, 4, 2));
    note(6, bpf_skb_load_bytes_relative(skb, 36, &v, 4, BPF_HDR_START_NET));
    return 1;
}

SEC("tc") int csum_edges(struct __sk_buff *skb)
{
    note(0, bpf_l3_csum_replace(skb, 25, 0, 0x1234, 0));      /* odd offset */
    note(1, bpf_l4_csum_replace(skb, 51, 0, 0x1234, 0));
    note(2, bpf_l3_csum_replace(skb, 52, 0, 0x1234, 0));      /* the last two bytes */
    note(3, bpf_l3_csum_replace(skb, 53, 0, 0x1234, 0));      /* one past */
    note(4, bpf_l3_csum_replace(skb, 24, 1, 0x1234, 0));      /* a diff with from != 0 */
    note(5, bpf_l4_csum_replace(skb, 40, 0, 0, F_MARK_MANGLED_0 | (1ULL << 6) | 2));
    note(6, bpf_l4_csum_replace(skb, 40, 0, 0, 1ULL << 8));   /* unknown flag */
    note(7, bpf_l3_csum_replace(skb, 24, 0, 0, 1ULL << 4));   /* l4-only flag */
    return TC_ACT_OK;
}

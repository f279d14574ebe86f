/* TC and socket-filter test object: skb->sk (the socket BPF_PROG_TEST_RUN gives the skb)
 * with every field a program may read through it, and the flow hash
 * (bpf_get_hash_recalc). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define F_INVALIDATE_HASH (1ULL << 1)

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

static void note(__u32 k, __u64 v) { bpf_map_update_elem(&seen, &k, &v, BPF_ANY); }

/* a load of exactly this width at this offset (the verifier's narrow-load rules) */
#define AT(type, p, off) (*(volatile type *)((char *)(p) + (off)))

/* the struct bpf_sock fields PTR_TO_SOCK_COMMON allows, at 1 to 32 */
static __always_inline void common_fields(struct bpf_sock *sk)
{
    note(1, sk->bound_dev_if); note(2, sk->family);
    note(3, sk->src_ip4);
    note(4, sk->src_ip6[0]); note(5, sk->src_ip6[1]);
    note(6, sk->src_ip6[2]); note(7, sk->src_ip6[3]);
    note(8, sk->src_port); note(9, sk->dst_port);
    note(10, sk->dst_ip4);
    note(11, sk->dst_ip6[0]); note(12, sk->dst_ip6[1]);
    note(13, sk->dst_ip6[2]); note(14, sk->dst_ip6[3]);
    note(15, sk->state); note(16, (__u64)(__s64)sk->rx_queue_mapping);
    /* narrow loads */
    note(17, AT(__u8, sk, 4)); note(18, AT(__u16, sk, 4));       /* family */
    note(19, AT(__u8, sk, 25)); note(20, AT(__u16, sk, 26));     /* src_ip4 */
    note(21, AT(__u8, sk, 31)); note(22, AT(__u16, sk, 42));     /* src_ip6 */
    note(23, AT(__u8, sk, 53)); note(24, AT(__u16, sk, 54));     /* dst_ip4 */
    note(25, AT(__u8, sk, 71)); note(26, AT(__u16, sk, 56));     /* dst_ip6 */
    note(27, AT(__u16, sk, 48)); note(28, AT(__u8, sk, 49));     /* dst_port */
    note(29, AT(__u8, sk, 44)); note(30, AT(__u16, sk, 44));     /* src_port */
    note(31, AT(__u8, sk, 72)); note(32, AT(__u16, sk, 76));     /* state, rx_queue */
    /* the 32-bit load itself, whatever C would extend it to */
    __u64 raw;
    asm volatile("%0 = *(u32 *)(%1 + 76)" : "=r"(raw) : "r"(sk));
    note(33, raw);
    note(34, AT(__u32, sk, 48));                                 /* dst_port as a u32 */
    note(35, AT(__u8, sk, 24)); note(36, AT(__u8, sk, 28));
}

SEC("tc") int sk_fields(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    if (!sk) {
        note(0, 0);
        return TC_ACT_SHOT;
    }
    note(0, 1);
    common_fields(sk);
    struct bpf_sock *full = bpf_sk_fullsock(sk);
    note(40, full != 0);
    if (full) {              /* PTR_TO_SOCKET: type..priority too */
        note(41, full->type); note(42, full->protocol);
        note(43, full->mark); note(44, full->priority);
        note(45, AT(__u8, full, 8)); note(46, AT(__u16, full, 12));
        note(47, full->family); note(48, full->dst_ip4);
        note(49, full == sk);
    }
    note(50, bpf_tcp_sock(sk) != 0);
    note(51, bpf_get_listener_sock(sk) != 0);
    return TC_ACT_OK;
}

/* the socket's family, state and addresses written over the frame's first bytes */
SEC("tc") int sk_into_packet(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    __u32 out[4] = {};
    if (!sk)
        return TC_ACT_SHOT;
    out[0] = sk->family;
    out[1] = sk->state;
    out[2] = sk->src_ip4;
    out[3] = sk->dst_ip6[3];
    bpf_skb_store_bytes(skb, 0, out, sizeof(out), 0);
    return TC_ACT_OK;
}

SEC("socket") int sock_sk_fields(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    if (!sk) {
        note(0, 0);
        return 0;
    }
    note(0, 1);
    common_fields(sk);
    return skb->len;
}

/* the flow hash itself, as the return value */
SEC("tc") int flow_hash(struct __sk_buff *skb)
{
    return bpf_get_hash_recalc(skb);
}

/* when the kernel keeps the hash and when it hashes again, as equalities */
SEC("tc") int hash_cache(struct __sk_buff *skb)
{
    __u8 port[2] = {0x11, 0x22}, orig[2];
    __u32 h1 = bpf_get_hash_recalc(skb), h2, h3, h4, h5;
    note(0, h1 != 0);
    note(1, skb->hash == h1);
    if (bpf_skb_load_bytes(skb, 34, orig, 2))       /* the UDP source port */
        return TC_ACT_SHOT;
    bpf_skb_store_bytes(skb, 34, port, 2, 0);
    h2 = bpf_get_hash_recalc(skb);
    note(2, h2 == h1);                       /* kept: nothing cleared it */
    bpf_set_hash_invalid(skb);
    note(3, skb->hash);
    h3 = bpf_get_hash_recalc(skb);
    note(4, h3 == h1);                       /* a new flow's hash */
    bpf_skb_store_bytes(skb, 34, orig, 2, F_INVALIDATE_HASH);
    note(5, skb->hash);
    h4 = bpf_get_hash_recalc(skb);
    note(6, h4 == h1);                       /* the first flow again */
    bpf_set_hash(skb, 7);
    h5 = bpf_get_hash_recalc(skb);
    note(7, h5);
    return TC_ACT_OK;
}

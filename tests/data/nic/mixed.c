/* XDP and TC programs in one object: bpf_redirect means a different thing in each. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int xdp_redirect_flagged(struct xdp_md *ctx) { return bpf_redirect(1, 1); }
SEC("tc") int tc_redirect_flagged(struct __sk_buff *skb) { return bpf_redirect(1, 0x100); }
char LICENSE[] SEC("license") = "GPL";

SEC("tc") int tc_clone(struct __sk_buff *skb)
{
    long a = bpf_clone_redirect(skb, 1, 0);          /* a copy to loopback */
    long b = bpf_clone_redirect(skb, 9999, 0);       /* no such device */
    long c = bpf_clone_redirect(skb, 1, 0x100);      /* a bad flag */
    return (int)(a * 100 + (b == -22) * 10 + (c == -22));
}

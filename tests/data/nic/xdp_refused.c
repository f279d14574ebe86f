/* XDP programs the verifier refuses for their context accesses. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int writes_ctx(struct xdp_md *ctx) { ctx->rx_queue_index = 1; return XDP_PASS; }
SEC("xdp") int narrow_load(struct xdp_md *ctx) { return *(volatile __u16 *)&ctx->ingress_ifindex; }
SEC("xdp") int past_the_end(struct xdp_md *ctx) { return *((volatile __u32 *)ctx + 6); }
SEC("xdp") int egress_outside_devmap(struct xdp_md *ctx) { return ctx->egress_ifindex; }
SEC("xdp/devmap") int egress_in_devmap(struct xdp_md *ctx) { return ctx->egress_ifindex ? XDP_DROP : XDP_PASS; }

char LICENSE[] SEC("license") = "GPL";

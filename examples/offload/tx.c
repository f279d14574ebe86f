/* tx: send every frame straight back out of its port (XDP_TX), as hXDP's XDP_TX
 * microbenchmark does (its artifacts' XDP_TX_early_exit program).               */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int tx(struct xdp_md *ctx)
{
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";

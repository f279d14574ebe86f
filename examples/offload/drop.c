/* drop: XDP_DROP every frame, the programs of the XDP paper's Fig. 3 and of hXDP's
 * XDP_DROP baseline.  Used by targets/calibration/.                       */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int drop(struct xdp_md *ctx)
{
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

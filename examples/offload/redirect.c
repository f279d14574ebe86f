/* redirect: send every frame out of the port in slot 0 of a devmap, as the kernel's
 * xdp_redirect_map sample (hXDP's redirect benchmark) does.                        */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} tx_port SEC(".maps");

SEC("xdp")
int redirect(struct xdp_md *ctx)
{
    return bpf_redirect_map(&tx_port, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";

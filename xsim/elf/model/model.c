/* The kernel struct layouts xsim models, for CO-RE: every struct of the UAPI headers
 * xsim ships, kept in BTF by one global of each type.  tools/gen_model_btf.py compiles
 * this file and keeps its .BTF section as model.btf beside it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>

#define MODEL(type, name) __attribute__((used)) type name

MODEL(struct xdp_md, model_xdp_md);
MODEL(struct __sk_buff, model_sk_buff);
MODEL(struct bpf_sock, model_bpf_sock);
MODEL(struct bpf_sock_tuple, model_bpf_sock_tuple);
MODEL(struct bpf_spin_lock, model_bpf_spin_lock);
MODEL(struct bpf_timer, model_bpf_timer);
MODEL(struct bpf_dynptr, model_bpf_dynptr);
MODEL(struct bpf_perf_event_value, model_bpf_perf_event_value);
MODEL(struct ethhdr, model_ethhdr);
MODEL(struct iphdr, model_iphdr);
MODEL(struct ipv6hdr, model_ipv6hdr);
MODEL(struct in6_addr, model_in6_addr);
MODEL(struct tcphdr, model_tcphdr);
MODEL(struct udphdr, model_udphdr);
MODEL(enum bpf_map_type, model_bpf_map_type);
MODEL(enum bpf_prog_type, model_bpf_prog_type);
MODEL(enum xdp_action, model_xdp_action);

/* The TCP header.  xsim's own text; the layout is the kernel's UAPI (since
 * Linux 6.3, with the AccECN bit ae), the flag bits in the target's bitfield
 * order.
 */
#ifndef _LINUX_TCP_H
#define _LINUX_TCP_H

#include <linux/types.h>

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u16 ae:1, res1:3, doff:4,
	      fin:1, syn:1, rst:1, psh:1, ack:1, urg:1, ece:1, cwr:1;
#else
	__u16 doff:4, res1:3, ae:1,
	      cwr:1, ece:1, urg:1, ack:1, psh:1, rst:1, syn:1, fin:1;
#endif
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

#endif /* _LINUX_TCP_H */

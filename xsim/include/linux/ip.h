/* The IPv4 header.  xsim's own text; the layout is the kernel's UAPI (the
 * 4-bit fields in the target's bitfield order).
 */
#ifndef _LINUX_IP_H
#define _LINUX_IP_H

#include <linux/types.h>

#define IPVERSION	4
#define MAXTTL		255

struct iphdr {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u8 ihl:4, version:4;
#else
	__u8 version:4, ihl:4;
#endif
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	union {	/* the addresses, also as one member (addrs) */
		struct {
			__be32 saddr;
			__be32 daddr;
		};
		struct {
			__be32 saddr;
			__be32 daddr;
		} addrs;
	};
};

#endif /* _LINUX_IP_H */

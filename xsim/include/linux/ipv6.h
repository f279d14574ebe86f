/* The IPv6 header.  xsim's own text; the layout is the kernel's UAPI (the
 * 4-bit fields in the target's bitfield order).
 */
#ifndef _LINUX_IPV6_H
#define _LINUX_IPV6_H

#include <linux/types.h>
#include <linux/in6.h>

struct ipv6hdr {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u8 priority:4, version:4;
#else
	__u8 version:4, priority:4;
#endif
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	union {	/* the addresses, also as one member (addrs) */
		struct {
			struct in6_addr saddr;
			struct in6_addr daddr;
		};
		struct {
			struct in6_addr saddr;
			struct in6_addr daddr;
		} addrs;
	};
};

#endif /* _LINUX_IPV6_H */

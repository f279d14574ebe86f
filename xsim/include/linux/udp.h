/* The UDP header.  xsim's own text; the layout is the kernel's UAPI. */
#ifndef _LINUX_UDP_H
#define _LINUX_UDP_H

#include <linux/types.h>

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

#endif /* _LINUX_UDP_H */

/* What a BPF program written against libbpf's conventions needs from
 * <bpf/bpf_helpers.h>: section and map-definition macros, attributes,
 * bpf_printk, and every helper (bpf_helper_defs.h).  xsim's own text.
 */
#ifndef __XSIM_BPF_HELPERS_H
#define __XSIM_BPF_HELPERS_H

#include "bpf_helper_defs.h"

/* Put a program, map or variable in ELF section `name` (the loader reads the
 * program type from it: SEC("xdp"), SEC("tc"), SEC(".maps"), SEC("license")). */
#define SEC(name)	__attribute__((section(name), used))

/* Members of a BTF map definition (struct { ... } name SEC(".maps")): the
 * loader reads each value from the member's BTF type, not from memory. */
#define __uint(name, val)	int (*name)[val]
#define __type(name, val)	__typeof__(val) *name
#define __array(name, val)	__typeof__(val) *name[]

/* pinning: LIBBPF_PIN_BY_NAME pins the map under its name. */
enum libbpf_pin_type {
	LIBBPF_PIN_NONE = 0,
	LIBBPF_PIN_BY_NAME = 1,
};

#undef __always_inline
#define __always_inline	inline __attribute__((always_inline))
#ifndef __noinline
#define __noinline	__attribute__((noinline))
#endif
#ifndef __weak
#define __weak		__attribute__((weak))
#endif
#define __hidden	__attribute__((visibility("hidden")))
#define __section(name)	__attribute__((section(name)))

/* extern variables the loader resolves: kernel symbols and Kconfig values. */
#define __ksym		__attribute__((section(".ksyms")))
#define __kconfig	__attribute__((section(".kconfig")))

#ifndef NULL
#define NULL		((void *)0)
#endif
#ifndef offsetof
#define offsetof(type, member)	__builtin_offsetof(type, member)
#endif

/* A compiler barrier: no memory access moves across it. */
#define barrier()	__asm__ __volatile__("" ::: "memory")

#ifndef likely
#define likely(x)	__builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x)	__builtin_expect(!!(x), 0)
#endif

/* printf-style tracing through bpf_trace_printk (at most three arguments):
 * the format is a read-only array (.rodata), its size includes the NUL. */
#define bpf_printk(fmt, ...)						\
	({								\
		static const char __xsim_fmt[] = fmt;			\
		bpf_trace_printk(__xsim_fmt, sizeof(__xsim_fmt),	\
				 ##__VA_ARGS__);			\
	})

#endif /* __XSIM_BPF_HELPERS_H */

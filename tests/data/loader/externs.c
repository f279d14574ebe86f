/* Loader test object: __kconfig and __ksym externs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern const void bpf_prog_active __ksym;
SEC("syscall") int p(void *ctx) { return LINUX_KERNEL_VERSION + CONFIG_HZ + CONFIG_BPF_SYSCALL + CONFIG_LOCALVERSION[0]; }
SEC("syscall") int q(void *ctx) { return *(const volatile int *)&bpf_prog_active; }
char LICENSE[] SEC("license") = "GPL";

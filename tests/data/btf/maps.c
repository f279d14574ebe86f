/* BTF test input: BTF-defined maps, the libbpf way (macros defined here). */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
#define SEC(n) __attribute__((section(n), used))

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PROG_ARRAY 3
#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_F_NO_PREALLOC 1
#define LIBBPF_PIN_BY_NAME 1

struct key { unsigned int saddr; unsigned short port; unsigned short pad; };
struct val { unsigned long long packets; unsigned long long bytes; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct key);
	__type(value, struct val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 16);
	__uint(max_entries, 8);
} stats SEC(".maps");

struct inner_map_def {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, long long);
};

struct inner_map_def inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, int);
	__array(values, struct inner_map_def);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a },
};

SEC("xdp") int tail(void *ctx) { return 2; }

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, unsigned int);
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail },
};

SEC("xdp") int entry(void *ctx) { return 0; }

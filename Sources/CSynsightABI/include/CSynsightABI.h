#ifndef CSYNSIGHT_ABI_MODULE_H
#define CSYNSIGHT_ABI_MODULE_H
/* Swift sees the kernel<->user records through this header: the layouts are
 * defined once, in bpf/synsight_abi.h, and shared with the BPF programs. */
#include "../../../bpf/synsight_abi.h"
#endif

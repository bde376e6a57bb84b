#ifndef CSYNSIGHT_FUZZ_H
#define CSYNSIGHT_FUZZ_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (compiler-rt FuzzerInterface.h): runs the fuzzing loop
// with argv's options, calling `callback` with each input. Linked only into
// the fuzz build (scripts/fuzz.sh); the normal build never calls it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

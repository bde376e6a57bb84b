// Declarations only (see include/CSynsightFuzz.h); SwiftPM needs a source file.
#include "CSynsightFuzz.h"

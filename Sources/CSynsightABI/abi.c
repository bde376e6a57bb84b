/* Intentionally empty: CSynsightABI is a header-only module (SwiftPM needs a
 * source file in a C target). */
#include "CSynsightABI.h"

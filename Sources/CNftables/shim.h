#ifndef CNFTABLES_SHIM_H
#define CNFTABLES_SHIM_H
/* libnftables (Debian: libnftables-dev): the ruleset of a network namespace
 * read in-process, as `nft -j list ruleset` would print it. */
#include <nftables/libnftables.h>
#endif

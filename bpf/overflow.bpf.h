/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: overflow programs, included by refusals.bpf.c (shares its maps and helpers). */
#pragma once

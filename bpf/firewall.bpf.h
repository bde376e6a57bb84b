/* SPDX-License-Identifier: GPL-2.0 */
/* synsight: firewall programs, included by refusals.bpf.c (shares its maps and helpers). */
#pragma once

#ifndef CSYNSIGHT_ZLIB_H
#define CSYNSIGHT_ZLIB_H

// zlib for gzip-compressed recordings (`record --compress`, `report` on
// *.jsonl.gz). deflateInit2/inflateInit2 are macros that pass the library
// version and sizeof(z_stream), so Swift cannot call them: these wrappers do.
#include <zlib.h>

// windowBits 31 = 15 (32 KiB window) + 16: write a gzip header and trailer.
#define SYNSIGHT_GZIP_WINDOW_BITS 31

// A gzip (RFC 1952) compressor at `level` (0-9, or Z_DEFAULT_COMPRESSION).
int synsight_deflate_init_gzip(z_stream *stream, int level);

// A gzip-only decompressor (a zlib or raw deflate stream is a data error).
int synsight_inflate_init_gzip(z_stream *stream);

#endif

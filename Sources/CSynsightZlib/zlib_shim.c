#include "CSynsightZlib.h"

int synsight_deflate_init_gzip(z_stream *stream, int level) {
    // memLevel 8 is zlib's default (about 256 KiB of state with the window).
    return deflateInit2(stream, level, Z_DEFLATED, SYNSIGHT_GZIP_WINDOW_BITS, 8, Z_DEFAULT_STRATEGY);
}

int synsight_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, SYNSIGHT_GZIP_WINDOW_BITS);
}

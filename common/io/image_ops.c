/* image_ops: DecodeJpeg and DecodePng through libjpeg and libpng (see image_ops.h). */
#include "image_ops.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "op.h"
#include "ops.h"
#include "pbwire.h"

/* libjpeg reports errors by calling error_exit; ours jumps back instead of exiting. */
typedef struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void jerr_exit(j_common_ptr ci) {
    jerr *e = (jerr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jump, 1);
}

static void jerr_quiet(j_common_ptr ci, int level) { (void)ci, (void)level; }

/* Decoded images of 2^29 bytes or more are refused before anything is allocated, as
 * TensorFlow's decoders do ("Image too large"): a few bytes of header can claim any size. */
#define IMAGE_MAX_BYTES ((uint64_t)1 << 29)

static int too_large(pst_kernel_ctx *c, const char *kind, uint64_t h, uint64_t w, int channels) {
    if (h * w * (uint64_t)channels < IMAGE_MAX_BYTES) return 0;
    return pst_kctx_error(c, PST_E_INVALID, "%s image too large: %llu x %llu x %d bytes (the "
                          "limit is %llu)", kind, (unsigned long long)h, (unsigned long long)w,
                          channels, (unsigned long long)IMAGE_MAX_BYTES);
}

/* Decodes a JPEG string (channels 0, 1 or 3; ratio 1, 2, 4, 8); with crop (y, x, h, w) only that
 * window of the decoded image is kept (DecodeAndCropJpeg), with shape_only only [h, w, c] is
 * read from the header (ExtractJpegShape: *dims set, no tensor). */
static pst_tensor *jpeg_decode(pst_kernel_ctx *c, const pst_tstring *s, int channels_req,
                               int ratio, const int64_t *crop, int64_t *dims) {
    volatile int channels = channels_req;
    struct jpeg_decompress_struct ci;
    jerr e;
    pst_tensor *volatile out = NULL;
    uint8_t *volatile rowbuf = NULL;
    ci.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    e.mgr.emit_message = jerr_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&ci);
        pst_tensor_unref(out);
        free(rowbuf);
        pst_kctx_error(c, PST_E_INVALID, "invalid JPEG data (%zu bytes): %s", s->len, e.msg);
        return NULL;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, (const unsigned char *)(s->p ? s->p : ""), (unsigned long)s->len);
    jpeg_read_header(&ci, TRUE);
    int stored = ci.num_components;
    if (dims) { /* the header's shape */
        dims[0] = ci.image_height;
        dims[1] = ci.image_width;
        dims[2] = stored;
        jpeg_destroy_decompress(&ci);
        return NULL;
    }
    if (channels == 0) channels = stored == 1 ? 1 : 3;
    ci.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    ci.scale_num = 1;
    ci.scale_denom = (unsigned)ratio;
    jpeg_calc_output_dimensions(&ci);
    int64_t H = ci.output_height, W = ci.output_width, y0 = 0, x0 = 0, h = H, w = W;
    if (crop) {
        y0 = crop[0], x0 = crop[1], h = crop[2], w = crop[3];
        if (y0 < 0 || x0 < 0 || h <= 0 || w <= 0 || y0 + h > H || x0 + w > W) {
            jpeg_destroy_decompress(&ci);
            pst_kctx_error(c, PST_E_INVALID, "crop window [y %lld, x %lld, height %lld, width "
                           "%lld] is not inside the %lld x %lld JPEG image", (long long)y0,
                           (long long)x0, (long long)h, (long long)w, (long long)H, (long long)W);
            return NULL;
        }
    }
    if (too_large(c, "JPEG", (uint64_t)H, (uint64_t)W, channels) < 0) {
        jpeg_destroy_decompress(&ci);
        return NULL;
    }
    jpeg_start_decompress(&ci);
    pst_shape sh = pst_shape_make(3, (int64_t[]){h, w, channels});
    out = pst_tensor_new(PST_UINT8, sh, c->status);
    size_t row = (size_t)W * (size_t)channels, orow = (size_t)w * (size_t)channels;
    if (crop) rowbuf = malloc(row ? row : 1);
    if (out == NULL || (crop && !rowbuf)) {
        jpeg_destroy_decompress(&ci);
        pst_tensor_unref(out);
        free(rowbuf);
        if (!c->status->code) pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory decoding a JPEG");
        return NULL;
    }
    while (ci.output_scanline < ci.output_height) {
        int64_t y = ci.output_scanline;
        if (!crop) {
            JSAMPROW r = pst_tensor_u8(out) + (size_t)y * row;
            jpeg_read_scanlines(&ci, &r, 1);
            continue;
        }
        JSAMPROW r = rowbuf;
        jpeg_read_scanlines(&ci, &r, 1);
        if (y >= y0 && y < y0 + h)
            memcpy(pst_tensor_u8(out) + (size_t)(y - y0) * orow,
                   rowbuf + (size_t)x0 * (size_t)channels, orow);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(rowbuf);
    return out;
}

static int jpeg_args(pst_kernel_ctx *c, const pst_tstring **s, int *channels, int *ratio) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    *s = pst_tensor_str(in);
    *channels = (int)pst_kctx_attr_i(c, "channels", 0);
    *ratio = (int)pst_kctx_attr_i(c, "ratio", 1);
    if (*channels != 0 && *channels != 1 && *channels != 3)
        return pst_kctx_error(c, PST_E_INVALID, "channels must be 0, 1 or 3, not %d", *channels);
    if (*ratio != 1 && *ratio != 2 && *ratio != 4 && *ratio != 8)
        return pst_kctx_error(c, PST_E_INVALID, "ratio must be 1, 2, 4 or 8, not %d", *ratio);
    return 0;
}

static int decode_jpeg_kernel(pst_kernel_ctx *c) {
    const pst_tstring *s = NULL;
    int channels = 0, ratio = 1;
    if (jpeg_args(c, &s, &channels, &ratio) < 0) return c->status->code;
    int64_t crop[4];
    if (c->n_inputs > 1) { /* DecodeAndCropJpeg: crop_window int32 [y, x, height, width] */
        const pst_tensor *cw = c->inputs[1];
        if (cw->dtype != PST_INT32 || cw->shape.rank != 1 || cw->n != 4)
            return pst_kctx_error(c, PST_E_INVALID, "crop_window must be an int32 vector of 4 "
                                  "([y, x, height, width])");
        for (int i = 0; i < 4; i++) crop[i] = pst_tensor_i32((pst_tensor *)cw)[i];
    }
    pst_tensor *out = jpeg_decode(c, s, channels, ratio, c->n_inputs > 1 ? crop : NULL, NULL);
    if (!out) return c->status->code;
    pst_kctx_set_output(c, 0, out);
    return 0;
}

/* ExtractJpegShape: [height, width, channels] from the header, int32 or int64. */
static int jpeg_shape_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    int64_t d[3];
    jpeg_decode(c, pst_tensor_str(in), 0, 1, NULL, d); /* reads the header only */
    if (c->status->code) return c->status->code;
    pst_dtype dt = pst_kctx_attr_type(c, "output_type", PST_INT32);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dt, pst_shape_1d(3));
    if (!o) return c->status->code;
    for (int i = 0; i < 3; i++) {
        if (dt == PST_INT64) pst_tensor_i64(o)[i] = d[i];
        else pst_tensor_i32(o)[i] = (int32_t)d[i];
    }
    return 0;
}

static int decode_png_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    const pst_tstring *s = pst_tensor_str(in);
    int channels = (int)pst_kctx_attr_i(c, "channels", 0);
    if (channels < 0 || channels > 4)
        return pst_kctx_error(c, PST_E_INVALID, "channels must be 0 to 4, not %d", channels);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, s->p ? s->p : "", s->len))
        return pst_kctx_error(c, PST_E_INVALID, "invalid PNG data (%zu bytes): %s", s->len,
                              im.message);
    static const png_uint_32 formats[5] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB,
                                           PNG_FORMAT_RGBA};
    if (channels == 0) channels = (int)PNG_IMAGE_SAMPLE_CHANNELS(im.format);
    im.format = formats[channels];
    if (too_large(c, "PNG", im.height, im.width, channels) < 0) {
        png_image_free(&im);
        return c->status->code;
    }
    pst_shape sh = pst_shape_make(3, (int64_t[]){im.height, im.width, channels});
    pst_tensor *out = pst_tensor_new(PST_UINT8, sh, c->status);
    if (out == NULL) {
        png_image_free(&im);
        return c->status->code;
    }
    if (!png_image_finish_read(&im, NULL, out->data, 0, NULL)) {
        pst_tensor_unref(out);
        return pst_kctx_error(c, PST_E_INVALID, "invalid PNG data: %s", im.message);
    }
    pst_kctx_set_output(c, 0, out);
    return 0;
}

/* DecodeBmp (TF 1.15's): uncompressed 8, 24 or 32 bits per pixel, BGR(A) stored as RGB(A),
 * bottom-up rows unless the height is negative; channels 0 or the file's. */
static int decode_bmp_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    const pst_tstring *s = pst_tensor_str(in);
    const uint8_t *b = (const uint8_t *)(s->p ? s->p : "");
    int want = (int)pst_kctx_attr_i(c, "channels", 0);
    if (want != 0 && want != 1 && want != 3 && want != 4)
        return pst_kctx_error(c, PST_E_INVALID, "channels must be 0, 1, 3 or 4, not %d", want);
    if (s->len < 34 || b[0] != 'B' || b[1] != 'M')
        return pst_kctx_error(c, PST_E_INVALID, "invalid BMP data (%zu bytes): no BMP header",
                              s->len);
    uint32_t offset = pst_pbwire_le32(b + 10), compression = pst_pbwire_le32(b + 30);
    int64_t width = (int32_t)pst_pbwire_le32(b + 18), height = (int32_t)pst_pbwire_le32(b + 22);
    int bpp = b[28] | b[29] << 8;
    int channels = bpp / 8;
    if (bpp % 8 || (channels != 1 && channels != 3 && channels != 4))
        return pst_kctx_error(c, PST_E_INVALID, "BMP of %d bits per pixel (8, 24 or 32 are "
                              "supported)", bpp);
    if (compression != 0 && !(compression == 3 && channels == 4))
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "compressed BMP (compression %u) is not "
                              "supported", compression);
    if (want != 0 && want != channels)
        return pst_kctx_error(c, PST_E_INVALID, "channels attribute %d does not match the %d "
                              "channels of the BMP's %d bits per pixel", want, channels, bpp);
    int top_down = height < 0;
    int64_t h = top_down ? -height : height;
    if (width <= 0 || h <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "BMP of %lld x %lld pixels", (long long)h,
                              (long long)width);
    if (too_large(c, "BMP", (uint64_t)h, (uint64_t)width, channels) < 0) return c->status->code;
    uint64_t row = ((uint64_t)width * (uint64_t)bpp + 31) / 32 * 4;
    if (offset > s->len || row * (uint64_t)h > s->len - offset)
        return pst_kctx_error(c, PST_E_INVALID, "invalid BMP data: %llu x %lld pixels need %llu "
                              "bytes after offset %u, the data has %zu", (unsigned long long)width,
                              (long long)h, (unsigned long long)(row * (uint64_t)h), offset,
                              s->len);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_UINT8,
                                          pst_shape_make(3, (int64_t[]){h, width, channels}));
    if (!o) return c->status->code;
    uint8_t *dst = pst_tensor_u8(o);
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *src = b + offset + (uint64_t)(top_down ? y : h - 1 - y) * row;
        uint8_t *d = dst + (size_t)y * (size_t)width * (size_t)channels;
        for (int64_t x = 0; x < width; x++, src += channels, d += channels) {
            if (channels == 1) {
                d[0] = src[0];
                continue;
            }
            d[0] = src[2], d[1] = src[1], d[2] = src[0];
            if (channels == 4) d[3] = src[3];
        }
    }
    return 0;
}

/* ---- DecodeGif --------------------------------------------------------------------------
 * Every frame of a GIF87a/89a as uint8 [frames, height, width, 3] (TF 1.15's compositing): frame
 * k starts as a copy of frame k - 1 (the first as black), its image's pixels are painted over
 * the canvas within the screen, pixels of the frame's transparent color (its graphic control
 * extension) keep the canvas's; local color table, else the global one; interlaced images are
 * put back in row order. Bad data is an error naming the fault. */
typedef struct gif_in {
    const uint8_t *p;
    size_t len, at;
} gif_in;

static int gif_byte(gif_in *g) { return g->at < g->len ? g->p[g->at++] : -1; }

static int gif_u16(gif_in *g) {
    int a = gif_byte(g), b = gif_byte(g);
    return a < 0 || b < 0 ? -1 : a | b << 8;
}

/* Skips data sub-blocks up to their terminator; 0 or -1 when the data ends first. */
static int gif_skip_blocks(gif_in *g) {
    for (;;) {
        int n = gif_byte(g);
        if (n < 0) return -1;
        if (n == 0) return 0;
        if (g->len - g->at < (size_t)n) return -1;
        g->at += (size_t)n;
    }
}

/* LZW-decodes an image's sub-blocks into out (n pixels; a short stream leaves zeros, as
 * decoders commonly tolerate). Returns 0, or -1 with why set. */
static int gif_lzw(gif_in *g, uint8_t *out, size_t n, const char **why) {
    int min = gif_byte(g);
    if (min < 1 || min > 11) {
        *why = "an LZW minimum code size outside 1-11";
        return -1;
    }
    static __thread uint16_t prefix[4096];
    static __thread uint8_t suffix[4096], first[4096], stack[4097];
    int clear = 1 << min, eoi = clear + 1, next = clear + 2, size = min + 1, prev = -1;
    for (int i = 0; i < clear; i++) suffix[i] = first[i] = (uint8_t)i;
    uint32_t bits = 0;
    int nbits = 0, block = 0, done = 0;
    size_t w = 0;
    while (!done) {
        while (nbits < size) { /* next byte from the sub-blocks */
            if (block == 0) {
                block = gif_byte(g);
                if (block <= 0) { /* terminator or end of data without an end code */
                    if (block < 0) {
                        *why = "image data ends inside its blocks";
                        return -1;
                    }
                    return 0;
                }
            }
            int b = gif_byte(g);
            if (b < 0) {
                *why = "image data ends inside its blocks";
                return -1;
            }
            block--;
            bits |= (uint32_t)b << nbits;
            nbits += 8;
        }
        int code = (int)(bits & ((1u << size) - 1));
        bits >>= size;
        nbits -= size;
        if (code == clear) {
            next = clear + 2, size = min + 1, prev = -1;
            continue;
        }
        if (code == eoi) {
            done = 1;
            break;
        }
        int sp = 0, c = code;
        if (prev < 0) {
            if (code >= clear) {
                *why = "an LZW code before any string";
                return -1;
            }
        } else if (code > next || (code == next && next >= 4096)) {
            *why = "an LZW code out of sequence";
            return -1;
        }
        if (prev >= 0 && code == next) { /* the KwKwK case */
            stack[sp++] = first[prev];
            c = prev;
        }
        while (c >= clear) {
            stack[sp++] = suffix[c];
            c = prefix[c];
        }
        stack[sp++] = (uint8_t)c;
        if (prev >= 0 && next < 4096) {
            prefix[next] = (uint16_t)prev;
            suffix[next] = (uint8_t)c;
            first[next] = first[prev];
            next++;
            if (next == (1 << size) && size < 12) size++;
        }
        prev = code;
        while (sp > 0 && w < n) out[w++] = stack[--sp];
    }
    return gif_skip_blocks(g) < 0 ? (*why = "image data ends inside its blocks", -1) : 0;
}

static int decode_gif_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    const pst_tstring *s = pst_tensor_str(in);
    gif_in g = {(const uint8_t *)(s->p ? s->p : ""), s->len, 0};
    if (g.len < 13 || (memcmp(g.p, "GIF87a", 6) && memcmp(g.p, "GIF89a", 6)))
        return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data (%zu bytes): no GIF header",
                              s->len);
    g.at = 6;
    int W = gif_u16(&g), H = gif_u16(&g), packed = gif_byte(&g);
    g.at += 2; /* background color, aspect */
    const uint8_t *gct = NULL;
    int gct_n = 0;
    if (packed & 0x80) {
        gct_n = 2 << (packed & 7);
        if (g.len - g.at < (size_t)gct_n * 3)
            return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data: the global color table "
                                  "is cut short");
        gct = g.p + g.at;
        g.at += (size_t)gct_n * 3;
    }
    if (W <= 0 || H <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data: a %d x %d screen", W, H);
    /* first pass: count the frames */
    size_t start = g.at;
    int frames = 0;
    const char *why = NULL;
    for (int done = 0; !done && !why;) {
        int b = gif_byte(&g);
        if (b == 0x3B || b < 0) {
            done = 1;
        } else if (b == 0x21) {
            if (gif_byte(&g) < 0 || gif_skip_blocks(&g) < 0) why = "an extension is cut short";
        } else if (b == 0x2C) {
            g.at += 8;
            int pk = gif_byte(&g);
            if (pk < 0) {
                why = "an image descriptor is cut short";
                break;
            }
            if (pk & 0x80) g.at += (size_t)(2 << (pk & 7)) * 3;
            if (g.at >= g.len || (g.at++, gif_skip_blocks(&g) < 0)) why = "image data is cut short";
            else frames++;
        } else {
            why = "an unknown block";
        }
    }
    if (why) return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data: %s", why);
    if (frames == 0)
        return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data: the file holds no image");
    if (too_large(c, "GIF", (uint64_t)frames * (uint64_t)H, (uint64_t)W, 3) < 0)
        return c->status->code;
    size_t frame_bytes = (size_t)H * (size_t)W * 3;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_UINT8,
                                          pst_shape_make(4, (int64_t[]){frames, H, W, 3}));
    if (!o) return c->status->code;
    uint8_t *dst = pst_tensor_u8(o);
    memset(dst, 0, frame_bytes);
    uint8_t *idx = NULL;
    g.at = start;
    int transparent = -1, k = 0;
    while (k < frames) {
        int b = gif_byte(&g);
        if (b == 0x21) {
            int label = gif_byte(&g);
            if (label == 0xF9 && g.len - g.at >= 6 && g.p[g.at] >= 4) {
                transparent = (g.p[g.at + 1] & 1) ? g.p[g.at + 4] : -1;
            }
            gif_skip_blocks(&g);
            continue;
        }
        if (b != 0x2C) break; /* checked above */
        int L = gif_u16(&g), T = gif_u16(&g), iw = gif_u16(&g), ih = gif_u16(&g);
        int pk = gif_byte(&g);
        const uint8_t *ct = gct;
        int ct_n = gct_n;
        if (pk & 0x80) {
            ct_n = 2 << (pk & 7);
            ct = g.p + g.at;
            g.at += (size_t)ct_n * 3;
        }
        uint8_t *fr = dst + (size_t)k * frame_bytes;
        if (k > 0) memcpy(fr, fr - frame_bytes, frame_bytes);
        size_t npx = (size_t)iw * (size_t)ih;
        if (too_large(c, "GIF frame", (uint64_t)ih, (uint64_t)iw, 3) < 0) {
            free(idx);
            return c->status->code;
        }
        free(idx);
        idx = calloc(npx ? npx : 1, 1);
        if (!idx) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory decoding a GIF");
        if (gif_lzw(&g, idx, npx, &why) < 0) break;
        if (!ct) {
            why = "a frame without a color table";
            break;
        }
        for (int y = 0; y < ih && !why; y++) {
            int row = y; /* interlaced: rows 0, 8, ..., then 4, 12, ..., 2, 6, ..., 1, 3, ... */
            if (pk & 0x40) {
                int n1 = (ih + 7) / 8, n2 = (ih + 3) / 8, n3 = (ih + 1) / 4;
                row = y < n1 ? y * 8 : y < n1 + n2 ? (y - n1) * 8 + 4
                      : y < n1 + n2 + n3 ? (y - n1 - n2) * 4 + 2 : (y - n1 - n2 - n3) * 2 + 1;
            }
            int cy = T + row;
            if (cy < 0 || cy >= H) continue;
            for (int x = 0; x < iw; x++) {
                int cx = L + x, ci = idx[(size_t)y * (size_t)iw + (size_t)x];
                if (cx >= W) break;
                if (ci >= ct_n) {
                    why = "a color index outside the color table";
                    break;
                }
                if (ci == transparent) continue;
                uint8_t *p = fr + ((size_t)cy * (size_t)W + (size_t)cx) * 3;
                memcpy(p, ct + ci * 3, 3);
            }
        }
        if (why) break;
        transparent = -1; /* a control extension applies to the image after it */
        k++;
    }
    free(idx);
    if (why || k < frames)
        return pst_kctx_error(c, PST_E_INVALID, "invalid GIF data: %s (frame %d)",
                              why ? why : "an unknown block", k);
    return 0;
}

static int gif_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (contents) is not a string tensor");
    pst_node_set_output(n, 0, PST_UINT8, pst_shape_make(4, (int64_t[]){-1, -1, -1, 3}));
    return 0;
}

static int encode_args(pst_kernel_ctx *c, const char *what, int jpeg, int *h, int *w, int *ch) {
    const pst_tensor *im = c->inputs[0];
    if (im->dtype != PST_UINT8)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "%s encodes uint8 images, not %s", what,
                              pst_dtype_name(im->dtype));
    if (im->shape.rank != 3)
        return pst_kctx_error(c, PST_E_INVALID, "image must be 3-D [height, width, channels]");
    int64_t ch64 = im->shape.dims[2];
    if (jpeg ? (ch64 != 1 && ch64 != 3) : (ch64 < 1 || ch64 > 4))
        return pst_kctx_error(c, PST_E_INVALID, "%s: %lld channels (%s)", what, (long long)ch64,
                              jpeg ? "1 or 3" : "1 to 4");
    if (im->shape.dims[0] >= (1 << 24) || im->shape.dims[1] >= (1 << 24))
        return pst_kctx_error(c, PST_E_INVALID, "%s: image of %lld x %lld pixels is too large",
                              what, (long long)im->shape.dims[0], (long long)im->shape.dims[1]);
    *h = (int)im->shape.dims[0], *w = (int)im->shape.dims[1], *ch = (int)ch64;
    return 0;
}

static int put_string(pst_kernel_ctx *c, const void *p, size_t len) {
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_STRING, pst_shape_scalar());
    if (!o) return c->status->code;
    if (pst_tstring_set(pst_tensor_str(o), p, len) < 0)
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory for a %zu-byte image", len);
    return 0;
}

/* EncodePng: uint8 images of 1-4 channels (libpng's default compression). */
static int encode_png_kernel(pst_kernel_ctx *c) {
    int h = 0, w = 0, ch = 0;
    if (encode_args(c, "EncodePng", 0, &h, &w, &ch) < 0) return c->status->code;
    if (h == 0 || w == 0)
        return pst_kctx_error(c, PST_E_INVALID, "EncodePng: an empty %d x %d image", h, w);
    static const png_uint_32 formats[5] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB,
                                           PNG_FORMAT_RGBA};
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = formats[ch];
    png_alloc_size_t size = 0;
    const void *px = c->inputs[0]->data;
    if (!png_image_write_to_memory(&im, NULL, &size, 0, px, 0, NULL))
        return pst_kctx_error(c, PST_E_INTERNAL, "EncodePng: %s", im.message);
    void *buf = malloc(size ? size : 1);
    if (!buf) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory for a PNG");
    int rc = 0;
    if (!png_image_write_to_memory(&im, buf, &size, 0, px, 0, NULL))
        rc = pst_kctx_error(c, PST_E_INTERNAL, "EncodePng: %s", im.message);
    else
        rc = put_string(c, buf, size);
    free(buf);
    return rc;
}

/* EncodeJpeg: format "" (by channels), "grayscale" or "rgb"; quality 0-100 (95), progressive,
 * optimize_size, chroma_downsampling (4:2:0, else 4:4:4), density_unit "in"/"cm" with
 * x_density / y_density (300). */
static int encode_jpeg_kernel(pst_kernel_ctx *c) {
    int h0 = 0, w0 = 0, ch0 = 0;
    if (encode_args(c, "EncodeJpeg", 1, &h0, &w0, &ch0) < 0) return c->status->code;
    volatile int h = h0, w = w0, ch = ch0; /* live across setjmp */
    const char *format = pst_kctx_attr_s(c, "format", "");
    if ((!strcmp(format, "grayscale") && ch != 1) || (!strcmp(format, "rgb") && ch != 3) ||
        (*format && strcmp(format, "grayscale") && strcmp(format, "rgb")))
        return pst_kctx_error(c, PST_E_INVALID, "EncodeJpeg: format '%s' does not fit %d "
                              "channels", format, ch);
    int quality = (int)pst_kctx_attr_i(c, "quality", 95);
    if (quality < 0 || quality > 100)
        return pst_kctx_error(c, PST_E_INVALID, "EncodeJpeg: quality %d is not in [0, 100]",
                              quality);
    if (h == 0 || w == 0)
        return pst_kctx_error(c, PST_E_INVALID, "EncodeJpeg: an empty %d x %d image", h, w);
    const char *unit = pst_kctx_attr_s(c, "density_unit", "in");
    struct jpeg_compress_struct ci;
    jerr e;
    unsigned char *volatile mem = NULL;
    unsigned long size = 0;
    ci.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    e.mgr.emit_message = jerr_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&ci);
        free(mem);
        return pst_kctx_error(c, PST_E_INTERNAL, "EncodeJpeg: %s", e.msg);
    }
    jpeg_create_compress(&ci);
    unsigned char *m = NULL;
    jpeg_mem_dest(&ci, &m, &size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = ch;
    ci.in_color_space = ch == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    if (pst_kctx_attr_b(c, "progressive", 0)) jpeg_simple_progression(&ci);
    ci.optimize_coding = pst_kctx_attr_b(c, "optimize_size", 0) ? TRUE : FALSE;
    if (ch == 3 && !pst_kctx_attr_b(c, "chroma_downsampling", 1))
        for (int i = 0; i < ci.num_components; i++)
            ci.comp_info[i].h_samp_factor = ci.comp_info[i].v_samp_factor = 1;
    ci.density_unit = strcmp(unit, "cm") == 0 ? 2 : 1;
    ci.X_density = (UINT16)pst_kctx_attr_i(c, "x_density", 300);
    ci.Y_density = (UINT16)pst_kctx_attr_i(c, "y_density", 300);
    jpeg_start_compress(&ci, TRUE);
    const uint8_t *px = c->inputs[0]->data;
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)ch);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    mem = m;
    jpeg_destroy_compress(&ci);
    int rc = put_string(c, mem, size);
    free(mem);
    return rc;
}

int pst_image_write(const char *path, int jpeg, const uint8_t *px, int h, int w, int c,
                    pst_status *st) {
    if (!jpeg) {
        png_image im;
        memset(&im, 0, sizeof im);
        im.version = PNG_IMAGE_VERSION;
        im.width = (png_uint_32)w;
        im.height = (png_uint_32)h;
        im.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
        if (!png_image_write_to_file(&im, path, 0, px, 0, NULL))
            return pst_status_set(st, PST_E_IO, "cannot write %s: %s", path, im.message);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    struct jpeg_compress_struct ci;
    jerr e;
    ci.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&ci);
        fclose(f);
        return pst_status_set(st, PST_E_IO, "cannot write %s: %s", path, e.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)c);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    if (fclose(f) != 0) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    return 0;
}

static int image_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (contents) is not a string tensor");
    int64_t ch = pst_node_attr_i(n, "channels", 0);
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_UINT8);
    if (dt != PST_UINT8)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "only uint8 images are supported");
    pst_node_set_output(n, 0, PST_UINT8, pst_shape_make(3, (int64_t[]){-1, -1, ch ? ch : -1}));
    return 0;
}

static int encode_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    if (x.rank >= 0 && x.rank != 3)
        return pst_status_set(st, PST_E_INVALID, "image must be 3-D [height, width, channels]");
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int jpeg_shape_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (contents) is not a string tensor");
    pst_dtype dt = pst_node_attr_type(n, "output_type", PST_INT32);
    if (dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "output_type must be int32 or int64");
    pst_node_set_output(n, 0, dt, pst_shape_1d(3));
    return 0;
}

static const pst_attr_spec jpeg_attrs[] = {
    {"channels", PST_ATTR_INT, 0},          {"ratio", PST_ATTR_INT, 0},
    {"fancy_upscaling", PST_ATTR_BOOL, 0},  {"try_recover_truncated", PST_ATTR_BOOL, 0},
    {"acceptable_fraction", PST_ATTR_FLOAT, 0}, {"dct_method", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec png_attrs[] = {{"channels", PST_ATTR_INT, 0},
                                          {"dtype", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec bmp_attrs[] = {{"channels", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec epng_attrs[] = {{"compression", PST_ATTR_INT, 0},
                                           {"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec ejpeg_attrs[] = {
    {"format", PST_ATTR_STRING, 0},        {"quality", PST_ATTR_INT, 0},
    {"progressive", PST_ATTR_BOOL, 0},     {"optimize_size", PST_ATTR_BOOL, 0},
    {"chroma_downsampling", PST_ATTR_BOOL, 0}, {"density_unit", PST_ATTR_STRING, 0},
    {"x_density", PST_ATTR_INT, 0},        {"y_density", PST_ATTR_INT, 0},
    {"xmp_metadata", PST_ATTR_STRING, 0},  {0}};
static const pst_attr_spec jshape_attrs[] = {{"output_type", PST_ATTR_TYPE, 0}, {0}};

static const pst_op_def image_ops[] = {
    {.name = "DecodeJpeg", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = jpeg_attrs, .shape = image_shape, .kernel = decode_jpeg_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodePng", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = png_attrs,
     .shape = image_shape, .kernel = decode_png_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodeAndCropJpeg", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = jpeg_attrs, .shape = image_shape, .kernel = decode_jpeg_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ExtractJpegShape", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = jshape_attrs, .shape = jpeg_shape_shape, .kernel = jpeg_shape_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodeGif", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = gif_shape, .kernel = decode_gif_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodeBmp", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = bmp_attrs,
     .shape = image_shape, .kernel = decode_bmp_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "EncodePng", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = epng_attrs,
     .shape = encode_shape, .kernel = encode_png_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "EncodeJpeg", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = ejpeg_attrs, .shape = encode_shape, .kernel = encode_jpeg_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_image_ops(void) {
    for (size_t i = 0; i < sizeof image_ops / sizeof image_ops[0]; i++)
        pst_op_register(&image_ops[i]);
}

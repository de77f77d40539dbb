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

static int decode_jpeg_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    if (in->dtype != PST_STRING || in->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "contents must be a string scalar");
    const pst_tstring *s = pst_tensor_str(in);
    int channels = (int)pst_kctx_attr_i(c, "channels", 0);
    int ratio = (int)pst_kctx_attr_i(c, "ratio", 1);
    if (channels != 0 && channels != 1 && channels != 3)
        return pst_kctx_error(c, PST_E_INVALID, "channels must be 0, 1 or 3, not %d", channels);
    if (ratio != 1 && ratio != 2 && ratio != 4 && ratio != 8)
        return pst_kctx_error(c, PST_E_INVALID, "ratio must be 1, 2, 4 or 8, not %d", ratio);
    struct jpeg_decompress_struct ci;
    jerr e;
    pst_tensor *volatile out = NULL;
    ci.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    e.mgr.emit_message = jerr_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&ci);
        pst_tensor_unref(out);
        return pst_kctx_error(c, PST_E_INVALID, "invalid JPEG data (%zu bytes): %s", s->len,
                              e.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, (const unsigned char *)(s->p ? s->p : ""), (unsigned long)s->len);
    jpeg_read_header(&ci, TRUE);
    int stored = ci.num_components;
    if (channels == 0) channels = stored == 1 ? 1 : 3;
    ci.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    ci.scale_num = 1;
    ci.scale_denom = (unsigned)ratio;
    jpeg_calc_output_dimensions(&ci);
    if (too_large(c, "JPEG", ci.output_height, ci.output_width, channels) < 0) {
        jpeg_destroy_decompress(&ci);
        return c->status->code;
    }
    jpeg_start_decompress(&ci);
    pst_shape sh = pst_shape_make(3, (int64_t[]){ci.output_height, ci.output_width, channels});
    out = pst_tensor_new(PST_UINT8, sh, c->status);
    if (out == NULL) {
        jpeg_destroy_decompress(&ci);
        return c->status->code;
    }
    size_t row = (size_t)ci.output_width * (size_t)channels;
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW r = pst_tensor_u8(out) + (size_t)ci.output_scanline * row;
        jpeg_read_scanlines(&ci, &r, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    pst_kctx_set_output(c, 0, out);
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

static const pst_attr_spec jpeg_attrs[] = {
    {"channels", PST_ATTR_INT, 0},          {"ratio", PST_ATTR_INT, 0},
    {"fancy_upscaling", PST_ATTR_BOOL, 0},  {"try_recover_truncated", PST_ATTR_BOOL, 0},
    {"acceptable_fraction", PST_ATTR_FLOAT, 0}, {"dct_method", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec png_attrs[] = {{"channels", PST_ATTR_INT, 0},
                                          {"dtype", PST_ATTR_TYPE, 0}, {0}};

static const pst_op_def image_ops[] = {
    {.name = "DecodeJpeg", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = jpeg_attrs, .shape = image_shape, .kernel = decode_jpeg_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodePng", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = png_attrs,
     .shape = image_shape, .kernel = decode_png_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_image_ops(void) {
    for (size_t i = 0; i < sizeof image_ops / sizeof image_ops[0]; i++)
        pst_op_register(&image_ops[i]);
}

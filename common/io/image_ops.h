/*
 * image_ops — TF 1 image decoding ops for input pipelines that read image files
 * (WholeFileReader + tf.image.decode_jpeg / decode_png), with libjpeg and libpng:
 *
 *     DecodeJpeg(contents) -> uint8 [height, width, channels]   channels 0 (as stored), 1, 3;
 *                                                               ratio 1, 2, 4, 8 (downscaling)
 *     DecodePng(contents)  -> uint8 [height, width, channels]   channels 0 (as stored), 1-4
 *
 * A corrupt image is an error naming the op's problem, never a crash or an exit (libjpeg's
 * errors return through its error manager). pst_io_ops_init registers them.
 *
 *     pst_image_write("cat.png", 0, pixels, 32, 32, 3, &st);   // synthetic inputs, tests
 */
#ifndef PST_IMAGE_OPS_H
#define PST_IMAGE_OPS_H

#include <stdint.h>

#include "status.h"

/* Writes h x w pixels of c 8-bit channels (1 or 3; PNG also 4) as a JPEG (jpeg != 0, quality
 * 90) or PNG file. 0 or an error naming the path. */
int pst_image_write(const char *path, int jpeg, const uint8_t *px, int h, int w, int c,
                    pst_status *st);

void pst__register_image_ops(void);

#endif

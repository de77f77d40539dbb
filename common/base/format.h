/*
 * format — numbers for people.
 *
 *     char b[32];
 *     puts(pst_format_bytes(812000, b, sizeof b));   // "812.0 kB"
 */
#ifndef PST_FORMAT_H
#define PST_FORMAT_H

#include <stddef.h>

/* "812.0 kB", "1.25 GB" (powers of 1000). Returns buf. */
const char *pst_format_bytes(double bytes, char *buf, size_t len);
/* "42 s", "3m05s", "1h02m", or "?" for a negative or absurd time. Returns buf. */
const char *pst_format_duration(double seconds, char *buf, size_t len);

#endif

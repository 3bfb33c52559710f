/* image_internal.h: the library-only part of skystack/image.h. */
#ifndef SK_IO_IMAGE_INTERNAL_H
#define SK_IO_IMAGE_INTERNAL_H

#include "skystack/image.h"

/* As sk_image_new, but the pixel planes are not cleared: for a producer
 * that writes every pixel itself, so that the pages of a large image are
 * first touched (and cleared by the kernel) by the threads that fill it. */
sk_image *sk_image_new_unset(long width, long height);

/* sk_image_sanitize on pixels [i0, i1) only. */
long sk_image_sanitize_range(sk_image *img, size_t i0, size_t i1);

#endif

/* reduce.h: the axis sum shared by the `sum` layer (ops/loss.c) and `mean`. */
#ifndef KANC_REDUCE_H
#define KANC_REDUCE_H

#include "layer.h"

/* sum(x, axis, keepdim) or, with mean, mean(...): A's slots are x, axis and
   keepdim. Without an axis the scalar sum or mean of every element; with one
   (an int, negative from the end) x with that axis summed (or averaged) away,
   or kept as 1 with keepdim = true. */
Value reduce_layer(Elab *E, Args *A, int mean);

#endif

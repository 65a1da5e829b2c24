/* leaf.c: inputs, parameters and buffers (storage, no kernels), and the loss seed. */
#include "ops.h"

const OpFamily op_family_leaf = {.name = "leaf"};

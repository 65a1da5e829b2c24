/* optim.c: the global gradient norm and AdamW with clipping. */
#include "ops.h"

const OpFamily op_family_optim = {.name = "optim"};

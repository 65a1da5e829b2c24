/* kan_basis.c: the table of KAN basis families (ops/kan_bases.def). */
#include "kan_basis.h"

#define BASIS(ENUM, name) extern const KanBasis kan_basis_##name;
#include "kan_bases.def"
#undef BASIS

static const KanBasis *const BASES[] = {
#define BASIS(ENUM, name) [KAN_BASIS_##ENUM] = &kan_basis_##name,
#include "kan_bases.def"
#undef BASIS
};
_Static_assert(sizeof BASES / sizeof *BASES == KAN_N_BASES, "a KanBasis per line of kan_bases.def");

const KanBasis *kan_basis(int id) { return id >= 0 && id < KAN_N_BASES ? BASES[id] : NULL; }

/* kanc_lib.cuh: the CUDA library of the generated training step, one file per op family.
 *
 * The compiler embeds these files at build time (scripts/embed.sh ->
 * build/gen/cuda_lib.c) and pastes this root, its quoted includes inlined
 * once each, at the top of every generated source, so the source NVRTC
 * compiles (and `kanc --emit-source` writes) stands alone. The kernels the
 * compiler generates per graph node are thin calls of these templates.
 */
#ifndef KANC_LIB_CUH
#define KANC_LIB_CUH

#include "kanc_core.cuh"
#include "kanc_basis_bspline.cuh"
#include "kanc_basis_chebyshev.cuh"
#include "kanc_basis_rbf.cuh"
#include "kanc_gemm.cuh"
#include "kanc_kan.cuh"
#include "kanc_kan_blocked.cuh"
#include "kanc_norm.cuh"
#include "kanc_attention.cuh"
#include "kanc_loss.cuh"
#include "kanc_reduce.cuh"
#include "kanc_optim.cuh"
#include "kanc_embedding.cuh"

#endif

/* leaf.c: inputs, parameters and buffers (storage, no kernels), and the loss seed. */
#include "cuda_emit.h"
#include "ops.h"

const OpFamily op_family_leaf = {.name = "leaf"};

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

void cuda_emit_seed(CudaGen *G)
{
    cg_kernel_begin(G, "seed", 1, 1, 32, 0, "d loss / d loss = 1");
    cg_out_ptr(G, "y");
    cg_line(G, "if (threadIdx.x == 0) y[0] = 1.0f;");
    cg_kernel_end(G);
}

/* leaves are storage: no kernel */
void cuda_emit_input(CudaGen *G) { (void)G; }
void cuda_emit_param(CudaGen *G) { (void)G; }
void cuda_emit_buffer(CudaGen *G) { (void)G; }

/* optim.c: the global gradient norm and AdamW with clipping. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#include "cuda_emit.h"
#include "ops.h"
#include "util.h"

/* per parameter element: the norm's square and add (2); AdamW's clip scale,
   two moments, bias-corrected denominator, decay and update (15, the loop of
   ops/optim_cpu.inc) */
static double optim_arith(const Graph *g, const GNode *n)
{
    double elems = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_PARAM) elems += (double)shape_numel(&g->nodes[i].shape);
    return (n->op == OP_GRAD_NORM ? 2 : 15) * elems;
}

const OpFamily op_family_optim = {.name = "optim", .elementwise_flops = optim_arith};

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

void cuda_emit_grad_norm(CudaGen *G)
{
    int64_t N = G->p->n_param_elems;
    int parts = cg_sum_parts(N);
    cg_need_ws(G, parts * 8);
    cg_kernel_begin(G, "grad_norm_partial", (unsigned)parts, 1, CG_BLOCK, 1,
                    "ws[block] = partial sums of squares of the whole gradient area (%lld elements)",
                    (long long)N);
    cg_ptr(G, "const float", "g", (CgLoc){AREA_GRADS, 0}, NULL, NULL);
    cg_ptr(G, "double", "part", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_line(G, "kanc_sum_partial<1>(part, g, %lldLL);", (long long)N);
    cg_kernel_end(G);
    cg_kernel_begin(G, "grad_norm", 1, 1, CG_BLOCK, 1,
                    "norm = sqrt(sum of the %d partials) -> value and scalars->grad_norm", parts);
    cg_out_ptr(G, "y");
    cg_ptr(G, "const double", "part", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_line(G, "double s = kanc_sum_parts(part, %d);", parts);
    cg_line(G, "if (threadIdx.x == 0) {");
    cg_line(G, "    y[0] = (float)sqrt(s);");
    cg_line(G, "    KANC_SCALARS(args)->grad_norm = (float)sqrt(s);");
    cg_line(G, "}");
    cg_kernel_end(G);
}

typedef struct {
    int64_t off, len;
    int decay, count;
    const char *first;
} AdamRange;

void cuda_emit_adamw(CudaGen *G)
{
    const Graph *g = G->g;
    /* consecutive trainable parameters (in storage order) with the same decay
       flag form one range */
    AdamRange *r = xmalloc(sizeof *r * (size_t)(g->n + 1));
    int nr = 0;
    int64_t total = 0;
    for (int j = 0; j < g->n; j++) {
        const GNode *q = &g->nodes[j];
        if (q->op != OP_PARAM || !q->trainable) continue;
        int64_t len = shape_numel(&q->shape);
        AdamRange *last = nr ? &r[nr - 1] : NULL;
        if (last && last->decay == q->decay && last->off + last->len == G->p->pos[j]) {
            last->len += len;
            last->count++;
        } else {
            r[nr++] = (AdamRange){G->p->pos[j], len, q->decay, 1, q->name};
        }
        total += len;
    }
    /* the ranges as a constant table: one loop in the kernel, not one inlined loop per range */
    if (nr) {
        sb_printf(&G->src, "/* node %d adamw: parameter ranges {offset, elements, weight decay} */\n",
                  cg_n_id(G));
        sb_printf(&G->src, "__constant__ long long n%d_adamw_ranges[%d][3] = {\n", cg_n_id(G), nr);
        for (int i = 0; i < nr; i++)
            sb_printf(&G->src, "    {%lld, %lld, %d}, /* %s%s (%d tensor%s) */\n", (long long)r[i].off,
                      (long long)r[i].len, r[i].decay, r[i].first ? r[i].first : "?",
                      r[i].count > 1 ? " .." : "", r[i].count, r[i].count > 1 ? "s" : "");
        sb_printf(&G->src, "};\n\n");
    }
    cg_kernel_begin(G, "adamw", cg_blocks_for(total), 1, CG_BLOCK, 0,
                    "clip by the global norm (torch clip_grad_norm_), AdamW on every trainable "
                    "parameter (%lld elements in %d ranges)",
                    (long long)total, nr);
    cg_line(G, "KancScalars *sc = KANC_SCALARS(args);");
    cg_line(G, "double gs = 1.0; /* clip scale: clip / (norm + 1e-6) when that is < 1 */");
    cg_line(G, "if (sc->clip > 0.0f) {");
    cg_line(G, "    double c = (double)sc->clip / ((double)sc->grad_norm + 1e-6);");
    cg_line(G, "    if (c < 1.0) gs = c;");
    cg_line(G, "}");
    cg_line(G, "if (blockIdx.x == 0 && threadIdx.x == 0) sc->clip_scale = (float)gs;");
    if (nr) {
        cg_line(G, "double t = (double)(sc->step + 1), lr = sc->lr, b1 = sc->beta1, b2 = sc->beta2;");
        cg_line(G, "float step = (float)(lr / (1.0 - pow(b1, t))), bc2 = (float)sqrt(1.0 - pow(b2, t));");
        cg_line(G, "float decay = (float)(1.0 - lr * sc->weight_decay);");
        cg_line(G, "float *p = (float *)args->params, *m = (float *)args->m, *v = (float *)args->v;");
        cg_line(G, "const float *g = (const float *)args->grads;");
        cg_line(G, "#pragma unroll 1");
        cg_line(G, "for (int r = 0; r < %d; r++) {", nr);
        cg_line(G, "    const long long *q = n%d_adamw_ranges[r];", cg_n_id(G));
        cg_line(
            G, "    kanc_adamw(p + q[0], g + q[0], m + q[0], v + q[0], q[1], (float)gs, q[2] ? decay : 1.0f, "
               "step, bc2, (float)b1, (float)b2, sc->eps);");
        cg_line(G, "}");
    }
    free(r);
    cg_kernel_end(G);
}

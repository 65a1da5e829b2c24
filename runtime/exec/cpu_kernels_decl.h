/* cpu_kernels_decl.h: prototypes of the CPU kernels, for one scalar type.
 *
 * Included by cpu_kernels.h twice: REAL = float with K(name) = name_f32, and
 * REAL = double with K(name) = name_f64 (the tests run whole graphs in double
 * precision against finite differences). No include guard on purpose.
 *
 * Conventions: row-major, contiguous. "rows" = product of all dims but the
 * last. `acc` = 1 adds into the output, 0 overwrites it. Parameter gradients
 * (dw, db, ...) always accumulate. Results depend only on the inputs and the
 * thread count is irrelevant: no atomics, static partitions, fixed reduction
 * order.
 */

/* y[n,c] = w[idx[n], c] (ids are validated by the caller) */
void K(embedding_fwd)(REAL *y, const int32_t *idx, const REAL *w, int64_t n, int64_t c);
/* dw[idx[n], c] += dy[n, c] */
void K(embedding_bwd)(REAL *dw, const int32_t *idx, const REAL *dy, int64_t n, int64_t c);

/* y[i] = a[i] op b[i % nb], op: 0 add, 1 sub, 2 mul; n % nb == 0 */
void K(binary_fwd)(int op, REAL *y, const REAL *a, const REAL *b, int64_t n, int64_t nb);
/* y[i] = s * x[i] + c */
void K(scale_fwd)(REAL *y, const REAL *x, int64_t n, double s, double c);
/* out[j] (+)= s * sum over i with i % nout == j of dy[i]; n % nout == 0 */
void K(acc_reduce)(REAL *out, const REAL *dy, int64_t n, int64_t nout, double s, int acc);
/* out[j] (+)= sum over i with i % nout == j of dy[i] * other[i % nother] */
void K(mul_bwd)(REAL *out, const REAL *dy, const REAL *other, int64_t n, int64_t nother,
                int64_t nout, int acc);

/* y[N,out] = x[N,in] W[out,in]^T (+ b[out]) */
void K(linear_fwd)(REAL *y, const REAL *x, const REAL *w, const REAL *b, int64_t N, int64_t in,
                   int64_t out);
/* dx[N,in] (+)= dy[N,out] W[out,in] */
void K(linear_bwd_x)(REAL *dx, const REAL *dy, const REAL *w, int64_t N, int64_t in, int64_t out,
                     int acc);
/* dw[out,in] += dy^T x; db[out] += sum_n dy[n,:] (db may be NULL) */
void K(linear_bwd_w)(REAL *dw, REAL *db, const REAL *dy, const REAL *x, int64_t N, int64_t in,
                     int64_t out);

/* y = (x - mean) * rstd * w + b per row; stats[n] = (mean, rstd) with
   rstd = 1/sqrt(var + eps), var the biased variance (as torch) */
void K(layernorm_fwd)(REAL *y, REAL *stats, const REAL *x, const REAL *w, const REAL *b,
                      int64_t N, int64_t C, double eps);
void K(layernorm_bwd)(REAL *dx, REAL *dw, REAL *db, const REAL *dy, const REAL *x,
                      const REAL *stats, const REAL *w, int64_t N, int64_t C, int acc);

/* Multi-head attention as minGPT: qkv[B,T,3C] holds q, k, v along the last
   dim; head h uses columns [h*D, (h+1)*D) of each, D = C/H. att = softmax(q k^T
   / sqrt(D)) with future positions masked when causal; P[B,H,T,T] saves the
   softmax (before dropout); y[B,T,C] = dropout(att) v with heads concatenated.
   Dropout on att (p > 0) keeps element (b,h,i,j) when
   kanc_rng_uniform(seed, stream, ((b*H + h)*T + i)*T + j) >= p, scaling by 1/(1-p). */
void K(attention_fwd)(REAL *y, REAL *P, const REAL *qkv, int64_t B, int64_t T, int64_t C,
                      int64_t H, int causal, double p, uint64_t seed, uint64_t stream);
void K(attention_bwd)(REAL *dqkv, const REAL *dy, const REAL *qkv, const REAL *P, int64_t B,
                      int64_t T, int64_t C, int64_t H, int causal, double p, uint64_t seed,
                      uint64_t stream, int acc);

/* elementwise activations and unary ops: act is GAct (ACT_SILU, ACT_GELU tanh form, ACT_RELU,
   ACT_TANH, ACT_SIGMOID, ACT_EXP, ACT_LOG, ACT_ABS, ACT_RECIP) */
void K(act_fwd)(int act, REAL *y, const REAL *x, int64_t n);
void K(act_bwd)(int act, REAL *dx, const REAL *dy, const REAL *x, int64_t n, int acc);

/* y[r, :] = softmax(x[r, :]) over rows of C (max-shifted, the sum in double) */
void K(softmax_fwd)(REAL *y, const REAL *x, int64_t N, int64_t C);
/* dx[r, :] (+)= y[r, :] (dy[r, :] - sum_j dy[r, j] y[r, j]) */
void K(softmax_bwd)(REAL *dx, const REAL *dy, const REAL *y, int64_t N, int64_t C, int acc);
/* y[a, b] = s sum_k x[a, k, b]; x is [A, Kd, B] */
void K(sum_axis_fwd)(REAL *y, const REAL *x, int64_t A, int64_t Kd, int64_t B, double s);
/* dx[a, k, b] (+)= s dy[a, b] */
void K(sum_axis_bwd)(REAL *dx, const REAL *dy, int64_t A, int64_t Kd, int64_t B, double s, int acc);

/* keep element i when kanc_rng_uniform(seed, stream, i) >= p, scale 1/(1-p) */
void K(dropout_fwd)(REAL *y, const REAL *x, int64_t n, double p, uint64_t seed, uint64_t stream);
void K(dropout_bwd)(REAL *dx, const REAL *dy, int64_t n, double p, uint64_t seed, uint64_t stream,
                    int acc);

/* y[r, 0:len] = x[r, start:start+len], x has C columns */
void K(slice_fwd)(REAL *y, const REAL *x, int64_t rows, int64_t C, int64_t start, int64_t len);
/* dx[r, start:start+len] (+)= dy[r, :]; other columns: 0 (or unchanged when acc) */
void K(slice_bwd)(REAL *dx, const REAL *dy, int64_t rows, int64_t C, int64_t start, int64_t len,
                  int acc);
/* y[r] = concat(a[r, 0:ca], b[r, 0:cb]) */
void K(concat_fwd)(REAL *y, const REAL *a, const REAL *b, int64_t rows, int64_t ca, int64_t cb);

/* loss[0] = mean over rows with targets[r] != -1 of lse[r] - logits[r, t];
   lse[r] = log sum exp logits[r, :]; 0 when no row counts */
void K(ce_fwd)(REAL *loss, REAL *lse, const REAL *logits, const int32_t *targets, int64_t N,
               int64_t V);
/* dlogits[r,:] (+)= dloss[0] * (softmax - onehot(t)) / count for counted rows, 0 else */
void K(ce_bwd)(REAL *dlogits, const REAL *dloss, const REAL *logits, const int32_t *targets,
               const REAL *lse, int64_t N, int64_t V, int acc);

/* y[0] = sum x; dx[i] (+)= dy[0] */
void K(sum_fwd)(REAL *y, const REAL *x, int64_t n);
void K(sum_bwd)(REAL *dx, const REAL *dy, int64_t n, int acc);

/* the global gradient norm sqrt(sum g^2), accumulated in double */
double K(sq_sum)(const REAL *g, int64_t n);
/* torch.optim.AdamW on one tensor, with gradients multiplied by gscale first
   (the clip factor): p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
void K(adamw)(REAL *p, const REAL *g, REAL *m, REAL *v, int64_t n, double gscale, double lr,
              double b1, double b2, double eps, double wd, int64_t t);

/* KAN layer, fused (ops/kan_cpu.inc): see ops/ops.def OP_KAN and DESIGN.md 4.
   x[N,in], grid[in, len] (or [len], a shared grid), base[out,in] or NULL (no base
   branch; then dbase NULL too), spline[out,in,nf] (or [in,out,nf]), scaler[out,in]
   or NULL, with nf, len and the layouts those of the basis family `basis`
   (ops/kan_basis.h) for (G, k).
   ws: a workspace of kan_workspace_elems(N, in, out, nf) REALs. */
int64_t K(kan_workspace_elems)(int64_t N, int64_t in, int64_t out, int nf);
void K(kan_fwd)(REAL *y, const REAL *x, const REAL *grid, const REAL *base, const REAL *spline,
                const REAL *scaler, int64_t N, int64_t in, int64_t out, int basis, int G, int k,
                int act, REAL *ws);
void K(kan_bwd_x)(REAL *dx, const REAL *dy, const REAL *x, const REAL *grid, const REAL *base,
                  const REAL *spline, const REAL *scaler, int64_t N, int64_t in, int64_t out,
                  int basis, int G, int k, int act, int acc, REAL *ws);
void K(kan_bwd_w)(REAL *dbase, REAL *dspline, REAL *dscaler, const REAL *dy, const REAL *x,
                  const REAL *grid, const REAL *spline, const REAL *scaler, int64_t N,
                  int64_t in, int64_t out, int basis, int G, int k, int act, REAL *ws);

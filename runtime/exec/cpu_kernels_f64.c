/* The CPU kernels and runners in double precision (finite-difference tests, references). */
#define REAL double
#define REAL_IS_DOUBLE 1
#define K(name) name##_f64
#include "cpu_common.inc"
#include "cpu_node.h"

#include "attention_cpu.inc"
#include "elementwise_cpu.inc"
#include "embedding_cpu.inc"
#include "kan_cpu.inc"
#include "leaf_cpu.inc"
#include "linear_cpu.inc"
#include "loss_cpu.inc"
#include "norm_cpu.inc"
#include "optim_cpu.inc"
#include "reduce_cpu.inc"
#include "shape_cpu.inc"

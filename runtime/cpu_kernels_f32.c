/* The CPU kernels in single precision (the training path). */
#define REAL float
#define REAL_IS_DOUBLE 0
#define K(name) name##_f32
#include "cpu_kernels.inc"
#include "cpu_kan.inc"

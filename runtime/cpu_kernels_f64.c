/* The CPU kernels in double precision (finite-difference tests, references). */
#define REAL double
#define REAL_IS_DOUBLE 1
#define K(name) name##_f64
#include "cpu_kernels.inc"
#include "cpu_kan.inc"

/* cpu_kernels.h: the native CPU kernels, in float (name_f32) and double
 * (name_f64). See cpu_kernels_decl.h for each kernel's contract. */
#ifndef KANC_CPU_KERNELS_H
#define KANC_CPU_KERNELS_H

#include <stdint.h>

#define REAL float
#define K(name) name##_f32
#include "cpu_kernels_decl.h"
#undef REAL
#undef K

#define REAL double
#define K(name) name##_f64
#include "cpu_kernels_decl.h"
#undef REAL
#undef K

#endif

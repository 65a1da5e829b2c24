/* cuda_api.h: the CUDA driver API and cuBLASLt as a table of function pointers.
 *
 * kanrun never links libcuda or libcublasLt: the table is filled at run time,
 * either from the real libraries (dlopen + dlsym, so kanrun starts on a
 * machine with no GPU and says clearly why CUDA is unavailable), or with a
 * MOCK whose memory is host memory, whose modules are emulation builds of the
 * generated source (runtime/device/emu), whose launches run the kernels' host entries
 * and whose cuBLASLt matmul is an OpenBLAS GEMM. The CUDA device
 * (device_cuda.c) runs the same code over either table: that is how CI tests
 * the runtime's CUDA path without a GPU.
 *
 * The types and constants below are the few the runtime uses, declared here
 * with the values of the CUDA 12/13 headers (cuda.h, cublasLt.h), so nothing
 * here needs the CUDA toolkit to build. tests/test_cuda_runtime.c checks them
 * against the real headers when those are installed.
 */
#ifndef KANC_CUDA_API_H
#define KANC_CUDA_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codegen_cuda.h"
#include "device.h"

/* ---- driver API types (cuda.h) ---- */
typedef int CUresult;
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_INVALID_IMAGE 200
#define CUDA_ERROR_ILLEGAL_STATE 401
#define CUDA_ERROR_NOT_FOUND 500
#define CUDA_ERROR_LAUNCH_FAILED 719
#define CUDA_ERROR_NOT_SUPPORTED 801
#define CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED 900 /* not permitted while the stream captures */
#define CUDA_ERROR_STREAM_CAPTURE_INVALIDATED 901 /* the capture was invalidated by an earlier error */
#define CUDA_ERROR_STREAM_CAPTURE_UNMATCHED 903   /* end of a capture this stream did not begin */
#define CUDA_ERROR_UNKNOWN 999

#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK 8
#define CU_DEVICE_ATTRIBUTE_CLOCK_RATE 13
#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN 97
#define CU_FUNC_ATTRIBUTE_NUM_REGS 4
#define CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES 8
#define CU_STREAM_NON_BLOCKING 1
#define CU_EVENT_DEFAULT 0
#define CU_STREAM_CAPTURE_MODE_GLOBAL 0 /* CUstreamCaptureMode */
#define CU_STREAM_CAPTURE_STATUS_NONE 0 /* CUstreamCaptureStatus */
#define CU_STREAM_CAPTURE_STATUS_ACTIVE 1
#define CU_STREAM_CAPTURE_STATUS_INVALIDATED 2

/* ---- cuBLASLt types (cublasLt.h, cublas_api.h, library_types.h) ---- */
typedef int cublasStatus_t;
typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct KancLtDesc *cublasLtMatmulDesc_t;
typedef struct KancLtLayout *cublasLtMatrixLayout_t;
typedef struct KancLtPref *cublasLtMatmulPreference_t;
typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

#define CUBLAS_STATUS_SUCCESS 0
#define CUBLAS_STATUS_NOT_INITIALIZED 1
#define CUBLAS_STATUS_INVALID_VALUE 7
#define CUBLAS_STATUS_NOT_SUPPORTED 15
#define CUBLAS_OP_N 0
#define CUBLAS_OP_T 1
#define CUBLAS_OP_C 2
#define CUDA_R_32F 0
#define CUDA_R_16F 2
#define CUDA_R_16BF 14
#define CUBLAS_COMPUTE_32F 68
#define CUBLAS_COMPUTE_32F_FAST_16BF 75
#define CUBLAS_COMPUTE_32F_FAST_TF32 77
#define CUBLASLT_MATMUL_DESC_COMPUTE_TYPE 0
#define CUBLASLT_MATMUL_DESC_SCALE_TYPE 1
#define CUBLASLT_MATMUL_DESC_POINTER_MODE 2 /* int32_t; CUBLASLT_POINTER_MODE_HOST 0 */
#define CUBLASLT_MATMUL_DESC_TRANSA 3
#define CUBLASLT_MATMUL_DESC_TRANSB 4
#define CUBLASLT_MATMUL_DESC_TRANSC 5
#define CUBLASLT_MATMUL_DESC_EPILOGUE 7 /* uint32_t; CUBLASLT_EPILOGUE_DEFAULT 1 */
#define CUBLASLT_POINTER_MODE_HOST 0
#define CUBLASLT_EPILOGUE_DEFAULT 1
#define CUBLASLT_ORDER_COL 0
#define CUBLASLT_ORDER_ROW 1
#define CUBLASLT_MATRIX_LAYOUT_TYPE 0                 /* uint32_t */
#define CUBLASLT_MATRIX_LAYOUT_ORDER 1                /* int32_t */
#define CUBLASLT_MATRIX_LAYOUT_ROWS 2                 /* uint64_t */
#define CUBLASLT_MATRIX_LAYOUT_COLS 3                 /* uint64_t */
#define CUBLASLT_MATRIX_LAYOUT_LD 4                   /* int64_t */
#define CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT 5          /* int32_t, default 1 */
#define CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET 6 /* int64_t elements, default 0 */
#define CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES 1
#define CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES 5 /* uint32_t each; default 256 */
#define CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES 6
#define CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES 7
#define CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES 8

/* The table. Names are the API's (without the _v2 suffixes that cuda.h's
   macros add: the loader asks libcuda for the versioned symbol). */
typedef struct CudaApi {
    const char *kind;      /* "cuda" (the real libraries) or "emu" (the mock) */
    int mock;
    CUresult (*cuInit)(unsigned flags);
    CUresult (*cuDriverGetVersion)(int *version);
    CUresult (*cuDeviceGetCount)(int *count);
    CUresult (*cuDeviceGet)(CUdevice *dev, int ordinal);
    CUresult (*cuDeviceGetName)(char *name, int len, CUdevice dev);
    CUresult (*cuDeviceGetAttribute)(int *value, int attrib, CUdevice dev);
    CUresult (*cuDeviceTotalMem)(size_t *bytes, CUdevice dev);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice dev);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice dev);
    CUresult (*cuCtxSetCurrent)(CUcontext ctx);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuMemGetInfo)(size_t *free_bytes, size_t *total_bytes);
    CUresult (*cuStreamCreate)(CUstream *stream, unsigned flags);
    CUresult (*cuStreamDestroy)(CUstream stream);
    CUresult (*cuStreamSynchronize)(CUstream stream);
    CUresult (*cuEventCreate)(CUevent *ev, unsigned flags);
    CUresult (*cuEventDestroy)(CUevent ev);
    CUresult (*cuEventRecord)(CUevent ev, CUstream stream);
    CUresult (*cuEventSynchronize)(CUevent ev);
    CUresult (*cuEventElapsedTime)(float *ms, CUevent start, CUevent end);
    CUresult (*cuMemAlloc)(CUdeviceptr *ptr, size_t bytes);
    CUresult (*cuMemFree)(CUdeviceptr ptr);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*cuMemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, CUstream s);
    CUresult (*cuMemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes, CUstream s);
    CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream s);
    CUresult (*cuModuleLoadData)(CUmodule *mod, const void *image);
    CUresult (*cuModuleUnload)(CUmodule mod);
    CUresult (*cuModuleGetFunction)(CUfunction *fn, CUmodule mod, const char *name);
    CUresult (*cuFuncGetAttribute)(int *value, int attrib, CUfunction fn);
    CUresult (*cuFuncSetAttribute)(CUfunction fn, int attrib, int value);
    CUresult (*cuLaunchKernel)(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned smem, CUstream stream,
                               void **params, void **extra);
    /* page-locked host memory: async copies from / to it may run inside a graph */
    CUresult (*cuMemAllocHost)(void **ptr, size_t bytes);
    CUresult (*cuMemFreeHost)(void *ptr);
    /* stream capture and graphs: the launches between begin and end, replayed */
    CUresult (*cuStreamBeginCapture)(CUstream stream, int mode);
    CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph *graph);
    CUresult (*cuStreamIsCapturing)(CUstream stream, int *status);
    CUresult (*cuGraphInstantiate)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
    CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream);
    CUresult (*cuGraphExecDestroy)(CUgraphExec exec);
    CUresult (*cuGraphDestroy)(CUgraph graph);
    CUresult (*cuGetErrorString)(CUresult err, const char **str);
    CUresult (*cuGetErrorName)(CUresult err, const char **str);

    cublasStatus_t (*cublasLtCreate)(cublasLtHandle_t *h);
    cublasStatus_t (*cublasLtDestroy)(cublasLtHandle_t h);
    cublasStatus_t (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t *d, int compute_type,
                                               int scale_type);
    cublasStatus_t (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t d);
    cublasStatus_t (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t d, int attr,
                                                     const void *buf, size_t size);
    cublasStatus_t (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t *l, int type,
                                                 uint64_t rows, uint64_t cols, int64_t ld);
    cublasStatus_t (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t l);
    cublasStatus_t (*cublasLtMatrixLayoutSetAttribute)(cublasLtMatrixLayout_t l, int attr,
                                                       const void *buf, size_t size);
    cublasStatus_t (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t *p);
    cublasStatus_t (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t p);
    cublasStatus_t (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t p, int attr,
                                                           const void *buf, size_t size);
    cublasStatus_t (*cublasLtMatmulAlgoGetHeuristic)(
        cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
        cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
        cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t *results,
        int *returned);
    cublasStatus_t (*cublasLtMatmul)(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                                     const void *A, cublasLtMatrixLayout_t adesc, const void *B,
                                     cublasLtMatrixLayout_t bdesc, const void *beta, const void *C,
                                     cublasLtMatrixLayout_t cdesc, void *D,
                                     cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t *algo,
                                     void *workspace, size_t workspace_bytes, CUstream stream);
    const char *(*cublasLtGetStatusString)(cublasStatus_t s);

    void *libcuda, *liblt;  /* dlopen handles (real table) */
    char libcuda_path[256], liblt_path[256];
} CudaApi;

/* The message for a machine without a driver (kanrun --device cuda). */
#define CUDA_NO_DRIVER_MSG                                                                     \
    "no CUDA driver (libcuda.so.1 not found): this machine has no NVIDIA GPU; use --device "  \
    "cpu (the default when there is no GPU)"

/* The real driver API (libcuda.so.1) and cuBLASLt (libcublasLt.so.13 or .12;
   $KANC_CUBLASLT names another file). Loaded once per process; returns the
   shared table, or NULL with the reason in err (CUDA_NO_DRIVER_MSG without a
   driver). cuInit has been called on success. */
const CudaApi *cuda_api_real(char *err, size_t errlen);
/* The mock table (always available). Modules: cuModuleLoadData takes the
   image of an emulation build, made by cuda_mock_image(). */
const CudaApi *cuda_api_mock(void);

/* 1 when a CUDA driver is installed and sees at least one device (no error
   printed): what `--device auto` asks. */
int cuda_available(void);

/* A description of the result code of a driver or cuBLASLt call. */
const char *cuda_error_string(const CudaApi *api, CUresult r);
const char *cublas_status_string(const CudaApi *api, cublasStatus_t s);

/* The mock cuBLASLt's reason for its last refusal ("Ddesc: ld 3 < rows 4"),
   naming the descriptor field as a real call's status would; "" when none.
   Its cublasLtGetStatusString appends it to the status name.

   What the mock accepts (a real cuBLASLt's rules, or a narrower subset):
   compute CUBLAS_COMPUTE_32F with scale CUDA_R_32F and A, B in CUDA_R_32F or
   CUDA_R_16BF (C and D both CUDA_R_32F, or both CUDA_R_16BF with bf16 A, B);
   _FAST_TF32 / _FAST_16BF with all CUDA_R_32F; column order; ld >= rows; op
   N or T (C for real types) on A and B, N on C; op(A) m x k, op(B) k x n, C
   and D m x n of one type, batch count and order; C == D (in place) only with
   equal layouts; equal batch counts, strides >= 0; host pointer mode, the
   default epilogue. The heuristic's algorithm needs each pointer aligned to
   16 bytes (the vector loads of tensor-core kernels) unless the preference's
   MIN_ALIGNMENT_x_BYTES promises less or a leading dimension or batch stride
   is not a multiple of 16 bytes (then the element size), and min(1 MiB,
   MAX_WORKSPACE_BYTES) of workspace, which the matmul checks and overwrites
   (0xff) as a real algorithm would use it. */
const char *cuda_mock_lt_error(void);
/* The mock's successful cublasLtMatmul calls since the process started, by
   the type of A and B (fp32 or bf16): what a test reads to see that a step's
   GEMMs really ran on bf16 operands. */
void cuda_mock_lt_counts(long *fp32, long *bf16);

/* The mock's stream capture follows the driver in CU_STREAM_CAPTURE_MODE_GLOBAL:
   while a stream captures, kernel launches, cuMemsetD8Async, async copies
   between device memory and page-locked host memory (cuMemAllocHost) and
   cublasLtMatmul on it are recorded, not run (cuBLASLt's checks are made at
   the call, as a real one makes them); cuGraphLaunch runs the recorded nodes
   in order. A synchronisation (stream, context, event), a synchronous copy,
   an async copy from or to pageable host memory, or cuMemAlloc during a
   capture fails with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and invalidates the
   capture (cuStreamEndCapture then fails with _INVALIDATED and no graph).
   Nodes recorded during the last capture, and graph launches so far (tests): */
int cuda_mock_graph_nodes(CUgraph graph);
int64_t cuda_mock_graph_launches(void);

/* Module images for the mock's cuModuleLoadData (free with free()): the
   generated source, which the mock builds with the emulator (runtime/device/emu);
   or the path of a shared object that already holds each kernel's
   NAME__host entry (tests). */
char *cuda_mock_image(const char *source);
char *cuda_mock_image_so(const char *so_path);

/* ---- the CUDA device (device_cuda.c) ---- */

/* Any device by name: "cpu", "cuda", "emu", or "auto" (cuda when a driver
   and a GPU are present and the plan is in float, else cpu). NULL with the
   reason in err. */
Device *device_open(Plan *plan, const char *name, char *err, size_t errlen);
/* What "auto" (or NULL) means on this machine; other names unchanged. */
const char *device_resolve(const char *name, size_t real_size);
/* 1 when the device (resolved) runs a CUDA step with bf16 GEMM operands on
   cuBLASLt (its precision: KANC_PRECISION, else bf16 on cuda, fp32 on emu):
   the plan for it is plan_build_for(..., 1) */
int device_gemm_bf16(const char *device, size_t real_size);
/* A command's --precision P for device name (kanrun train, bench, verify):
   "fp32" or "bf16", and bf16 only for a CUDA device (cuda, emu, or auto
   resolving to cuda); sets KANC_PRECISION, which the runtime's compiles read
   (cuda_options_for_device). 0, or -1 with "CMD: error: ..." printed. */
int device_precision_request(const char *cmd, const char *precision, const char *device);


/* Opens the CUDA device for a plan (real_size 4). mode "cuda": the real driver,
   the plan's CUDA program compiled by NVRTC for the device's compute
   capability; mode "emu": the mock table, the same program built by the
   emulator. Returns NULL with the reason in err. */
Device *device_cuda_new(Plan *plan, const char *mode, char *err, size_t errlen);
/* The same from a prebuilt step (kanrun ... step.cubin), on the real driver:
   its launch list (takes prog), its cubin image, built for compute capability
   sm (x 10; refused when this GPU cannot run it), label naming it in errors.
   The plan must be the step's (checked by the caller). */
Device *device_cuda_new_prebuilt(Plan *plan, CudaProgram *prog, const void *image, int sm, const char *label,
                                 char *err, size_t errlen);

/* The same over a given program and module image (cuModuleLoadData's
   argument: a cubin, or cuda_mock_image() of an emulation build); takes prog.
   Tests use it with hand-written programs. */
Device *device_cuda_open_image(Plan *plan, const char *mode, CudaProgram *prog,
                               const void *image, char *err, size_t errlen);

/* Device facts for logs and kanrun info: name, compute capability,
   multiprocessors, memory; 0 on success. */
typedef struct {
    char name[128];
    int cc_major, cc_minor, sm_count;
    size_t total_mem;
    int driver_version;
} CudaDeviceInfo;
int cuda_device_info(const CudaApi *api, int ordinal, CudaDeviceInfo *info, char *err,
                     size_t errlen);

/* kanrun info (no file): NVRTC, the driver and its devices, cuBLASLt, the
   emulator, and what --device auto picks. Returns 0. */
int cuda_print_status(FILE *f);

/* Device bytes allocated by a CUDA device (arena, state areas, workspace). */
int64_t device_cuda_bytes(const Device *dev);
/* An area's device buffer, the device's stream and its API table, for
   collectives on device memory (runtime/dist: NCCL on the gradients). Returns
   0, or -1 when dev is not a CUDA (or emu) device. */
int device_cuda_area(Device *dev, KancArea area, CUdeviceptr *ptr, CUstream *stream, const CudaApi **api);

#endif

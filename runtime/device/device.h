/* device.h: where a planned step runs (the CPU, a CUDA GPU, or the CUDA path emulated).
 *
 * Everything above this line (verify, train, eval, sample, checkpoints) talks
 * to a Device only: run a range of the plan's nodes, move inputs, values and
 * state areas between the host and the device. Host data is in the plan's
 * real type (float; double for the CPU device in tests) or int32 for tokens.
 */
#ifndef KANC_DEVICE_H
#define KANC_DEVICE_H

#include <stdint.h>

#include "exec_cpu.h"
#include "kanc_abi.h" /* KancArea */
#include "plan.h"


typedef struct Device Device;

typedef struct {
    /* runs nodes [from, to) with the settings in dev (seed, step, training, opt) */
    void (*run)(Device *dev, int from, int to);
    /* node value (input, parameter, buffer or computed value) from / to the host */
    void (*write_value)(Device *dev, int node, const void *host);
    void (*read_value)(Device *dev, int node, void *host);
    /* gradient of a parameter node */
    void (*read_grad)(Device *dev, int node, void *host);
    /* a whole state area, in the plan's element order */
    void (*read_area)(Device *dev, KancArea area, void *host);
    void (*write_area)(Device *dev, KancArea area, const void *host);
    void (*destroy)(Device *dev);
} DeviceOps;

struct Device {
    const char *name;      /* "cpu", "cuda", "emu" */
    char gpu_name[128];    /* cuda, emu: cuDeviceGetName's ("NVIDIA H200"); "" on the CPU */
    const DeviceOps *ops;
    Plan *plan;
    /* settings for the next run */
    uint64_t seed;         /* dropout randomness */
    int64_t step;          /* optimizer steps taken so far */
    int training;          /* dropout active */
    AdamWConfig opt;
    /* results of the last run */
    double grad_norm, clip_scale;
};

/* The CPU device (native kernels); real_size from the plan. */
Device *device_cpu_new(Plan *plan);
/* The CPU device's engine, for code that needs raw pointers (tests). */
CpuExec *device_cpu_exec(Device *dev);

/* elements of an area */
int64_t device_area_elems(const Device *dev, KancArea area);

#endif

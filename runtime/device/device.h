/* device.h: where a planned step runs (the CPU, a CUDA GPU, or the CUDA path emulated).
 *
 * Everything above this line (verify, train, eval, sample, checkpoints) talks
 * to a Device only: run a range of the plan's nodes, move inputs, values and
 * state areas between the host and the device. Host data is in the plan's
 * real type (float; double for the CPU device in tests) or int32 for tokens.
 *
 * A queued device (cuda, emu) may return from run() before the work is done.
 * By default run() still waits for the range's results (grad_norm,
 * clip_scale) when it holds OP_GRAD_NORM or OP_ADAMW, as the CPU does. With
 * `deferred` set, it does not: the caller names scalar nodes in log_nodes and
 * reads each optimizer step's record (those values, the gradient norm and
 * the clip scale, copied on the device after the step) with device_read_log
 * when it chooses, so a training loop synchronises only at its log steps.
 */
#ifndef KANC_DEVICE_H
#define KANC_DEVICE_H

#include <stdint.h>

#include "exec_cpu.h"
#include "kanc_abi.h" /* KancArea */
#include "plan.h"


typedef struct Device Device;

#define DEVICE_LOG_NODES 8

/* One optimizer step's record: kept after every run that holds OP_ADAMW while
   log_nodes are set (n_log_nodes > 0). */
typedef struct {
    int64_t step;                   /* the step's number (Device.step before the run) */
    double value[DEVICE_LOG_NODES]; /* the log nodes' values (scalars) */
    double grad_norm, clip_scale;
} DeviceStepLog;

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
    /* queued devices: wait for the work queued so far and move the step records
       into the device's log (device_read_log); NULL on a synchronous device */
    void (*sync)(Device *dev);
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
    /* results of the last run (NaN after a deferred run on a queued device) */
    double grad_norm, clip_scale;
    /* 1: runs are queued on the device (cuda, emu); 0: done when run returns */
    int queued;
    /* set by the caller: run() does not wait for results (queued devices) */
    int deferred;
    /* set by the caller: scalar nodes recorded after every optimizer step */
    int log_nodes[DEVICE_LOG_NODES], n_log_nodes;
    /* the records not read yet, oldest first (device_read_log) */
    DeviceStepLog *log;
    int log_len, log_cap;
};

/* Waits for the device's queued work and moves up to max step records, oldest
   first, into out; returns how many (0 when none are kept). */
int device_read_log(Device *dev, DeviceStepLog *out, int max);
/* For devices: appends a record to the log, frees it (destroy). */
void device_log_push(Device *dev, const DeviceStepLog *rec);
void device_log_free(Device *dev);

/* The CPU device (native kernels); real_size from the plan. */
Device *device_cpu_new(Plan *plan);
/* The CPU device's engine, for code that needs raw pointers (tests). */
CpuExec *device_cpu_exec(Device *dev);

/* elements of an area */
int64_t device_area_elems(const Device *dev, KancArea area);

#endif

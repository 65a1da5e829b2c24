# kanc: compiler and runtime for KAN-transformers.
#   make          build build/kanc and build/kanrun
#   make test     build and run every test (no GPU needed)
#   make setup    install the Debian packages the build needs (root)

CC      ?= cc
BUILD   := build
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  ?= -O3 -march=native
# every source folder is on the include path: a header is named by its file name
SRC_DIRS := compiler ops runtime runtime/exec runtime/device runtime/device/emu runtime/io runtime/data cli
CFLAGS  += -std=gnu11 -g -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -fopenmp \
           -I. $(addprefix -I,$(SRC_DIRS)) -Icuda -I$(BUILD)/gen \
           -I/usr/include/x86_64-linux-gnu/openblas-openmp $(shell pkg-config --cflags libcjson libpcre2-8)
LDLIBS  := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas \
           $(shell pkg-config --libs libcjson libpcre2-8) -lm -ldl -fopenmp

GEN      := $(BUILD)/gen/kdl.tab.c $(BUILD)/gen/kdl.yy.c
LIB_SRC  := $(filter-out %_main.c,$(wildcard $(addsuffix /*.c,$(SRC_DIRS))))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/gen/kdl.tab.o $(BUILD)/gen/kdl.yy.o \
            $(BUILD)/gen/cuda_lib.o
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SRC))
HDRS     := $(wildcard $(addsuffix /*.h,$(SRC_DIRS)) $(addsuffix /*.inc,$(SRC_DIRS)) ops/*.def cuda/*.h) \
            $(BUILD)/gen/kdl.tab.h
# the CUDA library (cuda/), compiled into kanc; rng.h is the CPU's, included as it is
CUDA_LIB := $(wildcard cuda/*.cuh cuda/*.h) runtime/exec/rng.h

all: $(BUILD)/kanc $(BUILD)/kanrun

# grouped targets (&:): one bison or flex run writes both files, even under make -j
$(BUILD)/gen/kdl.tab.c $(BUILD)/gen/kdl.tab.h &: grammar/kdl.y
	@mkdir -p $(dir $@)
	bison -Wall --defines=$(BUILD)/gen/kdl.tab.h -o $(BUILD)/gen/kdl.tab.c $<

$(BUILD)/gen/kdl.yy.c $(BUILD)/gen/kdl.yy.h &: grammar/kdl.l $(BUILD)/gen/kdl.tab.h
	@mkdir -p $(dir $@)
	flex --header-file=$(BUILD)/gen/kdl.yy.h -o $(BUILD)/gen/kdl.yy.c $<

$(BUILD)/gen/cuda_lib.c: $(CUDA_LIB) scripts/embed.sh
	@mkdir -p $(dir $@)
	bash scripts/embed.sh $@ $(CUDA_LIB)

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/gen/kdl.yy.c
	$(CC) $(CFLAGS) -Wno-unused-function -c -o $@ $<

$(BUILD)/%.o: %.c $(HDRS) $(BUILD)/gen/kdl.yy.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libkanc.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/kanc: $(BUILD)/cli/kanc_main.o $(BUILD)/libkanc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/kanrun: $(BUILD)/cli/kanrun_main.o $(BUILD)/libkanc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libkanc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# The default corpus the training tests use (scripts/prepare_corpus.sh, from
# Debian's bible-kjv). Where it cannot be made, those tests are skipped and
# counted as such in the summary, with the reason.
CORPUS := data/kjv.txt
$(CORPUS):
	@bash scripts/prepare_corpus.sh || \
	  echo "make: $(CORPUS) could not be prepared; the tests that train on it will be skipped (make setup installs bible-kjv)"

test: all $(BUILD)/run_tests $(CORPUS)
	KANC_ROOT=$(CURDIR) SHARED=$(abspath ../shared) $(BUILD)/run_tests --jobs 1

setup:
	bash scripts/setup.sh

# On a machine with an NVIDIA GPU: build, verify every fixture on the device,
# GPU-vs-CPU loss curves, and kanrun bench against PyTorch (docs/cuda.md).
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(BUILD)

.PHONY: all test setup clean gpu-check

# kanc: compiler and runtime for KAN-transformers.
#   make          build build/kanc and build/kanrun
#   make test     build and run every test (no GPU needed)
#   make sanitize the same tests, built with ASan + UBSan + LeakSanitizer into build-san/
#   make setup    install the Debian packages the build needs (root)

CC      ?= cc
BUILD   ?= build
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPTFLAGS ?= -O3 -march=native
# every source folder is on the include path: a header is named by its file name
SRC_DIRS := compiler ops runtime runtime/exec runtime/device runtime/device/emu runtime/io runtime/data runtime/dist cli
KANC_CFLAGS := $(OPTFLAGS) -std=gnu11 -g -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -fopenmp \
           -I. $(addprefix -I,$(SRC_DIRS)) -Icuda -I$(BUILD)/gen \
           -I/usr/include/x86_64-linux-gnu/openblas-openmp $(shell pkg-config --cflags libcjson libpcre2-8 cairo zlib) $(CFLAGS)
LDLIBS  := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas \
           $(shell pkg-config --libs libcjson libpcre2-8 cairo zlib) -lm -ldl -fopenmp

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
	$(CC) $(KANC_CFLAGS) -Wno-unused-function -c -o $@ $<

$(BUILD)/%.o: %.c $(HDRS) $(BUILD)/gen/kdl.yy.c
	@mkdir -p $(dir $@)
	$(CC) $(KANC_CFLAGS) -c -o $@ $<

$(BUILD)/libkanc.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/kanc: $(BUILD)/cli/kanc_main.o $(BUILD)/libkanc.a
	$(CC) $(KANC_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/kanrun: $(BUILD)/cli/kanrun_main.o $(BUILD)/libkanc.a
	$(CC) $(KANC_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libkanc.a
	$(CC) $(KANC_CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# The default corpus the training tests use (scripts/prepare_corpus.sh, from
# Debian's bible-kjv). Where it cannot be made, those tests are skipped and
# counted as such in the summary, with the reason.
CORPUS := data/kjv.txt
$(CORPUS):
	@bash scripts/prepare_corpus.sh || \
	  echo "make: $(CORPUS) could not be prepared; the tests that train on it will be skipped (make setup installs bible-kjv)"

test: all $(BUILD)/run_tests $(CORPUS)
	KANC_ROOT=$(CURDIR) KANC_BIN=$(abspath $(BUILD)) SHARED=$(abspath ../shared) $(BUILD)/run_tests --jobs 1

# Every test under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer
# (a separate build folder; the binaries the tests run are the sanitized ones).
# Reports of every process (the suite, each kanc and kanrun it runs) go to
# build-san/reports/; any report fails the target, which lists them.
# scripts/lsan.supp names the third-party libraries' leaks.
SAN_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_REPORTS := $(CURDIR)/build-san/reports
sanitize:
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	ASAN_OPTIONS=detect_leaks=1:log_path=$(SAN_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_REPORTS)/ubsan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp:print_suppressions=0 \
	KANC_SANITIZE=1 $(MAKE) BUILD=build-san OPTFLAGS="$(SAN_FLAGS)" test; rc=$$?; \
	bash scripts/sanitizer_reports.sh $(SAN_REPORTS) || rc=1; exit $$rc

setup:
	bash scripts/setup.sh

# On a machine with an NVIDIA GPU: build, verify every fixture on the device,
# GPU-vs-CPU loss curves, and kanrun bench against PyTorch (docs/cuda.md).
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(BUILD) build-san

.PHONY: all test sanitize setup clean gpu-check

/* cli_opts.h: one table-driven option parser (getopt_long) for every command.
 *
 * A command describes its flags once, in a CliOpt table; the table gives the
 * parser (long and short names, whether a value follows), the validation of
 * each value (integers: range- and overflow-checked, ERANGE an error; reals:
 * finite and in range) and the --help text, so the three cannot disagree.
 *
 *     int64_t steps = 20;
 *     const char *device = "auto";
 *     const CliOpt opts[] = {
 *         CLI_INT("steps", &steps, 1, CLI_INT_MAX, "N", "timed steps (default 20)"),
 *         CLI_STR("device", &device, "D", "auto, cpu, cuda or emu"),
 *     };
 *     CliSpec spec = {"kanrun bench", "usage: kanrun bench MODEL.kdl [flags]\n",
 *                     NULL, opts, CLI_COUNT(opts), 1, 1};
 *     char *pos[1];
 *     int np, r = cli_parse(&spec, argc, argv, pos, &np);
 *     if (r) return r > 0 ? 0 : 2;     // 1: --help was printed; -1: an error was
 *
 * Every error names the flag and the value: "kanrun bench: error: --steps
 * needs an integer in [1, 4611686018427387904], got '-4'", "--steps needs a
 * value (N)", "unknown option '--step' (did you mean '--steps'?)".
 */
#ifndef KANC_CLI_OPTS_H
#define KANC_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

typedef enum {
    CLI_KIND_FLAG, /* no value: *(int *)dst = 1 */
    CLI_KIND_STR,  /* *(const char **)dst = the value (argv's own storage) */
    CLI_KIND_INT,  /* *(int64_t *)dst, in [ilo, ihi] */
    CLI_KIND_REAL, /* *(double *)dst, finite, in [rlo, rhi] (rlo excluded when open_lo) */
    CLI_KIND_CALL, /* call(value, ctx): 0, or -1 with the message printed */
} CliKind;

typedef struct {
    const char *name; /* the long name, without "--" */
    int short_name;   /* 'o' for -o; 0: none */
    CliKind kind;
    void *dst;
    int64_t ilo, ihi;
    double rlo, rhi;
    int open_lo;
    int (*call)(const char *value, void *ctx);
    const char *arg;  /* the value's placeholder in --help ("N", "PATH") */
    const char *help; /* one or more lines ('\n' between them) */
} CliOpt;

/* the largest value an integer flag may take: every count the runtime
   multiplies stays far from int64 overflow */
#define CLI_INT_MAX KANC_INT_MAX

#define CLI_FLAG(n, d, h) {.name = (n), .kind = CLI_KIND_FLAG, .dst = (d), .help = (h)}
#define CLI_STR(n, d, a, h) {.name = (n), .kind = CLI_KIND_STR, .dst = (d), .arg = (a), .help = (h)}
#define CLI_INT(n, d, lo, hi, a, h)                                                               \
    {.name = (n), .kind = CLI_KIND_INT, .dst = (d), .ilo = (lo), .ihi = (hi), .arg = (a), .help = (h)}
#define CLI_REAL(n, d, lo, hi, a, h)                                                              \
    {.name = (n), .kind = CLI_KIND_REAL, .dst = (d), .rlo = (lo), .rhi = (hi), .arg = (a), .help = (h)}
#define CLI_REAL_POS(n, d, hi, a, h) /* (0, hi] */                                                \
    {.name = (n), .kind = CLI_KIND_REAL, .dst = (d), .rlo = 0, .rhi = (hi), .open_lo = 1,          \
     .arg = (a), .help = (h)}
#define CLI_CALL(n, f, a, h) {.name = (n), .kind = CLI_KIND_CALL, .call = (f), .arg = (a), .help = (h)}
#define CLI_COUNT(t) ((int)(sizeof(t) / sizeof *(t)))

typedef struct {
    const char *prog;   /* "kanrun train": the prefix of messages */
    const char *usage;  /* the usage lines, printed first by --help */
    const char *epilog; /* printed after the flags by --help (NULL: none) */
    const CliOpt *opts;
    int nopts;
    int min_pos, max_pos; /* positional arguments accepted */
    void *ctx;            /* passed to CLI_KIND_CALL handlers */
} CliSpec;

/* Parses argv[0..argc) (the arguments after the command's name). -h/--help
   anywhere prints the help on stdout and returns 1; a bad flag, a bad value,
   or too few or too many positional arguments prints a message on stderr and
   returns -1; else 0, with the positional arguments in pos[0..*npos). argv is
   permuted (getopt_long), not copied: pos[] and CLI_STR values point into it. */
int cli_parse(const CliSpec *spec, int argc, char **argv, char **pos, int *npos);

/* The help text of spec, on f. */
void cli_print_help(const CliSpec *spec, FILE *f);

/* Value checks shared by the parser and by every reader of saved settings
   (a checkpoint's training state is checked like the command line). `what`
   names the value in the message ("--steps", "run/optimizer-8.safetensors:
   log_every"). Each returns 0, or -1 with the message in err. Integers:
   parse_int_strict (util.h). */
int cli_parse_real(const char *what, const char *text, double lo, double hi, int open_lo,
                   double *out, char *err, size_t errlen);
/* a number from JSON: an integer-valued double within [lo, hi] */
int cli_check_int(const char *what, double v, int64_t lo, int64_t hi, int64_t *out, char *err,
                  size_t errlen);
int cli_check_real(const char *what, double v, double lo, double hi, int open_lo, char *err,
                   size_t errlen);

#endif

/* cli_opts.c: the option table -> getopt_long, value checks, --help. */
#include "cli_opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "util.h"

#define HELP_VAL 1 /* getopt_long's value for --help (the table's entries are 256 + index) */

static void real_range(char *buf, size_t n, double lo, double hi, int open_lo)
{
    if (isinf(hi))
        snprintf(buf, n, "%s %g", open_lo ? ">" : ">=", lo);
    else
        snprintf(buf, n, "in %c%g, %g]", open_lo ? '(' : '[', lo, hi);
}

int cli_check_real(const char *what, double v, double lo, double hi, int open_lo, char *err,
                   size_t errlen)
{
    if (isfinite(v) && (open_lo ? v > lo : v >= lo) && v <= hi) return 0;
    char range[64];
    real_range(range, sizeof range, lo, hi, open_lo);
    set_err(err, errlen, "%s needs a finite number %s, got %g", what, range, v);
    return -1;
}

int cli_parse_real(const char *what, const char *text, double lo, double hi, int open_lo,
                   double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno == ERANGE || text[0] == ' ' || !isfinite(v) ||
        !(open_lo ? v > lo : v >= lo) || v > hi) {
        char range[64];
        real_range(range, sizeof range, lo, hi, open_lo);
        set_err(err, errlen, "%s needs a finite number %s, got '%s'", what, range, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_check_int(const char *what, double v, int64_t lo, int64_t hi, int64_t *out, char *err,
                  size_t errlen)
{
    /* 2^63 is the first double past int64's range */
    if (!(v == floor(v) && fabs(v) < 9223372036854775808.0) || (int64_t)v < lo || (int64_t)v > hi) {
        set_err(err, errlen, "%s needs an integer in [%lld, %lld], got %.17g", what, (long long)lo,
                (long long)hi, v);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int takes_value(const CliOpt *o) { return o->kind != CLI_KIND_FLAG; }

void cli_print_help(const CliSpec *s, FILE *f)
{
    fputs(s->usage, f);
    fputc('\n', f);
    for (int i = 0; i <= s->nopts; i++) {
        const CliOpt *o = i < s->nopts ? &s->opts[i] : NULL;
        char head[96] = "  ", *w = head + 2;
        if (!o)
            strcpy(w, "-h, --help");
        else {
            if (o->short_name) w += sprintf(w, "-%c%s", o->short_name, o->name ? ", " : "");
            if (o->name) w += snprintf(w, 60, "--%s", o->name);
            if (takes_value(o)) snprintf(w, 30, " %s", o->arg ? o->arg : "VALUE");
        }
        const char *help = o ? o->help : "this text";
        int pad = 24 - (int)strlen(head);
        if (pad < 1) {
            fprintf(f, "%s\n%24s", head, "");
        } else {
            fprintf(f, "%s%*s", head, pad, "");
        }
        for (const char *p = help; *p;) {
            size_t n = strcspn(p, "\n");
            fprintf(f, "%.*s\n", (int)n, p);
            p += n;
            if (*p == '\n' && *++p) fprintf(f, "%24s", "");
        }
    }
    if (s->epilog) {
        fputc('\n', f);
        fputs(s->epilog, f);
    }
}

static const CliOpt *by_short(const CliSpec *s, int c)
{
    for (int i = 0; i < s->nopts; i++)
        if (s->opts[i].short_name == c) return &s->opts[i];
    return NULL;
}

static const CliOpt *by_name(const CliSpec *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nopts; i++)
        if (strlen(s->opts[i].name) == len && !strncmp(s->opts[i].name, name, len)) return &s->opts[i];
    return NULL;
}

/* "--steps" or "-o" as the user would type it */
static void flag_text(const CliOpt *o, char *buf, size_t n)
{
    if (o->name)
        snprintf(buf, n, "--%s", o->name);
    else
        snprintf(buf, n, "-%c", o->short_name);
}

static void unknown_option(const CliSpec *s, const char *text)
{
    if (text[0] == '-' && text[1] == '-') {
        const char *name = text + 2;
        size_t len = strcspn(name, "=");
        const CliOpt *o = by_name(s, name, len);
        if (o && !takes_value(o)) {
            fprintf(stderr, "%s: error: --%s takes no value ('%s')\n", s->prog, o->name, text);
            return;
        }
        char *bare = xasprintf("%.*s", (int)len, name);
        const char **names = xmalloc(sizeof *names * (size_t)(s->nopts + 1));
        for (int i = 0; i < s->nopts; i++) names[i] = s->opts[i].name;
        names[s->nopts] = "help";
        const char *near = diag_closest(bare, names, s->nopts + 1);
        /* getopt_long also refuses an ambiguous abbreviation */
        int prefixes = 0;
        for (int i = 0; i < s->nopts; i++) prefixes += !strncmp(s->opts[i].name, bare, len);
        if (prefixes > 1)
            fprintf(stderr, "%s: error: option '%s' is ambiguous: give the whole name\n", s->prog, text);
        else if (near)
            fprintf(stderr, "%s: error: unknown option '%s' (did you mean '--%s'?)\n", s->prog, text, near);
        else
            fprintf(stderr, "%s: error: unknown option '%s'; '%s --help' lists the flags\n", s->prog,
                    text, s->prog);
        free(names);
        free(bare);
        return;
    }
    fprintf(stderr, "%s: error: unknown option '%s'; '%s --help' lists the flags\n", s->prog, text,
            s->prog);
}

/* stores one value; 0, or -1 with the message printed */
static int apply(const CliSpec *s, const CliOpt *o, const char *v)
{
    char flag[80], err[512];
    flag_text(o, flag, sizeof flag);
    if (takes_value(o) && v[0] == '-' && v[1] == '-' && v[2] && by_name(s, v + 2, strcspn(v + 2, "="))) {
        fprintf(stderr, "%s: error: %s needs a value (%s), got the option '%s'\n", s->prog, flag,
                o->arg ? o->arg : "VALUE", v);
        return -1;
    }
    int rc = 0;
    switch (o->kind) {
    case CLI_KIND_FLAG: *(int *)o->dst = 1; break;
    case CLI_KIND_STR: *(const char **)o->dst = v; break;
    case CLI_KIND_INT: rc = parse_int_strict(flag, v, o->ilo, o->ihi, o->dst, err, sizeof err); break;
    case CLI_KIND_REAL:
        rc = cli_parse_real(flag, v, o->rlo, o->rhi, o->open_lo, o->dst, err, sizeof err);
        break;
    case CLI_KIND_CALL: return o->call(v, s->ctx) ? -1 : 0;
    }
    if (rc) fprintf(stderr, "%s: error: %s\n", s->prog, err);
    return rc;
}

int cli_parse(const CliSpec *s, int argc, char **argv, char **pos, int *npos)
{
    /* getopt_long wants argv[0] to be the program: parse a copy that has one */
    char **args = xmalloc(sizeof *args * (size_t)(argc + 2));
    args[0] = (char *)s->prog;
    memcpy(args + 1, argv, sizeof *args * (size_t)argc);
    args[argc + 1] = NULL;
    struct option *lo = xcalloc((size_t)s->nopts + 2, sizeof *lo);
    char *shorts = xmalloc(3 * (size_t)s->nopts + 4), *w = shorts;
    *w++ = ':'; /* ':' first: a missing value returns ':', not '?' */
    *w++ = 'h';
    int nl = 0;
    for (int i = 0; i < s->nopts; i++) {
        const CliOpt *o = &s->opts[i];
        if (o->name) lo[nl++] = (struct option){o->name, takes_value(o) ? required_argument : no_argument, NULL, 256 + i};
        if (o->short_name) {
            *w++ = (char)o->short_name;
            if (takes_value(o)) *w++ = ':';
        }
    }
    *w = 0;
    lo[nl++] = (struct option){"help", no_argument, NULL, HELP_VAL};
    int rc = 0, c;
    optind = 0; /* a full reset of getopt's state */
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc + 1, args, shorts, lo, NULL)) != -1) {
        if (c == 'h' || c == HELP_VAL) {
            cli_print_help(s, stdout);
            rc = 1;
        } else if (c == ':') {
            const CliOpt *o = optopt >= 256 ? &s->opts[optopt - 256] : by_short(s, optopt);
            char flag[80];
            flag_text(o, flag, sizeof flag);
            fprintf(stderr, "%s: error: %s needs a value (%s)\n", s->prog, flag, o->arg ? o->arg : "VALUE");
            rc = -1;
        } else if (c == '?') {
            char text[8];
            snprintf(text, sizeof text, "-%c", optopt);
            unknown_option(s, optopt && optopt < 256 ? text : args[optind - 1]);
            rc = -1;
        } else {
            const CliOpt *o = c >= 256 ? &s->opts[c - 256] : by_short(s, c);
            rc = apply(s, o, optarg);
        }
    }
    int n = 0;
    for (int i = optind; rc == 0 && i < argc + 1; i++) {
        if (n == s->max_pos) {
            fprintf(stderr, "%s: error: unexpected argument '%s'\n%s", s->prog, args[i], s->usage);
            rc = -1;
        } else {
            pos[n++] = args[i];
        }
    }
    if (rc == 0 && n < s->min_pos) {
        fprintf(stderr, "%s: error: missing argument\n%s", s->prog, s->usage);
        rc = -1;
    }
    /* getopt_long permuted args: keep argv in the same order, as documented */
    memcpy(argv, args + 1, sizeof *args * (size_t)argc);
    *npos = n;
    free(lo);
    free(shorts);
    free(args);
    return rc;
}

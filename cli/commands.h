/* commands.h: kanrun's commands. Each parses its own flags (cli_opts.h),
 * prints its own --help, and returns the process exit status: 0 done,
 * 1 error, 2 bad usage (and train's 3: stopped on a non-finite loss). */
#ifndef KANC_COMMANDS_H
#define KANC_COMMANDS_H

int train_main(int argc, char **argv);  /* train.c */
int eval_main(int argc, char **argv);   /* eval.c */
int sample_main(int argc, char **argv); /* sample.c */
int bench_main(int argc, char **argv);  /* bench.c */
int verify_main(int argc, char **argv); /* verify.c */
int forward_main(int argc, char **argv); /* forward.c */
int regrid_main(int argc, char **argv);  /* regrid.c */
int inspect_main(int argc, char **argv); /* inspect.c */
int plot_main(int argc, char **argv);    /* curves.c */
int compare_main(int argc, char **argv); /* curves.c */
int predict_main(int argc, char **argv); /* predict.c */

#endif

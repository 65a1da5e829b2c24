/* sample.h: kanrun sample, and the token choice it makes. */
#ifndef KANC_SAMPLE_H
#define KANC_SAMPLE_H

/* Picks a token from one row of logits: greedy when temperature <= 0, else
   softmax(logits / temperature) cut to the top_k most likely (0: all) and to
   the smallest set holding top_p of the mass (1: all), sampled with the
   uniform draw u in [0, 1). */
int sample_pick(const float *logits, int V, double temperature, int top_k, double top_p, double u);

#endif

/*
 * Streaming a 2-layer LSTM from C, one frame at a time, as a speech front end
 * would: one shared model, one state per stream, a fork of a stream, a reset.
 *
 *   cc -std=c99 -I include examples/c/lstm_stream.c target/release/librnncell.a \
 *      -lpthread -ldl -lm -o lstm_stream          # static
 *   cc -std=c99 -I include examples/c/lstm_stream.c -L target/release -lrnncell \
 *      -o lstm_stream                              # dynamic
 *   cc examples/c/lstm_stream.c $(pkg-config --cflags --libs rnncell)   # installed
 *
 * Weights here are synthetic; real ones come from a framework (PyTorch
 * layout: weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncell.h"

#define INPUT 40  /* e.g. 40 filterbank features per 10 ms frame */
#define HIDDEN 64
#define LAYERS 2
#define FRAMES 100

/* Stop with a readable message on any failure. */
#define TRY(call)                                                                \
    do {                                                                         \
        RnncellStatus st_ = (call);                                              \
        if (st_ != RNNCELL_STATUS_OK) {                                          \
            fprintf(stderr, "%s failed: %s\n", #call, rnncell_status_str(st_)); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static float *synthetic(size_t n, unsigned seed) {
    float *v = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.3f;
    }
    return v;
}

int main(void) {
    RnncellSpec spec;
    RnncellPytorchLayer layers[LAYERS];
    float *weights[LAYERS][4];
    RnncellModel *model = NULL;
    RnncellState *stream_a = NULL, *stream_b = NULL, *fork = NULL;
    RnncellModelInfo info;
    char err[256];
    float x[INPUT], y[HIDDEN], y_fork[HIDDEN];
    size_t l, t, k;

    /* 1. Describe the network: a plain PyTorch nn.LSTM(40, 64, num_layers=2). */
    TRY(rnncell_spec_init(&spec, RNNCELL_CELL_LSTM, INPUT, HIDDEN));
    spec.num_layers = LAYERS;

    /* 2. Hand over the weights with their element counts; they are copied. */
    memset(layers, 0, sizeof layers);
    for (l = 0; l < LAYERS; l++) {
        size_t in = l == 0 ? INPUT : HIDDEN;
        weights[l][0] = synthetic(4 * HIDDEN * in, 1u + (unsigned)l);
        weights[l][1] = synthetic(4 * HIDDEN * HIDDEN, 11u + (unsigned)l);
        weights[l][2] = synthetic(4 * HIDDEN, 21u + (unsigned)l);
        weights[l][3] = synthetic(4 * HIDDEN, 31u + (unsigned)l);
        layers[l].weight_ih.data = weights[l][0];
        layers[l].weight_ih.len = 4 * HIDDEN * in;
        layers[l].weight_hh.data = weights[l][1];
        layers[l].weight_hh.len = 4 * HIDDEN * HIDDEN;
        layers[l].bias_ih.data = weights[l][2];
        layers[l].bias_ih.len = 4 * HIDDEN;
        layers[l].bias_hh.data = weights[l][3];
        layers[l].bias_hh.len = 4 * HIDDEN;
    }
    if (rnncell_model_new_pytorch(&spec, layers, LAYERS, RNNCELL_ISA_AUTO, &model, err,
                                  sizeof err) != RNNCELL_STATUS_OK) {
        fprintf(stderr, "cannot build the model: %s\n", err);
        return 1;
    }
    for (l = 0; l < LAYERS; l++)
        for (k = 0; k < 4; k++) free(weights[l][k]); /* the model has its own copy */

    TRY(rnncell_model_info(model, &info));
    printf("rnncell %s, ISA %s, LSTM %zu -> %zu x %zu layers, %zu KiB of packed weights\n",
           rnncell_version(), rnncell_isa_name(info.isa), info.input_size, info.hidden_size,
           info.num_layers, info.weight_bytes / 1024);

    /* 3. One state per stream; the model is shared (also across threads). */
    TRY(rnncell_state_new(model, &stream_a));
    TRY(rnncell_state_new(model, &stream_b));

    for (t = 0; t < FRAMES; t++) {
        for (k = 0; k < INPUT; k++) x[k] = 0.5f * sinf(0.07f * (float)(t * (k + 1)));
        TRY(rnncell_model_step(model, stream_a, x, INPUT, y, HIDDEN));
        if (t % 20 == 19)
            printf("frame %3zu  h[0..4] = % .6f % .6f % .6f % .6f\n", t + 1, y[0], y[1], y[2],
                   y[3]);
        if (t == 49) TRY(rnncell_state_copy(stream_a, &fork)); /* fork mid-stream */
        /* stream b hears the same frames delayed by one: a different stream */
        if (t > 0) TRY(rnncell_model_step(model, stream_b, x, INPUT, y, HIDDEN));
    }

    /* 4. The fork continues exactly as the original would have. */
    TRY(rnncell_state_reset(stream_a));
    for (t = 0; t < FRAMES; t++) {
        for (k = 0; k < INPUT; k++) x[k] = 0.5f * sinf(0.07f * (float)(t * (k + 1)));
        TRY(rnncell_model_step(model, stream_a, x, INPUT, y, HIDDEN));
        if (t >= 50) TRY(rnncell_model_step(model, fork, x, INPUT, y_fork, HIDDEN));
    }
    printf("fork at frame 50 matches the replayed stream: %s\n",
           memcmp(y, y_fork, sizeof y) == 0 ? "yes" : "NO");

    /* 5. Errors are statuses; nothing is changed by a failed call. */
    printf("wrong input size: %s\n", rnncell_status_str(rnncell_model_step(
                                         model, stream_a, x, INPUT - 1, y, HIDDEN)));

    rnncell_state_free(fork);
    rnncell_state_free(stream_b);
    rnncell_state_free(stream_a);
    rnncell_model_free(model);
    return memcmp(y, y_fork, sizeof y) == 0 ? 0 : 1;
}

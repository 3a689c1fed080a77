/*
 * Streaming a 2-layer LSTM from C, one frame at a time, as a speech front end
 * would: one shared model, one state per stream, a fork of a stream, a reset;
 * then the same weights in int8 (RNNCELL_WEIGHT_PRECISION_I8: int8 weights and
 * activations, exact int32 dot products), streamed beside the f32 model.
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
/* The largest |h_i8 - h_f32| this example accepts over the FRAMES frames of
 * its synthetic weights; above it, it fails. The observed value is printed
 * (8.0e-04 on an AMD EPYC Zen 3, AVX2; every ISA gives the same bits). h
 * itself reaches about 0.1 here, so a broken i8 model (zeros, noise) fails. */
#define I8_BOUND 1e-2f

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

/* Builds the model of `spec` from `layers` with the weight precision `precision`. */
static RnncellModel *build(RnncellSpec spec, const RnncellPytorchLayer *layers,
                           uint32_t precision) {
    RnncellModel *model = NULL;
    char err[256];
    spec.weight_precision = precision;
    if (rnncell_model_new_pytorch(&spec, layers, LAYERS, RNNCELL_ISA_AUTO, &model, err,
                                  sizeof err) != RNNCELL_STATUS_OK) {
        fprintf(stderr, "cannot build the model: %s\n", err);
        exit(1);
    }
    return model;
}

/* Frame t of the synthetic input. */
static void frame(size_t t, float *x) {
    size_t k;
    for (k = 0; k < INPUT; k++) x[k] = 0.5f * sinf(0.07f * (float)(t * (k + 1)));
}

int main(void) {
    RnncellSpec spec;
    RnncellPytorchLayer layers[LAYERS];
    float *weights[LAYERS][4];
    RnncellModel *model = NULL, *model_i8 = NULL;
    RnncellState *stream_a = NULL, *stream_b = NULL, *fork = NULL, *s32 = NULL, *s8 = NULL;
    RnncellModelInfo info = {.struct_size = sizeof info}, info_i8 = {.struct_size = sizeof info_i8};
    float x[INPUT], y[HIDDEN], y_fork[HIDDEN], y8[HIDDEN];
    float i8_err = 0.0f;
    size_t l, t, k;
    int ok;

    /* 1. Describe the network: a plain PyTorch nn.LSTM(40, 64, num_layers=2). */
    TRY(rnncell_spec_init(&spec, sizeof spec, RNNCELL_CELL_LSTM, INPUT, HIDDEN));
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
    model = build(spec, layers, RNNCELL_WEIGHT_PRECISION_F32);
    /* The same weights in int8 (weights and activations); f16, bf16 and i8w
     * (int8 weights, f32 activations) are chosen the same way. */
    model_i8 = build(spec, layers, RNNCELL_WEIGHT_PRECISION_I8);
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
        frame(t, x);
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
        frame(t, x);
        TRY(rnncell_model_step(model, stream_a, x, INPUT, y, HIDDEN));
        if (t >= 50) TRY(rnncell_model_step(model, fork, x, INPUT, y_fork, HIDDEN));
    }
    printf("fork at frame 50 matches the replayed stream: %s\n",
           memcmp(y, y_fork, sizeof y) == 0 ? "yes" : "NO");

    /* 5. Errors are statuses; nothing is changed by a failed call. */
    printf("wrong input size: %s\n", rnncell_status_str(rnncell_model_step(
                                         model, stream_a, x, INPUT - 1, y, HIDDEN)));

    ok = memcmp(y, y_fork, sizeof y) == 0;

    /* 6. The i8 model: about a quarter of the weight bytes, h within a small
     * distance of the f32 model's on the same frames. */
    TRY(rnncell_model_info(model_i8, &info_i8));
    TRY(rnncell_state_new(model, &s32));
    TRY(rnncell_state_new(model_i8, &s8));
    for (t = 0; t < FRAMES; t++) {
        frame(t, x);
        TRY(rnncell_model_step(model, s32, x, INPUT, y, HIDDEN));
        TRY(rnncell_model_step(model_i8, s8, x, INPUT, y8, HIDDEN));
        for (k = 0; k < HIDDEN; k++) {
            float d = fabsf(y8[k] - y[k]);
            if (d > i8_err || d != d) i8_err = d; /* a NaN stays: it fails below */
        }
    }
    printf("i8: %zu KiB of packed weights (f32: %zu KiB), max |h_i8 - h_f32| over %d frames "
           "= %.2e (bound %.0e): %s\n",
           info_i8.weight_bytes / 1024, info.weight_bytes / 1024, FRAMES, (double)i8_err,
           (double)I8_BOUND, i8_err <= I8_BOUND ? "ok" : "TOO LARGE");
    ok = ok && info_i8.weight_precision == RNNCELL_WEIGHT_PRECISION_I8 && i8_err <= I8_BOUND;

    rnncell_state_free(s8);
    rnncell_state_free(s32);
    rnncell_state_free(fork);
    rnncell_state_free(stream_b);
    rnncell_state_free(stream_a);
    rnncell_model_free(model_i8);
    rnncell_model_free(model);
    return ok ? 0 : 1;
}

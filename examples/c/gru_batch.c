/*
 * A GRU from C over a batch of sequences of different lengths
 * (rnncell_model_run, ONNX semantics), checked against streaming one
 * sequence frame by frame and in chunks (rnncell_model_step_chunk), and
 * several streams at once (rnncell_model_step_many). Weights in ONNX layout
 * (W, R, B of an ONNX GRU node with linear_before_reset = 1).
 *
 *   cc -std=c99 -I include examples/c/gru_batch.c target/release/librnncell.a \
 *      -lpthread -ldl -lm -o gru_batch
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncell.h"

#define I 12
#define H 20
#define T 30
#define B 4

#define TRY(call)                                                                \
    do {                                                                         \
        RnncellStatus st_ = (call);                                              \
        if (st_ != RNNCELL_STATUS_OK) {                                          \
            fprintf(stderr, "%s failed: %s\n", #call, rnncell_status_str(st_)); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static void fill(float *v, size_t n, unsigned seed) {
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = ((float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f) * 0.5f;
    }
}

static float W[3 * H * I], R[3 * H * H], Bias[6 * H];
static float x[T * B * I], y[T * B * H], h_n[B * H];
static float y_step[T * H], y_chunk[T * H], y_many[B * H], x_many[B * I];

int main(void) {
    RnncellSpec spec;
    RnncellOnnxLayer node;
    RnncellModel *model;
    RnncellState *st, *streams[B];
    RnncellSequence seq;
    RnncellSequenceOutput out;
    size_t lens[B] = {30, 17, 5, 24};
    size_t b, t, ok = 1;
    char err[256];

    TRY(rnncell_spec_init(&spec, sizeof spec, RNNCELL_CELL_GRU, I, H));
    spec.gru_linear_before_reset = 1; /* ONNX linear_before_reset = 1 */
    fill(W, sizeof W / sizeof *W, 1);
    fill(R, sizeof R / sizeof *R, 2);
    fill(Bias, sizeof Bias / sizeof *Bias, 3);
    fill(x, sizeof x / sizeof *x, 4);
    memset(&node, 0, sizeof node);
    node.w.data = W;
    node.w.len = 3 * H * I;
    node.r.data = R;
    node.r.len = 3 * H * H;
    node.b.data = Bias;
    node.b.len = 6 * H;
    if (rnncell_model_new_onnx(&spec, &node, 1, RNNCELL_ISA_AUTO, &model, err, sizeof err) !=
        RNNCELL_STATUS_OK) {
        fprintf(stderr, "cannot build the model: %s\n", err);
        return 1;
    }

    /* The whole batch, time-major [T, B, I], with per-sequence lengths. */
    TRY(rnncell_sequence_init(&seq, sizeof seq)); /* versioned: writes sizeof seq */
    memset(&out, 0, sizeof out);
    seq.input.data = x;
    seq.input.len = T * B * I;
    seq.steps = T;
    seq.batch = B;
    seq.seq_lens = lens;
    seq.seq_lens_len = B;
    out.output.data = y;
    out.output.len = T * B * H;
    out.h_n.data = h_n;
    out.h_n.len = B * H;
    TRY(rnncell_model_run(model, &seq, &out));

    /* Sequence 1 streamed alone, frame by frame and in chunks of 7 frames. */
    TRY(rnncell_state_new(model, &st));
    for (t = 0; t < lens[1]; t++) {
        float xt[I];
        memcpy(xt, x + (t * B + 1) * I, sizeof xt);
        TRY(rnncell_model_step(model, st, xt, I, y_step + t * H, H));
        ok &= memcmp(y_step + t * H, y + (t * B + 1) * H, H * sizeof(float)) == 0;
    }
    ok &= memcmp(y_step + (lens[1] - 1) * H, h_n + 1 * H, H * sizeof(float)) == 0;
    TRY(rnncell_state_reset(st));
    for (t = 0; t < lens[1]; t += 7) {
        size_t k = lens[1] - t < 7 ? lens[1] - t : 7, j;
        float xc[7 * I];
        for (j = 0; j < k; j++) memcpy(xc + j * I, x + ((t + j) * B + 1) * I, I * sizeof(float));
        TRY(rnncell_model_step_chunk(model, st, xc, k * I, y_chunk + t * H, k * H));
    }
    ok &= memcmp(y_chunk, y_step, lens[1] * H * sizeof(float)) == 0;

    /* All four streams at once, one call per frame, for the common prefix. */
    for (b = 0; b < B; b++) TRY(rnncell_state_new(model, &streams[b]));
    for (t = 0; t < 5; t++) {
        for (b = 0; b < B; b++) memcpy(x_many + b * I, x + (t * B + b) * I, I * sizeof(float));
        TRY(rnncell_model_step_many(model, streams, B, x_many, B * I, y_many, B * H));
        for (b = 0; b < B; b++)
            ok &= memcmp(y_many + b * H, y + (t * B + b) * H, H * sizeof(float)) == 0;
    }

    printf("GRU I=%d H=%d, batch %d of lengths %zu %zu %zu %zu, ISA %s\n", I, H, B, lens[0],
           lens[1], lens[2], lens[3], rnncell_isa_name(rnncell_isa_detected()));
    for (b = 0; b < B; b++)
        printf("  h_n[%zu][0..3] = % .6f % .6f % .6f\n", b, h_n[b * H], h_n[b * H + 1],
               h_n[b * H + 2]);
    printf("  output past the end of sequence 2 is zero: %s\n",
           y[(10 * B + 2) * H] == 0.0f ? "yes" : "NO");
    printf("  run == step == step_chunk == step_many, bit for bit: %s\n", ok ? "yes" : "NO");

    for (b = 0; b < B; b++) rnncell_state_free(streams[b]);
    rnncell_state_free(st);
    rnncell_model_free(model);
    return ok ? 0 : 1;
}

/*
 * Loading a PyTorch model saved with safetensors and streaming through it
 * from C: no gate orders, no shapes to spell out, the file says it all.
 *
 *   # in Python: safetensors.torch.save_file(lstm.state_dict(), "lstm.safetensors")
 *   cc -std=c99 -I include examples/c/safetensors_stream.c target/release/librnncell.a \
 *      -lpthread -ldl -lm -o safetensors_stream
 *   ./safetensors_stream lstm.safetensors
 *
 * Without an argument it reads $RNNCELL_MODEL, else the committed test file
 * tests/safetensors/torch_lstm_2l_f16.safetensors (a 2-layer nn.LSTM saved
 * in float16, widened to float32 on load).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rnncell.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("RNNCELL_MODEL");
    RnncellSpec spec;
    RnncellSafetensorsOptions opts;
    RnncellModel *model = NULL;
    RnncellState *stream = NULL;
    RnncellModelInfo info = {.struct_size = sizeof info};
    char err[256] = {0};
    float *x, *y;
    size_t t, k;
    RnncellStatus st;

    if (path == NULL) path = "tests/safetensors/torch_lstm_2l_f16.safetensors";

    /* Only the cell kind matters: layers, directions and sizes come from the tensors. */
    st = rnncell_spec_init(&spec, sizeof spec, RNNCELL_CELL_LSTM, 1, 1);
    if (st != RNNCELL_STATUS_OK) return 1;
    /* Versioned structs: the init function writes the defaults and sizeof opts. */
    st = rnncell_safetensors_options_init(&opts, sizeof opts);
    if (st != RNNCELL_STATUS_OK) return 1;
    opts.format = RNNCELL_WEIGHT_FORMAT_PYTORCH;
    opts.prefix = NULL; /* e.g. "encoder.rnn." when the RNN is part of a bigger module */

    st = rnncell_model_load_safetensors(path, &spec, &opts, RNNCELL_ISA_AUTO, &model, err, sizeof err);
    if (st != RNNCELL_STATUS_OK) {
        fprintf(stderr, "loading %s: %s: %s\n", path, rnncell_status_str(st), err);
        return 1;
    }
    if (rnncell_model_info(model, &info) != RNNCELL_STATUS_OK) return 1;
    printf("loaded: %zu layer(s), %zu direction(s), input %zu, hidden %zu, h size %zu, isa %s\n",
           info.num_layers, info.num_directions, info.input_size, info.hidden_size, info.state_size,
           rnncell_isa_name((uint32_t)info.isa));
    if (info.num_directions != 1) {
        printf("a bidirectional model cannot stream; use rnncell_model_run over whole sequences\n");
        rnncell_model_free(model);
        return 0;
    }

    x = (float *)calloc(info.input_size, sizeof(float));
    y = (float *)calloc(info.state_size, sizeof(float));
    if (x == NULL || y == NULL || rnncell_state_new(model, &stream) != RNNCELL_STATUS_OK) return 1;
    for (t = 0; t < 50; t++) {
        for (k = 0; k < info.input_size; k++) x[k] = (float)sin(0.1 * (double)t + (double)k);
        st = rnncell_model_step(model, stream, x, info.input_size, y, info.state_size);
        if (st != RNNCELL_STATUS_OK) {
            fprintf(stderr, "step: %s\n", rnncell_status_str(st));
            return 1;
        }
        if (t % 10 == 9) printf("t=%2zu  y[0]=%+.6f\n", t, (double)y[0]);
    }
    free(x);
    free(y);
    rnncell_state_free(stream);
    rnncell_model_free(model);
    return 0;
}

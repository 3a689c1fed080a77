/*
 * Loading an ONNX file and streaming through its LSTM/GRU/RNN from C: the
 * node says everything (sizes, direction, gate order, GRU form, clip,
 * activations), the weights may come through constant chains or subgraphs.
 *
 *   # in Python: torch.onnx.export(lstm, x, "lstm.onnx", dynamo=False)
 *   cc -std=c99 -I include examples/c/onnx_stream.c target/release/librnncell.a \
 *      -lpthread -ldl -lm -o onnx_stream
 *   ./onnx_stream lstm.onnx
 *
 * Without an argument it reads $RNNCELL_ONNX_MODEL, else the committed test
 * file tests/onnx/torch/lstm_1l/model.onnx (a torch.onnx.export of
 * nn.LSTM(5, 7)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rnncell.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("RNNCELL_ONNX_MODEL");
    RnncellModel *model = NULL;
    RnncellState *stream = NULL;
    RnncellModelInfo info = {.struct_size = sizeof info};
    char err[256] = {0};
    float *x, *y;
    size_t t, k;
    RnncellStatus st;

    if (path == NULL) path = "tests/onnx/torch/lstm_1l/model.onnx";

    /* NULL options: the file's one chain of recurrent nodes, f32 weights,
       the best ISA. RnncellOnnxOptions.nodes picks nodes by name. */
    st = rnncell_model_load_onnx(path, NULL, RNNCELL_ISA_AUTO, &model, err, sizeof err);
    if (st != RNNCELL_STATUS_OK) {
        fprintf(stderr, "loading %s: %s: %s\n", path, rnncell_status_str(st), err);
        return 1;
    }
    if (rnncell_model_info(model, &info) != RNNCELL_STATUS_OK) return 1;
    printf("loaded: %zu layer(s), %zu direction(s), input %zu, hidden %zu, isa %s\n",
           info.num_layers, info.num_directions, info.input_size, info.hidden_size,
           rnncell_isa_name((uint32_t)info.isa));
    if (info.num_directions != 1) {
        printf("a bidirectional model cannot stream; use rnncell_model_run over whole sequences\n");
        rnncell_model_free(model);
        return 0;
    }

    x = (float *)calloc(info.input_size, sizeof(float));
    y = (float *)calloc(info.state_size, sizeof(float));
    if (x == NULL || y == NULL || rnncell_state_new(model, &stream) != RNNCELL_STATUS_OK) return 1;
    for (t = 0; t < 30; t++) {
        for (k = 0; k < info.input_size; k++) x[k] = (float)sin(0.2 * (double)t + (double)k);
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

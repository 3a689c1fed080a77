/*
 * Drives every entry point of include/rnncell.h and every error path of the
 * boundary, against an independent double-precision reference, on random
 * weights with sizes that are not multiples of 4, 8 or 16. Built against
 * the header and the static library; run under AddressSanitizer +
 * UndefinedBehaviorSanitizer and under valgrind memcheck (c/Makefile,
 * .ci/c.sh). Needs a library built with the Cargo feature test-panic.
 *
 * Exit status 0 when every check passed.
 */
#define RNNCELL_TEST_PANIC 1
#include "common.h"

static const float TOL = 3e-5f;

/* ---------------------------------------------------------- queries */

static void test_queries(void) {
    uint32_t v, mask;
    char want[32];
    const char *s;
    snprintf(want, sizeof want, "%d.%d.%d", RNNCELL_VERSION_MAJOR, RNNCELL_VERSION_MINOR,
             RNNCELL_VERSION_PATCH);
    CHECK(strcmp(rnncell_version(), RNNCELL_VERSION) == 0);
    CHECK(strcmp(rnncell_version(), want) == 0);
    for (v = 0; v <= RNNCELL_STATUS_PANIC; v++) {
        uint32_t u;
        s = rnncell_status_str(v);
        CHECK(s != NULL && strncmp(s, "RNNCELL_STATUS_", 15) == 0);
        for (u = 0; u < v; u++) CHECK(strcmp(s, rnncell_status_str(u)) != 0);
    }
    CHECK(strstr(rnncell_status_str(RNNCELL_STATUS_SIZE_MISMATCH), "SIZE_MISMATCH") != NULL);
    CHECK(strcmp(rnncell_status_str(12), "unknown rnncell status") == 0);
    CHECK(strcmp(rnncell_status_str(0xFFFFFFFFu), "unknown rnncell status") == 0);

    mask = rnncell_isa_available();
    CHECK(mask & (1u << RNNCELL_ISA_SCALAR));
    CHECK(!(mask & (1u << RNNCELL_ISA_AUTO)));
    CHECK(mask & (1u << rnncell_isa_detected()));
    CHECK(rnncell_isa_detected() != RNNCELL_ISA_AUTO);
    CHECK(strcmp(rnncell_isa_name(RNNCELL_ISA_AUTO), "auto") == 0);
    CHECK(strcmp(rnncell_isa_name(RNNCELL_ISA_SCALAR), "scalar") == 0);
    CHECK(strcmp(rnncell_isa_name(RNNCELL_ISA_AVX2), "avx2") == 0);
    CHECK(strcmp(rnncell_isa_name(RNNCELL_ISA_AVX512), "avx512") == 0);
    CHECK(strcmp(rnncell_isa_name(RNNCELL_ISA_NEON), "neon") == 0);
    CHECK(rnncell_isa_name(5) == NULL);
    CHECK(rnncell_isa_name(0xFFFFFFFFu) == NULL);
    printf("version %s, detected ISA %s, available mask 0x%x\n", rnncell_version(),
           rnncell_isa_name(rnncell_isa_detected()), (unsigned)mask);
}

/* ---------------------------------------------------------- specs */

static void test_spec_errors(void) {
    RnncellSpec s, b;
    RnncellModel *m = (RnncellModel *)&s; /* must be overwritten with NULL */
    char msg[256];
    uint32_t seed = 77;
    Net n;
    RnncellPytorchLayer *layers;

    EXPECT(rnncell_spec_init(NULL, sizeof(RnncellSpec), RNNCELL_CELL_GRU, 3, 4), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_spec_init(&s, sizeof s, 0, 3, 4), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_spec_init(&s, sizeof s, 4, 3, 4), RNNCELL_STATUS_INVALID_ARGUMENT);
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_GRU, 3, 4));
    CHECK(s.cell == RNNCELL_CELL_GRU && s.input_size == 3 && s.hidden_size == 4);
    CHECK(s.num_layers == 1 && s.direction == RNNCELL_DIRECTION_FORWARD);
    CHECK(s.merge == RNNCELL_MERGE_CONCAT && s.clip == 0.0f);
    CHECK(s.gru_linear_before_reset == RNNCELL_FRAMEWORK_DEFAULT);
    OK(rnncell_spec_init_onnx(&b, sizeof b, RNNCELL_CELL_GRU, 3, 4));
    CHECK(b.gru_linear_before_reset == 0);
    OK(rnncell_spec_init_pytorch(&b, sizeof b, RNNCELL_CELL_GRU, 3, 4));
    CHECK(b.gru_linear_before_reset == 1);
    OK(rnncell_spec_init_keras(&b, sizeof b, RNNCELL_CELL_GRU, 3, 4));
    CHECK(b.gru_linear_before_reset == 1);
    OK(rnncell_spec_init_onnx(&b, sizeof b, RNNCELL_CELL_LSTM, 3, 4));
    CHECK(b.gru_linear_before_reset == RNNCELL_FRAMEWORK_DEFAULT);
    CHECK(s.rnn_activation == RNNCELL_ACTIVATION_TANH && s.lstm_proj_size == 0);
    CHECK(s.weight_precision == RNNCELL_WEIGHT_PRECISION_F32 && s.weight_precision == 0);

    net_init(&n, &s, &seed);
    layers = net_pytorch_layers(&n);

#define BAD_SPEC(mutate, status, words)                                                     \
    do {                                                                                    \
        b = s;                                                                              \
        mutate;                                                                             \
        m = (RnncellModel *)&s;                                                             \
        EXPECT(rnncell_model_new_pytorch(&b, layers, 1, RNNCELL_ISA_AUTO, &m, msg, sizeof msg), \
               status);                                                                     \
        CHECK(m == NULL);                                                                   \
        if (strstr(msg, words) == NULL) {                                                   \
            fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, words);                   \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

    BAD_SPEC(b.cell = 0, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.cell");
    BAD_SPEC(b.cell = 9, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.cell");
    BAD_SPEC(b.direction = 3, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.direction");
    BAD_SPEC(b.merge = 2, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.merge");
    BAD_SPEC(b.lstm_peephole = true, RNNCELL_STATUS_INVALID_ARGUMENT, "LSTM options");
    BAD_SPEC(b.lstm_proj_size = 2, RNNCELL_STATUS_INVALID_ARGUMENT, "LSTM options");
    BAD_SPEC(b.rnn_activation = RNNCELL_ACTIVATION_RELU, RNNCELL_STATUS_INVALID_ARGUMENT,
             "RNN options");
    BAD_SPEC(b.clip = -1.0f, RNNCELL_STATUS_INVALID_ARGUMENT, "clip");
    BAD_SPEC(b.clip = NAN, RNNCELL_STATUS_INVALID_ARGUMENT, "clip");
    BAD_SPEC(b.hidden_size = 0, RNNCELL_STATUS_INVALID_ARGUMENT, "hidden_size");
    BAD_SPEC(b.input_size = 0, RNNCELL_STATUS_INVALID_ARGUMENT, "input_size");
    BAD_SPEC(b.num_layers = 0, RNNCELL_STATUS_INVALID_ARGUMENT, "num_layers");
    BAD_SPEC(b.weight_precision = 5, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.weight_precision");
    BAD_SPEC(b.weight_precision = 254, RNNCELL_STATUS_INVALID_ARGUMENT, "spec.weight_precision");
    /* STORED is for the safetensors loaders only. */
    BAD_SPEC(b.weight_precision = RNNCELL_WEIGHT_PRECISION_STORED, RNNCELL_STATUS_INVALID_ARGUMENT,
             "spec.weight_precision");
    BAD_SPEC(b.input_size = (size_t)1 << 40, RNNCELL_STATUS_INVALID_ARGUMENT, "too large");
    /* A wrong size now mismatches the weights. */
    BAD_SPEC(b.input_size = 5, RNNCELL_STATUS_SIZE_MISMATCH, "weight_ih");
    BAD_SPEC(b.num_layers = 2, RNNCELL_STATUS_SIZE_MISMATCH, "expected 2");
    /* LSTM-only rules. */
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 3, 4));
    free(layers);
    net_free(&n);
    net_init(&n, &s, &seed);
    layers = net_pytorch_layers(&n);
    BAD_SPEC(b.gru_linear_before_reset = false, RNNCELL_STATUS_INVALID_ARGUMENT, "GRU options");
    BAD_SPEC(b.lstm_coupling = 3, RNNCELL_STATUS_INVALID_ARGUMENT, "lstm_coupling");
    BAD_SPEC(b.lstm_proj_bias = true, RNNCELL_STATUS_INVALID_ARGUMENT, "proj_size");
    BAD_SPEC(b.lstm_proj_clip = 1.0f, RNNCELL_STATUS_INVALID_ARGUMENT, "proj_size");
    BAD_SPEC(b.lstm_cell_clip = -2.0f, RNNCELL_STATUS_INVALID_ARGUMENT, "cell_clip");
    /* Peephole weights given to a spec without peepholes, and vice versa. */
    {
        float p[12] = {0};
        layers[0].peephole = tensor(p, 12);
        BAD_SPEC((void)0, RNNCELL_STATUS_INVALID_ARGUMENT, "peephole");
        layers[0].peephole = tensor(NULL, 0);
    }
    /* RNN activation out of range. */
    OK(rnncell_spec_init(&b, sizeof b, RNNCELL_CELL_RNN, 3, 4));
    b.rnn_activation = 7;
    m = NULL;
    EXPECT(rnncell_model_new_pytorch(&b, layers, 1, 0, &m, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(msg, "rnn_activation") != NULL);
#undef BAD_SPEC
    free(layers);
    net_free(&n);
}

/* ---------------------------------------------------------- numerics */

/* Steps `T` random frames through the model on every available ISA and
 * checks: close to the double reference; bit-identical across ISAs; run,
 * step_many and step_chunk bit-identical to step; get_h/get_c equal the
 * reference state. */
static void check_variant(const char *name, const RnncellSpec *spec, uint32_t seed) {
    Net n;
    size_t T = 9, t, l, B = 3;
    uint32_t mask = rnncell_isa_available(), isa;
    float *xs, *want, *first = NULL;
    RefState *ref;
    RnncellModelInfo info = {.struct_size = sizeof info};
    RnncellSpec back = {.struct_size = sizeof back};
    net_init(&n, spec, &seed);
    xs = rnd_vec(T * n.I, &seed);
    want = (float *)malloc(T * n.Hr * sizeof(float));
    ref = ref_new(&n);
    for (t = 0; t < T; t++) ref_step(&n, ref, xs + t * n.I, want + t * n.Hr);

    for (isa = RNNCELL_ISA_SCALAR; isa <= RNNCELL_ISA_NEON; isa++) {
        RnncellModel *m;
        RnncellState *st, *many[3];
        float *y, *ychunk, *yrun, *xb, *yb;
        size_t b;
        if (!(mask & (1u << isa))) continue;
        m = net_model(&n, isa);
        if (!m) continue;
        OK(rnncell_model_info(m, &info));
        CHECK(info.isa == isa);
        CHECK(info.cell == spec->cell && info.input_size == n.I && info.hidden_size == n.H);
        CHECK(info.state_size == n.Hr && info.output_size == n.out && info.num_layers == n.L);
        CHECK(info.num_directions == 1 && info.weight_bytes > 0);
        CHECK(info.has_cell_state == (spec->cell == RNNCELL_CELL_LSTM));
        OK(rnncell_model_spec(m, &back));
        CHECK(memcmp(&back.cell, &spec->cell, sizeof back.cell) == 0);
        CHECK(back.input_size == spec->input_size && back.num_layers == spec->num_layers);
        CHECK(back.clip == spec->clip && back.lstm_proj_clip == spec->lstm_proj_clip);
        CHECK(back.lstm_cell_clip == spec->lstm_cell_clip);
        CHECK(back.lstm_peephole == spec->lstm_peephole);
        CHECK(back.lstm_coupling == spec->lstm_coupling);
        /* built by rnncell_model_new_pytorch: a GRU's framework default is 1 */
        CHECK(back.gru_linear_before_reset ==
              (spec->cell == RNNCELL_CELL_GRU &&
                       spec->gru_linear_before_reset == RNNCELL_FRAMEWORK_DEFAULT
                   ? 1u
                   : spec->gru_linear_before_reset));
        CHECK(back.rnn_activation == spec->rnn_activation);

        OK(rnncell_state_new(m, &st));
        y = (float *)malloc(T * n.Hr * sizeof(float));
        for (t = 0; t < T; t++) OK(rnncell_model_step(m, st, xs + t * n.I, n.I, y + t * n.Hr, n.Hr));
        if (max_abs_diff(y, want, T * n.Hr) > TOL) {
            fprintf(stderr, "%s/%s: step differs from the reference by %g\n", name,
                    rnncell_isa_name(isa), max_abs_diff(y, want, T * n.Hr));
            failures++;
        }
        for (l = 0; l < n.L; l++) {
            float *h = (float *)malloc(n.Hr * sizeof(float));
            float *c = (float *)malloc(n.H * sizeof(float));
            size_t k;
            double d = 0;
            OK(rnncell_state_get_h(st, l, h, n.Hr));
            for (k = 0; k < n.Hr; k++) d = fmax(d, fabs(h[k] - ref[l].h[k]));
            if (spec->cell == RNNCELL_CELL_LSTM) {
                OK(rnncell_state_get_c(st, l, c, n.H));
                for (k = 0; k < n.H; k++) d = fmax(d, fabs(c[k] - ref[l].c[k]));
            } else {
                EXPECT(rnncell_state_get_c(st, l, c, n.H), RNNCELL_STATUS_INVALID_ARGUMENT);
            }
            CHECK(d <= TOL);
            free(h);
            free(c);
        }
        if (first == NULL) {
            first = y;
        } else {
            CHECK(same_bits(first, y, T * n.Hr)); /* every ISA, the same bits */
            free(y);
        }

        /* step_chunk over all T frames. */
        OK(rnncell_state_reset(st));
        ychunk = (float *)malloc(T * n.Hr * sizeof(float));
        OK(rnncell_model_step_chunk(m, st, xs, T * n.I, ychunk, T * n.Hr));
        CHECK(same_bits(ychunk, first, T * n.Hr));

        /* run over a batch of B copies of the sequence, batch-major. */
        xb = (float *)malloc(B * T * n.I * sizeof(float));
        yrun = (float *)malloc(B * T * n.out * sizeof(float));
        for (b = 0; b < B; b++) memcpy(xb + b * T * n.I, xs, T * n.I * sizeof(float));
        {
            RnncellSequence sq;
            RnncellSequenceOutput so;
            OK(rnncell_sequence_init(&sq, sizeof sq));
            memset(&so, 0, sizeof so);
            sq.input = tensor(xb, B * T * n.I);
            sq.steps = T;
            sq.batch = B;
            sq.batch_major = true;
            so.output = tensor_mut(yrun, B * T * n.out);
            OK(rnncell_model_run(m, &sq, &so));
            for (b = 0; b < B; b++) CHECK(same_bits(yrun + b * T * n.out, first, T * n.Hr));
        }

        /* step_many: B fresh states stepped together. */
        yb = (float *)malloc(B * n.Hr * sizeof(float));
        for (b = 0; b < B; b++) OK(rnncell_state_new(m, &many[b]));
        for (t = 0; t < T; t++) {
            float *xt = (float *)malloc(B * n.I * sizeof(float));
            for (b = 0; b < B; b++) memcpy(xt + b * n.I, xs + t * n.I, n.I * sizeof(float));
            OK(rnncell_model_step_many(m, many, B, xt, B * n.I, yb, B * n.Hr));
            for (b = 0; b < B; b++) CHECK(same_bits(yb + b * n.Hr, first + t * n.Hr, n.Hr));
            free(xt);
        }
        for (b = 0; b < B; b++) rnncell_state_free(many[b]);
        free(yb);
        free(xb);
        free(yrun);
        free(ychunk);
        rnncell_state_free(st);
        rnncell_model_free(m);
    }
    printf("  %-34s I=%zu H=%zu Hr=%zu L=%zu: ok\n", name, n.I, n.H, n.Hr, n.L);
    free(first);
    free(want);
    free(xs);
    ref_free(&n, ref);
    net_free(&n);
}

static void test_variants(void) {
    RnncellSpec s;
    printf("variants against the reference, every ISA:\n");
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 13, 21));
    s.num_layers = 2;
    check_variant("lstm", &s, 1);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 9, 11));
    s.num_layers = 2;
    s.lstm_peephole = true;
    s.lstm_proj_size = 5;
    s.lstm_proj_bias = true;
    s.lstm_proj_clip = 0.3f;
    s.lstm_cell_clip = 0.8f;
    s.clip = 0.9f;
    s.lstm_coupling = RNNCELL_COUPLING_INPUT_FROM_FORGET;
    check_variant("lstm peephole+proj+clips+cifg", &s, 2);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 6, 7));
    s.lstm_coupling = RNNCELL_COUPLING_FORGET_FROM_INPUT;
    s.lstm_peephole = true;
    check_variant("lstm onnx input_forget", &s, 3);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_GRU, 10, 17));
    s.num_layers = 3;
    check_variant("gru linear-before-reset", &s, 4);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_GRU, 5, 9));
    s.gru_linear_before_reset = false;
    s.clip = 0.7f;
    s.num_layers = 2;
    check_variant("gru reset-before clip", &s, 5);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_RNN, 7, 19));
    s.num_layers = 2;
    check_variant("rnn tanh", &s, 6);

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_RNN, 3, 33));
    s.rnn_activation = RNNCELL_ACTIVATION_RELU;
    s.clip = 0.4f;
    check_variant("rnn relu clip", &s, 7);
}

/* ---------------------------------------------------------- layouts */

/* PyTorch gate g -> ONNX gate index (LSTM i f g o -> i o f c; GRU r z n ->
 * z r h). */
static size_t onnx_gate(uint32_t cell, size_t g) {
    static const size_t lstm[4] = {0, 2, 3, 1}, gru[3] = {1, 0, 2};
    return cell == RNNCELL_CELL_LSTM ? lstm[g] : cell == RNNCELL_CELL_GRU ? gru[g] : 0;
}

/* PyTorch gate g -> Keras gate index (LSTM i f c o; GRU z r h). */
static size_t keras_gate(uint32_t cell, size_t g) {
    static const size_t gru[3] = {1, 0, 2};
    return cell == RNNCELL_CELL_GRU ? gru[g] : g;
}

static void test_layouts(uint32_t cell, bool peephole) {
    RnncellSpec s;
    Net n;
    uint32_t seed = 99 + cell;
    size_t l, d, g, u, k, G, H, T = 5, t;
    RnncellOnnxLayer *ox;
    RnncellKerasLayer *kx;
    float **bufs;
    size_t nb = 0;
    RnncellModel *mp, *mo, *mk = NULL;
    char msg[256];

    OK(rnncell_spec_init(&s, sizeof s, cell, 6, 10));
    s.num_layers = 2;
    s.direction = RNNCELL_DIRECTION_BIDIRECTIONAL;
    s.lstm_peephole = peephole;
    /* one GRU form for all three builders (the framework default differs:
     * rnncell_model_new_onnx would build ONNX's reset-before GRU) */
    if (cell == RNNCELL_CELL_GRU) s.gru_linear_before_reset = 1;
    net_init(&n, &s, &seed);
    G = n.G;
    H = n.H;
    mp = net_model(&n, RNNCELL_ISA_AUTO);
    bufs = (float **)calloc(64, sizeof(float *));
    ox = (RnncellOnnxLayer *)calloc(n.L, sizeof *ox);
    kx = (RnncellKerasLayer *)calloc(n.L * n.D, sizeof *kx);
    for (l = 0; l < n.L; l++) {
        size_t in = l == 0 ? n.I : n.out;
        float *W = (float *)malloc(n.D * G * H * in * sizeof(float));
        float *R = (float *)malloc(n.D * G * H * H * sizeof(float));
        float *B = (float *)malloc(n.D * 2 * G * H * sizeof(float));
        float *P = (float *)malloc(n.D * 3 * H * sizeof(float));
        bufs[nb++] = W;
        bufs[nb++] = R;
        bufs[nb++] = B;
        bufs[nb++] = P;
        for (d = 0; d < n.D; d++) {
            const Layer *y = &n.layers[l * n.D + d];
            float *kk = (float *)malloc(in * G * H * sizeof(float));
            float *rk = (float *)malloc(H * G * H * sizeof(float));
            float *kb = (float *)malloc(2 * G * H * sizeof(float));
            bufs[nb++] = kk;
            bufs[nb++] = rk;
            bufs[nb++] = kb;
            for (g = 0; g < G; g++) {
                size_t og = onnx_gate(cell, g), kg = keras_gate(cell, g);
                for (u = 0; u < H; u++) {
                    size_t row = g * H + u;
                    for (k = 0; k < in; k++) {
                        W[((d * G + og) * H + u) * in + k] = y->w[row * in + k];
                        kk[k * G * H + kg * H + u] = y->w[row * in + k];
                    }
                    for (k = 0; k < H; k++) {
                        R[((d * G + og) * H + u) * H + k] = y->r[row * H + k];
                        rk[k * G * H + kg * H + u] = y->r[row * H + k];
                    }
                    B[d * 2 * G * H + og * H + u] = y->bw[row];
                    B[d * 2 * G * H + G * H + og * H + u] = y->br[row];
                    kb[kg * H + u] = y->bw[row];
                    kb[G * H + kg * H + u] = y->br[row];
                }
            }
            if (peephole) { /* ONNX P = p_i, p_o, p_f */
                memcpy(P + d * 3 * H, y->peep, H * sizeof(float));
                memcpy(P + d * 3 * H + H, y->peep + 2 * H, H * sizeof(float));
                memcpy(P + d * 3 * H + 2 * H, y->peep + H, H * sizeof(float));
            }
            kx[l * n.D + d].kernel = tensor(kk, in * G * H);
            kx[l * n.D + d].recurrent_kernel = tensor(rk, H * G * H);
            kx[l * n.D + d].bias = tensor(kb, 2 * G * H);
        }
        ox[l].w = tensor(W, n.D * G * H * in);
        ox[l].r = tensor(R, n.D * G * H * H);
        ox[l].b = tensor(B, n.D * 2 * G * H);
        ox[l].p = peephole ? tensor(P, n.D * 3 * H) : tensor(NULL, 0);
    }
    OK(rnncell_model_new_onnx(&s, ox, n.L, RNNCELL_ISA_AUTO, &mo, msg, sizeof msg));
    if (cell == RNNCELL_CELL_GRU) {
        /* Keras GRU with reset_after=True: bias [2, 3H]. */
        OK(rnncell_model_new_keras(&s, kx, n.L * n.D, RNNCELL_ISA_AUTO, &mk, msg, sizeof msg));
    } else {
        /* Keras LSTM bias is [4H] = b_ih + b_hh; build the reference model
         * with b_hh folded into b_ih so both sides hold the same numbers. */
        for (k = 0; k < n.L * n.D; k++) {
            float *kb = (float *)kx[k].bias.data;
            for (g = 0; g < G * H; g++) kb[g] += kb[G * H + g];
            kx[k].bias.len = G * H;
        }
        if (!peephole) {
            OK(rnncell_model_new_keras(&s, kx, n.L * n.D, RNNCELL_ISA_AUTO, &mk, msg,
                                       sizeof msg));
        }
    }
    {
        RnncellSequence sq;
        RnncellSequenceOutput so;
        float *x = rnd_vec(T * 2 * n.I, &seed);
        float *yp = (float *)calloc(T * 2 * n.out, sizeof(float));
        float *yo = (float *)calloc(T * 2 * n.out, sizeof(float));
        float *yk = (float *)calloc(T * 2 * n.out, sizeof(float));
        OK(rnncell_sequence_init(&sq, sizeof sq));
        memset(&so, 0, sizeof so);
        sq.input = tensor(x, T * 2 * n.I);
        sq.steps = T;
        sq.batch = 2;
        so.output = tensor_mut(yp, T * 2 * n.out);
        OK(rnncell_model_run(mp, &sq, &so));
        so.output = tensor_mut(yo, T * 2 * n.out);
        OK(rnncell_model_run(mo, &sq, &so));
        CHECK(same_bits(yp, yo, T * 2 * n.out)); /* ONNX layout == PyTorch layout */
        if (mk && cell == RNNCELL_CELL_GRU) {
            so.output = tensor_mut(yk, T * 2 * n.out);
            OK(rnncell_model_run(mk, &sq, &so));
            CHECK(same_bits(yp, yk, T * 2 * n.out)); /* Keras layout == PyTorch layout */
        } else if (mk) {
            /* Same numbers up to the rounding of the folded bias. */
            so.output = tensor_mut(yk, T * 2 * n.out);
            OK(rnncell_model_run(mk, &sq, &so));
            CHECK(max_abs_diff(yp, yk, T * 2 * n.out) < 1e-5);
        }
        for (t = 0; t < T * 2 * n.out; t++) CHECK(yp[t] == yp[t]);
        free(x);
        free(yp);
        free(yo);
        free(yk);
    }
    /* Errors name the tensor. */
    {
        RnncellModel *tmp;
        ox[1].r.len--;
        EXPECT(rnncell_model_new_onnx(&s, ox, n.L, 0, &tmp, msg, sizeof msg),
               RNNCELL_STATUS_SIZE_MISMATCH);
        CHECK(tmp == NULL && strstr(msg, "layer 1 R") != NULL);
        ox[1].r.len++;
        EXPECT(rnncell_model_new_onnx(&s, ox, 1, 0, &tmp, msg, sizeof msg),
               RNNCELL_STATUS_SIZE_MISMATCH);
        kx[0].recurrent_kernel.data = NULL;
        EXPECT(rnncell_model_new_keras(&s, kx, n.L * n.D, 0, &tmp, msg, sizeof msg),
               RNNCELL_STATUS_NULL_POINTER);
        CHECK(tmp == NULL);
        EXPECT(rnncell_model_new_keras(&s, kx, 3, 0, &tmp, NULL, 0), RNNCELL_STATUS_SIZE_MISMATCH); /* counts first */
        EXPECT(rnncell_model_new_onnx(&s, NULL, 2, 0, &tmp, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_keras(&s, NULL, 4, 0, &tmp, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_onnx(NULL, ox, 2, 0, &tmp, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_keras(NULL, kx, 4, 0, &tmp, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_onnx(&s, ox, 2, 0, NULL, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_keras(&s, kx, 4, 0, NULL, NULL, 0), RNNCELL_STATUS_NULL_POINTER);
        EXPECT(rnncell_model_new_onnx(&s, ox, SIZE_MAX, 0, &tmp, NULL, 0),
               RNNCELL_STATUS_SIZE_OVERFLOW);
    }
    printf("  layouts %s%s: ONNX and Keras match PyTorch\n",
           cell == RNNCELL_CELL_LSTM ? "lstm" : "gru", peephole ? " peephole" : "");
    rnncell_model_free(mp);
    rnncell_model_free(mo);
    rnncell_model_free(mk);
    for (k = 0; k < nb; k++) free(bufs[k]);
    free(bufs);
    free(ox);
    free(kx);
    net_free(&n);
}

/* ---------------------------------------------------------- directions */

/* One-layer reverse and bidirectional (concat, sum) models against forward
 * models with the same weights, stepped over the (reversed) sequence:
 * bit-identical. Also seq_lens, h0/c0 and h_n/c_n. */
static void test_directions(uint32_t cell) {
    RnncellSpec s, f;
    Net n, nf[2];
    uint32_t seed = 1000 + cell;
    size_t T = 7, B = 2, t, b, d, k, lens[2] = {7, 4};
    float *x, *h0, *c0;
    uint32_t merge;
    OK(rnncell_spec_init(&s, sizeof s, cell, 5, 6));
    s.direction = RNNCELL_DIRECTION_BIDIRECTIONAL;
    net_init(&n, &s, &seed);
    OK(rnncell_spec_init(&f, sizeof f, cell, 5, 6));
    for (d = 0; d < 2; d++) {
        uint32_t z = 1;
        net_init(&nf[d], &f, &z);
        /* share the weights of direction d */
        free(nf[d].layers[0].w);
        free(nf[d].layers[0].r);
        free(nf[d].layers[0].bw);
        free(nf[d].layers[0].br);
        nf[d].layers[0] = n.layers[d];
    }
    x = rnd_vec(T * B * n.I, &seed);
    h0 = rnd_vec(2 * B * n.H, &seed);
    c0 = rnd_vec(2 * B * n.H, &seed);
    for (merge = RNNCELL_MERGE_CONCAT; merge <= RNNCELL_MERGE_SUM; merge++) {
        RnncellModel *m, *mf[2];
        RnncellSequence sq;
        RnncellSequenceOutput so;
        size_t out = merge == RNNCELL_MERGE_SUM ? n.H : 2 * n.H;
        float *y = (float *)malloc(T * B * out * sizeof(float));
        float *hn = (float *)malloc(2 * B * n.H * sizeof(float));
        float *cn = (float *)malloc(2 * B * n.H * sizeof(float));
        float *want = (float *)calloc(T * B * out, sizeof(float));
        float *want_h = (float *)malloc(2 * B * n.H * sizeof(float));
        float *want_c = (float *)malloc(2 * B * n.H * sizeof(float));
        n.spec.merge = merge;
        m = net_model(&n, RNNCELL_ISA_AUTO);
        for (d = 0; d < 2; d++) mf[d] = net_model(&nf[d], RNNCELL_ISA_AUTO);
        for (b = 0; b < B; b++) {
            for (d = 0; d < 2; d++) {
                RnncellState *st;
                float *yt = (float *)malloc(n.H * sizeof(float));
                OK(rnncell_state_new(mf[d], &st));
                OK(rnncell_state_set_h(st, 0, h0 + (d * B + b) * n.H, n.H));
                if (cell == RNNCELL_CELL_LSTM) OK(rnncell_state_set_c(st, 0, c0 + (d * B + b) * n.H, n.H));
                for (k = 0; k < lens[b]; k++) {
                    t = d == 0 ? k : lens[b] - 1 - k;
                    OK(rnncell_model_step(mf[d], st, x + (t * B + b) * n.I, n.I, yt, n.H));
                    if (merge == RNNCELL_MERGE_CONCAT) {
                        memcpy(want + (t * B + b) * out + d * n.H, yt, n.H * sizeof(float));
                    } else {
                        size_t u;
                        for (u = 0; u < n.H; u++) want[(t * B + b) * out + u] += yt[u];
                    }
                }
                OK(rnncell_state_get_h(st, 0, want_h + (d * B + b) * n.H, n.H));
                if (cell == RNNCELL_CELL_LSTM) OK(rnncell_state_get_c(st, 0, want_c + (d * B + b) * n.H, n.H));
                rnncell_state_free(st);
                free(yt);
            }
        }
        OK(rnncell_sequence_init(&sq, sizeof sq));
        memset(&so, 0, sizeof so);
        sq.input = tensor(x, T * B * n.I);
        sq.steps = T;
        sq.batch = B;
        sq.seq_lens = lens;
        sq.seq_lens_len = B;
        sq.h0 = tensor(h0, 2 * B * n.H);
        if (cell == RNNCELL_CELL_LSTM) sq.c0 = tensor(c0, 2 * B * n.H);
        so.output = tensor_mut(y, T * B * out);
        so.h_n = tensor_mut(hn, 2 * B * n.H);
        if (cell == RNNCELL_CELL_LSTM) so.c_n = tensor_mut(cn, 2 * B * n.H);
        OK(rnncell_model_run(m, &sq, &so));
        CHECK(same_bits(y, want, T * B * out));
        CHECK(same_bits(hn, want_h, 2 * B * n.H));
        if (cell == RNNCELL_CELL_LSTM) CHECK(same_bits(cn, want_c, 2 * B * n.H));
        /* Past a sequence's end the outputs are zero. */
        for (t = lens[1]; t < T; t++)
            for (k = 0; k < out; k++) CHECK(y[(t * B + 1) * out + k] == 0.0f);
        /* c0/c_n for a cell without c. */
        if (cell != RNNCELL_CELL_LSTM) {
            sq.c0 = tensor(c0, 2 * B * n.H);
            EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
            sq.c0 = tensor(NULL, 0);
            so.c_n = tensor_mut(cn, 2 * B * n.H);
            EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
        }
        /* A bidirectional model cannot be streamed. */
        {
            RnncellState *st;
            RnncellState *arr[1];
            OK(rnncell_state_new(m, &st));
            arr[0] = st;
            EXPECT(rnncell_model_step(m, st, x, n.I, y, n.H), RNNCELL_STATUS_UNSUPPORTED);
            EXPECT(rnncell_model_step_chunk(m, st, x, n.I, y, n.H), RNNCELL_STATUS_UNSUPPORTED);
            EXPECT(rnncell_model_step_many(m, arr, 1, x, n.I, y, n.H), RNNCELL_STATUS_UNSUPPORTED);
            rnncell_state_free(st);
        }
        rnncell_model_free(m);
        for (d = 0; d < 2; d++) rnncell_model_free(mf[d]);
        free(y);
        free(hn);
        free(cn);
        free(want);
        free(want_h);
        free(want_c);
    }
    /* Reverse alone == the backward half. */
    {
        RnncellSpec r = f;
        RnncellPytorchLayer pl;
        RnncellModel *m, *mf;
        RnncellSequence sq;
        RnncellSequenceOutput so;
        float *y = (float *)malloc(T * n.H * sizeof(float));
        float *yt = (float *)malloc(n.H * sizeof(float));
        RnncellState *st;
        r.direction = RNNCELL_DIRECTION_REVERSE;
        memset(&pl, 0, sizeof pl);
        pl.weight_ih = tensor(n.layers[1].w, n.layers[1].nw);
        pl.weight_hh = tensor(n.layers[1].r, n.layers[1].nr);
        pl.bias_ih = tensor(n.layers[1].bw, n.layers[1].nb);
        pl.bias_hh = tensor(n.layers[1].br, n.layers[1].nb);
        OK(rnncell_model_new_pytorch(&r, &pl, 1, 0, &m, NULL, 0));
        mf = net_model(&nf[1], RNNCELL_ISA_AUTO);
        OK(rnncell_sequence_init(&sq, sizeof sq));
        memset(&so, 0, sizeof so);
        sq.input = tensor(x, T * n.I);
        sq.steps = T;
        sq.batch = 1;
        so.output = tensor_mut(y, T * n.H);
        OK(rnncell_model_run(m, &sq, &so));
        OK(rnncell_state_new(mf, &st));
        for (k = 0; k < T; k++) {
            t = T - 1 - k;
            OK(rnncell_model_step(mf, st, x + t * n.I, n.I, yt, n.H));
            CHECK(same_bits(yt, y + t * n.H, n.H));
        }
        rnncell_state_free(st);
        rnncell_model_free(m);
        rnncell_model_free(mf);
        free(y);
        free(yt);
    }
    printf("  directions %s: reverse, bidirectional concat and sum match forward steps\n",
           cell == RNNCELL_CELL_LSTM ? "lstm" : cell == RNNCELL_CELL_GRU ? "gru" : "rnn");
    for (d = 0; d < 2; d++) {
        memset(&nf[d].layers[0], 0, sizeof(Layer)); /* owned by n */
        net_free(&nf[d]);
    }
    free(x);
    free(h0);
    free(c0);
    net_free(&n);
}

/* ---------------------------------------------------------- states */

static void test_states(void) {
    RnncellSpec s;
    Net n;
    uint32_t seed = 5;
    RnncellModel *m, *m2;
    RnncellState *a, *b, *c, *bad;
    float x[5], ya[6], yb[6], h[6], cc[6], h2[6], v[7];
    size_t k;
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 5, 6));
    s.num_layers = 2;
    net_init(&n, &s, &seed);
    m = net_model(&n, RNNCELL_ISA_AUTO);
    m2 = net_model(&n, RNNCELL_ISA_AUTO);
    OK(rnncell_state_new(m, &a));
    for (k = 0; k < 5; k++) x[k] = rnd(&seed);
    OK(rnncell_model_step(m, a, x, 5, ya, 6));
    /* fork: equal now, and continues identically */
    OK(rnncell_state_copy(a, &b));
    OK(rnncell_model_step(m, a, x, 5, ya, 6));
    OK(rnncell_model_step(m, b, x, 5, yb, 6));
    CHECK(same_bits(ya, yb, 6));
    /* diverging b leaves a alone */
    x[0] += 1.0f;
    OK(rnncell_model_step(m, b, x, 5, yb, 6));
    OK(rnncell_state_get_h(a, 1, h, 6));
    CHECK(same_bits(h, ya, 6));
    /* set then get round-trips; reset zeros */
    for (k = 0; k < 6; k++) h2[k] = rnd(&seed);
    OK(rnncell_state_set_h(b, 0, h2, 6));
    OK(rnncell_state_get_h(b, 0, h, 6));
    CHECK(same_bits(h, h2, 6));
    OK(rnncell_state_set_c(b, 1, h2, 6));
    OK(rnncell_state_get_c(b, 1, cc, 6));
    CHECK(same_bits(cc, h2, 6));
    OK(rnncell_state_reset(b));
    OK(rnncell_state_get_c(b, 1, cc, 6));
    for (k = 0; k < 6; k++) CHECK(cc[k] == 0.0f);
    /* errors */
    EXPECT(rnncell_state_get_h(a, 2, h, 6), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_state_get_h(a, SIZE_MAX, h, 6), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_state_get_h(a, 0, h, 5), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_state_get_h(a, 0, h, SIZE_MAX), RNNCELL_STATUS_SIZE_OVERFLOW);
    EXPECT(rnncell_state_get_h(NULL, 0, h, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_get_h(a, 0, NULL, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_get_c(NULL, 0, h, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_get_c(a, 0, NULL, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_get_c(a, 0, h, 7), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_state_set_h(NULL, 0, h, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_set_h(a, 0, NULL, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_set_c(NULL, 0, h, 6), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_set_c(a, 0, NULL, 6), RNNCELL_STATUS_NULL_POINTER);
    for (k = 0; k < 7; k++) v[k] = 9.0f;
    OK(rnncell_state_get_h(a, 1, h, 6));
    EXPECT(rnncell_state_set_h(a, 1, v, 7), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_state_set_c(a, 1, v, 5), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_state_set_h(a, 3, v, 6), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_state_set_h(a, 1, v, SIZE_MAX / 2), RNNCELL_STATUS_SIZE_OVERFLOW);
    OK(rnncell_state_get_h(a, 1, h2, 6));
    CHECK(same_bits(h, h2, 6)); /* failed sets changed nothing */
    bad = (RnncellState *)&s;
    EXPECT(rnncell_state_new(NULL, &bad), RNNCELL_STATUS_NULL_POINTER);
    CHECK(bad == NULL);
    EXPECT(rnncell_state_new(m, NULL), RNNCELL_STATUS_NULL_POINTER);
    bad = (RnncellState *)&s;
    EXPECT(rnncell_state_copy(NULL, &bad), RNNCELL_STATUS_NULL_POINTER);
    CHECK(bad == NULL);
    EXPECT(rnncell_state_copy(a, NULL), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_state_reset(NULL), RNNCELL_STATUS_NULL_POINTER);
    /* a state of another model: refused, nothing changes */
    OK(rnncell_state_new(m2, &c));
    EXPECT(rnncell_model_step(m, c, x, 5, ya, 6), RNNCELL_STATUS_STATE_MISMATCH);
    EXPECT(rnncell_model_step_chunk(m, c, x, 5, ya, 6), RNNCELL_STATUS_STATE_MISMATCH);
    OK(rnncell_state_get_h(c, 1, h, 6));
    for (k = 0; k < 6; k++) CHECK(h[k] == 0.0f);
    /* a state outlives its model */
    rnncell_model_free(m2);
    OK(rnncell_state_get_h(c, 0, h, 6));
    OK(rnncell_state_copy(c, &bad));
    rnncell_state_free(bad);
    rnncell_state_free(c);
    rnncell_state_free(a);
    rnncell_state_free(b);
    rnncell_model_free(m);
    net_free(&n);
    printf("  states: fork, reset, get/set, mismatch, errors: ok\n");
}

/* ---------------------------------------------------------- boundary */

static void test_boundary(void) {
    RnncellSpec s;
    Net n;
    uint32_t seed = 17, mask = rnncell_isa_available(), isa;
    RnncellModel *m, *tmp;
    RnncellState *st, *st2, *arr[3];
    RnncellPytorchLayer *pl;
    RnncellModelInfo info = {.struct_size = sizeof info};
    float x[7], y[7], h_before[7], c_before[7], h[7], c[7];
    unsigned char raw[64 + 1];
    float *xu, *yu;
    size_t k;
    char msg[256];
    RnncellSequence sq;
    RnncellSequenceOutput so;
    float xs[3 * 7], ys[3 * 7], hn[7];

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 7, 7));
    net_init(&n, &s, &seed);
    pl = net_pytorch_layers(&n);
    m = net_model(&n, RNNCELL_ISA_AUTO);
    OK(rnncell_state_new(m, &st));
    for (k = 0; k < 7; k++) x[k] = rnd(&seed);
    OK(rnncell_model_step(m, st, x, 7, y, 7));

    /* model builders: NULL, overflow, ISA checks, message buffer */
    tmp = (RnncellModel *)&s;
    EXPECT(rnncell_model_new_pytorch(NULL, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
    CHECK(tmp == NULL && strstr(msg, "spec") != NULL);
    EXPECT(rnncell_model_new_pytorch(&s, NULL, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
    CHECK(strstr(msg, "layers") != NULL);
    EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, NULL, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_new_pytorch(&s, pl, SIZE_MAX, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_SIZE_OVERFLOW);
    EXPECT(rnncell_model_new_pytorch(&s, pl, 0, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 99, &tmp, msg, sizeof msg), RNNCELL_STATUS_INVALID_ARGUMENT);
    for (isa = RNNCELL_ISA_SCALAR; isa <= RNNCELL_ISA_NEON; isa++) {
        RnncellStatus want = (mask & (1u << isa)) ? RNNCELL_STATUS_OK : RNNCELL_STATUS_ISA_UNAVAILABLE;
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, isa, &tmp, msg, sizeof msg), want);
        CHECK((tmp != NULL) == (want == RNNCELL_STATUS_OK));
        rnncell_model_free(tmp);
    }
    {
        RnncellTensor keep = pl[0].weight_hh;
        pl[0].weight_hh.data = NULL;
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
        CHECK(strstr(msg, "weight_hh_l0") != NULL);
        pl[0].weight_hh = tensor(NULL, 0);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
        pl[0].weight_hh = keep;
        pl[0].weight_hh.len = SIZE_MAX;
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_SIZE_OVERFLOW);
        pl[0].weight_hh.len = keep.len - 1;
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_SIZE_MISMATCH);
        CHECK(strstr(msg, "weight_hh") != NULL && strstr(msg, "expected 196") != NULL);
        /* a message buffer of 8 bytes: truncated and terminated */
        memset(msg, 'x', sizeof msg);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, 8), RNNCELL_STATUS_SIZE_MISMATCH);
        CHECK(msg[7] == '\0' && strlen(msg) == 7 && msg[8] == 'x');
        pl[0].weight_hh = keep;
        pl[0].bias_ih = tensor(NULL, 28);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
        pl[0].bias_ih = tensor(NULL, 0); /* absent: zeros */
        OK(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg));
        CHECK(msg[0] == '\0');
        rnncell_model_free(tmp);
        pl[0].bias_ih = tensor(n.layers[0].bw, n.layers[0].nb);
        /* projection weights for a spec without projection */
        pl[0].weight_hr = tensor(n.layers[0].bw, 7);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_INVALID_ARGUMENT);
        pl[0].weight_hr = tensor(NULL, 0);
    }

    /* info / spec */
    EXPECT(rnncell_model_info(NULL, &info), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_info(m, NULL), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_spec(NULL, &s), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_spec(m, NULL), RNNCELL_STATUS_NULL_POINTER);

    /* step: every error leaves the state and y untouched */
    OK(rnncell_state_get_h(st, 0, h_before, 7));
    OK(rnncell_state_get_c(st, 0, c_before, 7));
    for (k = 0; k < 7; k++) y[k] = 42.0f;
    EXPECT(rnncell_model_step(NULL, st, x, 7, y, 7), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step(m, NULL, x, 7, y, 7), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step(m, st, NULL, 7, y, 7), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step(m, st, x, 7, NULL, 7), RNNCELL_STATUS_NULL_POINTER);
    CHECK(strcmp(rnncell_last_error(), "rnncell_model_step: x is NULL") == 0
          || strcmp(rnncell_last_error(), "rnncell_model_step: y is NULL") == 0);
    EXPECT(rnncell_model_step(m, st, x, 6, y, 7), RNNCELL_STATUS_SIZE_MISMATCH);
    /* Every call's error detail names the buffer, the count given and wanted. */
    CHECK(strcmp(rnncell_last_error(),
                 "rnncell_model_step: x_len is 6, the model needs 7 (input_size (I))") == 0);
    EXPECT(rnncell_model_step(m, st, x, 0, y, 7), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_step(m, st, x, 7, y, 8), RNNCELL_STATUS_SIZE_MISMATCH);
    CHECK(strstr(rnncell_last_error(), "rnncell_model_step: y_len is 8, the model needs 7") != NULL);
    OK(rnncell_state_get_h(st, 0, h, 7));
    CHECK(strstr(rnncell_last_error(), "y_len is 8") != NULL); /* success leaves it */
    EXPECT(rnncell_model_step(NULL, st, x, 7, y, 7), RNNCELL_STATUS_NULL_POINTER);
    CHECK(strcmp(rnncell_last_error(), "rnncell_model_step: model is NULL") == 0);
    EXPECT(rnncell_model_step(m, st, x, SIZE_MAX, y, 7), RNNCELL_STATUS_SIZE_OVERFLOW);
    EXPECT(rnncell_model_step(m, st, x, 7, y, SIZE_MAX / 4 + 1), RNNCELL_STATUS_SIZE_OVERFLOW);
    OK(rnncell_state_get_h(st, 0, h, 7));
    OK(rnncell_state_get_c(st, 0, c, 7));
    CHECK(same_bits(h, h_before, 7) && same_bits(c, c_before, 7));
    for (k = 0; k < 7; k++) CHECK(y[k] == 42.0f);

    /* misaligned x and y, and x == y, give the same bits as aligned */
    OK(rnncell_state_copy(st, &st2));
    OK(rnncell_model_step(m, st, x, 7, y, 7));
    xu = (float *)(void *)(raw + 1);
    yu = (float *)(void *)(raw + 1 + 32);
    memcpy(raw + 1, x, sizeof x);
    OK(rnncell_model_step(m, st2, xu, 7, yu, 7));
    CHECK(memcmp(raw + 1 + 32, y, sizeof y) == 0);
    OK(rnncell_state_reset(st2));
    OK(rnncell_state_copy(st2, &arr[0]));
    {
        float io[7], want[7];
        memcpy(io, x, sizeof x);
        OK(rnncell_model_step(m, st2, x, 7, want, 7));
        OK(rnncell_model_step(m, arr[0], io, 7, io, 7)); /* in place */
        CHECK(same_bits(io, want, 7));
        memcpy(raw + 1, x, sizeof x);
        OK(rnncell_state_reset(arr[0]));
        OK(rnncell_model_step(m, arr[0], xu, 7, xu, 7)); /* in place, misaligned */
        CHECK(memcmp(raw + 1, want, sizeof want) == 0);
        /* misaligned get/set */
        OK(rnncell_state_set_h(arr[0], 0, xu, 7));
        OK(rnncell_state_get_h(arr[0], 0, h, 7));
        CHECK(memcmp(raw + 1, h, sizeof h) == 0);
        OK(rnncell_state_get_c(arr[0], 0, yu, 7));
        OK(rnncell_state_get_c(arr[0], 0, c, 7));
        CHECK(memcmp(raw + 33, c, sizeof c) == 0);
        OK(rnncell_state_set_c(arr[0], 0, yu, 7));
    }
    rnncell_state_free(arr[0]);

    /* NaN propagates; infinities are accepted */
    {
        float xn[7], yn[7];
        memcpy(xn, x, sizeof x);
        xn[3] = NAN;
        OK(rnncell_state_reset(st2));
        OK(rnncell_model_step(m, st2, xn, 7, yn, 7));
        for (k = 0; k < 7; k++) CHECK(yn[k] != yn[k]);
        xn[3] = INFINITY;
        OK(rnncell_state_reset(st2));
        OK(rnncell_model_step(m, st2, xn, 7, yn, 7));
        n.layers[0].bw[0] = -INFINITY;
        OK(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, NULL, 0));
        rnncell_model_free(tmp);
    }

    /* step_many errors: duplicates, NULL entries, foreign states */
    arr[0] = st;
    arr[1] = st2;
    arr[2] = st;
    for (k = 0; k < 21; k++) xs[k] = rnd(&seed);
    for (k = 0; k < 21; k++) ys[k] = 5.0f;
    OK(rnncell_state_get_h(st, 0, h_before, 7));
    EXPECT(rnncell_model_step_many(m, arr, 3, xs, 21, ys, 21), RNNCELL_STATUS_INVALID_ARGUMENT);
    arr[2] = NULL;
    EXPECT(rnncell_model_step_many(m, arr, 3, xs, 21, ys, 21), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_many(m, arr, 2, xs, 21, ys, 14), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_step_many(m, arr, 2, xs, 14, ys, 21), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_step_many(m, arr, SIZE_MAX, xs, 14, ys, 14), RNNCELL_STATUS_SIZE_OVERFLOW);
    EXPECT(rnncell_model_step_many(NULL, arr, 2, xs, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_many(m, NULL, 2, xs, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_many(m, arr, 2, NULL, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_many(m, arr, 2, xs, 14, NULL, 14), RNNCELL_STATUS_NULL_POINTER);
    OK(rnncell_model_step_many(m, arr, 0, xs, 0, ys, 0));
    {
        RnncellModel *other = net_model(&n, RNNCELL_ISA_AUTO);
        RnncellState *foreign;
        OK(rnncell_state_new(other, &foreign));
        arr[2] = foreign;
        EXPECT(rnncell_model_step_many(m, arr, 3, xs, 21, ys, 21), RNNCELL_STATUS_STATE_MISMATCH);
        rnncell_state_free(foreign);
        rnncell_model_free(other);
    }
    OK(rnncell_state_get_h(st, 0, h, 7));
    CHECK(same_bits(h, h_before, 7));
    for (k = 0; k < 21; k++) CHECK(ys[k] == 5.0f);
    /* after the failed calls both states still step together */
    OK(rnncell_model_step_many(m, arr, 2, xs, 14, ys, 14));

    /* step_chunk errors */
    EXPECT(rnncell_model_step_chunk(NULL, st, xs, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_chunk(m, NULL, xs, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_chunk(m, st, NULL, 14, ys, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_chunk(m, st, xs, 14, NULL, 14), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_step_chunk(m, st, xs, 13, ys, 14), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_model_step_chunk(m, st, xs, 0, ys, 0), RNNCELL_STATUS_INVALID_ARGUMENT);
    EXPECT(rnncell_model_step_chunk(m, st, xs, 14, ys, 7), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_step_chunk(m, st, xs, SIZE_MAX, ys, 7), RNNCELL_STATUS_SIZE_OVERFLOW);
    OK(rnncell_model_step_chunk(m, st, xs, 21, ys, 21));

    /* run errors: nothing is written */
    OK(rnncell_sequence_init(&sq, sizeof sq));
    memset(&so, 0, sizeof so);
    sq.input = tensor(xs, 21);
    sq.steps = 3;
    sq.batch = 1;
    so.output = tensor_mut(ys, 21);
    for (k = 0; k < 21; k++) ys[k] = 5.0f;
    EXPECT(rnncell_model_run(NULL, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_run(m, NULL, &so), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_run(m, &sq, NULL), RNNCELL_STATUS_NULL_POINTER);
    sq.input.data = NULL;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
    sq.input.data = xs;
    sq.steps = 0;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
    sq.steps = 3;
    sq.batch = 0;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
    sq.batch = SIZE_MAX / 2;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_OVERFLOW);
    sq.batch = 1;
    sq.input.len = 20;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_MISMATCH);
    sq.input.len = 21;
    so.output.len = 22;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_MISMATCH);
    so.output.len = 21;
    so.output.data = NULL;
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
    so.output.data = ys;
    sq.h0 = tensor(NULL, 7);
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
    sq.h0 = tensor(h, 6);
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_MISMATCH);
    sq.h0 = tensor(NULL, 0);
    {
        size_t lens[2] = {4, 1};
        sq.seq_lens = lens;
        sq.seq_lens_len = 1;
        EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT); /* 4 > T */
        sq.seq_lens_len = 2;
        EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_MISMATCH);
        sq.seq_lens = NULL;
        EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
        sq.seq_lens_len = 0;
    }
    so.h_n = tensor_mut(ys + 14, 7); /* overlaps output */
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
    so.h_n = tensor_mut(NULL, 7);
    EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_NULL_POINTER);
    for (k = 0; k < 21; k++) CHECK(ys[k] == 5.0f);
    /* in place: h_n == h0 and output == input */
    {
        float io[21], want[21], hio[7], hw[7];
        memcpy(io, xs, sizeof io);
        for (k = 0; k < 7; k++) hio[k] = rnd(&seed);
        sq.h0 = tensor(hio, 7);
        so.h_n = tensor_mut(hw, 7);
        so.output = tensor_mut(want, 21);
        OK(rnncell_model_run(m, &sq, &so));
        sq.input = tensor(io, 21);
        so.output = tensor_mut(io, 21);
        so.h_n = tensor_mut(hio, 7);
        OK(rnncell_model_run(m, &sq, &so));
        CHECK(same_bits(io, want, 21) && same_bits(hio, hw, 7));
        /* and everything misaligned */
        sq.input = tensor(xu, 7);
        sq.steps = 1;
        memcpy(raw + 1, xs, 7 * sizeof(float));
        sq.h0 = tensor(NULL, 0);
        so.output = tensor_mut(yu, 7);
        so.h_n = tensor_mut(hn, 7);
        OK(rnncell_model_run(m, &sq, &so));
        sq.input = tensor(xs, 7);
        so.output = tensor_mut(want, 7);
        OK(rnncell_model_run(m, &sq, &so));
        CHECK(memcmp(raw + 33, want, 7 * sizeof(float)) == 0);
    }

    /* panics become a status, never an unwind into C */
    fprintf(stderr, "test_api: three deliberate panics follow (expected):\n");
    EXPECT(rnncell_test_panic(0), RNNCELL_STATUS_PANIC);
    EXPECT(rnncell_test_panic(1), RNNCELL_STATUS_PANIC);
    OK(rnncell_test_panic(2));
    CHECK(rnncell_test_panic_str() == NULL);
    OK(rnncell_model_step(m, st, x, 7, y, 7)); /* and the library still works */

    /* free(NULL) is a no-op */
    rnncell_model_free(NULL);
    rnncell_state_free(NULL);

    rnncell_state_free(st);
    rnncell_state_free(st2);
    rnncell_model_free(m);
    free(pl);
    net_free(&n);
    printf("  boundary: nulls, counts, overflow, alignment, aliasing, NaN, panics: ok\n");
}

/* ---------------------------------------------------------- safetensors */

static size_t put_tensor(char *hdr, size_t hl, unsigned char *data, size_t *dl, const char *name,
                         const float *v, size_t rows, size_t cols) {
    size_t n = rows * (cols ? cols : 1), i;
    size_t start = *dl;
    for (i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        data[(*dl)++] = (unsigned char)(bits & 0xff);
        data[(*dl)++] = (unsigned char)((bits >> 8) & 0xff);
        data[(*dl)++] = (unsigned char)((bits >> 16) & 0xff);
        data[(*dl)++] = (unsigned char)(bits >> 24);
    }
    if (cols)
        return hl + (size_t)sprintf(hdr + hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}",
                                    hl > 1 ? "," : "", name, rows, cols, start, *dl);
    return hl + (size_t)sprintf(hdr + hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}",
                                hl > 1 ? "," : "", name, rows, start, *dl);
}

static void test_safetensors(void) {
    RnncellSpec s, cellonly;
    Net n;
    uint32_t seed = 3;
    char hdr[2048];
    unsigned char *data, *file;
    size_t hl = 1, dl = 0, flen, k;
    RnncellModel *ma, *mf, *tmp;
    RnncellSafetensorsOptions o;
    char msg[256];
    const char *path = "rnncell_test_api.safetensors";
    FILE *fp;
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 4, 5));
    net_init(&n, &s, &seed);
    data = (unsigned char *)malloc(4096);
    hdr[0] = '{';
    hl = put_tensor(hdr, hl, data, &dl, "rnn.weight_ih_l0", n.layers[0].w, 20, 4);
    hl = put_tensor(hdr, hl, data, &dl, "rnn.weight_hh_l0", n.layers[0].r, 20, 5);
    hl = put_tensor(hdr, hl, data, &dl, "rnn.bias_ih_l0", n.layers[0].bw, 20, 0);
    hl = put_tensor(hdr, hl, data, &dl, "rnn.bias_hh_l0", n.layers[0].br, 20, 0);
    hdr[hl++] = '}';
    flen = 8 + hl + dl;
    file = (unsigned char *)malloc(flen + 1);
    for (k = 0; k < 8; k++) file[1 + k] = (unsigned char)((hl >> (8 * k)) & 0xff);
    memcpy(file + 1 + 8, hdr, hl);
    memcpy(file + 1 + 8 + hl, data, dl);

    ma = net_model(&n, RNNCELL_ISA_AUTO);
    OK(rnncell_spec_init(&cellonly, sizeof cellonly, RNNCELL_CELL_LSTM, 0, 0));
    OK(rnncell_safetensors_options_init(&o, sizeof o));
    o.format = RNNCELL_WEIGHT_FORMAT_PYTORCH;
    o.prefix = "rnn.";
    /* bytes at an odd address */
    OK(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, &o, RNNCELL_ISA_AUTO, &mf, msg,
                                            sizeof msg));
    if (mf) {
        RnncellModelInfo info = {.struct_size = sizeof info};
        RnncellState *a, *b;
        float x[4], ya[5], yb[5];
        OK(rnncell_model_info(mf, &info));
        CHECK(info.input_size == 4 && info.hidden_size == 5 && info.num_layers == 1);
        OK(rnncell_state_new(ma, &a));
        OK(rnncell_state_new(mf, &b));
        for (k = 0; k < 4; k++) {
            size_t j;
            for (j = 0; j < 4; j++) x[j] = rnd(&seed);
            OK(rnncell_model_step(ma, a, x, 4, ya, 5));
            OK(rnncell_model_step(mf, b, x, 4, yb, 5));
            CHECK(same_bits(ya, yb, 5));
        }
        rnncell_state_free(a);
        rnncell_state_free(b);
        rnncell_model_free(mf);
    }
    /* from a file */
    fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (fp) {
        fwrite(file + 1, 1, flen, fp);
        fclose(fp);
        OK(rnncell_model_load_safetensors(path, &cellonly, &o, RNNCELL_ISA_SCALAR, &mf, msg, sizeof msg));
        rnncell_model_free(mf);
        remove(path);
    }
    /* errors */
    EXPECT(rnncell_model_load_safetensors(path, &cellonly, &o, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_IO);
    CHECK(tmp == NULL && strstr(msg, path) != NULL);
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen - 5, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_FORMAT);
    CHECK(tmp == NULL && strstr(msg, "bias_hh_l0") != NULL);
    o.prefix = "decoder.";
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_FORMAT);
    CHECK(strstr(msg, "prefix") != NULL);
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, NULL, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_FORMAT); /* NULL options: no prefix, so the names do not parse */
    o.prefix = "rnn.";
    o.format = 2;
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    o.format = RNNCELL_WEIGHT_FORMAT_KERAS;
    o.keras_layers_len = 1;
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_NULL_POINTER);
    o.format = RNNCELL_WEIGHT_FORMAT_PYTORCH;
    o.keras_layers_len = 0;
    EXPECT(rnncell_model_load_safetensors_bytes(NULL, flen, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, SIZE_MAX, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_SIZE_OVERFLOW);
    EXPECT(rnncell_model_load_safetensors(NULL, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_load_safetensors(path, NULL, &o, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_NULL_POINTER);
    EXPECT(rnncell_model_load_safetensors(path, &cellonly, &o, 0, NULL, msg, sizeof msg),
           RNNCELL_STATUS_NULL_POINTER);
    cellonly.lstm_peephole = true;
    EXPECT(rnncell_model_load_safetensors_bytes(file + 1, flen, &cellonly, &o, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    rnncell_model_free(ma);
    free(data);
    free(file);
    net_free(&n);
    printf("  safetensors: bytes and file match the arrays; FORMAT/IO errors named: ok\n");
}

/* Issue 12: every weight precision builds and reports itself; STORED keeps a
 * file's dtype (the f16 file of RNNCELL_MODEL, set by c/Makefile). */
static void test_precisions(void) {
    static const uint32_t all[5] = {RNNCELL_WEIGHT_PRECISION_F32, RNNCELL_WEIGHT_PRECISION_F16,
                                    RNNCELL_WEIGHT_PRECISION_BF16, RNNCELL_WEIGHT_PRECISION_I8W,
                                    RNNCELL_WEIGHT_PRECISION_I8};
    RnncellSpec s, back = {.struct_size = sizeof back};
    RnncellModelInfo info = {.struct_size = sizeof info};
    RnncellModel *m;
    RnncellPytorchLayer *a;
    Net n;
    uint32_t seed = 12;
    size_t k;
    char msg[256];
    const char *model = getenv("RNNCELL_MODEL");
    CHECK(RNNCELL_WEIGHT_PRECISION_I8 == 4 && RNNCELL_MAX_INT8_K == 133143);
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 3, 4));
    for (k = 0; k < 5; k++) {
        s.weight_precision = all[k];
        net_init(&n, &s, &seed);
        m = net_model(&n, RNNCELL_ISA_AUTO);
        CHECK(m != NULL);
        if (m) {
            OK(rnncell_model_info(m, &info));
            CHECK(info.weight_precision == all[k] && info.weight_bytes > 0);
            OK(rnncell_model_spec(m, &back));
            CHECK(back.weight_precision == all[k]);
            rnncell_model_free(m);
        }
        net_free(&n);
    }
    /* i8: an input size above RNNCELL_MAX_INT8_K is INVALID_ARGUMENT naming
     * it; the same weights build in f32. */
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_GRU, RNNCELL_MAX_INT8_K + 1, 1));
    net_init(&n, &s, &seed);
    a = net_pytorch_layers(&n);
    s.weight_precision = RNNCELL_WEIGHT_PRECISION_I8;
    m = (RnncellModel *)&s; /* any non-NULL value: a failed build sets it to NULL */
    EXPECT(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &m, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL && strstr(msg, "input_size 133144 exceeds 133143") != NULL);
    s.weight_precision = RNNCELL_WEIGHT_PRECISION_F32;
    OK(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &m, msg, sizeof msg));
    if (m) {
        OK(rnncell_model_info(m, &info));
        CHECK(info.input_size == RNNCELL_MAX_INT8_K + 1);
        rnncell_model_free(m);
    }
    free(a);
    net_free(&n);
    if (model == NULL) {
        printf("  precisions: RNNCELL_MODEL not set, STORED from a file not tested\n");
        return;
    }
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 0, 0));
    OK(rnncell_model_load_safetensors(model, &s, NULL, RNNCELL_ISA_AUTO, &m, msg, sizeof msg));
    if (m) {
        OK(rnncell_model_info(m, &info));
        CHECK(info.weight_precision == RNNCELL_WEIGHT_PRECISION_F32); /* as in 0.1 */
        rnncell_model_free(m);
    }
    s.weight_precision = RNNCELL_WEIGHT_PRECISION_STORED;
    OK(rnncell_model_load_safetensors(model, &s, NULL, RNNCELL_ISA_AUTO, &m, msg, sizeof msg));
    if (m) {
        OK(rnncell_model_info(m, &info));
        CHECK(info.weight_precision == RNNCELL_WEIGHT_PRECISION_F16);
        OK(rnncell_model_spec(m, &back));
        CHECK(back.weight_precision == RNNCELL_WEIGHT_PRECISION_F16);
        rnncell_model_free(m);
    }
    s.weight_precision = 254;
    EXPECT(rnncell_model_load_safetensors(model, &s, NULL, RNNCELL_ISA_AUTO, &m, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL && strstr(msg, "spec.weight_precision") != NULL);
    printf("  precisions: f32 f16 bf16 i8w i8 reported; i8 K limit; STORED keeps the file's f16: ok\n");
}

/* Issue 11: the marshal step. Run under ASan: a count compared after a copy
 * reads past these exact-size heap buffers and fails the test. */
static void test_marshal(void) {
    RnncellSpec s;
    Net n;
    uint32_t seed = 29;
    RnncellModel *m, *tmp;
    RnncellState *sts[32];
    RnncellPytorchLayer *pl;
    RnncellSequence sq;
    RnncellSequenceOutput so;
    size_t k, nw;
    char msg[256];
    unsigned char *raw;
    float *xs, *ys, *mis;

    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 5, 4));
    net_init(&n, &s, &seed);
    pl = net_pytorch_layers(&n);
    m = net_model(&n, RNNCELL_ISA_AUTO);
    for (k = 0; k < 32; k++) OK(rnncell_state_new(m, &sts[k]));

    /* 1. the states array inside ys: refused, never dereferenced as floats */
    xs = (float *)calloc(32 * 5, sizeof(float));
    raw = (unsigned char *)malloc(32 * 4 * sizeof(float) + 1);
    for (k = 0; k < 2; k++) {
        size_t ns = k ? 4 : 32;
        ys = (float *)(raw + k); /* aligned, then misaligned by one byte */
        memcpy((unsigned char *)ys + 8, sts, ns * sizeof(RnncellState *));
        EXPECT(rnncell_model_step_many(m, (RnncellState *const *)((unsigned char *)ys + 8), ns, xs,
                                       ns * 5, ys, ns * 4),
               RNNCELL_STATUS_INVALID_ARGUMENT);
    }
    free(raw);
    free(xs);

    /* 2. a misaligned weight with one float too many: SIZE_MISMATCH before
     *    any copy (the buffer holds exactly the right count) */
    nw = pl[0].weight_ih.len;
    raw = (unsigned char *)malloc(nw * sizeof(float) + 1);
    mis = (float *)(raw + 1);
    memcpy(mis, pl[0].weight_ih.data, nw * sizeof(float));
    {
        RnncellTensor keep = pl[0].weight_ih;
        pl[0].weight_ih = tensor(mis, nw + 1);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg),
               RNNCELL_STATUS_SIZE_MISMATCH);
        CHECK(tmp == NULL && strstr(msg, "weight_ih") != NULL);
        pl[0].weight_ih = tensor(mis, (size_t)PTRDIFF_MAX / 4);
        EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg),
               RNNCELL_STATUS_SIZE_MISMATCH);
        pl[0].weight_ih = tensor(mis, nw);
        OK(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg));
        rnncell_model_free(tmp);
        pl[0].weight_ih = keep;
    }
    free(raw);
    /* n_layers one larger than the array, and huge */
    EXPECT(rnncell_model_new_pytorch(&s, pl, 2, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_SIZE_MISMATCH);
    EXPECT(rnncell_model_new_pytorch(&s, pl, (size_t)1 << 40, 0, &tmp, msg, sizeof msg),
           RNNCELL_STATUS_SIZE_MISMATCH);
    CHECK(strstr(msg, "layers") != NULL);

    /* 3. run: an h0 of 15 floats for 5 (B = 1, H = 4: 4 needed), overlapping h_n */
    {
        float *buf = (float *)malloc(2 * 4 * 5 * sizeof(float));
        float *x = (float *)calloc(2 * 5, sizeof(float));
        OK(rnncell_sequence_init(&sq, sizeof sq));
        memset(&so, 0, sizeof so);
        sq.input = tensor(x, 2 * 5);
        sq.steps = 2;
        sq.batch = 1;
        sq.h0 = tensor(buf + 8 * 4 - 4, 15); /* only 4 floats remain in buf */
        so.output = tensor_mut(buf, 2 * 4);
        so.h_n = tensor_mut(buf + 8 * 4 - 4, 4);
        EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_SIZE_MISMATCH);
        sq.h0 = tensor(buf + 8 * 4 - 4, 4);
        OK(rnncell_model_run(m, &sq, &so));
        sq.batch_major = 2;
        EXPECT(rnncell_model_run(m, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
        free(buf);
        free(x);
    }

    /* 5. a state where a model is expected, and the reverse */
    {
        float x[5] = {0}, y[4];
        EXPECT(rnncell_model_step((const RnncellModel *)sts[0], sts[0], x, 5, y, 4),
               RNNCELL_STATUS_INVALID_ARGUMENT);
        EXPECT(rnncell_model_step(m, (RnncellState *)m, x, 5, y, 4), RNNCELL_STATUS_INVALID_ARGUMENT);
        OK(rnncell_model_step(m, sts[0], x, 5, y, 4));
    }

    /* 7. flags are integers: anything but 0 or 1 is refused */
    s.lstm_peephole = 2;
    EXPECT(rnncell_model_new_pytorch(&s, pl, 1, 0, &tmp, msg, sizeof msg), RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(msg, "lstm_peephole") != NULL);
    s.lstm_peephole = 0;
    CHECK(rnncell_status_str(12345) != NULL);

    for (k = 0; k < 32; k++) rnncell_state_free(sts[k]);
    rnncell_model_free(m);
    free(pl);
    net_free(&n);
}

/* 0.5's versioned structs and their new fields, from C: struct_size,
 * per-direction activations (explicit defaults build the same model,
 * rnncell_model_spec reports them), the ONNX layout of a forward model. */
static void test_versioned(void) {
    RnncellSpec s, back;
    RnncellModel *m = NULL, *ma, *mb, *mc;
    RnncellPytorchLayer *a;
    RnncellSequence sq;
    RnncellSequenceOutput so;
    Net n;
    uint32_t seed = 21;
    size_t T = 4, B = 2;
    char msg[256];
    float *x, *ya, *yb, *yc, *yo;
    int32_t lens[2] = {4, 2};
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 3, 5));
    CHECK(s.struct_size == sizeof s);
    EXPECT(rnncell_spec_init(&s, 8, RNNCELL_CELL_LSTM, 3, 5), RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(s.struct_size == sizeof s); /* nothing written */
    net_init(&n, &s, &seed);
    a = net_pytorch_layers(&n);
    s.struct_size = 0;
    EXPECT(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &m, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL && strstr(msg, "spec.struct_size is 0, expected") != NULL);
    CHECK(strstr(rnncell_last_error(), "rnncell_model_new_pytorch: spec.struct_size is 0") != NULL);
    s.struct_size = sizeof s;
    ma = net_model(&n, RNNCELL_ISA_AUTO);
    /* explicit sigmoid, tanh, tanh: the same model */
    s.activations[0][0].kind = RNNCELL_ACTIVATION_KIND_SIGMOID;
    s.activations[0][1].kind = RNNCELL_ACTIVATION_KIND_TANH;
    s.activations[0][2].kind = RNNCELL_ACTIVATION_KIND_TANH;
    OK(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &mb, msg, sizeof msg));
    /* hard sigmoid gates: another model, reported back */
    s.activations[0][0].kind = RNNCELL_ACTIVATION_KIND_HARD_SIGMOID;
    s.activations[0][0].alpha = 0.2f;
    s.activations[0][0].beta = 0.5f;
    OK(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &mc, msg, sizeof msg));
    back.struct_size = sizeof back;
    OK(rnncell_model_spec(mc, &back));
    CHECK(back.activations[0][0].kind == RNNCELL_ACTIVATION_KIND_HARD_SIGMOID &&
          back.activations[0][0].alpha == 0.2f && back.activations[0][0].beta == 0.5f);
    CHECK(back.activations[1][0].kind == RNNCELL_ACTIVATION_KIND_DEFAULT);
    /* a backward set on a forward model names the slot */
    s.activations[1][1].kind = RNNCELL_ACTIVATION_KIND_RELU;
    EXPECT(rnncell_model_new_pytorch(&s, a, 1, RNNCELL_ISA_AUTO, &m, msg, sizeof msg),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL && strstr(msg, "spec.activations[1][1] (g)") != NULL);
    x = rnd_vec(T * B * 3, &seed);
    ya = (float *)malloc(T * B * 5 * sizeof(float));
    yb = (float *)malloc(T * B * 5 * sizeof(float));
    yc = (float *)malloc(T * B * 5 * sizeof(float));
    yo = (float *)malloc(T * B * 5 * sizeof(float));
    OK(rnncell_sequence_init(&sq, sizeof sq));
    memset(&so, 0, sizeof so);
    sq.input = tensor(x, T * B * 3);
    sq.steps = T;
    sq.batch = B;
    sq.seq_lens_i32 = lens;
    sq.seq_lens_len = B;
    if (ma && mb && mc) {
        so.output = tensor_mut(ya, T * B * 5);
        OK(rnncell_model_run(ma, &sq, &so));
        so.output = tensor_mut(yb, T * B * 5);
        OK(rnncell_model_run(mb, &sq, &so));
        so.output = tensor_mut(yc, T * B * 5);
        OK(rnncell_model_run(mc, &sq, &so));
        CHECK(same_bits(ya, yb, T * B * 5) && !same_bits(ya, yc, T * B * 5));
        /* ONNX layout 0 of a forward model: Y [T, 1, B, H] is [T, B, H] */
        sq.layout = RNNCELL_SEQUENCE_LAYOUT_ONNX0;
        so.output = tensor_mut(yo, T * B * 5);
        OK(rnncell_model_run(ma, &sq, &so));
        CHECK(same_bits(ya, yo, T * B * 5));
        /* two lengths arrays */
        sq.seq_lens = (const size_t *)lens;
        EXPECT(rnncell_model_run(ma, &sq, &so), RNNCELL_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(rnncell_last_error(), "give the lengths once") != NULL);
    }
    free(a);
    free(x);
    free(ya);
    free(yb);
    free(yc);
    free(yo);
    rnncell_model_free(ma);
    rnncell_model_free(mb);
    rnncell_model_free(mc);
    net_free(&n);
    printf("  versioned structs: struct_size, activations, ONNX layout, int32 lengths: ok\n");
}

int main(void) {
    test_queries();
    test_spec_errors();
    test_variants();
    printf("layouts, directions, states, boundary:\n");
    test_layouts(RNNCELL_CELL_LSTM, true);
    test_layouts(RNNCELL_CELL_LSTM, false);
    test_layouts(RNNCELL_CELL_GRU, false);
    test_directions(RNNCELL_CELL_LSTM);
    test_directions(RNNCELL_CELL_GRU);
    test_directions(RNNCELL_CELL_RNN);
    test_states();
    test_marshal();
    test_boundary();
    test_safetensors();
    test_precisions();
    test_versioned();
    if (failures) {
        fprintf(stderr, "test_api: %d check(s) FAILED\n", failures);
        return 1;
    }
    printf("test_api: all checks passed\n");
    return 0;
}

/*
 * The ONNX loaders from C: a committed .onnx file loaded from a path and
 * from bytes, its recurrent nodes listed (rnncell_onnx_node_count / _info),
 * and run with ONNX's own tensor layouts (RNNCELL_SEQUENCE_LAYOUT_ONNX0 and
 * _ONNX1) and int32 sequence_lens, against the outputs ONNX Runtime computed
 * (the TensorProto files beside each model, as tests/onnx.rs reads them) and
 * against per-stream runs of the same model. Built and run by c/Makefile
 * (ASan+UBSan and valgrind) with RNNCELL_ONNX_DIR = tests/onnx.
 */
#include "common.h"

static char dir[1024];

static unsigned char *read_file(const char *rel, size_t *len) {
    char path[1200];
    FILE *f;
    long n;
    unsigned char *b;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        failures++;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    CHECK(*len == (size_t)n);
    return b;
}

/* ---- a minimal TensorProto reader: dims (1), data_type (2), float_data (4),
 * raw_data (9); float32 only. */
typedef struct {
    size_t dims[8];
    size_t ndims;
    float *data;
    size_t n;
} Tensor;

static uint64_t varint(const unsigned char *b, size_t len, size_t *at) {
    uint64_t v = 0;
    unsigned shift = 0;
    while (*at < len && shift < 64) {
        unsigned char c = b[(*at)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
    }
    return v;
}

static float le_float(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int read_pb(const char *rel, Tensor *t) {
    size_t len = 0, at = 0, i;
    unsigned char *b = read_file(rel, &len);
    memset(t, 0, sizeof *t);
    if (!b) return 0;
    t->data = (float *)malloc(len + 4);
    while (at < len) {
        uint64_t key = varint(b, len, &at);
        uint64_t field = key >> 3, wire = key & 7;
        if (wire == 0) {
            uint64_t v = varint(b, len, &at);
            if (field == 1 && t->ndims < 8) t->dims[t->ndims++] = (size_t)v;
            if (field == 2) CHECK(v == 1); /* FLOAT */
        } else if (wire == 2) {
            size_t n = (size_t)varint(b, len, &at), end = at + n;
            if (end > len) break;
            if (field == 1) {
                while (at < end && t->ndims < 8) t->dims[t->ndims++] = (size_t)varint(b, end, &at);
            } else if (field == 4 || field == 9) {
                for (i = 0; i + 4 <= n; i += 4) t->data[t->n++] = le_float(b + at + i);
            }
            at = end;
        } else if (wire == 5) {
            if (field == 4 && at + 4 <= len) t->data[t->n++] = le_float(b + at);
            at += 4;
        } else if (wire == 1) {
            at += 8;
        } else {
            break;
        }
    }
    free(b);
    return 1;
}

static double worst(const float *a, const float *b, size_t n) { return max_abs_diff(a, b, n); }

static RnncellModel *load_path(const char *rel) {
    char path[1200], err[256] = {0};
    RnncellModel *m = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    OK(rnncell_model_load_onnx(path, NULL, RNNCELL_ISA_AUTO, &m, err, sizeof err));
    if (!m) fprintf(stderr, "  %s: %s\n", rel, err);
    return m;
}

/* Runs `m` on x with `layout`; lens (int32, B entries) may be NULL. */
static RnncellStatus run(const RnncellModel *m, uint32_t layout, const float *x, size_t T, size_t B,
                         const int32_t *lens, float *y, size_t ny, float *hn, size_t nh, float *cn,
                         size_t nc) {
    RnncellSequence sq;
    RnncellSequenceOutput so;
    RnncellStatus st = rnncell_sequence_init(&sq, sizeof sq);
    if (st != RNNCELL_STATUS_OK) return st;
    memset(&so, 0, sizeof so);
    sq.layout = layout;
    sq.input = tensor(x, 0);
    sq.steps = T;
    sq.batch = B;
    sq.seq_lens_i32 = lens;
    sq.seq_lens_len = lens ? B : 0;
    so.output = tensor_mut(y, ny);
    so.h_n = tensor_mut(nh ? hn : NULL, nh);
    so.c_n = tensor_mut(nc ? cn : NULL, nc);
    {
        RnncellModelInfo info;
        OK(rnncell_model_info_init(&info, sizeof info));
        OK(rnncell_model_info(m, &info));
        sq.input.len = T * B * info.input_size;
    }
    return rnncell_model_run(m, &sq, &so);
}

/* torch.onnx.export of a 2-layer bidirectional LSTM: nodes, both loaders,
 * ONNX Runtime's Y, the ONNX layouts and int32 lengths. */
static void test_torch_bidirectional_lstm(void) {
    const char *rel = "torch/lstm_2l_bi/model.onnx";
    size_t len = 0, count = 0, k, T, B, I, H, D, L, t, b, d, h;
    unsigned char *bytes = read_file(rel, &len);
    RnncellOnnxNodeInfo ni;
    RnncellOnnxOptions opts;
    RnncellModelInfo info, info2;
    RnncellModel *mp, *mb = NULL;
    Tensor X, Yw;
    char name[128], err[256];
    float *yn, *hn, *cn, *y0, *h0, *c0, *x1, *y1, *h1, *c1;
    int32_t lens[16];
    int before = failures;
    if (!bytes) return;

    /* nodes */
    OK(rnncell_onnx_node_count(bytes, len, &count, err, sizeof err));
    CHECK(count == 2);
    OK(rnncell_onnx_node_info_init(&ni, sizeof ni));
    ni.struct_size = 0;
    EXPECT(rnncell_onnx_node_info(bytes, len, 0, &ni, name, sizeof name, err, sizeof err),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rnncell_last_error(), "out_info.struct_size is 0") != NULL);
    for (k = 0; k < count; k++) {
        OK(rnncell_onnx_node_info_init(&ni, sizeof ni));
        OK(rnncell_onnx_node_info(bytes, len, k, &ni, name, sizeof name, err, sizeof err));
        CHECK(ni.struct_size == sizeof ni);
        CHECK(ni.cell == RNNCELL_CELL_LSTM && ni.direction == RNNCELL_DIRECTION_BIDIRECTIONAL);
        CHECK(ni.loadable == 1 && ni.has_bias == 1 && ni.layout == 0);
        CHECK(ni.name_size == strlen(name) + 1 && ni.name_size > 1);
        CHECK(ni.next_index == (k == 0 ? 1 : SIZE_MAX));
    }
    EXPECT(rnncell_onnx_node_info(bytes, len, count, &ni, name, sizeof name, err, sizeof err),
           RNNCELL_STATUS_INVALID_ARGUMENT);

    /* from a path and from bytes (options from their init function) */
    mp = load_path(rel);
    OK(rnncell_onnx_options_init(&opts, sizeof opts));
    OK(rnncell_model_load_onnx_bytes(bytes, len, &opts, RNNCELL_ISA_AUTO, &mb, err, sizeof err));
    opts.struct_size = 4;
    {
        RnncellModel *bad = (RnncellModel *)&opts;
        EXPECT(rnncell_model_load_onnx_bytes(bytes, len, &opts, RNNCELL_ISA_AUTO, &bad, err,
                                             sizeof err),
               RNNCELL_STATUS_INVALID_ARGUMENT);
        CHECK(bad == NULL && strstr(err, "options.struct_size is 4") != NULL);
    }
    if (!mp || !mb) {
        rnncell_model_free(mp);
        rnncell_model_free(mb);
        free(bytes);
        return;
    }
    OK(rnncell_model_info_init(&info, sizeof info));
    OK(rnncell_model_info_init(&info2, sizeof info2));
    OK(rnncell_model_info(mp, &info));
    OK(rnncell_model_info(mb, &info2));
    /* field by field: the padding bytes of a struct are unspecified */
    CHECK(info.cell == info2.cell && info.input_size == info2.input_size &&
          info.hidden_size == info2.hidden_size && info.state_size == info2.state_size &&
          info.output_size == info2.output_size && info.num_layers == info2.num_layers &&
          info.num_directions == info2.num_directions && info.isa == info2.isa &&
          info.weight_bytes == info2.weight_bytes &&
          info.weight_precision == info2.weight_precision && info.int_dot == info2.int_dot);
    CHECK(info.num_layers == 2 && info.num_directions == 2 && info.has_cell_state);
    CHECK(info.int_dot == NULL); /* f32 weights */
    I = info.input_size;
    H = info.hidden_size;
    D = info.num_directions;
    L = info.num_layers;

    /* ONNX Runtime's output of the graph ([T, B, D*H]) against a native run */
    if (!read_pb("torch/lstm_2l_bi/X.pb", &X) || !read_pb("torch/lstm_2l_bi/Y.pb", &Yw)) goto out;
    CHECK(X.ndims == 3 && X.dims[2] == I);
    T = X.dims[0];
    B = X.dims[1];
    CHECK(B >= 2 && B <= 16 && T >= 3);
    CHECK(Yw.n == T * B * D * H);
    yn = (float *)malloc(T * B * D * H * sizeof(float));
    hn = (float *)malloc(L * D * B * H * sizeof(float));
    cn = (float *)malloc(L * D * B * H * sizeof(float));
    OK(run(mp, RNNCELL_SEQUENCE_LAYOUT_NATIVE, X.data, T, B, NULL, yn, T * B * D * H, hn,
           L * D * B * H, cn, L * D * B * H));
    CHECK(worst(yn, Yw.data, Yw.n) <= 1e-5);

    /* ONNX layout 0, int32 lengths all T: Y [T, D, B, H] is the native
     * output reordered, bit for bit; Y_h, Y_c [L*D, B, H] are h_n, c_n. */
    y0 = (float *)malloc(T * D * B * H * sizeof(float));
    h0 = (float *)malloc(L * D * B * H * sizeof(float));
    c0 = (float *)malloc(L * D * B * H * sizeof(float));
    for (b = 0; b < B; b++) lens[b] = (int32_t)T;
    OK(run(mb, RNNCELL_SEQUENCE_LAYOUT_ONNX0, X.data, T, B, lens, y0, T * D * B * H, h0,
           L * D * B * H, c0, L * D * B * H));
    {
        int same = 1;
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++)
                for (b = 0; b < B; b++)
                    for (h = 0; h < H; h++)
                        same &= memcmp(&y0[((t * D + d) * B + b) * H + h],
                                       &yn[(t * B + b) * D * H + d * H + h], 4) == 0;
        CHECK(same);
        CHECK(same_bits(h0, hn, L * D * B * H) && same_bits(c0, cn, L * D * B * H));
    }

    /* Shorter int32 lengths: each stream equals a run of that stream alone
     * (B = 1, T = its length), Y past its end is zero. */
    for (b = 0; b < B; b++) lens[b] = (int32_t)(b == 0 ? T : (T - 1 - b % (T - 1)));
    OK(run(mb, RNNCELL_SEQUENCE_LAYOUT_ONNX0, X.data, T, B, lens, y0, T * D * B * H, h0,
           L * D * B * H, c0, L * D * B * H));
    for (b = 0; b < B; b++) {
        size_t tl = (size_t)lens[b], sidx;
        float *xb = (float *)malloc(T * I * sizeof(float));
        float *yb = (float *)malloc(T * D * H * sizeof(float));
        float *hb = (float *)malloc(L * D * H * sizeof(float));
        float *cb = (float *)malloc(L * D * H * sizeof(float));
        int same = 1;
        for (t = 0; t < tl; t++) memcpy(xb + t * I, X.data + (t * B + b) * I, I * sizeof(float));
        OK(run(mp, RNNCELL_SEQUENCE_LAYOUT_ONNX0, xb, tl, 1, NULL, yb, tl * D * H, hb, L * D * H,
               cb, L * D * H));
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++)
                for (h = 0; h < H; h++) {
                    float got = y0[((t * D + d) * B + b) * H + h];
                    if (t < tl)
                        same &= memcmp(&got, &yb[(t * D + d) * H + h], 4) == 0;
                    else
                        same &= got == 0.0f;
                }
        for (sidx = 0; sidx < L * D; sidx++) {
            same &= same_bits(&h0[(sidx * B + b) * H], &hb[sidx * H], H);
            same &= same_bits(&c0[(sidx * B + b) * H], &cb[sidx * H], H);
        }
        CHECK(same);
        free(xb);
        free(yb);
        free(hb);
        free(cb);
    }

    /* ONNX layout 1: X [B, T, I], Y [B, T, D, H], Y_h [B, L*D, H]: the
     * layout-0 results transposed, bit for bit. */
    x1 = (float *)malloc(T * B * I * sizeof(float));
    y1 = (float *)malloc(T * D * B * H * sizeof(float));
    h1 = (float *)malloc(L * D * B * H * sizeof(float));
    c1 = (float *)malloc(L * D * B * H * sizeof(float));
    for (t = 0; t < T; t++)
        for (b = 0; b < B; b++) memcpy(x1 + (b * T + t) * I, X.data + (t * B + b) * I, I * 4);
    OK(run(mb, RNNCELL_SEQUENCE_LAYOUT_ONNX1, x1, T, B, lens, y1, T * D * B * H, h1,
           L * D * B * H, c1, L * D * B * H));
    {
        int same = 1;
        size_t s;
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++)
                for (b = 0; b < B; b++)
                    same &= same_bits(&y1[((b * T + t) * D + d) * H],
                                      &y0[((t * D + d) * B + b) * H], H);
        for (s = 0; s < L * D; s++)
            for (b = 0; b < B; b++) {
                same &= same_bits(&h1[(b * L * D + s) * H], &h0[(s * B + b) * H], H);
                same &= same_bits(&c1[(b * L * D + s) * H], &c0[(s * B + b) * H], H);
            }
        CHECK(same);
    }

    /* Errors: a negative length names its entry; a short Y names ONNX's
     * shape; batch_major with an ONNX layout. Nothing is written. */
    lens[1] = -1;
    y0[0] = 42.0f;
    EXPECT(run(mb, RNNCELL_SEQUENCE_LAYOUT_ONNX0, X.data, T, B, lens, y0, T * D * B * H, h0,
               L * D * B * H, c0, L * D * B * H),
           RNNCELL_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rnncell_last_error(), "seq.seq_lens_i32[1] is -1") != NULL);
    CHECK(y0[0] == 42.0f);
    lens[1] = 1;
    EXPECT(run(mb, RNNCELL_SEQUENCE_LAYOUT_ONNX0, X.data, T, B, lens, y0, T * D * B * H - 1, h0,
               L * D * B * H, c0, L * D * B * H),
           RNNCELL_STATUS_SIZE_MISMATCH);
    CHECK(strstr(rnncell_last_error(), "Y [T=") != NULL &&
          strstr(rnncell_last_error(), "(ONNX layout 0") != NULL);
    CHECK(y0[0] == 42.0f);

    free(x1);
    free(y1);
    free(h1);
    free(c1);
    free(y0);
    free(h0);
    free(c0);
    free(yn);
    free(hn);
    free(cn);
out:
    free(X.data);
    free(Yw.data);
    rnncell_model_free(mp);
    rnncell_model_free(mb);
    free(bytes);
    printf("  torch 2-layer bidirectional LSTM: nodes, path == bytes, ONNX Runtime's Y, ONNX0/ONNX1 "
           "with int32 lengths: %s\n",
           failures == before ? "ok" : "FAILED");
}

/* ONNX's backend node tests: ONNX's tensors passed unchanged. */
static void test_node(const char *name, uint32_t layout) {
    char rel[256];
    RnncellModel *m;
    RnncellModelInfo info;
    Tensor X, Y, Yh, Yc;
    size_t T, B, D, H, ny, nh;
    float *y, *hn, *cn;
    int has_y, has_c;
    FILE *f;
    char path[1200];
    int before = failures;
    snprintf(rel, sizeof rel, "node/%s/model.onnx", name);
    m = load_path(rel);
    if (!m) return;
    OK(rnncell_model_info_init(&info, sizeof info));
    OK(rnncell_model_info(m, &info));
    snprintf(rel, sizeof rel, "node/%s/X.pb", name);
    read_pb(rel, &X);
    CHECK(X.ndims == 3);
    T = layout == RNNCELL_SEQUENCE_LAYOUT_ONNX1 ? X.dims[1] : X.dims[0];
    B = layout == RNNCELL_SEQUENCE_LAYOUT_ONNX1 ? X.dims[0] : X.dims[1];
    D = info.num_directions;
    H = info.hidden_size;
    ny = T * B * D * H;
    nh = D * B * H;
    snprintf(path, sizeof path, "%s/node/%s/Y.pb", dir, name);
    f = fopen(path, "rb");
    has_y = f != NULL;
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/node/%s/Y_c.pb", dir, name);
    f = fopen(path, "rb");
    has_c = f != NULL;
    if (f) fclose(f);
    y = (float *)malloc(ny * sizeof(float));
    hn = (float *)malloc(nh * sizeof(float));
    cn = (float *)malloc(nh * sizeof(float));
    OK(run(m, layout, X.data, T, B, NULL, y, ny, hn, nh, cn, info.has_cell_state ? nh : 0));
    memset(&Y, 0, sizeof Y);
    memset(&Yc, 0, sizeof Yc);
    if (has_y) {
        snprintf(rel, sizeof rel, "node/%s/Y.pb", name);
        read_pb(rel, &Y);
        CHECK(Y.n == ny && worst(y, Y.data, ny) <= 1e-5);
    }
    snprintf(rel, sizeof rel, "node/%s/Y_h.pb", name);
    read_pb(rel, &Yh);
    CHECK(Yh.n == nh && worst(hn, Yh.data, nh) <= 1e-5);
    if (has_c) {
        snprintf(rel, sizeof rel, "node/%s/Y_c.pb", name);
        read_pb(rel, &Yc);
        CHECK(Yc.n == nh && worst(cn, Yc.data, nh) <= 1e-5);
    }
    printf("  %s (ONNX layout %u): %s%s as ONNX Runtime: %s\n", name,
           layout == RNNCELL_SEQUENCE_LAYOUT_ONNX1 ? 1u : 0u, has_y ? "Y, Y_h" : "Y_h",
           has_c ? ", Y_c" : "", failures == before ? "ok" : "FAILED");
    free(X.data);
    free(Y.data);
    free(Yh.data);
    free(Yc.data);
    free(y);
    free(hn);
    free(cn);
    rnncell_model_free(m);
}

int main(void) {
    const char *d = getenv("RNNCELL_ONNX_DIR");
    snprintf(dir, sizeof dir, "%s", d ? d : "tests/onnx");
    printf("test_onnx: rnncell %s, files in %s\n", rnncell_version(), dir);
    test_torch_bidirectional_lstm();
    test_node("test_lstm_bidirectional", RNNCELL_SEQUENCE_LAYOUT_ONNX0);
    test_node("test_lstm_batchwise", RNNCELL_SEQUENCE_LAYOUT_ONNX1);
    test_node("test_gru_bidirectional", RNNCELL_SEQUENCE_LAYOUT_ONNX0);
    if (failures) {
        fprintf(stderr, "test_onnx: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_onnx: all passed\n");
    return 0;
}

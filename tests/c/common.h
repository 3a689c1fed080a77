/*
 * Shared helpers of the C tests: checks, a reproducible random generator,
 * random networks in PyTorch layout, and a plain double-precision reference
 * of the forward recurrences (DESIGN.md section 1), written independently
 * of the library.
 */
#ifndef RNNCELL_TEST_COMMON_H
#define RNNCELL_TEST_COMMON_H

#include "rnncell.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

#define EXPECT(call, want)                                                          \
    do {                                                                            \
        RnncellStatus s_ = (call);                                                  \
        RnncellStatus w_ = (want);                                                  \
        if (s_ != w_) {                                                             \
            fprintf(stderr, "%s:%d: %s\n  returned %s\n  expected %s\n", __FILE__, \
                    __LINE__, #call, rnncell_status_str(s_), rnncell_status_str(w_));  \
            failures++;                                                             \
        }                                                                           \
    } while (0)

#define OK(call) EXPECT(call, RNNCELL_STATUS_OK)

/* xorshift32: floats in [-0.5, 0.5). */
static inline float rnd(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

static inline float *rnd_vec(size_t n, uint32_t *s) {
    float *v = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) v[i] = rnd(s);
    return v;
}

static inline int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* One layer and direction in PyTorch (canonical) layout. */
typedef struct {
    float *w, *r, *bw, *br, *peep, *proj, *pbias;
    size_t nw, nr, nb, npeep, nproj, npbias;
} Layer;

typedef struct {
    RnncellSpec spec;
    size_t I, H, Hr, P, G, L, D, out;
    Layer *layers; /* L * D, index layer * D + direction */
} Net;

static inline size_t cell_gates(uint32_t cell) {
    return cell == RNNCELL_CELL_LSTM ? 4 : cell == RNNCELL_CELL_GRU ? 3 : 1;
}

static inline void net_init(Net *n, const RnncellSpec *spec, uint32_t *seed) {
    size_t l, k;
    n->spec = *spec;
    n->I = spec->input_size;
    n->H = spec->hidden_size;
    n->P = spec->cell == RNNCELL_CELL_LSTM ? spec->lstm_proj_size : 0;
    n->Hr = n->P ? n->P : n->H;
    n->G = cell_gates(spec->cell);
    n->L = spec->num_layers;
    n->D = spec->direction == RNNCELL_DIRECTION_BIDIRECTIONAL ? 2 : 1;
    n->out = spec->merge == RNNCELL_MERGE_SUM ? n->Hr : n->D * n->Hr;
    n->layers = (Layer *)calloc(n->L * n->D, sizeof(Layer));
    for (k = 0; k < n->L * n->D; k++) {
        Layer *y = &n->layers[k];
        size_t in = (k / n->D) == 0 ? n->I : n->out;
        l = k;
        (void)l;
        y->nw = n->G * n->H * in;
        y->nr = n->G * n->H * n->Hr;
        y->nb = n->G * n->H;
        y->w = rnd_vec(y->nw, seed);
        y->r = rnd_vec(y->nr, seed);
        y->bw = rnd_vec(y->nb, seed);
        y->br = rnd_vec(y->nb, seed);
        if (spec->cell == RNNCELL_CELL_LSTM && spec->lstm_peephole) {
            y->npeep = 3 * n->H;
            y->peep = rnd_vec(y->npeep, seed);
        }
        if (n->P) {
            y->nproj = n->P * n->H;
            y->proj = rnd_vec(y->nproj, seed);
        }
        if (n->P && spec->lstm_proj_bias) {
            y->npbias = n->P;
            y->pbias = rnd_vec(y->npbias, seed);
        }
    }
}

static inline void net_free(Net *n) {
    size_t k;
    for (k = 0; k < n->L * n->D; k++) {
        Layer *y = &n->layers[k];
        free(y->w);
        free(y->r);
        free(y->bw);
        free(y->br);
        free(y->peep);
        free(y->proj);
        free(y->pbias);
    }
    free(n->layers);
}

static inline RnncellTensor tensor(const float *p, size_t n) {
    RnncellTensor t;
    t.data = p;
    t.len = n;
    return t;
}

static inline RnncellTensorMut tensor_mut(float *p, size_t n) {
    RnncellTensorMut t;
    t.data = p;
    t.len = n;
    return t;
}

/* The PyTorch layer structs of a net (caller frees the array). */
static inline RnncellPytorchLayer *net_pytorch_layers(const Net *n) {
    size_t k;
    RnncellPytorchLayer *a = (RnncellPytorchLayer *)calloc(n->L * n->D, sizeof *a);
    for (k = 0; k < n->L * n->D; k++) {
        const Layer *y = &n->layers[k];
        a[k].weight_ih = tensor(y->w, y->nw);
        a[k].weight_hh = tensor(y->r, y->nr);
        a[k].bias_ih = tensor(y->bw, y->nb);
        a[k].bias_hh = tensor(y->br, y->nb);
        a[k].weight_hr = tensor(y->proj, y->nproj);
        a[k].peephole = tensor(y->peep, y->npeep);
        a[k].proj_bias = tensor(y->pbias, y->npbias);
    }
    return a;
}

static inline RnncellModel *net_model(const Net *n, uint32_t isa) {
    RnncellModel *m = NULL;
    char msg[256];
    RnncellPytorchLayer *a = net_pytorch_layers(n);
    RnncellStatus st =
        rnncell_model_new_pytorch(&n->spec, a, n->L * n->D, isa, &m, msg, sizeof msg);
    if (st != RNNCELL_STATUS_OK) {
        fprintf(stderr, "net_model: %s: %s\n", rnncell_status_str(st), msg);
        failures++;
    }
    free(a);
    return m;
}

/* ---------------------------------------------------------- reference */

static inline double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static inline double clampd(double v, float c) {
    if (c == 0.0f) return v;
    return v > c ? c : v < -c ? -c : v;
}

/* Reference state: per layer h (Hr) and c (H), doubles. */
typedef struct {
    double *h, *c;
} RefState;

static inline RefState *ref_new(const Net *n) {
    size_t l;
    RefState *s = (RefState *)calloc(n->L, sizeof *s);
    for (l = 0; l < n->L; l++) {
        s[l].h = (double *)calloc(n->Hr, sizeof(double));
        s[l].c = (double *)calloc(n->H, sizeof(double));
    }
    return s;
}

static inline void ref_free(const Net *n, RefState *s) {
    size_t l;
    for (l = 0; l < n->L; l++) {
        free(s[l].h);
        free(s[l].c);
    }
    free(s);
}

/*
 * One forward step of a forward (unidirectional) net in doubles; writes the
 * last layer's h to y. LSTM: peepholes (p_i, p_f on c; p_o on c'),
 * projection with bias and clip, both couplings, ONNX clip of every
 * activation input, cell clip of c'. GRU: both forms. RNN: tanh and relu.
 */
static inline void ref_step(const Net *n, RefState *s, const float *x, float *y) {
    size_t l, u, k, g;
    const RnncellSpec *sp = &n->spec;
    float clip = sp->clip;
    double *in = (double *)malloc((n->I > n->Hr ? n->I : n->Hr) * sizeof(double));
    double *a = (double *)malloc(n->G * n->H * sizeof(double));
    double *ah = (double *)malloc(n->G * n->H * sizeof(double));
    double *m = (double *)malloc(n->H * sizeof(double));
    double *hn = (double *)malloc((n->H > n->Hr ? n->H : n->Hr) * sizeof(double));
    size_t in_sz = n->I;
    for (k = 0; k < n->I; k++) in[k] = x[k];
    for (l = 0; l < n->L; l++) {
        const Layer *w = &n->layers[l];
        double *h = s[l].h, *c = s[l].c;
        for (g = 0; g < n->G * n->H; g++) {
            double sx = 0, sh = 0;
            for (k = 0; k < in_sz; k++) sx += (double)w->w[g * in_sz + k] * in[k];
            for (k = 0; k < n->Hr; k++) sh += (double)w->r[g * n->Hr + k] * h[k];
            a[g] = sx + w->bw[g];
            ah[g] = sh + w->br[g];
        }
        if (sp->cell == RNNCELL_CELL_LSTM) {
            size_t H = n->H;
            for (u = 0; u < H; u++) {
                double pi = w->peep ? w->peep[u] * c[u] : 0;
                double pf = w->peep ? w->peep[H + u] * c[u] : 0;
                double ig = sigm(clampd(a[u] + ah[u] + pi, clip));
                double fg = sigm(clampd(a[H + u] + ah[H + u] + pf, clip));
                double gg = tanh(clampd(a[2 * H + u] + ah[2 * H + u], clip));
                double cn, og;
                if (sp->lstm_coupling == RNNCELL_COUPLING_INPUT_FROM_FORGET) ig = 1 - fg;
                if (sp->lstm_coupling == RNNCELL_COUPLING_FORGET_FROM_INPUT) fg = 1 - ig;
                cn = clampd(fg * c[u] + ig * gg, sp->lstm_cell_clip);
                og = sigm(clampd(a[3 * H + u] + ah[3 * H + u] + (w->peep ? w->peep[2 * H + u] * cn : 0),
                                 clip));
                c[u] = cn;
                m[u] = og * tanh(cn);
            }
            if (n->P) {
                for (k = 0; k < n->P; k++) {
                    double v = w->pbias ? w->pbias[k] : 0;
                    for (u = 0; u < H; u++) v += (double)w->proj[k * H + u] * m[u];
                    hn[k] = clampd(v, sp->lstm_proj_clip);
                }
            } else {
                for (u = 0; u < H; u++) hn[u] = m[u];
            }
        } else if (sp->cell == RNNCELL_CELL_GRU) {
            size_t H = n->H;
            for (u = 0; u < H; u++) {
                double r = sigm(clampd(a[u] + ah[u], clip));
                double z = sigm(clampd(a[H + u] + ah[H + u], clip));
                double nn;
                if (sp->gru_linear_before_reset) {
                    nn = tanh(clampd(a[2 * H + u] + r * ah[2 * H + u], clip));
                } else {
                    /* R_n (r * h): recompute with the reset applied per element. */
                    double v = a[2 * H + u] + w->br[2 * H + u];
                    size_t j;
                    for (j = 0; j < H; j++) {
                        double rj = sigm(clampd(a[j] + ah[j], clip));
                        v += (double)w->r[(2 * H + u) * H + j] * rj * h[j];
                    }
                    nn = tanh(clampd(v, clip));
                }
                hn[u] = (1 - z) * nn + z * h[u];
            }
        } else {
            for (u = 0; u < n->H; u++) {
                double v = clampd(a[u] + ah[u], clip);
                hn[u] = sp->rnn_activation == RNNCELL_ACTIVATION_RELU ? (v > 0 ? v : 0) : tanh(v);
            }
        }
        for (k = 0; k < n->Hr; k++) h[k] = hn[k];
        for (k = 0; k < n->Hr; k++) in[k] = h[k];
        in_sz = n->Hr;
    }
    for (k = 0; k < n->Hr; k++) y[k] = (float)s[n->L - 1].h[k];
    free(in);
    free(a);
    free(ah);
    free(m);
    free(hn);
}

static inline double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > d || e != e) d = e;
    }
    return d;
}

#endif

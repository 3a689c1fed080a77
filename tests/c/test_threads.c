/*
 * N pthreads share one immutable model; each steps its own state over its
 * own input stream (and also runs whole sequences on the shared model).
 * The results must be bit-identical to doing the same work one stream after
 * another on the main thread. Run under ASan+UBSan and valgrind (c/Makefile).
 */
#include "common.h"

#include <pthread.h>

#define THREADS 8
#define STEPS 40

typedef struct {
    const RnncellModel *model;
    const float *x;  /* STEPS * I */
    float *y;        /* STEPS * Hr, written by the thread */
    float *yrun;     /* STEPS * Hr, from rnncell_model_run */
    size_t I, Hr;
    RnncellStatus status;
} Job;

static void *worker(void *arg) {
    Job *j = (Job *)arg;
    RnncellState *st = NULL;
    RnncellSequence sq;
    RnncellSequenceOutput so;
    size_t t;
    j->status = rnncell_state_new(j->model, &st);
    for (t = 0; t < STEPS && j->status == RNNCELL_STATUS_OK; t++) {
        j->status = rnncell_model_step(j->model, st, j->x + t * j->I, j->I, j->y + t * j->Hr, j->Hr);
    }
    rnncell_state_free(st);
    if (j->status != RNNCELL_STATUS_OK) return NULL;
    OK(rnncell_sequence_init(&sq, sizeof sq));
    memset(&so, 0, sizeof so);
    sq.input = tensor(j->x, STEPS * j->I);
    sq.steps = STEPS;
    sq.batch = 1;
    so.output = tensor_mut(j->yrun, STEPS * j->Hr);
    j->status = rnncell_model_run(j->model, &sq, &so);
    return NULL;
}

int main(void) {
    RnncellSpec s;
    Net n;
    uint32_t seed = 2024;
    RnncellModel *m;
    Job jobs[THREADS];
    pthread_t th[THREADS];
    float *want[THREADS];
    size_t i, t;
    OK(rnncell_spec_init(&s, sizeof s, RNNCELL_CELL_LSTM, 19, 37));
    s.num_layers = 2;
    s.lstm_proj_size = 11;
    net_init(&n, &s, &seed);
    m = net_model(&n, RNNCELL_ISA_AUTO);
    if (!m) return 1;
    /* Sequential reference on this thread. */
    for (i = 0; i < THREADS; i++) {
        RnncellState *st;
        jobs[i].model = m;
        jobs[i].I = n.I;
        jobs[i].Hr = n.Hr;
        jobs[i].x = rnd_vec(STEPS * n.I, &seed);
        jobs[i].y = (float *)calloc(STEPS * n.Hr, sizeof(float));
        jobs[i].yrun = (float *)calloc(STEPS * n.Hr, sizeof(float));
        want[i] = (float *)malloc(STEPS * n.Hr * sizeof(float));
        OK(rnncell_state_new(m, &st));
        for (t = 0; t < STEPS; t++)
            OK(rnncell_model_step(m, st, jobs[i].x + t * n.I, n.I, want[i] + t * n.Hr, n.Hr));
        rnncell_state_free(st);
    }
    for (i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
    for (i = 0; i < THREADS; i++) CHECK(pthread_join(th[i], NULL) == 0);
    for (i = 0; i < THREADS; i++) {
        EXPECT(jobs[i].status, RNNCELL_STATUS_OK);
        CHECK(same_bits(jobs[i].y, want[i], STEPS * n.Hr));
        CHECK(same_bits(jobs[i].yrun, want[i], STEPS * n.Hr));
        /* distinct streams gave distinct outputs (the check is not vacuous) */
        if (i > 0) CHECK(!same_bits(want[i], want[0], STEPS * n.Hr));
    }
    for (i = 0; i < THREADS; i++) {
        free((void *)jobs[i].x);
        free(jobs[i].y);
        free(jobs[i].yrun);
        free(want[i]);
    }
    rnncell_model_free(m);
    net_free(&n);
    if (failures) {
        fprintf(stderr, "test_threads: %d check(s) FAILED\n", failures);
        return 1;
    }
    printf("test_threads: %d threads x %d steps on one shared model (%s): identical to sequential\n",
           THREADS, STEPS, rnncell_isa_name(rnncell_isa_detected()));
    return 0;
}

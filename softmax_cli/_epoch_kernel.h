/* The kernel of the compiled epoch (_epoch.c), for vectors of VECTOR float32: _epoch.c includes it once for
   each processor it is compiled for, with K(name) naming that copy's functions. LANES classes are LANES / VECTOR
   vectors: wider vectors than the processor has were split through memory (ten times slower measured), narrower
   ones wasted its width (two and a half times slower). */

typedef float K(vector) __attribute__((vector_size(VECTOR * sizeof(float))));
typedef struct {
    K(vector) part[LANES / VECTOR];
} K(lanes);

/* each statement once for each part, its index written out: a loop over the parts made GCC keep them in memory */
#if LANES / VECTOR == 2
#define EACH_PART(statement) statement(0) statement(1)
#elif LANES / VECTOR == 4
#define EACH_PART(statement) statement(0) statement(1) statement(2) statement(3)
#endif

ALWAYS_INLINE K(lanes) K(load)(const float *from)
{
    K(lanes) v;
#define LOAD(p) memcpy(&v.part[p], from + p * VECTOR, sizeof v.part[p]);
    EACH_PART(LOAD)
#undef LOAD
    return v;
}

ALWAYS_INLINE void K(store)(float *to, K(lanes) v)
{
#define STORE(p) memcpy(to + p * VECTOR, &v.part[p], sizeof v.part[p]);
    EACH_PART(STORE)
#undef STORE
}

ALWAYS_INLINE K(lanes) K(add)(K(lanes) a, K(lanes) b)
{
#define ADD(p) a.part[p] += b.part[p];
    EACH_PART(ADD)
#undef ADD
    return a;
}

/* s * a */
ALWAYS_INLINE K(lanes) K(times)(float s, K(lanes) a)
{
#define TIMES(p) a.part[p] *= s;
    EACH_PART(TIMES)
#undef TIMES
    return a;
}

/* a + s * b */
ALWAYS_INLINE K(lanes) K(add_times)(K(lanes) a, float s, K(lanes) b)
{
#define ADD_TIMES(p) a.part[p] += s * b.part[p];
    EACH_PART(ADD_TIMES)
#undef ADD_TIMES
    return a;
}

/* z[0 .. LANES) = the logits of one row for one group of classes, W that group's (d + 1, LANES) weights: four
   chains of multiply-adds, so that each waits a quarter as long for the one before. */
ALWAYS_INLINE void K(group_logits)(const Epoch *e, const float *W, int64_t count, const int64_t *offsets,
                                const float *values, float *z)
{
    K(lanes) a = K(times)(e->bias, K(load)(W + e->d * LANES)), b = {{{0}}}, c = b, f = b;
    int64_t t = 0;
    for (; t + 3 < count; t += 4) {
        a = K(add_times)(a, values[t], K(load)(W + offsets[t]));
        b = K(add_times)(b, values[t + 1], K(load)(W + offsets[t + 1]));
        c = K(add_times)(c, values[t + 2], K(load)(W + offsets[t + 2]));
        f = K(add_times)(f, values[t + 3], K(load)(W + offsets[t + 3]));
    }
    for (; t < count; t++)
        a = K(add_times)(a, values[t], K(load)(W + offsets[t]));
    K(store)(z, K(add)(K(add)(a, b), K(add)(c, f)));
}

/* G[column] += v * z for each value of one row, G[d] += bias * z: one group's gradient. */
ALWAYS_INLINE void K(group_gradient)(const Epoch *e, float *G, int64_t count, const int64_t *offsets,
                                  const float *values, const float *z)
{
    K(lanes) y = K(load)(z);
    for (int64_t t = 0; t < count; t++) {
        float *g = G + offsets[t];
        K(store)(g, K(add_times)(K(load)(g), values[t], y));
    }
    float *g = G + e->d * LANES;
    K(store)(g, K(add_times)(K(load)(g), e->bias, y));
}

/* Piece p of step s: the rows of its half of the batch, each one's logits, loss, argmax and gradient (into that
   piece's own G); return their summed loss. */
ALWAYS_INLINE double K(piece)(const Epoch *e, int wide, int floats, int p, int64_t s)
{
    const int64_t group_size = (e->d + 1) * LANES;
    float *G = e->gradient + p * e->groups * group_size;
    int64_t *offsets = e->offsets + p * e->d;
    float *values = e->floats + p * e->d;
    float z[LANES * MAX_GROUPS];
    int64_t start = s * e->batch_size, stop = start + e->batch_size < e->n ? start + e->batch_size : e->n;
    int64_t half = start + (stop - start + 1) / 2, lo = p ? half : start, hi = p ? stop : half;
    double loss = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        if (i + AHEAD < hi)  /* the rows come in a random order: fetch a later one while this one is made */
            fetch_row(e, wide, floats, e->order[i + AHEAD]);
        int64_t row = e->order[i];
        int64_t count = decode(e, wide, floats, e->indptr[row], e->indptr[row + 1], offsets, values);
        for (int64_t g = 0; g < e->groups; g++)
            K(group_logits)(e, e->weights + g * group_size, count, offsets, values, z + g * LANES);
        loss += loss_gradient(e->loss, z, e->classes, e->labels[i], &e->predicted[i]);
        for (int64_t c = e->classes; c < e->groups * LANES; c++)
            z[c] = 0.0f;
        for (int64_t g = 0; g < e->groups; g++)
            K(group_gradient)(e, G + g * group_size, count, offsets, values, z + g * LANES);
    }
    return loss;
}

/* Step s's heavy-ball update of the weights' rows first to end - 1 (of groups * (d + 1), LANES each), from the
   gradient the pieces summed (in their order), which is left zero for the next step. */
ALWAYS_INLINE void K(update)(const Epoch *e, int64_t s, int64_t first, int64_t end)
{
    int64_t start = s * e->batch_size, m = (start + e->batch_size < e->n ? e->batch_size : e->n - start);
    const float lr = (float)e->lrs[s], scale = (float)(e->gradient_scale / (double)m);
    const float l2 = (float)e->l2, momentum = (float)e->momentum;
    const int averaged = s >= e->first_averaged;
    const int64_t size = e->groups * (e->d + 1) * LANES;
    const K(lanes) zero = {{{0}}};
    for (int64_t r = first; r < end; r++) {
        float *w = e->weights + r * LANES, *v = e->velocity + r * LANES;
        float *g0 = e->gradient + r * LANES, *g1 = g0 + size;
        float decay = r % (e->d + 1) == e->d ? 0.0f : l2;  /* the bias is not decayed */
        K(lanes) weights = K(load)(w), gradient = K(add)(K(load)(g0), K(load)(g1));
        K(lanes) step = K(add_times)(K(times)(scale, gradient), decay, weights);
        if (momentum != 0.0f) {
            step = K(add_times)(step, momentum, K(load)(v));
            K(store)(v, step);
        }
        weights = K(add_times)(weights, -lr, step);
        K(store)(w, weights);
        K(store)(g0, zero);
        K(store)(g1, zero);
        if (averaged) {
            double *sum = e->summed + r * LANES;
            for (int l = 0; l < LANES; l++)
                sum[l] += weights.part[l / VECTOR][l % VECTOR];
        }
    }
}

/* The steps of the epoch; return the summed loss. Each step's two pieces are made one after the other, each into
   its own gradient, summed in order at the update. */
ALWAYS_INLINE double K(run)(Epoch *e, int wide, int floats)
{
    const int64_t rows = e->groups * (e->d + 1);
    double loss = 0.0;
    for (int64_t s = 0; s < e->steps; s++) {
        double first = K(piece)(e, wide, floats, 0, s);
        double second = K(piece)(e, wide, floats, 1, s);
        loss += first + second;
        K(update)(e, s, 0, rows);
    }
    return loss;
}

/* The four forms of the data: the flags are constants, so each form is its own loop. */
static double K(forms)(Epoch *e)
{
    if (e->wide_columns)
        return e->float_values ? K(run)(e, 1, 1) : K(run)(e, 1, 0);
    return e->float_values ? K(run)(e, 0, 1) : K(run)(e, 0, 0);
}

#undef EACH_PART

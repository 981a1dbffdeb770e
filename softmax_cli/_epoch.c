/* The compiled epoch: every step of one epoch of softmax regression in one C call (softmax_cli/compiled.py wraps it).

   A training set is read as compressed rows (CSR: indptr, columns, values), so that only the pixels that are not
   zero cost anything (81 % of MNIST's are zero). The weights are laid out (groups of LANES classes, features + 1,
   LANES), the last row of each group the bias, so that one value's contribution to the logits, and to the
   gradient, is one multiply-add over LANES adjacent floats: four vectors of four. Classes past
   the last real one are padding: their weights and gradient stay zero.

   A step, for a batch of m rows in the epoch's order:
     for each row: z = its logits (bias * W[d] + sum over its values v * W[column]);
                   z becomes d loss / d z (softmax(z) - one_hot for the cross-entropy), its loss and argmax noted;
                   G[column] += v * z for each of its values, G[d] += bias * z;
     then, for every weight: step = G * scale + l2 * W (not at the bias) + momentum * velocity;
                             velocity = step; W -= lr * step; summed += W (float64) once averaging has begun.
   The same arithmetic as Trainer._numpy_epoch, in float32 with a float64 loss, in a fixed order: the same input
   gives the same bits. Each batch is cut in two pieces, each with its own gradient, summed in order at the
   update (the bits of the earlier kernel, whose two threads made a piece each). One thread makes the whole epoch:
   two threads meeting twice a step were 1.4-1.6 times slower than one beside a busy core (docs/kernel.md). Rows,
   labels and sizes are checked here; every other index (the columns of compressed rows) comes from compress.

   The one source is built as two modules: _epoch, for any processor (vectors of four floats: one SSE or NEON
   register each), and, on x86-64, _epoch_avx2, compiled with -mavx2 -mfma (setup.py; vectors of eight, one AVX2
   register each, and fused multiply-adds). compiled.py takes the second where the processor has AVX2 and FMA
   (processor_has_avx2, here), else the first. One module with a target attribute on an AVX2 copy of the loop
   could not have both widths: two by eight was ~14 times its floor on the generic path (its vectors, split by the
   compiler, kept in memory) and four by four 1.6-1.9 times it on AVX2, against 1.3 times for two modules
   (docs/kernel.md). AVX-512's wider registers measured no faster than two AVX2 ones here.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define LANES 16       /* classes a group holds */
#define MAX_GROUPS 64  /* groups of classes at most: a row's logits are scratch on the stack */
#define AHEAD 2        /* rows ahead of the one multiplied whose values are fetched into the cache */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum { CROSS_ENTROPY = 0, SQUARED_ERROR = 1 };

typedef struct {
    const int64_t *indptr;      /* (rows + 1,): row r's values are indptr[r] .. indptr[r + 1] - 1 */
    const void *columns;        /* uint16, or uint32 where wide_columns */
    const void *values;         /* uint8 pixels, or float32 features where float_values */
    const int64_t *order;       /* (n,): the rows of this epoch, in order */
    const int64_t *labels;      /* (n,): the label of each, in the same order */
    const float *row_weights;   /* (n,): the sample weight of each, in the same order; NULL: every row weighs 1 */
    int64_t *predicted;         /* (n,): each one's argmax, written */
    float *weights, *velocity;  /* (groups, d + 1, LANES) */
    double *summed;             /* the same shape: the weights of averaged steps added up */
    float *gradient;            /* (2, groups, d + 1, LANES): scratch, the gradient of each piece of a step */
    int64_t *offsets;           /* (d,): scratch, a row's values decoded: where their weights start in a group */
    float *floats;              /* (d,): and the values as float32 */
    const double *lrs;          /* (steps,): the learning rate of each step */
    int64_t n, steps, first_averaged, batch_size, d, groups, classes;
    double gradient_scale, l2, momentum;
    float bias;
    int loss, wide_columns, float_values;
} Epoch;

ALWAYS_INLINE int64_t column(const Epoch *e, int wide, int64_t t)
{
    return wide ? (int64_t)((const uint32_t *)e->columns)[t] : (int64_t)((const uint16_t *)e->columns)[t];
}

ALWAYS_INLINE float value(const Epoch *e, int floats, int64_t t)
{
    return floats ? ((const float *)e->values)[t] : (float)((const uint8_t *)e->values)[t];
}

ALWAYS_INLINE void fetch_row(const Epoch *e, int wide, int floats, int64_t row)
{
    int64_t lo = e->indptr[row], hi = e->indptr[row + 1];
    const char *columns = (const char *)e->columns, *values = (const char *)e->values;
    size_t column_size = wide ? 4 : 2, value_size = floats ? 4 : 1;
    for (int64_t at = lo * column_size; at < hi * (int64_t)column_size; at += 64)
        __builtin_prefetch(columns + at, 0, 3);
    for (int64_t at = lo * value_size; at < hi * (int64_t)value_size; at += 64)
        __builtin_prefetch(values + at, 0, 3);
}

/* Decode the values lo .. hi - 1 of a row into where their weights start in a group (offsets) and their float
   values, once for the logits and the gradient of every group; return how many. */
ALWAYS_INLINE int64_t decode(const Epoch *e, int wide, int floats, int64_t lo, int64_t hi, int64_t *offsets,
                             float *values)
{
    for (int64_t t = lo; t < hi; t++) {
        offsets[t - lo] = column(e, wide, t) * LANES;
        values[t - lo] = value(e, floats, t);
    }
    return hi - lo;
}

/* z (the row's logits, classes of them) becomes d loss / d z; return the row's loss, and its argmax in *best. */
ALWAYS_INLINE double loss_gradient(int loss, float *z, int64_t classes, int64_t label, int64_t *best)
{
    float largest = z[0];
    int64_t argmax = 0;
    for (int64_t c = 1; c < classes; c++)
        if (z[c] > largest) {
            largest = z[c];
            argmax = c;
        }
    *best = argmax;
    double total = 0.0;
    float true_logit = z[label] - largest;
    for (int64_t c = 0; c < classes; c++) {
        z[c] = expf(z[c] - largest);  /* the largest logit becomes 0: exp cannot overflow */
        total += z[c];
    }
    float inverse = (float)(1.0 / total);
    for (int64_t c = 0; c < classes; c++)
        z[c] *= inverse;
    if (loss == CROSS_ENTROPY) {
        z[label] -= 1.0f;
        return log(total) - true_logit;  /* total >= 1: never log(0) */
    }
    /* the squared error summed over the classes, and the softmax's Jacobian applied to 2 (p - y) */
    double error = 0.0, dot = 0.0;
    for (int64_t c = 0; c < classes; c++) {
        float residual = z[c] - (c == label);
        error += (double)residual * residual;
        dot += 2.0 * residual * z[c];
    }
    for (int64_t c = 0; c < classes; c++) {
        float residual = z[c] - (c == label);
        z[c] = z[c] * (2.0f * residual - (float)dot);
    }
    return error;
}

/* LANES = 16 float32 classes as LANES / VECTOR_FLOATS vectors, each one register of this build's instructions. */
#ifdef __AVX2__
#define VECTOR_FLOATS 8  /* the module built with -mavx2 -mfma: two AVX2 registers a group */
#define MODULE_NAME "_epoch_avx2"
#define INSTRUCTIONS "avx2"
#else
#define VECTOR_FLOATS 4  /* any processor: four SSE (or NEON) registers a group */
#define MODULE_NAME "_epoch"
#define INSTRUCTIONS "any"
#endif
#define VECTORS (LANES / VECTOR_FLOATS)

typedef float vector __attribute__((vector_size(VECTOR_FLOATS * sizeof(float))));
typedef struct {
    vector q[VECTORS];  /* classes 0 .. VECTOR_FLOATS - 1 of a group, then the next VECTOR_FLOATS, ... */
} Lanes;

ALWAYS_INLINE Lanes load(const float *from)
{
    Lanes v;
    for (int i = 0; i < VECTORS; i++)
        memcpy(&v.q[i], from + VECTOR_FLOATS * i, sizeof v.q[i]);
    return v;
}

ALWAYS_INLINE void store(float *to, Lanes v)
{
    for (int i = 0; i < VECTORS; i++)
        memcpy(to + VECTOR_FLOATS * i, &v.q[i], sizeof v.q[i]);
}

ALWAYS_INLINE Lanes add(Lanes a, Lanes b)
{
    for (int i = 0; i < VECTORS; i++)
        a.q[i] += b.q[i];
    return a;
}

ALWAYS_INLINE Lanes times(float s, Lanes a)
{
    for (int i = 0; i < VECTORS; i++)
        a.q[i] *= s;
    return a;
}

ALWAYS_INLINE Lanes add_times(Lanes a, float s, Lanes b)
{
    for (int i = 0; i < VECTORS; i++)
        a.q[i] += s * b.q[i];
    return a;
}

/* z[0 .. LANES) = bias * W[d] + sum over t of values[t] * W[offsets[t]]: the logits of one row for one group of
   classes, W that group's (d + 1, LANES) weights, offsets[t] = column * LANES. Four sums, each of every fourth
   value, added at the end, so that each multiply-add waits a quarter as long for the one before (a single chain
   was measured 1.6 times slower). */
ALWAYS_INLINE void group_logits(const Epoch *e, const float *W, int64_t count, const int64_t *offsets,
                                const float *values, float *z)
{
    const Lanes zero = {{{0}}};
    Lanes a = times(e->bias, load(W + e->d * LANES)), b = zero, c = zero, f = zero;
    int64_t t = 0;
    for (; t + 3 < count; t += 4) {
        a = add_times(a, values[t], load(W + offsets[t]));
        b = add_times(b, values[t + 1], load(W + offsets[t + 1]));
        c = add_times(c, values[t + 2], load(W + offsets[t + 2]));
        f = add_times(f, values[t + 3], load(W + offsets[t + 3]));
    }
    for (; t < count; t++)
        a = add_times(a, values[t], load(W + offsets[t]));
    store(z, add(add(a, b), add(c, f)));
}

/* G[offsets[t]] += values[t] * z for each value of one row, G[d] += bias * z: the row's share of one group's
   gradient, G that group's (d + 1, LANES), z its d loss / d logits. */
ALWAYS_INLINE void group_gradient(const Epoch *e, float *G, int64_t count, const int64_t *offsets,
                                  const float *values, const float *z)
{
    Lanes y = load(z);
    for (int64_t t = 0; t < count; t++)
        store(G + offsets[t], add_times(load(G + offsets[t]), values[t], y));
    float *g = G + e->d * LANES;
    store(g, add_times(load(g), e->bias, y));
}

/* Piece p (0 or 1) of step s: the rows of its half of the batch, each one's logits, loss, argmax and gradient,
   into that piece's own G (groups, d + 1, LANES); return their summed loss. */
ALWAYS_INLINE double piece(const Epoch *e, int wide, int floats, int p, int64_t s)
{
    const int64_t group_size = (e->d + 1) * LANES;
    float *G = e->gradient + p * e->groups * group_size;
    int64_t *offsets = e->offsets;
    float *values = e->floats;
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
            group_logits(e, e->weights + g * group_size, count, offsets, values, z + g * LANES);
        double row_loss = loss_gradient(e->loss, z, e->classes, e->labels[i], &e->predicted[i]);
        if (e->row_weights) {  /* a weighted row: its loss and its gradient times its weight (1: the same bits) */
            float w = e->row_weights[i];
            row_loss *= w;
            for (int64_t c = 0; c < e->classes; c++)
                z[c] *= w;
        }
        loss += row_loss;
        for (int64_t c = e->classes; c < e->groups * LANES; c++)
            z[c] = 0.0f;  /* padding classes: no gradient */
        for (int64_t g = 0; g < e->groups; g++)
            group_gradient(e, G + g * group_size, count, offsets, values, z + g * LANES);
    }
    return loss;
}

/* Step s's heavy-ball update of every weight (groups * (d + 1) rows of LANES), from G = the two pieces'
   gradients summed in order, which are left zero for the next step:
       step = G * gradient_scale / m + l2 * W (not at the bias) + momentum * velocity,
              m the batch's rows, or with sample weights their sum (G / m: the weighted mean; 0 where they sum to 0);
       velocity = step; W -= lr * step; summed += W (float64) once averaging has begun. */
ALWAYS_INLINE void update(const Epoch *e, int64_t s)
{
    int64_t start = s * e->batch_size, m = (start + e->batch_size < e->n ? e->batch_size : e->n - start);
    double weight = (double)m;
    if (e->row_weights) {
        weight = 0.0;
        for (int64_t i = start; i < start + m; i++)
            weight += e->row_weights[i];
    }
    const float lr = (float)e->lrs[s], scale = weight > 0.0 ? (float)(e->gradient_scale / weight) : 0.0f;
    const float l2 = (float)e->l2, momentum = (float)e->momentum;
    const int averaged = s >= e->first_averaged;
    const int64_t size = e->groups * (e->d + 1) * LANES;
    const Lanes zero = {{{0}}};
    for (int64_t r = 0; r < e->groups * (e->d + 1); r++) {
        float *w = e->weights + r * LANES, *v = e->velocity + r * LANES;
        float *g0 = e->gradient + r * LANES, *g1 = g0 + size;
        float decay = r % (e->d + 1) == e->d ? 0.0f : l2;  /* the bias is not decayed */
        Lanes weights = load(w), gradient = add(load(g0), load(g1));
        Lanes step = add_times(times(scale, gradient), decay, weights);
        if (momentum != 0.0f) {
            step = add_times(step, momentum, load(v));
            store(v, step);
        }
        weights = add_times(weights, -lr, step);
        store(w, weights);
        store(g0, zero);
        store(g1, zero);
        if (averaged) {
            float now[LANES];
            store(now, weights);
            for (int l = 0; l < LANES; l++)
                e->summed[r * LANES + l] += now[l];
        }
    }
}

/* The steps of the epoch, each two pieces then the update; return the summed loss. */
ALWAYS_INLINE double steps(Epoch *e, int wide, int floats)
{
    double loss = 0.0;
    for (int64_t s = 0; s < e->steps; s++) {
        double first = piece(e, wide, floats, 0, s);
        double second = piece(e, wide, floats, 1, s);
        loss += first + second;
        update(e, s);
    }
    return loss;
}

/* The four forms of the data: the flags are constants, so each form is its own loop. */
ALWAYS_INLINE double run(Epoch *e)
{
    if (e->wide_columns)
        return e->float_values ? steps(e, 1, 1) : steps(e, 1, 0);
    return e->float_values ? steps(e, 0, 1) : steps(e, 0, 0);
}

/* Whether this processor has AVX2 and FMA: whether compiled.py may load _epoch_avx2. */
static int has_avx2(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Python: the buffers of numpy arrays, checked for their size in bytes (compiled.py makes them contiguous and of
   the right type). */

static int sized(Py_buffer *buffer, Py_ssize_t count, Py_ssize_t item, const char *name)
{
    if (buffer->len != count * item) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, not %zd", name, buffer->len, count * item);
        return 0;
    }
    return 1;
}

static PyObject *epoch(PyObject *self, PyObject *args)
{
    Py_buffer b[12];
    Epoch e;
    memset(b, 0, sizeof(b));
    memset(&e, 0, sizeof(e));
    double bias;
    /* the buffers in compiled.epoch's order: indptr, columns, values, order, labels (read); predicted, weights,
       velocity, summed, gradient (written); lrs, row_weights (read; row_weights empty: every row weighs 1) */
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*w*w*w*y*y*LLLLLddddiii", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                          &b[6], &b[7], &b[8], &b[9], &b[10], &b[11], &e.first_averaged, &e.batch_size, &e.d,
                          &e.groups, &e.classes, &e.gradient_scale, &e.l2, &e.momentum, &bias, &e.loss,
                          &e.wide_columns, &e.float_values))
        return NULL;
    PyObject *result = NULL;
    e.n = b[3].len / 8;
    e.steps = b[10].len / 8;
    Py_ssize_t rows = b[0].len / 8 - 1, nonzero = b[0].len >= 8 ? ((const int64_t *)b[0].buf)[rows] : -1;
    Py_ssize_t size = e.groups * (e.d + 1) * LANES;
    if (rows < 0 || e.groups < 1 || e.groups > MAX_GROUPS || e.classes < 1 || e.classes > e.groups * LANES
        || e.d < 1 || e.d > ((int64_t)1 << (e.wide_columns ? 32 : 16)) || e.batch_size < 1
        || (e.n + e.batch_size - 1) / e.batch_size != e.steps) {
        PyErr_SetString(PyExc_ValueError, "the epoch's sizes do not fit together");
        goto done;
    }
    if (!(sized(&b[1], nonzero, e.wide_columns ? 4 : 2, "columns")
          && sized(&b[2], nonzero, e.float_values ? 4 : 1, "values") && sized(&b[4], e.n, 8, "labels")
          && sized(&b[5], e.n, 8, "predicted") && sized(&b[6], size, 4, "weights")
          && sized(&b[7], size, 4, "velocity") && sized(&b[8], size, 8, "summed")
          && sized(&b[9], 2 * size, 4, "gradient") && (b[11].len == 0 || sized(&b[11], e.n, 4, "row_weights"))))
        goto done;
    e.indptr = b[0].buf;
    e.columns = b[1].buf;
    e.values = b[2].buf;
    e.order = b[3].buf;
    e.labels = b[4].buf;
    e.predicted = b[5].buf;
    e.weights = b[6].buf;
    e.velocity = b[7].buf;
    e.summed = b[8].buf;
    e.gradient = b[9].buf;
    e.lrs = b[10].buf;
    e.row_weights = b[11].len ? b[11].buf : NULL;
    e.bias = (float)bias;
    for (int64_t i = 0; i < e.n; i++)
        if (e.order[i] < 0 || e.order[i] >= rows || e.labels[i] < 0 || e.labels[i] >= e.classes) {
            PyErr_SetString(PyExc_ValueError, "a row or a label of the epoch is out of range");
            goto done;
        }
    e.offsets = PyMem_RawMalloc(e.d * sizeof(int64_t));
    e.floats = PyMem_RawMalloc(e.d * sizeof(float));
    if (!e.offsets || !e.floats) {
        PyErr_NoMemory();
    } else {
        double loss;
        Py_BEGIN_ALLOW_THREADS
        memset(e.gradient, 0, 2 * size * sizeof(float));
        loss = run(&e);
        Py_END_ALLOW_THREADS
        result = PyFloat_FromDouble(loss);
    }
    PyMem_RawFree(e.offsets);
    PyMem_RawFree(e.floats);
done:
    for (int i = 0; i < 12; i++)
        if (b[i].obj)
            PyBuffer_Release(&b[i]);
    return result;
}

/* Where each of the rows of X (rows, features) starts among its values that are not zero, into starts (rows + 1);
   with fill, those values and their columns too. */
ALWAYS_INLINE void compress_rows(const void *X, int64_t rows, int64_t features, int floats, int wide, int fill,
                                 int64_t *starts, void *columns, void *values)
{
    const uint8_t *pixels = X;
    const float *numbers = X;
    int64_t t = 0;
    starts[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = 0;
        if (!fill) {  /* a count, which vectorises */
            int64_t count = 0;
            for (; j < features; j++)
                count += floats ? numbers[i * features + j] != 0.0f : pixels[i * features + j] != 0;
            t += count;
        }
#ifdef __SSE2__
        else if (!floats)  /* sixteen pixels at a time: a bit for each that is not zero, then the bits set */
            for (; j + 16 <= features; j += 16) {
                const uint8_t *at = pixels + i * features + j;
                __m128i chunk = _mm_loadu_si128((const __m128i *)at);
                unsigned mask = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_setzero_si128())) & 0xFFFFu;
                for (; mask; mask &= mask - 1, t++) {
                    int b = __builtin_ctz(mask);
                    if (wide)
                        ((uint32_t *)columns)[t] = (uint32_t)(j + b);
                    else
                        ((uint16_t *)columns)[t] = (uint16_t)(j + b);
                    ((uint8_t *)values)[t] = at[b];
                }
            }
#endif
        if (fill)
            for (; j < features; j++) {
                int64_t at = i * features + j;
                if (floats ? numbers[at] == 0.0f : pixels[at] == 0)
                    continue;
                if (wide)
                    ((uint32_t *)columns)[t] = (uint32_t)j;
                else
                    ((uint16_t *)columns)[t] = (uint16_t)j;
                if (floats)
                    ((float *)values)[t] = numbers[at];
                else
                    ((uint8_t *)values)[t] = pixels[at];
                t++;
            }
        starts[i + 1] = t;
    }
}

/* compress(X, rows, features, float_values, wide_columns, starts[, columns, values]): see compress_rows; X uint8,
   or float32 where float_values. */
static PyObject *compress(PyObject *self, PyObject *args)
{
    Py_buffer X = {0}, starts = {0}, columns = {0}, values = {0};
    Py_ssize_t rows, features;
    int floats, wide;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*nniiw*|w*w*", &X, &rows, &features, &floats, &wide, &starts, &columns, &values))
        return NULL;
    int fill = columns.obj != NULL;
    if (!(rows >= 0 && features >= 1 && sized(&X, rows * features, floats ? 4 : 1, "X")
          && sized(&starts, rows + 1, 8, "starts")))
        goto done;
    if (fill) {
        int64_t nonzero = ((int64_t *)starts.buf)[rows];
        if (!(sized(&columns, nonzero, wide ? 4 : 2, "columns") && sized(&values, nonzero, floats ? 4 : 1, "values")))
            goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (!fill)
        compress_rows(X.buf, rows, features, floats, wide, 0, starts.buf, NULL, NULL);
    else if (floats)
        if (wide)
            compress_rows(X.buf, rows, features, 1, 1, 1, starts.buf, columns.buf, values.buf);
        else
            compress_rows(X.buf, rows, features, 1, 0, 1, starts.buf, columns.buf, values.buf);
    else if (wide)
        compress_rows(X.buf, rows, features, 0, 1, 1, starts.buf, columns.buf, values.buf);
    else
        compress_rows(X.buf, rows, features, 0, 0, 1, starts.buf, columns.buf, values.buf);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&X);
    PyBuffer_Release(&starts);
    if (fill) {
        PyBuffer_Release(&columns);
        PyBuffer_Release(&values);
    }
    return result;
}

/* processor_has_avx2(): whether this processor has AVX2 and FMA, which _epoch_avx2's instructions need. */
static PyObject *processor_has_avx2(PyObject *self, PyObject *args)
{
    return PyBool_FromLong(has_avx2());
}

static PyMethodDef methods[] = {
    {"processor_has_avx2", processor_has_avx2, METH_NOARGS, "Whether this processor has AVX2 and FMA."},
    {"epoch", epoch, METH_VARARGS, "Make every step of one epoch; return the summed loss (see compiled.epoch)."},
    {"compress", compress, METH_VARARGS,
     "Compress rows: their starts, then their columns and values (see compiled.Rows)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, MODULE_NAME, "The compiled epoch (see compiled.py).", -1, methods, NULL, NULL, NULL, NULL,
};

#ifdef __AVX2__
PyMODINIT_FUNC PyInit__epoch_avx2(void)
#else
PyMODINIT_FUNC PyInit__epoch(void)
#endif
{
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "LANES", LANES) < 0 || PyModule_AddIntConstant(m, "MAX_GROUPS", MAX_GROUPS) < 0
              || PyModule_AddStringConstant(m, "INSTRUCTIONS", INSTRUCTIONS) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* The content scanner's hottest loops, compiled.

   The optional fast path of detectors/numbers.py and detectors/scanner.py, which hold the
   pure-Python reference: every function here returns exactly what its Python twin returns
   (tests/masking/test_scan_compiled.py runs both on the same texts and span lists and requires
   the same answers). No state but the Span type handed in once; the GIL is held throughout.

   number_runs(text, shapes=None) -> list[tuple[int, int]]
       The matches of numbers._RUN in `text` that survive the detector's first test (a short
       plain number that is no possible age, house number or part of a token is dropped): the
       candidates the Python classifier then judges. Most digit runs of a note are doses and
       vitals, dropped here without a Python object per run. With `shapes` (shapes.SHAPES),
       also the runs the classifier would find to be nothing at once (see unshaped_alone):
       the same spans in the end, which the differential test of the whole scanner checks.
   shape_of(shapes, text, a, b) -> str | None
       numbers.shape_of: the shape of text[a:b] (its digits made 9s) looked up in `shapes`.
   name_anchors(text, kinds) -> list[tuple[int, int, str, bool]]
       NameDetector.anchors_python: the listed names in `text` (`kinds` maps each, capitalised,
       to its kind), as the detector's trie pattern finds them and its first tests keep them.
       Only for lists of plain lower-case ASCII words (NameDetector checks), where the trie's
       match at a capital is the capital and every lower-case letter after it, or nothing.
   resolve(spans) -> list[Span]
       scanner.resolve: the non-overlapping spans kept from overlapping ones. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static PyObject *SpanType; /* base.Span, handed in by compiled.py */

#if PY_VERSION_HEX >= 0x030C0000
#define READY(s) 0 /* every str is ready from 3.12 on */
#else
#define READY(s) PyUnicode_READY(s)
#endif

/* \d of a str pattern of `re` is a Unicode decimal digit */
#define IS_DIGIT(c) Py_UNICODE_ISDECIMAL(c)

static int run_char(Py_UCS4 c) { /* [\d()./-] */
    return IS_DIGIT(c) || c == '(' || c == ')' || c == '.' || c == '/' || c == '-';
}

/* One part of _RUN from a digit at `i`: \d(?:[\d()./-]*[\d)])?, its end. */
static Py_ssize_t run_part(int kind, const void *data, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t q = i + 1;
    Py_ssize_t end = i + 1;
    while (q < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, q);
        if (!run_char(c)) break;
        q++;
        if (IS_DIGIT(c) || c == ')') end = q;
    }
    return end;
}

static int token_char(Py_UCS4 c) { /* numbers._TOKEN_CHARS */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* text[start:end].translate(shapes.DIGITS_TO_9), `widest` its widest character: a str of the
   narrowest kind that holds it, as Python makes them (equal strings of different kinds would
   not be found in a dict) */
static PyObject *shape_key(int kind, const void *data, Py_ssize_t start, Py_ssize_t end,
                           Py_UCS4 widest) {
    PyObject *shape = PyUnicode_New(end - start, widest);
    if (shape == NULL) return NULL;
    int skind = PyUnicode_KIND(shape);
    void *sdata = PyUnicode_DATA(shape);
    for (Py_ssize_t k = start; k < end; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k);
        PyUnicode_WRITE(skind, sdata, k - start, (c >= '0' && c <= '9') ? '9' : c);
    }
    return shape;
}

/* shape_of(shapes, text, a, b): numbers.shape_of, shapes.get of the shape of text[a:b] */
static PyObject *scan_shape_of(PyObject *self, PyObject *args) {
    PyObject *text, *shapes;
    Py_ssize_t a, b;
    if (!PyArg_ParseTuple(args, "O!Unn:shape_of", &PyDict_Type, &shapes, &text, &a, &b))
        return NULL;
    if (READY(text) < 0) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* the slice's bounds, as text[a:b] takes them (the callers pass 0 <= a < b <= n) */
    if (a < 0) a = a + n < 0 ? 0 : a + n;
    if (b < 0) b = b + n < 0 ? 0 : b + n;
    if (a > n) a = n;
    if (b > n) b = n;
    if (b < a) b = a;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_UCS4 widest = 0;
    for (Py_ssize_t k = a; k < b; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k);
        if (c > widest) widest = c;
    }
    PyObject *shape = shape_key(kind, data, a, b, widest);
    if (shape == NULL) return NULL;
    PyObject *found = PyDict_GetItemWithError(shapes, shape); /* borrowed */
    Py_DECREF(shape);
    if (found == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(found);
    return found;
}

/* Whether the run [start, end) is one the detector judges to be nothing without reading any
   label: a run alone (no letter, digit or dash before it, no letter or digit after it, no
   parenthesis or plus sign), in one piece (no space), with a dot or slash (so no plain number
   and no identifier), whose shape is none of `shapes` (7.9, 120/80, 98.6). NumberDetector.find
   reads it as: no token, no trimming, `_classify(single=True)`, no shape, then `_unshaped`,
   whose first test refuses a candidate that is not digits and dashes. -1 on an error. */
static int unshaped_alone(int kind, const void *data, Py_ssize_t n,
                          Py_ssize_t start, Py_ssize_t end, PyObject *shapes) {
    Py_UCS4 before = start ? PyUnicode_READ(kind, data, start - 1) : ' ';
    Py_UCS4 after = end < n ? PyUnicode_READ(kind, data, end) : ' ';
    if (token_char(before) || before == '(' || before == '+') return 0;
    if (token_char(after) && after != '-') return 0;
    int dot_or_slash = 0;
    Py_UCS4 widest = 0;
    for (Py_ssize_t k = start; k < end; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k);
        if (c == ' ' || c == '(' || c == ')') return 0;
        if (c == '.' || c == '/') dot_or_slash = 1;
        if (c > widest) widest = c;
    }
    if (!dot_or_slash) return 0;
    PyObject *shape = shape_key(kind, data, start, end, widest);
    if (shape == NULL) return -1;
    int known = PyDict_Contains(shapes, shape);
    Py_DECREF(shape);
    return known < 0 ? -1 : !known;
}

static PyObject *scan_number_runs(PyObject *self, PyObject *args) {
    PyObject *arg, *shapes = Py_None;
    if (!PyArg_ParseTuple(args, "U|O:number_runs", &arg, &shapes)) return NULL;
    if (shapes != Py_None && !PyDict_Check(shapes)) {
        PyErr_SetString(PyExc_TypeError, "number_runs(): shapes must be a dict or None");
        return NULL;
    }
    if (READY(arg) < 0) return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        if (!IS_DIGIT(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        Py_ssize_t end = run_part(kind, data, n, i);
        /* (?: \(?\d(?:[\d()./-]*[\d)])?)* */
        for (;;) {
            if (end + 1 >= n || PyUnicode_READ(kind, data, end) != ' ') break;
            Py_UCS4 c = PyUnicode_READ(kind, data, end + 1);
            if (IS_DIGIT(c)) {
                end = run_part(kind, data, n, end + 1);
            } else if (c == '(' && end + 2 < n && IS_DIGIT(PyUnicode_READ(kind, data, end + 2))) {
                end = run_part(kind, data, n, end + 2);
            } else {
                break;
            }
        }
        i = end;
        if (end - start <= 3) {
            int all_digits = 1;
            long value = 0;
            for (Py_ssize_t k = start; k < end; k++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, k);
                if (!IS_DIGIT(c)) {
                    all_digits = 0;
                    break;
                }
                value = value * 10 + Py_UNICODE_TODECIMAL(c);
            }
            if (all_digits) {
                int keep = 90 <= value && value <= 119;
                if (!keep && end + 1 < n && PyUnicode_READ(kind, data, end) == ' ' &&
                    Py_UNICODE_ISUPPER(PyUnicode_READ(kind, data, end + 1)))
                    keep = 1;
                if (!keep && start > 0 && Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, start - 1)))
                    keep = 1;
                if (!keep && end < n && Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, end)))
                    keep = 1;
                if (!keep) continue;
            }
        }
        if (shapes != Py_None) {
            int drop = unshaped_alone(kind, data, n, start, end, shapes);
            if (drop < 0) {
                Py_DECREF(out);
                return NULL;
            }
            if (drop) continue;
        }
        PyObject *pair = Py_BuildValue("(nn)", start, end);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return out;
}

/* ---- names ---- */

/* \w of a str pattern of `re` */
#define IS_WORD(c) (Py_UNICODE_ISALNUM(c) || (c) == '_')

static PyObject *scan_name_anchors(PyObject *self, PyObject *args) {
    PyObject *text, *kinds;
    if (!PyArg_ParseTuple(args, "UO!:name_anchors", &text, &PyDict_Type, &kinds)) return NULL;
    if (READY(text) < 0) return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 'A' || c > 'Z') {
            i++;
            continue;
        }
        Py_ssize_t start = i, end = i + 1;
        while (end < n) {
            Py_UCS4 d = PyUnicode_READ(kind, data, end);
            if (d < 'a' || d > 'z') break;
            end++;
        }
        /* the trie pattern ends in \b: no word character after the name */
        if (end < n && IS_WORD(PyUnicode_READ(kind, data, end))) {
            i = start + 1;
            continue;
        }
        PyObject *word = PyUnicode_Substring(text, start, end);
        if (word == NULL) goto fail;
        PyObject *found = PyDict_GetItemWithError(kinds, word); /* borrowed */
        Py_DECREF(word);
        if (found == NULL) {
            if (PyErr_Occurred()) goto fail;
            i = start + 1;
            continue;
        }
        i = end; /* a match: the search goes on after it */
        if (start > 0) {
            Py_UCS4 b = PyUnicode_READ(kind, data, start - 1);
            if (Py_UNICODE_ISALNUM(b) || b == '\'' || b == 0x2019) continue;
        }
        if (end + 1 < n) {
            Py_UCS4 a = PyUnicode_READ(kind, data, end);
            if ((a == '\'' || a == 0x2019 || a == '-') &&
                Py_UNICODE_ISUPPER(PyUnicode_READ(kind, data, end + 1)))
                continue; /* part of O'Brien or Smith-Jones */
        }
        PyObject *anchor = Py_BuildValue("(nnOO)", start, end, found, Py_False);
        if (anchor == NULL || PyList_Append(out, anchor) < 0) {
            Py_XDECREF(anchor);
            goto fail;
        }
        Py_DECREF(anchor);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ---- resolve ---- */

typedef struct {
    PyObject *span; /* borrowed from the list handed in */
    Py_ssize_t start, end, index;
    double score;
} Item;

static int by_start(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* (start, -end, -score), stable: `index` is the position in `ordered` */
static int outer_first(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end > y->end ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* (-score, start - end, start), stable */
static int ranked(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    Py_ssize_t lx = x->start - x->end, ly = y->start - y->end;
    if (lx != ly) return lx < ly ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int read_item(PyObject *span, Item *item) {
    if (!PyTuple_Check(span) || PyTuple_GET_SIZE(span) < 5) {
        PyErr_SetString(PyExc_TypeError, "resolve() needs Span tuples");
        return -1;
    }
    item->span = span;
    item->start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
    if (item->start == -1 && PyErr_Occurred()) return -1;
    item->end = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 2));
    if (item->end == -1 && PyErr_Occurred()) return -1;
    item->score = PyFloat_AsDouble(PyTuple_GET_ITEM(span, 3));
    if (item->score == -1.0 && PyErr_Occurred()) return -1;
    return 0;
}

static PyObject *list_of(Item *items, Py_ssize_t n) {
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(items[i].span);
        PyList_SET_ITEM(out, i, items[i].span);
    }
    return out;
}

typedef struct {
    Py_ssize_t start, end;
    PyObject *span; /* owned */
} Kept;

static Py_ssize_t bisect_left(Kept *kept, Py_ssize_t n, Py_ssize_t start) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (kept[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static PyObject *full_resolution(Item *items, Py_ssize_t n) {
    /* items are `ordered`; index = position in it */
    qsort(items, (size_t)n, sizeof(Item), ranked);
    /* every span adds at most (kept + 1) pieces: 2n + 1 bounds the total */
    Py_ssize_t cap = 2 * n + 2;
    Kept *kept = PyMem_Calloc((size_t)cap, sizeof(Kept));
    Py_ssize_t (*pieces)[2] = PyMem_Malloc((size_t)cap * sizeof(*pieces));
    PyObject *out = NULL;
    Py_ssize_t count = 0;
    if (kept == NULL || pieces == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t s = 0; s < n; s++) {
        Item *span = &items[s];
        Py_ssize_t at = bisect_left(kept, count, span->start);
        if (at && kept[at - 1].end > span->start) at--;
        Py_ssize_t npieces = 0;
        Py_ssize_t position = span->start;
        while (at < count && kept[at].start < span->end) {
            if (kept[at].start > position) {
                pieces[npieces][0] = position;
                pieces[npieces][1] = kept[at].start;
                npieces++;
            }
            if (kept[at].end > position) position = kept[at].end;
            at++;
        }
        if (position < span->end) {
            pieces[npieces][0] = position;
            pieces[npieces][1] = span->end;
            npieces++;
        }
        int whole = npieces == 1 && pieces[0][0] == span->start && pieces[0][1] == span->end;
        for (Py_ssize_t p = 0; p < npieces; p++) {
            Py_ssize_t a = pieces[p][0], b = pieces[p][1];
            PyObject *piece;
            if (whole) {
                piece = span->span;
                Py_INCREF(piece);
            } else {
                if (b - a < 2) continue;
                piece = PyObject_CallFunction(SpanType, "OnnOO", PyTuple_GET_ITEM(span->span, 0),
                                              a, b, PyTuple_GET_ITEM(span->span, 3),
                                              PyTuple_GET_ITEM(span->span, 4));
                if (piece == NULL) goto done;
            }
            if (count >= cap) { /* cannot happen (see cap); fail rather than overrun */
                Py_DECREF(piece);
                PyErr_SetString(PyExc_RuntimeError, "resolve(): too many pieces");
                goto done;
            }
            Py_ssize_t where = bisect_left(kept, count, a);
            memmove(&kept[where + 1], &kept[where], (size_t)(count - where) * sizeof(Kept));
            kept[where].start = a;
            kept[where].end = b;
            kept[where].span = piece;
            count++;
        }
    }
    out = PyList_New(count);
    if (out == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyList_SET_ITEM(out, i, kept[i].span);
        kept[i].span = NULL;
    }
done:
    if (kept != NULL)
        for (Py_ssize_t i = 0; i < count; i++) Py_XDECREF(kept[i].span);
    PyMem_Free(kept);
    PyMem_Free(pieces);
    return out;
}

static PyObject *scan_resolve(PyObject *self, PyObject *arg) {
    if (SpanType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "resolve(): set_span_type() was not called");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "resolve() needs a sequence of spans");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = NULL;
    Item *items = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Item));
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_item(PySequence_Fast_GET_ITEM(seq, i), &items[i]) < 0) goto done;
        items[i].index = i;
    }
    qsort(items, (size_t)n, sizeof(Item), by_start);
    Py_ssize_t i;
    for (i = 1; i < n; i++)
        if (items[i - 1].end > items[i].start) break;
    if (i >= n) {
        out = list_of(items, n);
        goto done;
    }
    for (i = 0; i < n; i++) items[i].index = i; /* `ordered` */
    Item *nested = PyMem_Malloc((size_t)n * sizeof(Item));
    if (nested == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(nested, items, (size_t)n * sizeof(Item));
    qsort(nested, (size_t)n, sizeof(Item), outer_first);
    Py_ssize_t kept = 1; /* nested[0 .. kept) are kept */
    int broke = 0;
    for (i = 1; i < n; i++) {
        Item *last = &nested[kept - 1];
        if (nested[i].start < last->end) {
            if (nested[i].end <= last->end && nested[i].score <= last->score) continue;
            broke = 1;
            break;
        }
        nested[kept++] = nested[i];
    }
    if (!broke) {
        out = list_of(nested, kept);
        PyMem_Free(nested);
        goto done;
    }
    PyMem_Free(nested);
    out = full_resolution(items, n);
done:
    PyMem_Free(items);
    Py_DECREF(seq);
    return out;
}

static PyObject *scan_set_span_type(PyObject *self, PyObject *arg) {
    Py_XINCREF(arg);
    Py_XSETREF(SpanType, arg);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"number_runs", scan_number_runs, METH_VARARGS, "The digit runs the number detector judges."},
    {"shape_of", scan_shape_of, METH_VARARGS, "The shape of a candidate, looked up."},
    {"name_anchors", scan_name_anchors, METH_VARARGS, "The listed names the name detector judges."},
    {"resolve", scan_resolve, METH_O, "Non-overlapping spans kept from overlapping ones."},
    {"set_span_type", scan_set_span_type, METH_O, "The Span type resolve() builds pieces of."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The content scanner's hottest loops, compiled.", -1, methods,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }

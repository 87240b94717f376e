/* DataRow bodies split into values and values joined into a DataRow message, compiled.

   The optional fast path of protocols/postgres/rows.py, which holds the pure-Python reference:
   every function here must return exactly what its Python twin returns, byte for byte, and
   refuse exactly what it refuses (tests/protocols/postgres/test_rows_compiled.py runs both on
   the same inputs). No state, no I/O; the GIL is held throughout. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *Malformed; /* rows.MalformedRow, handed in by rows.py */

static int32_t read_i32(const unsigned char *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static void write_i32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)(u >> 24);
    p[1] = (unsigned char)(u >> 16);
    p[2] = (unsigned char)(u >> 8);
    p[3] = (unsigned char)u;
}

static PyObject *malformed(const char *why) {
    PyErr_SetString(Malformed ? Malformed : PyExc_ValueError, why);
    return NULL;
}

/* split(body: bytes) -> list[bytes | None] */
static PyObject *rows_split(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len;
    PyObject *out = NULL;
    if (size < 2) {
        malformed("a DataRow shorter than its column count");
        goto done;
    }
    int count = (int16_t)(((uint16_t)data[0] << 8) | data[1]);
    if (count < 0) {
        malformed("a DataRow with a negative column count");
        goto done;
    }
    out = PyList_New(count);
    if (out == NULL) goto done;
    Py_ssize_t pos = 2;
    for (int i = 0; i < count; i++) {
        if (size - pos < 4) {
            Py_CLEAR(out);
            malformed("a DataRow cut short in a value's length");
            goto done;
        }
        int32_t len = read_i32(data + pos);
        pos += 4;
        PyObject *value;
        if (len < 0) {
            if (len != -1) {
                Py_CLEAR(out);
                malformed("a DataRow value of negative length");
                goto done;
            }
            value = Py_None;
            Py_INCREF(value);
        } else {
            if (size - pos < len) {
                Py_CLEAR(out);
                malformed("a DataRow cut short in a value");
                goto done;
            }
            value = PyBytes_FromStringAndSize((const char *)data + pos, len);
            if (value == NULL) {
                Py_CLEAR(out);
                goto done;
            }
            pos += len;
        }
        PyList_SET_ITEM(out, i, value);
    }
    if (pos != size) {
        Py_CLEAR(out);
        malformed("a DataRow with bytes after its last value");
    }
done:
    PyBuffer_Release(&view);
    return out;
}

/* join(values: list[bytes | None]) -> bytes: the whole DataRow message, type byte first */
static PyObject *rows_join(PyObject *self, PyObject *arg) {
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "join takes a list");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(arg);
    if (count > 32767) return malformed("a DataRow holds at most 32767 values");
    Py_ssize_t total = 1 + 4 + 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyList_GET_ITEM(arg, i);
        if (v == Py_None) {
            total += 4;
        } else if (PyBytes_Check(v)) {
            Py_ssize_t len = PyBytes_GET_SIZE(v);
            if (len > INT32_MAX - 4) return malformed("a DataRow value too large");
            total += 4 + len;
        } else {
            PyErr_SetString(PyExc_TypeError, "a DataRow value is bytes or None");
            return NULL;
        }
    }
    if (total - 1 > INT32_MAX) return malformed("a DataRow too large");
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    p[0] = 'D';
    write_i32(p + 1, (int32_t)(total - 1));
    p[5] = (unsigned char)((uint16_t)count >> 8);
    p[6] = (unsigned char)((uint16_t)count & 0xff);
    p += 7;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyList_GET_ITEM(arg, i);
        if (v == Py_None) {
            write_i32(p, -1);
            p += 4;
        } else {
            Py_ssize_t len = PyBytes_GET_SIZE(v);
            write_i32(p, (int32_t)len);
            memcpy(p + 4, PyBytes_AS_STRING(v), (size_t)len);
            p += 4 + len;
        }
    }
    return out;
}

/* ---- runs of DataRow messages (a read's worth of rows, handled in one call) ---------------- */

/* The values of one DataRow body checked: 0 and its column count, or -1 with the error set.
   The same checks, in the same order, as rows_split. */
static int check_body(const unsigned char *data, Py_ssize_t size, int *columns) {
    if (size < 2) {
        malformed("a DataRow shorter than its column count");
        return -1;
    }
    int count = (int16_t)(((uint16_t)data[0] << 8) | data[1]);
    if (count < 0) {
        malformed("a DataRow with a negative column count");
        return -1;
    }
    Py_ssize_t pos = 2;
    for (int i = 0; i < count; i++) {
        if (size - pos < 4) {
            malformed("a DataRow cut short in a value's length");
            return -1;
        }
        int32_t len = read_i32(data + pos);
        pos += 4;
        if (len < 0) {
            if (len != -1) {
                malformed("a DataRow value of negative length");
                return -1;
            }
        } else {
            if (size - pos < len) {
                malformed("a DataRow cut short in a value");
                return -1;
            }
            pos += len;
        }
    }
    if (pos != size) {
        malformed("a DataRow with bytes after its last value");
        return -1;
    }
    *columns = count;
    return 0;
}

/* scan(data, start, end) -> (stop, count): the whole DataRow messages from start on, each body
   checked; stops at the first other message, incomplete one or length below 4. */
static PyObject *rows_scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &start, &end)) return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    if (end > view.len) end = view.len;
    Py_ssize_t pos = start < 0 ? 0 : start, count = 0;
    int columns;
    while (end - pos >= 5 && data[pos] == 'D') {
        int32_t length = read_i32(data + pos + 1);
        if (length < 4 || end - pos - 1 < length) break;
        if (check_body(data + pos + 5, length - 4, &columns) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        pos += 1 + length;
        count++;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", pos, count);
}

/* The next DataRow message of a run at *pos: its body and size, or -1 with the error set. */
static int next_body(const unsigned char *data, Py_ssize_t size, Py_ssize_t *pos,
                     const unsigned char **body, Py_ssize_t *body_size, int *columns) {
    if (size - *pos < 5 || data[*pos] != 'D') {
        malformed("not a run of DataRow messages");
        return -1;
    }
    int32_t length = read_i32(data + *pos + 1);
    if (length < 4 || size - *pos - 1 < length) {
        malformed("a DataRow message cut short");
        return -1;
    }
    *body = data + *pos + 5;
    *body_size = length - 4;
    *pos += 1 + length;
    return check_body(*body, *body_size, columns);
}

/* columns(data, indices) -> [[value, ...] per index]: those columns of every row of a run (None
   for NULL, and for a row that has no such column). */
static PyObject *rows_columns(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *indices;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &PyTuple_Type, &indices)) return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len, want = PyTuple_GET_SIZE(indices);
    PyObject *out = PyList_New(want);
    long *index = PyMem_New(long, want > 0 ? want : 1);
    if (out == NULL || index == NULL) goto fail;
    for (Py_ssize_t k = 0; k < want; k++) {
        index[k] = PyLong_AsLong(PyTuple_GET_ITEM(indices, k));
        if (index[k] == -1 && PyErr_Occurred()) goto fail;
        PyObject *column = PyList_New(0);
        if (column == NULL) goto fail;
        PyList_SET_ITEM(out, k, column);
    }
    Py_ssize_t pos = 0;
    while (pos < size) {
        const unsigned char *body;
        Py_ssize_t body_size;
        int count;
        if (next_body(data, size, &pos, &body, &body_size, &count) < 0) goto fail;
        for (Py_ssize_t k = 0; k < want; k++) {
            PyObject *value = Py_None;
            Py_INCREF(value);
            if (index[k] >= 0 && index[k] < count) {
                Py_ssize_t p = 2;
                for (long i = 0;; i++) {
                    int32_t len = read_i32(body + p);
                    p += 4;
                    if (i == index[k]) {
                        if (len >= 0) {
                            Py_DECREF(value);
                            value = PyBytes_FromStringAndSize((const char *)body + p, len);
                            if (value == NULL) goto fail;
                        }
                        break;
                    }
                    if (len > 0) p += len;
                }
            }
            int failed = PyList_Append(PyList_GET_ITEM(out, k), value);
            Py_DECREF(value);
            if (failed < 0) goto fail;
        }
    }
    PyMem_Free(index);
    PyBuffer_Release(&view);
    return out;
fail:
    PyMem_Free(index);
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

/* replace(data, indices, columns) -> bytes: the run with those columns' values replaced, row
   by row (a row that has no such column keeps its values). */
static PyObject *rows_replace(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *indices, *columns;
    if (!PyArg_ParseTuple(args, "y*O!O!", &view, &PyTuple_Type, &indices, &PyTuple_Type,
                          &columns))
        return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len, want = PyTuple_GET_SIZE(indices);
    PyObject *out = NULL;
    long *index = PyMem_New(long, want > 0 ? want : 1);
    if (index == NULL) goto fail;
    if (PyTuple_GET_SIZE(columns) != want) {
        PyErr_SetString(PyExc_ValueError, "one list of values per column index");
        goto fail;
    }
    for (Py_ssize_t k = 0; k < want; k++) {
        index[k] = PyLong_AsLong(PyTuple_GET_ITEM(indices, k));
        if (index[k] == -1 && PyErr_Occurred()) goto fail;
        for (Py_ssize_t j = 0; j < k; j++)
            if (index[j] == index[k]) {
                PyErr_SetString(PyExc_ValueError, "a column index given twice");
                goto fail;
            }
        if (!PyList_Check(PyTuple_GET_ITEM(columns, k))) {
            PyErr_SetString(PyExc_TypeError, "the values of a column are a list");
            goto fail;
        }
    }
    /* Pass 1: the size of the result, and every replacement checked. */
    Py_ssize_t total = 0, pos = 0, row = 0;
    while (pos < size) {
        const unsigned char *body;
        Py_ssize_t body_size;
        int count;
        if (next_body(data, size, &pos, &body, &body_size, &count) < 0) goto fail;
        Py_ssize_t row_size = body_size;
        for (Py_ssize_t k = 0; k < want; k++) {
            PyObject *column = PyTuple_GET_ITEM(columns, k);
            if (row >= PyList_GET_SIZE(column)) {
                PyErr_SetString(PyExc_ValueError, "a column has fewer values than the rows");
                goto fail;
            }
            if (index[k] < 0 || index[k] >= count) continue;
            PyObject *v = PyList_GET_ITEM(column, row);
            if (v != Py_None && !PyBytes_Check(v)) {
                PyErr_SetString(PyExc_TypeError, "a DataRow value is bytes or None");
                goto fail;
            }
            Py_ssize_t p = 2;
            for (long i = 0; i < index[k]; i++) {
                int32_t len = read_i32(body + p);
                p += 4 + (len > 0 ? len : 0);
            }
            int32_t old = read_i32(body + p);
            row_size -= old > 0 ? old : 0;
            if (v != Py_None) {
                Py_ssize_t len = PyBytes_GET_SIZE(v);
                if (len > INT32_MAX - 4) {
                    malformed("a DataRow value too large");
                    goto fail;
                }
                row_size += len;
            }
        }
        if (row_size + 4 > INT32_MAX) {
            malformed("a DataRow too large");
            goto fail;
        }
        total += 5 + row_size;
        row++;
    }
    for (Py_ssize_t k = 0; k < want; k++)
        if (PyList_GET_SIZE(PyTuple_GET_ITEM(columns, k)) != row) {
            PyErr_SetString(PyExc_ValueError, "a column has more values than the rows");
            goto fail;
        }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) goto fail;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    /* Pass 2: write. */
    pos = 0;
    row = 0;
    while (pos < size) {
        const unsigned char *body;
        Py_ssize_t body_size;
        int count;
        if (next_body(data, size, &pos, &body, &body_size, &count) < 0) goto fail;
        unsigned char *head = w;
        w += 5;
        w[0] = body[0];
        w[1] = body[1];
        w += 2;
        Py_ssize_t p = 2;
        for (long i = 0; i < count; i++) {
            int32_t len = read_i32(body + p);
            p += 4;
            PyObject *v = NULL;
            for (Py_ssize_t k = 0; k < want; k++)
                if (index[k] == i) {
                    v = PyList_GET_ITEM(PyTuple_GET_ITEM(columns, k), row);
                    break;
                }
            if (v == NULL) {
                memcpy(w, body + p - 4, 4 + (size_t)(len > 0 ? len : 0));
                w += 4 + (len > 0 ? len : 0);
            } else if (v == Py_None) {
                write_i32(w, -1);
                w += 4;
            } else {
                Py_ssize_t n = PyBytes_GET_SIZE(v);
                write_i32(w, (int32_t)n);
                memcpy(w + 4, PyBytes_AS_STRING(v), (size_t)n);
                w += 4 + n;
            }
            if (len > 0) p += len;
        }
        head[0] = 'D';
        write_i32(head + 1, (int32_t)(w - head - 1));
        row++;
    }
    PyMem_Free(index);
    PyBuffer_Release(&view);
    return out;
fail:
    PyMem_Free(index);
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

/* bodies(data) -> [bytes]: each DataRow body of a run (the values without the message header). */
static PyObject *rows_bodies(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len, pos = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL) goto fail;
    while (pos < size) {
        const unsigned char *body;
        Py_ssize_t body_size;
        int count;
        if (next_body(data, size, &pos, &body, &body_size, &count) < 0) goto fail;
        PyObject *b = PyBytes_FromStringAndSize((const char *)body, body_size);
        if (b == NULL) goto fail;
        int failed = PyList_Append(out, b);
        Py_DECREF(b);
        if (failed < 0) goto fail;
    }
    PyBuffer_Release(&view);
    return out;
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *rows_set_error(PyObject *self, PyObject *arg) {
    Py_XINCREF(arg);
    Py_XSETREF(Malformed, arg);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"split", rows_split, METH_O, "A DataRow body's values (None for NULL)."},
    {"join", rows_join, METH_O, "A DataRow message of these values."},
    {"scan", rows_scan, METH_VARARGS, "The run of whole DataRow messages from start: (stop, count)."},
    {"columns", rows_columns, METH_VARARGS, "These columns' values in every row of a run."},
    {"replace", rows_replace, METH_VARARGS, "A run with these columns' values replaced."},
    {"bodies", rows_bodies, METH_O, "The DataRow bodies of a run."},
    {"set_error", rows_set_error, METH_O, "The exception a malformed row raises."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rows", "DataRow split and join, compiled.", -1, methods,
};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }

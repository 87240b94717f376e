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

static PyObject *rows_set_error(PyObject *self, PyObject *arg) {
    Py_XINCREF(arg);
    Py_XSETREF(Malformed, arg);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"split", rows_split, METH_O, "A DataRow body's values (None for NULL)."},
    {"join", rows_join, METH_O, "A DataRow message of these values."},
    {"set_error", rows_set_error, METH_O, "The exception a malformed row raises."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rows", "DataRow split and join, compiled.", -1, methods,
};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }

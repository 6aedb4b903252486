/* Callgrind client requests for Allele's `instructions` instrument.
 *
 * Built from valgrind's own header (Debian package `valgrind`: /usr/include/valgrind/callgrind.h)
 * when setup.py finds it. Each request is a few no-op instructions when the process does not run
 * under valgrind, so importing and calling this module outside valgrind is harmless.
 *
 * `collect(label, fn, *args)` is the one call the instrument makes: it switches callgrind's
 * instrumentation on, zeroes the counters, calls `fn(*args)`, dumps the counters tagged with
 * `label` and switches instrumentation off, all in C, so that the only interpreter work counted
 * besides the call itself is the constant cost of PyObject_Call's dispatch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <valgrind/callgrind.h>

static PyObject *
running_on_valgrind(PyObject *self, PyObject *noargs)
{
    return PyLong_FromLong((long)RUNNING_ON_VALGRIND);
}

static PyObject *
zero_stats(PyObject *self, PyObject *noargs)
{
    CALLGRIND_ZERO_STATS;
    Py_RETURN_NONE;
}

static PyObject *
start_instrumentation(PyObject *self, PyObject *noargs)
{
    CALLGRIND_START_INSTRUMENTATION;
    Py_RETURN_NONE;
}

static PyObject *
stop_instrumentation(PyObject *self, PyObject *noargs)
{
    CALLGRIND_STOP_INSTRUMENTATION;
    Py_RETURN_NONE;
}

static PyObject *
dump_stats_at(PyObject *self, PyObject *arg)
{
    const char *label = PyUnicode_AsUTF8(arg);
    if (label == NULL) {
        return NULL;
    }
    CALLGRIND_DUMP_STATS_AT(label);
    Py_RETURN_NONE;
}

static PyObject *
collect(PyObject *self, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "collect(label, fn, *args) needs a label and a callable");
        return NULL;
    }
    const char *label = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 0));
    if (label == NULL) {
        return NULL;
    }
    PyObject *fn = PyTuple_GET_ITEM(args, 1);
    PyObject *rest = PyTuple_GetSlice(args, 2, n);
    if (rest == NULL) {
        return NULL;
    }
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
    PyObject *result = PyObject_Call(fn, rest, NULL);
    CALLGRIND_DUMP_STATS_AT(label);
    CALLGRIND_STOP_INSTRUMENTATION;
    Py_DECREF(rest);
    return result;
}

static PyMethodDef methods[] = {
    {"running_on_valgrind", running_on_valgrind, METH_NOARGS,
     "The nesting depth of valgrind this process runs under (0: not under valgrind)."},
    {"zero_stats", zero_stats, METH_NOARGS, "CALLGRIND_ZERO_STATS"},
    {"start_instrumentation", start_instrumentation, METH_NOARGS,
     "CALLGRIND_START_INSTRUMENTATION"},
    {"stop_instrumentation", stop_instrumentation, METH_NOARGS, "CALLGRIND_STOP_INSTRUMENTATION"},
    {"dump_stats_at", dump_stats_at, METH_O, "CALLGRIND_DUMP_STATS_AT(label)"},
    {"collect", collect, METH_VARARGS,
     "collect(label, fn, *args): fn(*args) with callgrind collecting around it only; the "
     "counters are dumped tagged with label."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_callgrind",
    "Callgrind client requests (allele.bench.instruments).", -1, methods,
};

PyMODINIT_FUNC
PyInit__callgrind(void)
{
    return PyModule_Create(&module);
}

/*
 * The load generator's frame scanner, compiled: what a bot does with every
 * read of a tick's update, without the interpreter.
 * mmo/loadgen/fastpath.py holds the same rules in Python (scan_py), and the
 * tests run both on the same bytes.
 *
 * scan(buffer, pos, end, max_frame, visible)
 *     -> (pos, frames, updates, visible, last_type, tick_time)
 *
 * Scans whole frames of buffer[pos:end] while they are the frames of an
 * update (Moves, Enter, Leave, Resync, and one Tick), counting them as
 * mmo.loadgen.fastpath.scan_py does, and stops before the first frame it
 * leaves to Python: any other type, a second Tick, a frame cut by ``end``,
 * or a header Python must refuse.  ``tick_time`` is the server time of the
 * Tick it took, else None.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define T_TICK 0x83
#define T_ENTER 0x84
#define T_LEAVE 0x85
#define T_MOVES 0x86
#define T_RESYNC 0x8D

/* The header: a 4-byte big-endian length (of the type byte and the body),
   then the type byte. */
#define LENGTH_SIZE 4
#define HEADER_SIZE 5
/* The least length field of each type scanned here (see bot.py's
   _LEAST_LENGTH): the type byte and what is read of the body. */
#define LEAST_TICK (1 + 12)
#define LEAST_COUNTED (1 + 2)
#define LEAST_EMPTY 1

static inline uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline double be_double(const unsigned char *p)
{
    uint64_t bits = 0;
    double d;
    for (int i = 0; i < 8; i++)
        bits = (bits << 8) | p[i];
    memcpy(&d, &bits, sizeof d);
    return d;
}

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, end, max_frame, visible;
    Py_ssize_t frames = 0, updates = 0;
    long last = -1;
    int have_tick = 0;
    double tick_time = 0.0;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "scan(buffer, pos, end, max_frame, visible) takes 5 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    end = PyLong_AsSsize_t(args[2]);
    max_frame = PyLong_AsSsize_t(args[3]);
    visible = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (pos < 0 || end < pos || end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "scan: pos and end must lie within the buffer");
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    while (end - pos >= HEADER_SIZE) {
        Py_ssize_t length = (Py_ssize_t)be32(buf + pos);
        int type = buf[pos + LENGTH_SIZE];
        Py_ssize_t least;
        switch (type) {
        case T_TICK:
            if (have_tick)
                goto done;
            least = LEAST_TICK;
            break;
        case T_MOVES:
        case T_ENTER:
        case T_LEAVE:
            least = LEAST_COUNTED;
            break;
        case T_RESYNC:
            least = LEAST_EMPTY;
            break;
        default:
            goto done;
        }
        if (length < least || length > max_frame)
            goto done;
        Py_ssize_t stop = pos + LENGTH_SIZE + length;
        if (stop > end)
            goto done;
        const unsigned char *body = buf + pos + HEADER_SIZE;
        Py_ssize_t n;
        switch (type) {
        case T_MOVES:
            updates += be16(body);
            break;
        case T_TICK:
            have_tick = 1;
            tick_time = be_double(body + 4);
            break;
        case T_ENTER:
            n = be16(body);
            visible += n;
            updates += n;
            break;
        case T_LEAVE:
            n = be16(body);
            visible = visible > n ? visible - n : 0;
            updates += n;
            break;
        case T_RESYNC:
            visible = 0;
            break;
        }
        frames++;
        last = type;
        pos = stop;
    }
done:
    PyBuffer_Release(&view);
    if (have_tick)
        return Py_BuildValue("nnnnld", pos, frames, updates, visible, last, tick_time);
    return Py_BuildValue("nnnnlO", pos, frames, updates, visible, last, Py_None);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(buffer, pos, end, max_frame, visible) -> "
     "(pos, frames, updates, visible, last_type, tick_time)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mmo.loadgen._fastpath",
    "The load generator's frame scanner, compiled (see mmo.loadgen.fastpath).", -1, methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    return PyModule_Create(&module);
}

/* nonoproxy._nonoproxy: the seed's Python API (ProxyConfig, RouteConfig, InjectMode,
 * ExternalProxyConfig, start_proxy, ProxyHandle) over libnonoproxy, linked statically.
 *
 * Threads: every call that can block (start, shutdown, drain) runs with the GIL released.
 * The credential resolver runs inside nonoproxy_start() on the calling thread, the audit
 * callback, the resolver and the decide callback on the proxy's worker threads; all take the
 * GIL with PyGILState_Ensure() and never touch Python once the interpreter is finalizing.
 * An atexit hook shuts every proxy of this process down before finalization starts. After
 * os.fork() a handle in the child refuses every call and is never shut down or freed there:
 * the proxy's threads exist only in the parent. See docs/PYTHON.md. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <nonoproxy/nonoproxy.h>

/* Events moved out of the ring per drain call; the buffer is on the heap. */
#define DRAIN_BATCH 256

static PyObject *inject_mode_type; /* enum.IntEnum subclass, created at import */
static PyObject *decision_type;    /* enum.IntEnum subclass, created at import */

/* True once the interpreter is finalizing: from then on no thread of ours may take the GIL
 * (a foreign thread that tries is parked for ever, or exits, by CPython). */
static int
interpreter_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Check that v is a str (or None when none_ok); TypeError naming the field otherwise. */
static int
check_str(PyObject *v, const char *field, int none_ok)
{
    if (PyUnicode_Check(v) || (none_ok && v == Py_None)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", field,
                 none_ok ? "str or None" : "str", Py_TYPE(v)->tp_name);
    return -1;
}

/* Return a new tuple of the str items of the iterable v; TypeError naming the field. */
static PyObject *
str_tuple(PyObject *v, const char *field)
{
    PyObject *t = NULL;
    Py_ssize_t i;

    if (PyUnicode_Check(v) || PyBytes_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of str, not a single string", field);
        return NULL;
    }
    t = PySequence_Tuple(v);
    if (t == NULL) {
        return NULL;
    }
    for (i = 0; i < PyTuple_GET_SIZE(t); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(t, i))) {
            PyErr_Format(PyExc_TypeError, "%s must be a list of str, found %.100s", field,
                         Py_TYPE(PyTuple_GET_ITEM(t, i))->tp_name);
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

/* Read v as an integer in [min, max] into *out; TypeError or ValueError naming the field. */
static int
get_uint_range(PyObject *v, const char *field, unsigned long min, unsigned long max,
               unsigned long *out)
{
    long n;

    if (!PyLong_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.100s", field, Py_TYPE(v)->tp_name);
        return -1;
    }
    n = PyLong_AsLong(v);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        n = -1;
    }
    if (n < 0 || (unsigned long)n < min || (unsigned long)n > max) {
        PyErr_Format(PyExc_ValueError, "%s must be between %lu and %lu", field, min, max);
        return -1;
    }
    *out = (unsigned long)n;
    return 0;
}

/* Read v as an integer in [0, max] into *out; TypeError or ValueError naming the field. */
static int
get_uint(PyObject *v, const char *field, unsigned long max, unsigned long *out)
{
    return get_uint_range(v, field, 0, max, out);
}

/* The UTF-8 of a str, or NULL for None (and on error, with an exception set). */
static const char *
utf8_or_null(PyObject *v)
{
    return v == Py_None ? NULL : PyUnicode_AsUTF8(v);
}

/* ---------------------------------------------------------------------------------------- */
/* RateLimit                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* The reference's default bucket size (nonoproxy_route_config.rate_limit_burst 0 means it). */
#define RATE_BURST_DEFAULT 5

struct ratelimit_obj {
    PyObject_HEAD unsigned int requests_per_minute;
    unsigned int burst;
    unsigned int max_delay_ms;
};

static PyTypeObject ratelimit_type;

/* Only the representable range is checked here; the library's limits (SPEC §13) are checked by
 * start_proxy(), whose message names the C field (rate_limit_per_minute, ...). */
static PyObject *
ratelimit_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"requests_per_minute", "burst", "max_delay_ms", NULL};
    PyObject *a[3] = {NULL, NULL, NULL};
    unsigned long v[3] = {0, RATE_BURST_DEFAULT, 0};
    struct ratelimit_obj *rl;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:RateLimit", kwlist, &a[0], &a[1], &a[2])) {
        return NULL;
    }
    if (get_uint_range(a[0], "requests_per_minute", 1, 0xffffffffUL, &v[0]) < 0 ||
        (a[1] != NULL && get_uint_range(a[1], "burst", 1, 0xffffffffUL, &v[1]) < 0) ||
        (a[2] != NULL && get_uint(a[2], "max_delay_ms", 0xffffffffUL, &v[2]) < 0)) {
        return NULL;
    }
    rl = (struct ratelimit_obj *)type->tp_alloc(type, 0);
    if (rl == NULL) {
        return NULL;
    }
    rl->requests_per_minute = (unsigned int)v[0];
    rl->burst = (unsigned int)v[1];
    rl->max_delay_ms = (unsigned int)v[2];
    return (PyObject *)rl;
}

static PyObject *
ratelimit_repr(PyObject *self)
{
    struct ratelimit_obj *rl = (struct ratelimit_obj *)self;

    return PyUnicode_FromFormat("RateLimit(requests_per_minute=%u, burst=%u, max_delay_ms=%u)",
                                rl->requests_per_minute, rl->burst, rl->max_delay_ms);
}

static PyMemberDef ratelimit_members[] = {
    {"requests_per_minute", T_UINT, offsetof(struct ratelimit_obj, requests_per_minute), READONLY,
     "Tokens added per minute (the sustained rate)."},
    {"burst", T_UINT, offsetof(struct ratelimit_obj, burst), READONLY,
     "Bucket capacity: requests that may go at once after a quiet spell."},
    {"max_delay_ms", T_UINT, offsetof(struct ratelimit_obj, max_delay_ms), READONLY,
     "How long a request may wait for a token before 429 (ms); 0 = answer 429 at once."},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(ratelimit_doc,
             "RateLimit(requests_per_minute, burst=5, max_delay_ms=0)\n"
             "--\n\n"
             "A route's rate limit: a token bucket of burst tokens refilled at\n"
             "requests_per_minute. A request finding no token waits up to max_delay_ms for\n"
             "one, then gets 429 with Retry-After (audit denial_category \"rate_limited\").");

static PyTypeObject ratelimit_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nonoproxy.RateLimit",
    .tp_basicsize = sizeof(struct ratelimit_obj),
    .tp_repr = ratelimit_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = ratelimit_doc,
    .tp_members = ratelimit_members,
    .tp_new = ratelimit_new,
};

/* rate_limit as given: None, a RateLimit, or a mapping of RateLimit's arguments (the JSON
 * config's shape, {"requests_per_minute": 60, "burst": 5}), made into a RateLimit. */
static PyObject *
to_rate_limit(PyObject *v)
{
    PyObject *args;
    PyObject *kw;
    PyObject *rl;

    if (v == Py_None || PyObject_TypeCheck(v, &ratelimit_type)) {
        return Py_NewRef(v);
    }
    if (!PyMapping_Check(v) || PyUnicode_Check(v) || PySequence_Check(v)) {
        PyErr_Format(PyExc_TypeError, "rate_limit must be RateLimit, a dict or None, not %.100s",
                     Py_TYPE(v)->tp_name);
        return NULL;
    }
    args = PyTuple_New(0);
    kw = args == NULL ? NULL : PyDict_New();
    if (kw == NULL || PyDict_Update(kw, v) < 0) {
        Py_XDECREF(args);
        Py_XDECREF(kw);
        return NULL;
    }
    rl = PyObject_Call((PyObject *)&ratelimit_type, args, kw);
    Py_DECREF(args);
    Py_DECREF(kw);
    return rl;
}

/* ---------------------------------------------------------------------------------------- */
/* Endpoint rules                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* One rule as a new (method, path) tuple of str; TypeError for anything else. */
static PyObject *
rule_pair(PyObject *item)
{
    PyObject *p = NULL;

    if (!PyUnicode_Check(item) && !PyBytes_Check(item) && PySequence_Check(item)) {
        p = PySequence_Tuple(item);
        if (p == NULL) {
            return NULL;
        }
        if (PyTuple_GET_SIZE(p) == 2 && PyUnicode_Check(PyTuple_GET_ITEM(p, 0)) &&
            PyUnicode_Check(PyTuple_GET_ITEM(p, 1))) {
            return p;
        }
        Py_DECREF(p);
    }
    PyErr_Format(PyExc_TypeError,
                 "endpoint_rules must be a list of (method, path) tuples of str, found %.100R",
                 item);
    return NULL;
}

/* The endpoint rules as a tuple of (method, path) tuples. */
static PyObject *
rule_tuple(PyObject *v)
{
    PyObject *items;
    PyObject *out;
    Py_ssize_t i;

    if (PyUnicode_Check(v) || PyBytes_Check(v)) {
        PyErr_SetString(PyExc_TypeError,
                        "endpoint_rules must be a list of (method, path) tuples, not a string");
        return NULL;
    }
    items = PySequence_Tuple(v);
    out = items == NULL ? NULL : PyTuple_New(PyTuple_GET_SIZE(items));
    for (i = 0; out != NULL && i < PyTuple_GET_SIZE(items); i++) {
        PyObject *p = rule_pair(PyTuple_GET_ITEM(items, i));

        if (p == NULL) {
            break;
        }
        PyTuple_SET_ITEM(out, i, p);
    }
    if (out != NULL && i < PyTuple_GET_SIZE(items)) {
        Py_DECREF(out); /* its unset items are NULL, which tuple deallocation skips */
        out = NULL;
    }
    Py_XDECREF(items);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* RouteConfig                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct route_obj {
    PyObject_HEAD PyObject *prefix; /* str */
    PyObject *upstream;             /* str */
    PyObject *credential_key;       /* str or None */
    PyObject *inject_mode;          /* InjectMode */
    PyObject *inject_header;        /* str */
    PyObject *credential_format;    /* str, or None: chosen by inject_header (SPEC §1) */
    PyObject *path_pattern;         /* str or None, as the rest */
    PyObject *path_replacement;
    PyObject *query_param_name;
    PyObject *env_var;
    PyObject *tls_ca;
    PyObject *endpoint_rules;  /* tuple of (method, path) tuples of str */
    PyObject *rate_limit;      /* RateLimit or None */
    PyObject *tls_client_cert; /* str (a PEM file's path) or None */
    PyObject *tls_client_key;  /* str (a PEM file's path) or None */
};

static PyTypeObject route_type;

/* The InjectMode member for v (an InjectMode or its int value); NULL with an error. */
static PyObject *
to_inject_mode(PyObject *v)
{
    if (!PyLong_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "inject_mode must be InjectMode, not %.100s",
                     Py_TYPE(v)->tp_name);
        return NULL;
    }
    return PyObject_CallOneArg(inject_mode_type, v);
}

static int
route_check_fields(struct route_obj *r)
{
    if (check_str(r->credential_key, "credential_key", 1) < 0 ||
        check_str(r->inject_header, "inject_header", 0) < 0 ||
        check_str(r->credential_format, "credential_format", 1) < 0 ||
        check_str(r->path_pattern, "path_pattern", 1) < 0 ||
        check_str(r->path_replacement, "path_replacement", 1) < 0 ||
        check_str(r->query_param_name, "query_param_name", 1) < 0 ||
        check_str(r->env_var, "env_var", 1) < 0 || check_str(r->tls_ca, "tls_ca", 1) < 0 ||
        check_str(r->tls_client_cert, "tls_client_cert", 1) < 0 ||
        check_str(r->tls_client_key, "tls_client_key", 1) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *
route_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {
        "prefix",           "upstream",          "credential_key", "inject_mode",
        "inject_header",    "credential_format", "path_pattern",   "path_replacement",
        "query_param_name", "env_var",           "tls_ca",         "endpoint_rules",
        "rate_limit",       "tls_client_cert",   "tls_client_key", NULL};
    PyObject *f[15] = {NULL,    NULL,    Py_None, NULL, NULL,    Py_None, Py_None, Py_None,
                       Py_None, Py_None, Py_None, NULL, Py_None, Py_None, Py_None};
    struct route_obj *r = NULL;
    PyObject *mode = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "UU|OOOOOOOO$OOOOO:RouteConfig", kwlist, &f[0],
                                     &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
                                     &f[10], &f[11], &f[12], &f[13], &f[14])) {
        return NULL;
    }
    mode = f[3] == NULL ? PyObject_GetAttrString(inject_mode_type, "HEADER") : to_inject_mode(f[3]);
    if (mode == NULL) {
        return NULL;
    }
    r = (struct route_obj *)type->tp_alloc(type, 0);
    if (r == NULL) {
        Py_DECREF(mode);
        return NULL;
    }
    r->inject_mode = mode;
    r->prefix = Py_NewRef(f[0]);
    r->upstream = Py_NewRef(f[1]);
    r->credential_key = Py_NewRef(f[2]);
    r->inject_header = f[4] == NULL ? PyUnicode_FromString("Authorization") : Py_NewRef(f[4]);
    r->credential_format = Py_NewRef(f[5]);
    r->path_pattern = Py_NewRef(f[6]);
    r->path_replacement = Py_NewRef(f[7]);
    r->query_param_name = Py_NewRef(f[8]);
    r->env_var = Py_NewRef(f[9]);
    r->tls_ca = Py_NewRef(f[10]);
    r->endpoint_rules = f[11] == NULL ? PyTuple_New(0) : rule_tuple(f[11]);
    r->rate_limit = r->endpoint_rules == NULL ? NULL : to_rate_limit(f[12]);
    r->tls_client_cert = Py_NewRef(f[13]);
    r->tls_client_key = Py_NewRef(f[14]);
    if (r->inject_header == NULL || r->endpoint_rules == NULL || r->rate_limit == NULL ||
        route_check_fields(r) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static void
route_dealloc(PyObject *self)
{
    struct route_obj *r = (struct route_obj *)self;
    Py_XDECREF(r->prefix);
    Py_XDECREF(r->upstream);
    Py_XDECREF(r->credential_key);
    Py_XDECREF(r->inject_mode);
    Py_XDECREF(r->inject_header);
    Py_XDECREF(r->credential_format);
    Py_XDECREF(r->path_pattern);
    Py_XDECREF(r->path_replacement);
    Py_XDECREF(r->query_param_name);
    Py_XDECREF(r->env_var);
    Py_XDECREF(r->tls_ca);
    Py_XDECREF(r->endpoint_rules);
    Py_XDECREF(r->rate_limit);
    Py_XDECREF(r->tls_client_cert);
    Py_XDECREF(r->tls_client_key);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* credential_format as the library applies it: the given one, else "Bearer {}" for an
 * Authorization header (any case) and "{}" for any other header. */
static PyObject *
route_get_credential_format(PyObject *self, void *closure)
{
    struct route_obj *r = (struct route_obj *)self;
    const char *h;

    (void)closure;
    if (r->credential_format != Py_None) {
        return Py_NewRef(r->credential_format);
    }
    h = PyUnicode_AsUTF8(r->inject_header);
    if (h == NULL) {
        return NULL;
    }
    return PyUnicode_FromString(strcasecmp(h, "Authorization") == 0 ? "Bearer {}" : "{}");
}

static PyObject *
route_get_endpoint_rules(PyObject *self, void *closure)
{
    struct route_obj *r = (struct route_obj *)self;
    (void)closure;
    return PySequence_List(r->endpoint_rules);
}

/* The keyword-only fields for repr (paths, never a key's content). */
static PyObject *
route_repr_extras(struct route_obj *r)
{
    PyObject *rules = PySequence_List(r->endpoint_rules);
    PyObject *s;

    if (rules == NULL) {
        return NULL;
    }
    s = PyUnicode_FromFormat("tls_ca=%R, endpoint_rules=%R, rate_limit=%R, tls_client_cert=%R, "
                             "tls_client_key=%R",
                             r->tls_ca, rules, r->rate_limit, r->tls_client_cert,
                             r->tls_client_key);
    Py_DECREF(rules);
    return s;
}

static PyObject *
route_repr(PyObject *self)
{
    struct route_obj *r = (struct route_obj *)self;
    PyObject *fmt = route_get_credential_format((PyObject *)r, NULL);
    PyObject *mode = PyObject_GetAttrString(r->inject_mode, "name");
    PyObject *extras = route_repr_extras(r);
    PyObject *s = NULL;

    if (fmt != NULL && mode != NULL && extras != NULL) {
        s = PyUnicode_FromFormat(
            "RouteConfig(prefix=%R, upstream=%R, credential_key=%R, inject_mode=InjectMode.%S, "
            "inject_header=%R, credential_format=%R, path_pattern=%R, path_replacement=%R, "
            "query_param_name=%R, env_var=%R, %U)",
            r->prefix, r->upstream, r->credential_key, mode, r->inject_header, fmt, r->path_pattern,
            r->path_replacement, r->query_param_name, r->env_var, extras);
    }
    Py_XDECREF(fmt);
    Py_XDECREF(mode);
    Py_XDECREF(extras);
    return s;
}

#define ROUTE_MEMBER(name, doc)                                                                    \
    {                                                                                              \
#name, T_OBJECT, offsetof(struct route_obj, name), READONLY, doc                           \
    }

static PyMemberDef route_members[] = {
    ROUTE_MEMBER(prefix, "Path prefix of the route, e.g. \"/openai\"."),
    ROUTE_MEMBER(upstream, "Upstream URL, e.g. \"https://api.openai.com\"."),
    ROUTE_MEMBER(credential_key, "Where the real credential comes from (env://VAR, "
                                 "file:///path, keyring://service/account, a keyring account "
                                 "of service \"nono\", or a custom scheme answered by "
                                 "credential_resolver); None = no credential."),
    ROUTE_MEMBER(inject_mode, "How the credential is injected (InjectMode)."),
    ROUTE_MEMBER(inject_header, "Header name for HEADER and BASIC_AUTH modes."),
    ROUTE_MEMBER(path_pattern, "URL_PATH mode: incoming pattern with one {}."),
    ROUTE_MEMBER(path_replacement, "URL_PATH mode: outgoing pattern; None = path_pattern."),
    ROUTE_MEMBER(query_param_name, "QUERY_PARAM mode: the parameter name."),
    ROUTE_MEMBER(env_var, "Name of the phantom variable; None = derived from the prefix."),
    ROUTE_MEMBER(tls_ca, "Extra PEM file of roots for this upstream only (extra)."),
    ROUTE_MEMBER(rate_limit, "RateLimit of this route, or None (no limit)."),
    ROUTE_MEMBER(tls_client_cert, "PEM file of the client certificate (chain) for mutual TLS "
                                  "to the upstream, or None."),
    ROUTE_MEMBER(tls_client_key, "PEM file of the private key of tls_client_cert, or None."),
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef route_getset[] = {
    {"credential_format", route_get_credential_format, NULL,
     "Format with one {} for the credential (HEADER mode).", NULL},
    {"endpoint_rules", route_get_endpoint_rules, NULL,
     "[(method, path), ...] the route lets through; [] = every request (a copy).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(route_doc,
             "RouteConfig(prefix, upstream, credential_key=None, inject_mode=InjectMode.HEADER,\n"
             "            inject_header=\"Authorization\", credential_format=\"Bearer {}\",\n"
             "            path_pattern=None, path_replacement=None, query_param_name=None,\n"
             "            env_var=None, *, tls_ca=None, endpoint_rules=[], rate_limit=None,\n"
             "            tls_client_cert=None, tls_client_key=None)\n"
             "--\n\n"
             "A reverse-proxy credential route: a request to\n"
             "http://127.0.0.1:<port>/<prefix>/... goes to <upstream>/... with the real\n"
             "credential injected. Values are checked by start_proxy(). An omitted\n"
             "credential_format is \"Bearer {}\" for the Authorization header and \"{}\" for\n"
             "any other header.\n\n"
             "endpoint_rules: [(method, path), ...], method exact or \"*\", path a glob after\n"
             "the prefix (\"*\" within one segment, \"**\" any number of segments); once set, a\n"
             "request matching none gets 403. rate_limit: RateLimit (or a dict of its\n"
             "arguments). tls_client_cert, tls_client_key: PEM files for mutual TLS.");

static PyTypeObject route_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nonoproxy.RouteConfig",
    .tp_basicsize = sizeof(struct route_obj),
    .tp_dealloc = route_dealloc,
    .tp_repr = route_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = route_doc,
    .tp_members = route_members,
    .tp_getset = route_getset,
    .tp_new = route_new,
};

/* ---------------------------------------------------------------------------------------- */
/* ExternalProxyConfig                                                                        */
/* ---------------------------------------------------------------------------------------- */

struct external_obj {
    PyObject_HEAD PyObject *address; /* str; may hold user:password@ */
    PyObject *bypass_hosts;          /* tuple of str */
};

static PyTypeObject external_type;

static PyObject *
external_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"address", "bypass_hosts", NULL};
    PyObject *address = NULL;
    PyObject *bypass = NULL;
    struct external_obj *e;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|O:ExternalProxyConfig", kwlist, &address,
                                     &bypass)) {
        return NULL;
    }
    e = (struct external_obj *)type->tp_alloc(type, 0);
    if (e == NULL) {
        return NULL;
    }
    e->address = Py_NewRef(address);
    e->bypass_hosts = bypass == NULL ? PyTuple_New(0) : str_tuple(bypass, "bypass_hosts");
    if (e->bypass_hosts == NULL) {
        Py_DECREF(e);
        return NULL;
    }
    return (PyObject *)e;
}

static void
external_dealloc(PyObject *self)
{
    struct external_obj *e = (struct external_obj *)self;
    Py_XDECREF(e->address);
    Py_XDECREF(e->bypass_hosts);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* The address with any password replaced: "user:[REDACTED]@host:port". */
static PyObject *
redacted_address(PyObject *address)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(address);
    Py_ssize_t at = PyUnicode_FindChar(address, '@', 0, n, -1);
    Py_ssize_t colon;
    PyObject *user;
    PyObject *rest;
    PyObject *s;

    if (at < 0) {
        return at == -1 ? Py_NewRef(address) : NULL;
    }
    colon = PyUnicode_FindChar(address, ':', 0, at, 1);
    if (colon == -2) {
        return NULL;
    }
    user = PyUnicode_Substring(address, 0, colon < 0 ? at : colon);
    rest = PyUnicode_Substring(address, at, n);
    if (user == NULL || rest == NULL) {
        Py_XDECREF(user);
        Py_XDECREF(rest);
        return NULL;
    }
    s = PyUnicode_FromFormat("%U%s%U", user, colon < 0 ? "" : ":[REDACTED]", rest);
    Py_DECREF(user);
    Py_DECREF(rest);
    return s;
}

static PyObject *
external_repr(PyObject *self)
{
    struct external_obj *e = (struct external_obj *)self;
    PyObject *addr = redacted_address(e->address);
    PyObject *hosts;
    PyObject *s;

    if (addr == NULL) {
        return NULL;
    }
    hosts = PySequence_List(e->bypass_hosts);
    if (hosts == NULL) {
        Py_DECREF(addr);
        return NULL;
    }
    s = PyUnicode_FromFormat("ExternalProxyConfig(address=%R, bypass_hosts=%R)", addr, hosts);
    Py_DECREF(addr);
    Py_DECREF(hosts);
    return s;
}

static PyObject *
external_get_bypass(PyObject *self, void *closure)
{
    struct external_obj *e = (struct external_obj *)self;
    (void)closure;
    return PySequence_List(e->bypass_hosts);
}

static PyMemberDef external_members[] = {
    {"address", T_OBJECT, offsetof(struct external_obj, address), READONLY,
     "\"host:port\" or \"user:password@host:port\" of the enterprise proxy."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef external_getset[] = {
    {"bypass_hosts", external_get_bypass, NULL,
     "Hosts reached directly, not through the external proxy (a copy).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(external_doc, "ExternalProxyConfig(address, bypass_hosts=[])\n"
                           "--\n\n"
                           "Send allowed traffic through an enterprise proxy at address\n"
                           "(\"host:port\" or \"user:password@host:port\"), except to the\n"
                           "bypass_hosts (exact names or \"*.domain\"). repr() hides the "
                           "password.");

static PyTypeObject external_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nonoproxy.ExternalProxyConfig",
    .tp_basicsize = sizeof(struct external_obj),
    .tp_dealloc = external_dealloc,
    .tp_repr = external_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = external_doc,
    .tp_members = external_members,
    .tp_getset = external_getset,
    .tp_new = external_new,
};

/* ---------------------------------------------------------------------------------------- */
/* ProxyConfig                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct config_obj {
    PyObject_HEAD PyObject *allowed_hosts; /* tuple of str */
    PyObject *routes;                      /* tuple of RouteConfig */
    PyObject *external_proxy;              /* ExternalProxyConfig or None */
    PyObject *bind_addr;                   /* str */
    int bind_port;
    unsigned int max_connections;
    char require_auth; /* T_BOOL */
    PyObject *ca_file; /* str or None */
    unsigned int header_timeout_ms;
    unsigned int connect_timeout_ms;
    unsigned int tls_timeout_ms;
    unsigned int idle_timeout_ms;
    unsigned int response_timeout_ms;
    Py_ssize_t audit_capacity;
    PyObject *credential_resolver; /* callable or None */
    PyObject *audit_callback;      /* callable or None */
    PyObject *resolver;            /* callable or None */
    PyObject *denied_hosts;        /* tuple of str */
    char strict_allowlist;         /* T_BOOL */
    PyObject *decide;              /* callable or None */
    double decide_timeout;         /* seconds; 0 = no limit */
};

static PyTypeObject config_type;

/* Set one unsigned field of c from v (when given), checking its range. */
static int
config_uint(PyObject *v, const char *field, unsigned long max, unsigned int *out)
{
    unsigned long n;

    if (v == NULL) {
        return 0;
    }
    if (get_uint(v, field, max, &n) < 0) {
        return -1;
    }
    *out = (unsigned int)n;
    return 0;
}

/* The routes as a tuple of RouteConfig; TypeError otherwise. */
static PyObject *
route_tuple(PyObject *v)
{
    PyObject *t = PySequence_Tuple(v);
    Py_ssize_t i;

    if (t == NULL) {
        return NULL;
    }
    for (i = 0; i < PyTuple_GET_SIZE(t); i++) {
        if (!PyObject_TypeCheck(PyTuple_GET_ITEM(t, i), &route_type)) {
            PyErr_Format(PyExc_TypeError, "routes must be a list of RouteConfig, found %.100s",
                         Py_TYPE(PyTuple_GET_ITEM(t, i))->tp_name);
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

/* The keyword arguments of ProxyConfig in order, as parsed. */
enum config_arg {
    CA_ALLOWED,
    CA_ROUTES,
    CA_EXTERNAL,
    CA_BIND_ADDR,
    CA_BIND_PORT,
    CA_MAX_CONN,
    CA_REQUIRE_AUTH,
    CA_CA_FILE,
    CA_HEADER_TO,
    CA_CONNECT_TO,
    CA_TLS_TO,
    CA_IDLE_TO,
    CA_RESPONSE_TO,
    CA_AUDIT_CAP,
    CA_RESOLVER,
    CA_AUDIT_CB,
    CA_RESOLVE,
    CA_DENIED,
    CA_STRICT,
    CA_DECIDE,
    CA_DECIDE_TO,
    CA_COUNT
};

/* Fill the scalar fields of c from the parsed arguments a (NULL = default). */
static int
config_scalars(struct config_obj *c, PyObject **a)
{
    unsigned long n = 0;
    unsigned int port = 0;

    if (config_uint(a[CA_BIND_PORT], "bind_port", 65535, &port) < 0 ||
        config_uint(a[CA_MAX_CONN], "max_connections", 0xffffffffUL, &c->max_connections) < 0 ||
        config_uint(a[CA_HEADER_TO], "header_timeout_ms", 0xffffffffUL, &c->header_timeout_ms) <
            0 ||
        config_uint(a[CA_CONNECT_TO], "connect_timeout_ms", 0xffffffffUL, &c->connect_timeout_ms) <
            0 ||
        config_uint(a[CA_TLS_TO], "tls_timeout_ms", 0xffffffffUL, &c->tls_timeout_ms) < 0 ||
        config_uint(a[CA_IDLE_TO], "idle_timeout_ms", 0xffffffffUL, &c->idle_timeout_ms) < 0 ||
        config_uint(a[CA_RESPONSE_TO], "response_timeout_ms", 0xffffffffUL,
                    &c->response_timeout_ms) < 0) {
        return -1;
    }
    c->bind_port = (int)port;
    if (a[CA_AUDIT_CAP] != NULL) {
        if (get_uint(a[CA_AUDIT_CAP], "audit_capacity", 1UL << 24, &n) < 0) {
            return -1;
        }
        c->audit_capacity = (Py_ssize_t)n;
    }
    if (a[CA_REQUIRE_AUTH] != NULL) {
        int t = PyObject_IsTrue(a[CA_REQUIRE_AUTH]);

        if (t < 0) {
            return -1;
        }
        c->require_auth = (char)t;
    }
    return 0;
}

/* Check a callable-or-None argument. */
static int
check_callable(PyObject *v, const char *field)
{
    if (v == Py_None || PyCallable_Check(v)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be callable or None", field);
    return -1;
}

/* Fill the object fields of c from the parsed arguments a (NULL = default). */
static int
config_objects(struct config_obj *c, PyObject **a)
{
    c->allowed_hosts =
        a[CA_ALLOWED] == NULL ? PyTuple_New(0) : str_tuple(a[CA_ALLOWED], "allowed_hosts");
    c->routes = a[CA_ROUTES] == NULL ? PyTuple_New(0) : route_tuple(a[CA_ROUTES]);
    c->external_proxy = Py_NewRef(a[CA_EXTERNAL] == NULL ? Py_None : a[CA_EXTERNAL]);
    c->bind_addr =
        a[CA_BIND_ADDR] == NULL ? PyUnicode_FromString("127.0.0.1") : Py_NewRef(a[CA_BIND_ADDR]);
    c->ca_file = Py_NewRef(a[CA_CA_FILE] == NULL ? Py_None : a[CA_CA_FILE]);
    c->credential_resolver = Py_NewRef(a[CA_RESOLVER] == NULL ? Py_None : a[CA_RESOLVER]);
    c->audit_callback = Py_NewRef(a[CA_AUDIT_CB] == NULL ? Py_None : a[CA_AUDIT_CB]);
    c->resolver = Py_NewRef(a[CA_RESOLVE] == NULL ? Py_None : a[CA_RESOLVE]);
    if (c->allowed_hosts == NULL || c->routes == NULL || c->bind_addr == NULL) {
        return -1;
    }
    if (c->external_proxy != Py_None && !PyObject_TypeCheck(c->external_proxy, &external_type)) {
        PyErr_Format(PyExc_TypeError,
                     "external_proxy must be ExternalProxyConfig or None, not "
                     "%.100s",
                     Py_TYPE(c->external_proxy)->tp_name);
        return -1;
    }
    if (check_str(c->bind_addr, "bind_addr", 0) < 0 || check_str(c->ca_file, "ca_file", 1) < 0 ||
        check_callable(c->credential_resolver, "credential_resolver") < 0 ||
        check_callable(c->audit_callback, "audit_callback") < 0 ||
        check_callable(c->resolver, "resolver") < 0) {
        return -1;
    }
    return 0;
}

/* Largest decide_timeout in seconds: its milliseconds fit the C field (uint32_t). */
#define DECIDE_TIMEOUT_MAX (4294967295.0 / 1000.0)

/* Read decide_timeout (seconds, int or float) into *out; TypeError or ValueError. */
static int
get_timeout(PyObject *v, double *out)
{
    double t;

    if (PyBool_Check(v) || (!PyFloat_Check(v) && !PyLong_Check(v))) {
        PyErr_Format(PyExc_TypeError, "decide_timeout must be float, not %.100s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    t = PyFloat_AsDouble(v);
    if (t == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(t >= 0.0 && t <= DECIDE_TIMEOUT_MAX)) { /* also NaN */
        PyErr_SetString(PyExc_ValueError,
                        "decide_timeout must be between 0 and 4294967.295 seconds");
        return -1;
    }
    *out = t;
    return 0;
}

/* Fill the policy fields of c (SPEC §13) from the parsed arguments a (NULL = default). */
static int
config_policy(struct config_obj *c, PyObject **a)
{
    c->denied_hosts =
        a[CA_DENIED] == NULL ? PyTuple_New(0) : str_tuple(a[CA_DENIED], "denied_hosts");
    c->decide = Py_NewRef(a[CA_DECIDE] == NULL ? Py_None : a[CA_DECIDE]);
    if (c->denied_hosts == NULL || check_callable(c->decide, "decide") < 0) {
        return -1;
    }
    if (a[CA_DECIDE_TO] != NULL && get_timeout(a[CA_DECIDE_TO], &c->decide_timeout) < 0) {
        return -1;
    }
    if (a[CA_STRICT] != NULL) {
        int t = PyObject_IsTrue(a[CA_STRICT]);

        if (t < 0) {
            return -1;
        }
        c->strict_allowlist = (char)t;
    }
    return 0;
}

static PyObject *
config_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"allowed_hosts",
                             "routes",
                             "external_proxy",
                             "bind_addr",
                             "bind_port",
                             "max_connections",
                             "require_auth",
                             "ca_file",
                             "header_timeout_ms",
                             "connect_timeout_ms",
                             "tls_timeout_ms",
                             "idle_timeout_ms",
                             "response_timeout_ms",
                             "audit_capacity",
                             "credential_resolver",
                             "audit_callback",
                             "resolver",
                             "denied_hosts",
                             "strict_allowlist",
                             "decide",
                             "decide_timeout",
                             NULL};
    PyObject *a[CA_COUNT] = {NULL};
    struct nonoproxy_config defaults;
    struct config_obj *c;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOOOO$OOOOOOOOOOOOOOO:ProxyConfig", kwlist, &a[0],
                                     &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &a[8], &a[9],
                                     &a[10], &a[11], &a[12], &a[13], &a[14], &a[15], &a[16], &a[17],
                                     &a[18], &a[19], &a[20])) {
        return NULL;
    }
    c = (struct config_obj *)type->tp_alloc(type, 0);
    if (c == NULL) {
        return NULL;
    }
    nonoproxy_config_init(&defaults);
    c->bind_port = defaults.bind_port;
    c->max_connections = defaults.max_connections;
    c->require_auth = (char)defaults.require_auth;
    c->header_timeout_ms = defaults.header_timeout_ms;
    c->connect_timeout_ms = defaults.connect_timeout_ms;
    c->tls_timeout_ms = defaults.tls_timeout_ms;
    c->idle_timeout_ms = defaults.idle_timeout_ms;
    c->response_timeout_ms = defaults.response_timeout_ms;
    c->audit_capacity = (Py_ssize_t)defaults.audit_capacity;
    c->strict_allowlist = (char)defaults.strict_allowlist;
    c->decide_timeout = (double)defaults.decide_timeout_ms / 1000.0;
    if (config_objects(c, a) < 0 || config_scalars(c, a) < 0 || config_policy(c, a) < 0) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

static void
config_dealloc(PyObject *self)
{
    struct config_obj *c = (struct config_obj *)self;
    Py_XDECREF(c->allowed_hosts);
    Py_XDECREF(c->routes);
    Py_XDECREF(c->external_proxy);
    Py_XDECREF(c->bind_addr);
    Py_XDECREF(c->ca_file);
    Py_XDECREF(c->credential_resolver);
    Py_XDECREF(c->audit_callback);
    Py_XDECREF(c->resolver);
    Py_XDECREF(c->denied_hosts);
    Py_XDECREF(c->decide);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *
config_repr(PyObject *self)
{
    struct config_obj *c = (struct config_obj *)self;
    PyObject *hosts = PySequence_List(c->allowed_hosts);
    PyObject *routes = PySequence_List(c->routes);
    PyObject *s = NULL;

    if (hosts != NULL && routes != NULL) {
        s = PyUnicode_FromFormat("ProxyConfig(allowed_hosts=%R, routes=%R, external_proxy=%R, "
                                 "bind_addr=%R, bind_port=%d, max_connections=%u)",
                                 hosts, routes, c->external_proxy, c->bind_addr, c->bind_port,
                                 c->max_connections);
    }
    Py_XDECREF(hosts);
    Py_XDECREF(routes);
    return s;
}

static PyObject *
config_get_hosts(PyObject *self, void *closure)
{
    struct config_obj *c = (struct config_obj *)self;
    (void)closure;
    return PySequence_List(c->allowed_hosts);
}

static PyObject *
config_get_denied(PyObject *self, void *closure)
{
    struct config_obj *c = (struct config_obj *)self;
    (void)closure;
    return PySequence_List(c->denied_hosts);
}

static PyObject *
config_get_routes(PyObject *self, void *closure)
{
    struct config_obj *c = (struct config_obj *)self;
    (void)closure;
    return PySequence_List(c->routes);
}

#define CONFIG_MEMBER(name, type, doc)                                                             \
    {                                                                                              \
#name, type, offsetof(struct config_obj, name), READONLY, doc                              \
    }

static PyMemberDef config_members[] = {
    CONFIG_MEMBER(external_proxy, T_OBJECT, "ExternalProxyConfig or None."),
    CONFIG_MEMBER(bind_addr, T_OBJECT, "Address to bind (an IPv4 or IPv6 literal)."),
    CONFIG_MEMBER(bind_port, T_INT, "Port to bind; 0 = chosen by the OS."),
    CONFIG_MEMBER(max_connections, T_UINT, "Concurrent connections; 0 = unlimited."),
    CONFIG_MEMBER(require_auth, T_BOOL, "CONNECT and absolute-form requests need the token."),
    CONFIG_MEMBER(ca_file, T_OBJECT, "Extra PEM roots for upstream TLS, or None."),
    CONFIG_MEMBER(header_timeout_ms, T_UINT, "Complete request head within (ms; 0 = off)."),
    CONFIG_MEMBER(connect_timeout_ms, T_UINT, "Upstream TCP connect, per address (ms)."),
    CONFIG_MEMBER(tls_timeout_ms, T_UINT, "Upstream TLS handshake (ms)."),
    CONFIG_MEMBER(idle_timeout_ms, T_UINT, "Tunnel with no byte either way (ms)."),
    CONFIG_MEMBER(response_timeout_ms, T_UINT, "Forward/reverse response idle (ms)."),
    CONFIG_MEMBER(audit_capacity, T_PYSSIZET, "Audit ring size in events; 0 = no ring."),
    CONFIG_MEMBER(credential_resolver, T_OBJECT, "Callable(credential_key) or None."),
    CONFIG_MEMBER(audit_callback, T_OBJECT, "Callable(event dict) or None."),
    CONFIG_MEMBER(resolver, T_OBJECT, "Callable(host, port) -> [ip, ...] or None."),
    CONFIG_MEMBER(strict_allowlist, T_BOOL, "An empty allowlist denies every host."),
    CONFIG_MEMBER(decide, T_OBJECT, "Callable(host, port, mode, method) -> Decision or None."),
    CONFIG_MEMBER(decide_timeout, T_DOUBLE, "How long decide may take (s); 0 = no limit."),
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef config_getset[] = {
    {"allowed_hosts", config_get_hosts, NULL, "Host allowlist (a copy).", NULL},
    {"routes", config_get_routes, NULL, "Reverse-proxy routes (a copy).", NULL},
    {"denied_hosts", config_get_denied, NULL, "Host deny list (a copy).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(
    config_doc,
    "ProxyConfig(allowed_hosts=[], routes=[], external_proxy=None, bind_addr=\"127.0.0.1\",\n"
    "            bind_port=0, max_connections=256, *, require_auth=True, ca_file=None,\n"
    "            header_timeout_ms=30000, connect_timeout_ms=10000, tls_timeout_ms=10000,\n"
    "            idle_timeout_ms=600000, response_timeout_ms=300000, audit_capacity=4096,\n"
    "            credential_resolver=None, audit_callback=None, resolver=None,\n"
    "            denied_hosts=[], strict_allowlist=False, decide=None, decide_timeout=30.0)\n"
    "--\n\n"
    "Configuration of the proxy. allowed_hosts: host allowlist (\"host\", \"*.domain\",\n"
    "\"host:port\"); empty = every host except the hard deny list. routes: RouteConfig\n"
    "credential routes. The keyword-only arguments are extras of libnonoproxy:\n"
    "credential_resolver(credential_key) returns the secret (str or bytes), None to use\n"
    "the built-in sources, or raises KeyError for \"not found\"; any other exception makes\n"
    "the credential unavailable. audit_callback(event) receives every audit event dict on\n"
    "a proxy thread; its exceptions are reported as unraisable. resolver(host, port)\n"
    "replaces getaddrinfo() for upstream names: it returns a list of IPv4 or IPv6\n"
    "literals (the port stays the one asked for), [] for \"no address\", or raises.\n"
    "denied_hosts: entries as in allowed_hosts, and address ranges, refused before the\n"
    "allowlist. strict_allowlist: an empty allowlist denies every host.\n"
    "decide(host, port, mode, method) is asked, on a proxy thread, about a host that no\n"
    "list decides; it returns Decision.DENY/ALLOW_ONCE/ALLOW_SESSION (or \"deny\",\n"
    "\"once\", \"session\"); anything else, an exception (reported as unraisable) or an\n"
    "answer after decide_timeout seconds denies. Values are checked by start_proxy().");

static PyTypeObject config_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nonoproxy.ProxyConfig",
    .tp_basicsize = sizeof(struct config_obj),
    .tp_dealloc = config_dealloc,
    .tp_repr = config_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = config_doc,
    .tp_members = config_members,
    .tp_getset = config_getset,
    .tp_new = config_new,
};

/* ---------------------------------------------------------------------------------------- */
/* Audit events as dicts                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Set d[key] to the text of field (at most cap bytes), None when empty. */
static int
put_text(PyObject *d, const char *key, const char *field, size_t cap)
{
    size_t n = strnlen(field, cap);
    PyObject *v =
        n == 0 ? Py_NewRef(Py_None) : PyUnicode_DecodeUTF8(field, (Py_ssize_t)n, "replace");
    int rc;

    if (v == NULL) {
        return -1;
    }
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* Set d[key] to n, or None when !present. */
static int
put_u64(PyObject *d, const char *key, int present, unsigned long long n)
{
    PyObject *v = present ? PyLong_FromUnsignedLongLong(n) : Py_NewRef(Py_None);
    int rc;

    if (v == NULL) {
        return -1;
    }
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static int
put_name(PyObject *d, const char *key, const char *name)
{
    return put_text(d, key, name, strlen(name));
}

static int
put_tristate(PyObject *d, const char *key, enum nonoproxy_tristate t)
{
    PyObject *v = t == NONOPROXY_TRI_TRUE ? Py_True : t == NONOPROXY_TRI_FALSE ? Py_False : Py_None;

    return PyDict_SetItemString(d, key, v);
}

/* The event as a dict with every key of SPEC §9, None where the JSON has null. */
static PyObject *
event_dict(const struct nonoproxy_audit_event *ev)
{
    PyObject *d = PyDict_New();
    int closing = ev->kind == NONOPROXY_EVENT_CLOSE;

    if (d == NULL) {
        return NULL;
    }
    if (put_u64(d, "timestamp_unix_ms", 1, ev->timestamp_unix_ms) < 0 ||
        put_name(d, "event", nonoproxy_audit_kind_name(ev->kind)) < 0 ||
        put_name(d, "mode", nonoproxy_audit_mode_name(ev->mode)) < 0 ||
        put_name(d, "decision", nonoproxy_audit_decision_name(ev->decision)) < 0 ||
        put_text(d, "target", ev->target, sizeof(ev->target)) < 0 ||
        put_u64(d, "port", ev->has_port, ev->port) < 0 ||
        put_text(d, "method", ev->method, sizeof(ev->method)) < 0 ||
        put_text(d, "path", ev->path, sizeof(ev->path)) < 0 ||
        put_u64(d, "status", ev->status != 0, ev->status) < 0 ||
        put_text(d, "reason", ev->reason, sizeof(ev->reason)) < 0 ||
        put_text(d, "route_id", ev->route_id, sizeof(ev->route_id)) < 0 ||
        put_name(d, "auth_mechanism", nonoproxy_auth_mechanism_name(ev->auth_mechanism)) < 0 ||
        put_name(d, "auth_outcome", nonoproxy_auth_outcome_name(ev->auth_outcome)) < 0 ||
        put_tristate(d, "managed_credential_active", ev->managed_credential_active) < 0 ||
        put_name(d, "injection_mode", nonoproxy_inject_mode_name(ev->injection_mode)) < 0 ||
        put_name(d, "denial_category", nonoproxy_denial_category_name(ev->denial_category)) < 0 ||
        put_u64(d, "bytes_up", closing, ev->bytes_up) < 0 ||
        put_u64(d, "bytes_down", closing, ev->bytes_down) < 0 ||
        put_u64(d, "duration_ms", closing, ev->duration_ms) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* ---------------------------------------------------------------------------------------- */
/* Callbacks from the library                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Copy the secret held by bytes object b into buf; *len = 0 (unavailable) if it does not fit.
 * b's own copy is wiped: this function holds its only reference. */
static void
take_secret(PyObject *b, char *buf, size_t cap, size_t *len)
{
    char *p = PyBytes_AS_STRING(b);
    size_t n = (size_t)PyBytes_GET_SIZE(b);

    if (n > 0 && n <= cap) {
        memcpy(buf, p, n);
        *len = n;
    }
    memset(p, 0, n);
}

/* Interpret what the resolver returned (a new reference, consumed). */
static enum nonoproxy_credential_result
resolver_answer(PyObject *r, char *buf, size_t cap, size_t *len)
{
    PyObject *b = NULL;

    if (r == Py_None) {
        Py_DECREF(r);
        return NONOPROXY_CREDENTIAL_PASS;
    }
    if (PyUnicode_Check(r)) {
        b = PyUnicode_AsUTF8String(r);
    } else if (PyBytes_Check(r)) {
        b = PyBytes_FromStringAndSize(PyBytes_AS_STRING(r), PyBytes_GET_SIZE(r));
    }
    Py_DECREF(r);
    if (b == NULL) {
        PyErr_Clear(); /* a wrong type: unavailable */
        return NONOPROXY_CREDENTIAL_FOUND;
    }
    take_secret(b, buf, cap, len);
    Py_DECREF(b);
    return NONOPROXY_CREDENTIAL_FOUND;
}

/* nonoproxy_credential_fn: ask the Python resolver (userdata) for credential_key. The
 * fail-safe answer is FOUND with length 0, which the library records as "unavailable". The
 * exception is not printed: its text could hold the secret. */
static enum nonoproxy_credential_result
resolve_credential(void *userdata, const char *credential_key, char *buf, size_t cap, size_t *len)
{
    enum nonoproxy_credential_result res = NONOPROXY_CREDENTIAL_FOUND;
    PyGILState_STATE g;
    PyObject *r;

    *len = 0;
    if (interpreter_finalizing()) {
        return res;
    }
    g = PyGILState_Ensure();
    r = PyObject_CallFunction((PyObject *)userdata, "s", credential_key);
    if (r != NULL) {
        res = resolver_answer(r, buf, cap, len);
    } else {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            res = NONOPROXY_CREDENTIAL_NOT_FOUND;
        }
        PyErr_Clear();
    }
    PyGILState_Release(g);
    return res;
}

/* nonoproxy_audit_fn: give the event to the Python callable userdata, on this proxy thread. */
static void
on_audit(void *userdata, const struct nonoproxy_audit_event *ev)
{
    PyGILState_STATE g;
    PyObject *d;
    PyObject *r = NULL;

    if (interpreter_finalizing()) {
        return;
    }
    g = PyGILState_Ensure();
    d = event_dict(ev);
    if (d != NULL) {
        r = PyObject_CallOneArg((PyObject *)userdata, d);
        Py_DECREF(d);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)userdata);
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
}

/* Write the address ip (an IPv4 or IPv6 literal) and port into *ss; -1 if ip is neither. */
static int
numeric_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* Copy the IP literals of the sequence r into out, with port; -1 with an exception if one is
 * not an IP literal. */
static int
fill_addrs(PyObject *r, uint16_t port, struct nonoproxy_addrs *out)
{
    PyObject *seq = PySequence_Fast(r, "resolver must return a list of IP address strings");
    Py_ssize_t i;
    int rc = 0;

    if (seq == NULL) {
        return -1;
    }
    for (i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq) && out->count < out->max; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        const char *ip = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;

        if (ip == NULL || numeric_addr(ip, port, &out->addrs[out->count]) < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "resolver: an item is not an IP address string");
            rc = -1;
        } else {
            out->count++;
        }
    }
    Py_DECREF(seq);
    return rc;
}

/* nonoproxy_resolve_fn: ask the Python resolver (userdata) for host:port, on a worker thread. */
static int
resolve_host(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    PyGILState_STATE g;
    PyObject *r;
    int rc = -1;

    out->count = 0;
    if (interpreter_finalizing()) {
        return -1;
    }
    g = PyGILState_Ensure();
    r = PyObject_CallFunction((PyObject *)userdata, "si", host, (int)port);
    if (r != NULL) {
        rc = fill_addrs(r, port, out);
        Py_DECREF(r);
    }
    if (rc != 0) {
        out->count = 0;
        PyErr_WriteUnraisable((PyObject *)userdata);
    }
    PyGILState_Release(g);
    return rc;
}

/* The answer r (a new reference, consumed) of the decide callable: a Decision, or "deny",
 * "once", "session". Anything else is DENY with a ValueError set. */
static enum nonoproxy_decide_answer
decide_answer(PyObject *r)
{
    enum nonoproxy_decide_answer a = NONOPROXY_DECIDE_DENY;

    if (PyObject_TypeCheck(r, (PyTypeObject *)decision_type)) {
        long v = PyLong_AsLong(r);

        a = v == NONOPROXY_DECIDE_ALLOW_ONCE      ? NONOPROXY_DECIDE_ALLOW_ONCE
            : v == NONOPROXY_DECIDE_ALLOW_SESSION ? NONOPROXY_DECIDE_ALLOW_SESSION
                                                  : NONOPROXY_DECIDE_DENY;
    } else if (PyUnicode_Check(r) && PyUnicode_CompareWithASCIIString(r, "once") == 0) {
        a = NONOPROXY_DECIDE_ALLOW_ONCE;
    } else if (PyUnicode_Check(r) && PyUnicode_CompareWithASCIIString(r, "session") == 0) {
        a = NONOPROXY_DECIDE_ALLOW_SESSION;
    } else if (!PyUnicode_Check(r) || PyUnicode_CompareWithASCIIString(r, "deny") != 0) {
        PyErr_Format(PyExc_ValueError,
                     "decide must return a Decision or \"deny\", \"once\", \"session\", not %.100R",
                     r);
    }
    Py_DECREF(r);
    return a;
}

/* nonoproxy_decide_fn: ask the Python callable (userdata) about q, on the connection's thread.
 * Every failure denies: an exception or a wrong answer (reported as unraisable), and an
 * interpreter that is finalizing (Python is not touched then). The library waits for this
 * call at shutdown; shutdown() and the handle's deallocation release the GIL meanwhile. */
static enum nonoproxy_decide_answer
on_decide(void *userdata, const struct nonoproxy_decide_query *q)
{
    enum nonoproxy_decide_answer a = NONOPROXY_DECIDE_DENY;
    PyGILState_STATE g;
    PyObject *r;

    if (interpreter_finalizing()) {
        return a;
    }
    g = PyGILState_Ensure();
    r = PyObject_CallFunction((PyObject *)userdata, "siss", q->host, (int)q->port,
                              nonoproxy_audit_mode_name(q->mode),
                              q->method != NULL ? q->method : "");
    if (r != NULL) {
        a = decide_answer(r);
    }
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable((PyObject *)userdata);
    }
    PyGILState_Release(g);
    return a;
}

/* ---------------------------------------------------------------------------------------- */
/* ProxyHandle                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct handle_obj {
    PyObject_HEAD struct nonoproxy_proxy *proxy;
    PyObject *audit_callback; /* the audit_cb userdata; released after the proxy */
    PyObject *resolver;       /* the resolver userdata; released after the proxy */
    PyObject *decide;         /* the decide userdata; released after the proxy */
    pid_t pid;                /* the process whose threads serve the proxy */
    int shut;                 /* shutdown() has returned */
    struct handle_obj *prev;  /* live handles, for the atexit hook; guarded by the GIL */
    struct handle_obj *next;
};

static struct handle_obj *live_handles;

static PyTypeObject handle_type;

static void
live_add(struct handle_obj *h)
{
    h->next = live_handles;
    if (live_handles != NULL) {
        live_handles->prev = h;
    }
    live_handles = h;
}

static void
live_remove(struct handle_obj *h)
{
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else if (live_handles == h) {
        live_handles = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    h->prev = NULL;
    h->next = NULL;
}

/* 0 if h may be used by this process; RuntimeError after a fork (the proxy is the parent's). */
static int
handle_usable(struct handle_obj *h)
{
    if (h->pid != getpid()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this proxy belongs to the parent process (os.fork()): start a new one");
        return -1;
    }
    return 0;
}

/* Shut h's proxy down with the GIL released (callbacks need it to finish). */
static void
handle_shutdown(struct handle_obj *h)
{
    struct nonoproxy_proxy *p = h->proxy;

    PyThreadState *ts = PyEval_SaveThread();

    nonoproxy_shutdown(p);
    PyEval_RestoreThread(ts);
    h->shut = 1;
}

static void
handle_dealloc(PyObject *self)
{
    struct handle_obj *h = (struct handle_obj *)self;
    struct nonoproxy_proxy *p = h->proxy;

    live_remove(h);
    if (p != NULL && h->pid == getpid()) {
        PyThreadState *ts = PyEval_SaveThread();

        nonoproxy_free(p);
        PyEval_RestoreThread(ts);
    }
    /* In a forked child the parent's proxy is left alone: its threads do not exist here. */
    h->proxy = NULL;
    Py_XDECREF(h->audit_callback);
    Py_XDECREF(h->resolver);
    Py_XDECREF(h->decide);
    Py_TYPE(h)->tp_free((PyObject *)h);
}

static PyObject *
handle_get_port(PyObject *self, void *closure)
{
    struct handle_obj *h = (struct handle_obj *)self;
    (void)closure;
    return PyLong_FromLong((long)nonoproxy_port(h->proxy));
}

/* d[name] = value for one variable. */
static int
put_env(PyObject *d, const struct nonoproxy_env_var *var)
{
    PyObject *v = PyUnicode_FromString(var->value);
    int rc = v == NULL ? -1 : PyDict_SetItemString(d, var->name, v);

    Py_XDECREF(v);
    return rc;
}

/* A dict of the name/value pairs vars[0..n). */
static PyObject *
env_dict(const struct nonoproxy_env_var *vars, size_t n)
{
    PyObject *d = PyDict_New();
    size_t i = 0;

    while (d != NULL && i < n && put_env(d, &vars[i]) == 0) {
        i++;
    }
    if (d != NULL && i < n) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *
handle_env_vars(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    const struct nonoproxy_env_var *vars = NULL;
    size_t n = 0;

    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    if (nonoproxy_env_vars(h->proxy, &vars, &n) != NONOPROXY_OK) {
        return PyErr_NoMemory();
    }
    return env_dict(vars, n);
}

static PyObject *
handle_credential_env_vars(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    const struct nonoproxy_env_var *vars = NULL;
    size_t n = 0;

    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    if (nonoproxy_credential_env_vars(h->proxy, &vars, &n) != NONOPROXY_OK) {
        return PyErr_NoMemory();
    }
    return env_dict(vars, n);
}

/* Append diagnostic g to list as {"code", "route", "message"}. */
static int
append_diagnostic(PyObject *list, const struct nonoproxy_diagnostic *g)
{
    PyObject *d =
        Py_BuildValue("{s:s,s:s,s:s}", "code", g->code, "route", g->route, "message", g->message);
    int rc = d == NULL ? -1 : PyList_Append(list, d);

    Py_XDECREF(d);
    return rc;
}

static PyObject *
handle_diagnostics(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    const struct nonoproxy_diagnostic *list = NULL;
    PyObject *out;
    size_t n = 0;
    size_t i;

    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    if (nonoproxy_diagnostics(h->proxy, &list, &n) != NONOPROXY_OK) {
        return PyErr_NoMemory();
    }
    out = PyList_New(0);
    i = 0;
    while (out != NULL && i < n && append_diagnostic(out, &list[i]) == 0) {
        i++;
    }
    if (out != NULL && i < n) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* Append the n events of evs to list as dicts. */
static int
append_events(PyObject *list, const struct nonoproxy_audit_event *evs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        PyObject *d = event_dict(&evs[i]);
        int rc = d == NULL ? -1 : PyList_Append(list, d);

        Py_XDECREF(d);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
handle_drain(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    struct nonoproxy_audit_event *evs = NULL;
    PyObject *out = NULL;
    size_t got = DRAIN_BATCH;
    size_t rounds = 0;
    int rc = 0;

    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    evs = PyMem_RawMalloc(sizeof(*evs) * DRAIN_BATCH);
    out = PyList_New(0);
    if (evs == NULL || out == NULL) {
        Py_XDECREF(out);
        PyMem_RawFree(evs);
        return PyErr_NoMemory();
    }
    /* Until the ring is empty; bounded so that a busy proxy cannot keep this call going. */
    while (rc == 0 && got == DRAIN_BATCH && rounds++ < 1024) {
        PyThreadState *ts = PyEval_SaveThread();

        got = nonoproxy_drain_audit_events(h->proxy, evs, DRAIN_BATCH, NULL);
        PyEval_RestoreThread(ts);
        rc = append_events(out, evs, got);
    }
    PyMem_RawFree(evs);
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *
handle_shutdown_method(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    handle_shutdown(h);
    Py_RETURN_NONE;
}

static PyObject *
handle_enter(PyObject *self, PyObject *unused)
{
    struct handle_obj *h = (struct handle_obj *)self;
    (void)unused;
    if (handle_usable(h) < 0) {
        return NULL;
    }
    return Py_NewRef((PyObject *)h);
}

static PyObject *
handle_exit(PyObject *self, PyObject *args)
{
    struct handle_obj *h = (struct handle_obj *)self;
    (void)args;
    if (h->pid == getpid()) {
        handle_shutdown(h);
    }
    Py_RETURN_FALSE;
}

static PyObject *
handle_repr(PyObject *self)
{
    struct handle_obj *h = (struct handle_obj *)self;
    return PyUnicode_FromFormat("<nonoproxy.ProxyHandle port=%d %s>", (int)nonoproxy_port(h->proxy),
                                h->shut ? "shut down" : "running");
}

static PyMethodDef handle_methods[] = {
    {"env_vars", handle_env_vars, METH_NOARGS,
     "env_vars() -> dict[str, str]\n--\n\n"
     "Variables that point a child at the proxy: HTTP_PROXY, HTTPS_PROXY, NO_PROXY,\n"
     "NONO_PROXY_TOKEN, NODE_USE_ENV_PROXY and the lowercase variants. They hold the session\n"
     "token: give them only to the child's environment."},
    {"credential_env_vars", handle_credential_env_vars, METH_NOARGS,
     "credential_env_vars() -> dict[str, str]\n--\n\n"
     "Per-route <PREFIX>_BASE_URL for every route and the phantom variable (the session\n"
     "token, never the real secret) for routes whose credential was loaded."},
    {"drain_audit_events", handle_drain, METH_NOARGS,
     "drain_audit_events() -> list[dict]\n--\n\n"
     "Remove and return the recorded audit events, oldest first. Each dict has every key of\n"
     "the JSON audit event (timestamp_unix_ms, event, mode, decision, target, port, method,\n"
     "path, status, reason, route_id, auth_mechanism, auth_outcome,\n"
     "managed_credential_active, injection_mode, denial_category, bytes_up, bytes_down,\n"
     "duration_ms), None where absent."},
    {"diagnostics", handle_diagnostics, METH_NOARGS,
     "diagnostics() -> list[dict]\n--\n\n"
     "Start-time findings that did not stop the proxy (e.g. a credential not found), each\n"
     "{'code', 'route', 'message'}."},
    {"shutdown", handle_shutdown_method, METH_NOARGS,
     "shutdown() -> None\n--\n\n"
     "Stop accepting, close the connections and join the proxy's threads. Idempotent; the\n"
     "audit events stay readable."},
    {"__enter__", handle_enter, METH_NOARGS, "Return the handle."},
    {"__exit__", handle_exit, METH_VARARGS, "Shut the proxy down."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"port", handle_get_port, NULL, "The port the proxy listens on.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(handle_doc, "A running proxy, returned by start_proxy(); not constructible.\n"
                         "Also a context manager: leaving the with block shuts it down.");

static PyTypeObject handle_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nonoproxy.ProxyHandle",
    .tp_basicsize = sizeof(struct handle_obj),
    .tp_dealloc = handle_dealloc,
    .tp_repr = handle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_doc = handle_doc,
    .tp_methods = handle_methods,
    .tp_getset = handle_getset,
};

/* ---------------------------------------------------------------------------------------- */
/* start_proxy                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Raise the exception that fits err, with the library's one-line diagnostic. */
static void
raise_start_error(enum nonoproxy_err err, const struct nonoproxy_diag *diag)
{
    const char *msg = diag->message[0] != '\0' ? diag->message : nonoproxy_strerror(err);

    switch (err) {
    case NONOPROXY_ERR_INVALID_ARG:
    case NONOPROXY_ERR_CREDENTIAL:
    case NONOPROXY_ERR_TLS:
        PyErr_SetString(PyExc_ValueError, msg);
        return;
    case NONOPROXY_ERR_NOMEM:
        PyErr_NoMemory();
        return;
    case NONOPROXY_ERR_IO: {
        PyObject *e = Py_BuildValue("(is)", diag->sys_errno, msg);

        if (e != NULL) {
            PyErr_SetObject(PyExc_OSError, e);
            Py_DECREF(e);
        }
        return;
    }
    case NONOPROXY_ERR_RNG:
    case NONOPROXY_OK:
        break;
    }
    PyErr_SetString(PyExc_RuntimeError, msg);
}

/* Add the str items of tuple t with add(); ValueError with the diagnostic on refusal. */
static int
add_hosts(struct nonoproxy_config *cfg, PyObject *t,
          enum nonoproxy_err (*add)(struct nonoproxy_config *, const char *,
                                    struct nonoproxy_diag *))
{
    struct nonoproxy_diag diag;
    Py_ssize_t i;

    for (i = 0; i < PyTuple_GET_SIZE(t); i++) {
        const char *s = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, i));
        enum nonoproxy_err err;

        if (s == NULL) {
            return -1;
        }
        memset(&diag, 0, sizeof(diag));
        err = add(cfg, s, &diag);
        if (err != NONOPROXY_OK) {
            raise_start_error(err, &diag);
            return -1;
        }
    }
    return 0;
}

/* Fill the policy fields of rc (SPEC §13) from r. The endpoint rules go into *rules, an array
 * the caller frees with PyMem_Free once nonoproxy_config_add_route() has copied it; the strings
 * stay owned by r. */
static int
route_policy(struct nonoproxy_route_config *rc, struct route_obj *r,
             struct nonoproxy_endpoint_rule **rules)
{
    Py_ssize_t n = PyTuple_GET_SIZE(r->endpoint_rules);
    Py_ssize_t i;

    *rules = n == 0 ? NULL : PyMem_Calloc((size_t)n, sizeof(**rules));
    if (n > 0 && *rules == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(r->endpoint_rules, i);

        (*rules)[i].method = PyUnicode_AsUTF8(PyTuple_GET_ITEM(pair, 0));
        (*rules)[i].path = PyUnicode_AsUTF8(PyTuple_GET_ITEM(pair, 1));
        if ((*rules)[i].method == NULL || (*rules)[i].path == NULL) {
            return -1;
        }
    }
    rc->endpoint_rules = *rules;
    rc->n_endpoint_rules = (size_t)n;
    if (r->rate_limit != Py_None) {
        const struct ratelimit_obj *rl = (const struct ratelimit_obj *)r->rate_limit;

        rc->rate_limit_per_minute = rl->requests_per_minute;
        rc->rate_limit_burst = rl->burst;
        rc->rate_limit_max_delay_ms = rl->max_delay_ms;
    }
    rc->tls_client_cert = utf8_or_null(r->tls_client_cert);
    rc->tls_client_key = utf8_or_null(r->tls_client_key);
    return PyErr_Occurred() ? -1 : 0;
}

/* Add route r (a RouteConfig) to cfg. */
static int
add_route(struct nonoproxy_config *cfg, struct route_obj *r)
{
    struct nonoproxy_route_config rc;
    struct nonoproxy_endpoint_rule *rules = NULL;
    long mode = PyLong_AsLong(r->inject_mode);
    const char *prefix = PyUnicode_AsUTF8(r->prefix);
    const char *upstream = PyUnicode_AsUTF8(r->upstream);
    struct nonoproxy_diag diag;
    enum nonoproxy_err err;

    if (prefix == NULL || upstream == NULL || (mode == -1 && PyErr_Occurred())) {
        return -1;
    }
    nonoproxy_route_config_init(&rc, prefix, upstream);
    rc.inject_mode = (enum nonoproxy_inject_mode)mode;
    rc.credential_key = utf8_or_null(r->credential_key);
    rc.inject_header = utf8_or_null(r->inject_header);
    rc.credential_format = utf8_or_null(r->credential_format);
    rc.path_pattern = utf8_or_null(r->path_pattern);
    rc.path_replacement = utf8_or_null(r->path_replacement);
    rc.query_param_name = utf8_or_null(r->query_param_name);
    rc.env_var = utf8_or_null(r->env_var);
    rc.tls_ca = utf8_or_null(r->tls_ca);
    if (PyErr_Occurred() || route_policy(&rc, r, &rules) < 0) {
        PyMem_Free(rules);
        return -1;
    }
    err = nonoproxy_config_add_route(cfg, &rc);
    PyMem_Free(rules);
    if (err != NONOPROXY_OK) {
        memset(&diag, 0, sizeof(diag));
        raise_start_error(err, &diag);
        return -1;
    }
    return 0;
}

/* Give cfg the external proxy of c, if any. */
static int
set_external(struct nonoproxy_config *cfg, struct config_obj *c)
{
    struct external_obj *e = (struct external_obj *)c->external_proxy;
    struct nonoproxy_diag diag;
    const char *addr;
    enum nonoproxy_err err;

    if (c->external_proxy == Py_None) {
        return 0;
    }
    addr = PyUnicode_AsUTF8(e->address);
    if (addr == NULL) {
        return -1;
    }
    memset(&diag, 0, sizeof(diag));
    err = nonoproxy_config_set_external_proxy(cfg, addr, &diag);
    if (err != NONOPROXY_OK) {
        raise_start_error(err, &diag);
        return -1;
    }
    return add_hosts(cfg, e->bypass_hosts, nonoproxy_config_add_bypass_host);
}

/* The policy settings of c (SPEC §13) into cfg. */
static int
build_policy(struct nonoproxy_config *cfg, struct config_obj *c)
{
    double ms = c->decide_timeout * 1000.0;

    cfg->strict_allowlist = c->strict_allowlist != 0;
    /* Rounded up: a positive timeout never becomes 0, which means "no limit". */
    cfg->decide_timeout_ms = (uint32_t)ms;
    if ((double)cfg->decide_timeout_ms < ms) {
        cfg->decide_timeout_ms++;
    }
    if (c->decide != Py_None) {
        nonoproxy_config_set_decide(cfg, on_decide, c->decide);
    }
    return add_hosts(cfg, c->denied_hosts, nonoproxy_config_deny_host);
}

/* Translate c into cfg (initialised by the caller). The strings stay owned by c. */
static int
build_config(struct nonoproxy_config *cfg, struct config_obj *c)
{
    Py_ssize_t i;

    cfg->bind_addr = PyUnicode_AsUTF8(c->bind_addr);
    cfg->ca_file = utf8_or_null(c->ca_file);
    if (cfg->bind_addr == NULL || PyErr_Occurred()) {
        return -1;
    }
    cfg->bind_port = (uint16_t)c->bind_port;
    cfg->max_connections = c->max_connections;
    cfg->require_auth = c->require_auth != 0;
    cfg->audit_capacity = (size_t)c->audit_capacity;
    cfg->header_timeout_ms = c->header_timeout_ms;
    cfg->connect_timeout_ms = c->connect_timeout_ms;
    cfg->tls_timeout_ms = c->tls_timeout_ms;
    cfg->idle_timeout_ms = c->idle_timeout_ms;
    cfg->response_timeout_ms = c->response_timeout_ms;
    if (c->credential_resolver != Py_None) {
        cfg->credential_cb = resolve_credential;
        cfg->credential_userdata = c->credential_resolver;
    }
    if (c->audit_callback != Py_None) {
        cfg->audit_cb = on_audit;
        cfg->audit_userdata = c->audit_callback;
    }
    if (c->resolver != Py_None) {
        cfg->resolver = resolve_host;
        cfg->resolver_userdata = c->resolver;
    }
    if (add_hosts(cfg, c->allowed_hosts, nonoproxy_config_allow_host) < 0 ||
        build_policy(cfg, c) < 0) {
        return -1;
    }
    for (i = 0; i < PyTuple_GET_SIZE(c->routes); i++) {
        if (add_route(cfg, (struct route_obj *)PyTuple_GET_ITEM(c->routes, i)) < 0) {
            return -1;
        }
    }
    return set_external(cfg, c);
}

static PyObject *
start_proxy(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"config", NULL};
    struct config_obj *c = NULL;
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    struct handle_obj *h = NULL;
    PyThreadState *ts;
    enum nonoproxy_err err;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!:start_proxy", kwlist, &config_type, &c)) {
        return NULL;
    }
    Py_INCREF(c); /* its strings are borrowed by cfg until nonoproxy_start() returns */
    nonoproxy_config_init(&cfg);
    memset(&diag, 0, sizeof(diag));
    h = PyObject_New(struct handle_obj, &handle_type);
    if (h == NULL) {
        goto out;
    }
    h->proxy = NULL;
    h->audit_callback = NULL;
    h->resolver = NULL;
    h->decide = NULL;
    h->prev = NULL;
    h->next = NULL;
    h->pid = getpid();
    h->shut = 0;
    if (build_config(&cfg, c) < 0) {
        goto out;
    }
    ts = PyEval_SaveThread();
    err = nonoproxy_start(&cfg, &p, &diag);
    PyEval_RestoreThread(ts);
    if (err != NONOPROXY_OK) {
        raise_start_error(err, &diag);
        goto out;
    }
    h->proxy = p;
    h->audit_callback = c->audit_callback == Py_None ? NULL : Py_NewRef(c->audit_callback);
    h->resolver = c->resolver == Py_None ? NULL : Py_NewRef(c->resolver);
    h->decide = c->decide == Py_None ? NULL : Py_NewRef(c->decide);
    live_add(h);
out:
    nonoproxy_config_free(&cfg);
    Py_DECREF(c);
    if (h != NULL && h->proxy == NULL) {
        Py_DECREF(h); /* never started: nothing to release */
        h = NULL;
    }
    return (PyObject *)h;
}

/* atexit hook: shut down every proxy this process started, before finalization begins (the
 * proxies' threads may be waiting for the GIL; it is released while they are joined). The
 * handles are collected first, each with a reference: while the GIL is released another thread
 * may drop its own last reference to a handle, which must then not be freed under our feet. */
static PyObject *
shutdown_all(PyObject *module, PyObject *unused)
{
    PyObject *running = PyList_New(0);
    struct handle_obj *h;
    Py_ssize_t i;

    (void)module;
    (void)unused;
    if (running == NULL) {
        return NULL;
    }
    for (h = live_handles; h != NULL; h = h->next) {
        if (h->pid == getpid() && !h->shut && PyList_Append(running, (PyObject *)h) < 0) {
            Py_DECREF(running);
            return NULL;
        }
    }
    for (i = 0; i < PyList_GET_SIZE(running); i++) {
        handle_shutdown((struct handle_obj *)PyList_GET_ITEM(running, i));
    }
    Py_DECREF(running);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"start_proxy", (PyCFunction)(void (*)(void))start_proxy, METH_VARARGS | METH_KEYWORDS,
     "start_proxy(config)\n--\n\n"
     "Validate config, bind the listening socket, load the route credentials and start the\n"
     "proxy; return its ProxyHandle. Raises ValueError with the library's one-line\n"
     "diagnostic for a configuration error, OSError when binding fails."},
    {"_shutdown_all", shutdown_all, METH_NOARGS,
     "Shut down every running proxy of this process (registered with atexit)."},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------------------------------- */
/* Module                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* obj.name = the str value. */
static int
set_str_attr(PyObject *obj, const char *name, const char *value)
{
    PyObject *v = PyUnicode_FromString(value);
    int rc = v == NULL ? -1 : PyObject_SetAttrString(obj, name, v);

    Py_XDECREF(v);
    return rc;
}

/* Create the enum.IntEnum name of members (a list of (name, value) pairs, consumed) in module
 * nonoproxy, with docstring doc. */
static PyObject *
make_int_enum(const char *name, PyObject *members, const char *doc)
{
    PyObject *enum_mod = members == NULL ? NULL : PyImport_ImportModule("enum");
    PyObject *type = NULL;

    if (enum_mod != NULL) {
        type = PyObject_CallMethod(enum_mod, "IntEnum", "sO", name, members);
        Py_DECREF(enum_mod);
    }
    Py_XDECREF(members);
    if (type != NULL && (set_str_attr(type, "__module__", "nonoproxy") < 0 ||
                         set_str_attr(type, "__doc__", doc) < 0)) {
        Py_CLEAR(type);
    }
    return type;
}

/* InjectMode, whose values are those of enum nonoproxy_inject_mode. */
static PyObject *
make_inject_mode(void)
{
    return make_int_enum(
        "InjectMode",
        Py_BuildValue("[(si)(si)(si)(si)]", "HEADER", (int)NONOPROXY_INJECT_HEADER, "URL_PATH",
                      (int)NONOPROXY_INJECT_URL_PATH, "QUERY_PARAM",
                      (int)NONOPROXY_INJECT_QUERY_PARAM, "BASIC_AUTH",
                      (int)NONOPROXY_INJECT_BASIC_AUTH),
        "How a route injects the credential: HEADER, URL_PATH, QUERY_PARAM, BASIC_AUTH.");
}

/* Decision, whose values are those of enum nonoproxy_decide_answer. */
static PyObject *
make_decision(void)
{
    return make_int_enum(
        "Decision",
        Py_BuildValue("[(si)(si)(si)]", "DENY", (int)NONOPROXY_DECIDE_DENY, "ALLOW_ONCE",
                      (int)NONOPROXY_DECIDE_ALLOW_ONCE, "ALLOW_SESSION",
                      (int)NONOPROXY_DECIDE_ALLOW_SESSION),
        "The answer of a decide callback: DENY, ALLOW_ONCE (this connection or request),\n"
        "ALLOW_SESSION (remembered until the proxy is freed).");
}

/* Register _shutdown_all with atexit. */
static int
register_atexit(PyObject *m)
{
    PyObject *atexit_mod = PyImport_ImportModule("atexit");
    PyObject *fn = NULL;
    PyObject *r = NULL;

    if (atexit_mod != NULL) {
        fn = PyObject_GetAttrString(m, "_shutdown_all");
    }
    if (fn != NULL) {
        r = PyObject_CallMethod(atexit_mod, "register", "O", fn);
    }
    Py_XDECREF(atexit_mod);
    Py_XDECREF(fn);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(m, name, (PyObject *)t);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "nonoproxy._nonoproxy",
    .m_doc = "The C extension behind the nonoproxy package (libnonoproxy, linked statically).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__nonoproxy(void);

PyMODINIT_FUNC
PyInit__nonoproxy(void)
{
    PyObject *m = PyModule_Create(&module_def);

    if (m == NULL) {
        return NULL;
    }
    inject_mode_type = make_inject_mode();
    decision_type = inject_mode_type == NULL ? NULL : make_decision();
    if (decision_type == NULL || PyModule_AddObjectRef(m, "InjectMode", inject_mode_type) < 0 ||
        PyModule_AddObjectRef(m, "Decision", decision_type) < 0 ||
        add_type(m, &route_type, "RouteConfig") < 0 ||
        add_type(m, &ratelimit_type, "RateLimit") < 0 ||
        add_type(m, &external_type, "ExternalProxyConfig") < 0 ||
        add_type(m, &config_type, "ProxyConfig") < 0 ||
        add_type(m, &handle_type, "ProxyHandle") < 0 ||
        PyModule_AddStringConstant(m, "LIBRARY_VERSION", nonoproxy_version()) < 0 ||
        register_atexit(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

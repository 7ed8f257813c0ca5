/* crypto._speedups: the signed bytes of a change, in C, for the common shape only.
 *
 * Rules this module owns:
 *
 * - signed_bytes(change, change_prefix, field_prefix) returns exactly the bytes
 *   crypto.changes._reference_signed_bytes returns for the same change, or None
 *   when the change is not in the one shape this code knows; it never raises for
 *   a bad change (only MemoryError). The caller then runs the reference path,
 *   which gives the bytes or the precise reason the change is refused. So this
 *   file decides nothing: it may only say "the same bytes" or "ask Python".
 * - The shape: a dict holding exactly the header keys (crypto.changes.HEADER),
 *   "fields", and optionally "resolution" and "signature"; every header value of
 *   its exact JSON type (text, a whole number within 2**53-1, true/false, null
 *   where allowed; no subclasses); "base" and "fields" keyed by ASCII text; each
 *   field {salt, value} with a 22-character base64url salt and a value that is
 *   text, a whole number within 2**53-1, true, false or null, or {digest} with a
 *   canonical 43-character base64url digest. Anything else (a float, a list, an
 *   object value, a non-ASCII key, a lone surrogate) goes to the reference path.
 * - The bytes: change_prefix, then the RFC 8785 encoding of {header..., fields:
 *   {name: digest}} with keys sorted (ASCII keys: byte order is UTF-16 order),
 *   strings escaped as RFC 8785 says (only '"', '\\' and U+0000-U+001F; the short
 *   forms \b \t \n \f \r, else \u00xx in lower case; everything else as UTF-8).
 * - digest = base64url(SHA-256(field_prefix || salt || canonical(value))), no
 *   padding; SHA-256 is OpenSSL's, the one Python's hashlib uses.
 * - No Python code runs during a call, so the objects it borrows stay alive: every
 *   dict it looks a key up in (the change, each field entry, the resolution) must be
 *   keyed by exact str only, checked before the first lookup (a key of another type
 *   could run its own __eq__ and change the change under us); every value is read
 *   only after its exact type is checked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 "" /* set by setup.py: the SHA-256 of this file when it was built */
#endif
#define MAX_SAFE_INT 9007199254740991LL /* 2**53 - 1 */
#define SALT_CHARS 22
#define DIGEST_CHARS 43 /* 32 bytes in unpadded base64url */
#define OFF_PATH 1      /* "ask Python": returned by the helpers below, beside 0 (done) and -1 (error) */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static signed char B64INDEX[256];

/* the change's keys, made once */
enum { K_AGENCY, K_BASE, K_COLLECTION, K_DELETED, K_DEVICE, K_FIELDS, K_HLC, K_ID, K_PREV, K_RECORD_ID,
       K_RESOLUTION, K_SEQ, K_SIGNATURE, K_SALT, K_VALUE, K_DIGEST, K_KIND, K_RESOLVES, K_BY, K_COUNT };
static const char *KEY_NAMES[K_COUNT] = {"agency", "base", "collection", "deleted", "device", "fields", "hlc", "id",
                                         "prev", "record_id", "resolution", "seq", "signature", "salt", "value",
                                         "digest", "kind", "resolves", "by"};
static PyObject *KEYS[K_COUNT];
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *SHA256_MD; /* fetched once: a fetch per digest cost more than the digest */
#else
static const EVP_MD *SHA256_MD; /* OpenSSL 1.1: no fetching */
#endif
static EVP_MD_CTX *SHA256_CTX_; /* one, reused: every call holds the GIL */

/* -- an output buffer ------------------------------------------------------------------------ */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char small[2048];
} Buf;

static void buf_init(Buf *b) { b->data = b->small, b->len = 0, b->cap = (Py_ssize_t)sizeof b->small; }
static void buf_free(Buf *b) { if (b->data != b->small) PyMem_Free(b->data); }

static int buf_room(Buf *b, Py_ssize_t need) {
    if (need <= b->cap - b->len) return 0;
    if (need > PY_SSIZE_T_MAX / 2 - b->len) { PyErr_NoMemory(); return -1; }
    Py_ssize_t cap = b->cap * 2;
    while (cap - b->len < need) cap *= 2;
    char *data = PyMem_Malloc((size_t)cap);
    if (data == NULL) { PyErr_NoMemory(); return -1; }
    memcpy(data, b->data, (size_t)b->len);
    buf_free(b);
    b->data = data, b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_room(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}
#define PUT_LIT(b, lit) put((b), (lit), (Py_ssize_t)(sizeof(lit) - 1))

/* -- JSON values, RFC 8785 ------------------------------------------------------------------- */
/* UTF-8 bytes as a JSON string. */
static int put_text(Buf *b, const char *u, Py_ssize_t n) {
    if (n > (PY_SSIZE_T_MAX - 2) / 6) { PyErr_NoMemory(); return -1; }
    if (buf_room(b, n * 6 + 2) < 0) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u', *o++ = '0', *o++ = '0';
            *o++ = "0123456789abcdef"[c >> 4], *o++ = "0123456789abcdef"[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* An exact str as a JSON string. A lone surrogate has no UTF-8: off the path. */
static int put_str(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return OFF_PATH;
    }
    return put_text(b, u, n);
}

/* A whole number of exact type int within 2**53-1 (a bool is not one: the callers check). */
static int put_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow || x > MAX_SAFE_INT || x < -MAX_SAFE_INT) return OFF_PATH;
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", x);
    return put(b, text, n);
}

/* A field's value: text, a safe whole number, true, false or null; anything else off the path. */
static int put_scalar(Buf *b, PyObject *v) {
    if (PyUnicode_CheckExact(v)) return put_str(b, v);
    if (v == Py_None) return PUT_LIT(b, "null");
    if (v == Py_True) return PUT_LIT(b, "true");
    if (v == Py_False) return PUT_LIT(b, "false");
    if (PyLong_CheckExact(v)) return put_int(b, v);
    return OFF_PATH;
}

/* -- checks ------------------------------------------------------------------------------------ */
/* An exact str of `chars` base64url characters; `canonical_tail`: its last one leaves no bits set
 * past the data (43 characters for 32 bytes: the last one's index a multiple of 4). */
static int is_ready_ascii(PyObject *s) { /* an exact str, ASCII only (a legacy string is made ready first) */
    if (!PyUnicode_CheckExact(s)) return 0;
    if (PyUnicode_READY(s) < 0) { PyErr_Clear(); return 0; } /* (no memory: Python's path decides) */
    return PyUnicode_IS_ASCII(s);
}

static int is_b64url(PyObject *s, Py_ssize_t chars, int canonical_tail) {
    if (!is_ready_ascii(s) || PyUnicode_GET_LENGTH(s) != chars) return 0;
    const unsigned char *u = (const unsigned char *)PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < chars; i++)
        if (B64INDEX[u[i]] < 0) return 0;
    return !canonical_tail || (B64INDEX[u[chars - 1]] & 3) == 0;
}

static int is_text(PyObject *v) { return v != NULL && PyUnicode_CheckExact(v); }

/* Every key of the dict is an exact str: looking one up then runs no Python code (see the rules). */
static int text_keys_only(PyObject *d) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v))
        if (!PyUnicode_CheckExact(k)) return 0;
    return 1;
}

/* -- sorted objects ------------------------------------------------------------------------------- */
typedef struct {
    const char *key; /* ASCII, so byte order is RFC 8785's UTF-16 order */
    Py_ssize_t len;
    PyObject *value; /* borrowed */
} Item;

static int item_order(const void *pa, const void *pb) {
    const Item *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, (size_t)(a->len < b->len ? a->len : b->len));
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* The items of an exact dict keyed by ASCII text, sorted, into *out (PyMem: the caller frees it). */
static int sorted_items(PyObject *d, Item **out, Py_ssize_t *count) {
    Py_ssize_t n = PyDict_GET_SIZE(d), pos = 0, i = 0;
    PyObject *k, *v;
    Item *items = PyMem_Malloc(sizeof(Item) * (size_t)(n ? n : 1));
    if (items == NULL) { PyErr_NoMemory(); return -1; }
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!is_ready_ascii(k)) { PyMem_Free(items); return OFF_PATH; }
        items[i].key = (const char *)PyUnicode_DATA(k), items[i].len = PyUnicode_GET_LENGTH(k), items[i].value = v;
        i++;
    }
    qsort(items, (size_t)n, sizeof(Item), item_order);
    *out = items, *count = n;
    return 0;
}

/* -- the parts of a change ------------------------------------------------------------------------ */
/* "base": field name -> clock text or null. */
static int put_base(Buf *b, PyObject *base) {
    Item *items;
    Py_ssize_t n;
    int rc = sorted_items(base, &items, &n);
    if (rc) return rc;
    rc = PUT_LIT(b, "{");
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *v = items[i].value;
        if (v != Py_None && !PyUnicode_CheckExact(v)) rc = OFF_PATH;
        else if (!(rc = i ? PUT_LIT(b, ",") : 0) && !(rc = put_text(b, items[i].key, items[i].len)) &&
                 !(rc = PUT_LIT(b, ":")))
            rc = v == Py_None ? PUT_LIT(b, "null") : put_str(b, v);
    }
    if (rc == 0) rc = PUT_LIT(b, "}");
    PyMem_Free(items);
    return rc;
}

static void b64url_32(const unsigned char *in, char *out) { /* 32 bytes -> 43 characters */
    int o = 0;
    for (int i = 0; i < 30; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64URL[v >> 18], out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63], out[o++] = B64URL[v & 63];
    }
    unsigned v = (unsigned)in[30] << 8 | in[31];
    out[o++] = B64URL[v >> 10], out[o++] = B64URL[(v >> 4) & 63], out[o++] = B64URL[(v << 2) & 63];
}

/* One field's digest into out[43]: SHA-256(field_prefix || salt || canonical(value)). */
static int field_digest(PyObject *entry, const char *fp, Py_ssize_t fpn, char *out) {
    PyObject *salt = PyDict_GetItemWithError(entry, KEYS[K_SALT]);
    PyObject *value = salt ? PyDict_GetItemWithError(entry, KEYS[K_VALUE]) : NULL;
    if (value == NULL) return PyErr_Occurred() ? -1 : OFF_PATH;
    if (!is_b64url(salt, SALT_CHARS, 0)) return OFF_PATH;
    Buf in;
    buf_init(&in);
    int rc = put(&in, fp, fpn);
    if (rc == 0) rc = put(&in, (const char *)PyUnicode_DATA(salt), SALT_CHARS);
    if (rc == 0) rc = put_scalar(&in, value);
    if (rc == 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_DigestInit_ex(SHA256_CTX_, SHA256_MD, NULL) || !EVP_DigestUpdate(SHA256_CTX_, in.data, (size_t)in.len) ||
            !EVP_DigestFinal_ex(SHA256_CTX_, md, &mdlen) || mdlen != 32) {
            PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed in OpenSSL");
            rc = -1;
        } else {
            b64url_32(md, out);
        }
    }
    buf_free(&in);
    return rc;
}

/* "fields": name -> {salt, value} (its digest is written) or {digest} (written as it is). */
static int put_fields(Buf *b, PyObject *fields, const char *fp, Py_ssize_t fpn) {
    Item *items;
    Py_ssize_t n;
    int rc = sorted_items(fields, &items, &n);
    if (rc) return rc;
    rc = PUT_LIT(b, "{");
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *entry = items[i].value;
        char digest[DIGEST_CHARS];
        if (!PyDict_CheckExact(entry) || !text_keys_only(entry)) { rc = OFF_PATH; break; }
        if (PyDict_GET_SIZE(entry) == 2) {
            rc = field_digest(entry, fp, fpn, digest);
        } else if (PyDict_GET_SIZE(entry) == 1) {
            PyObject *given = PyDict_GetItemWithError(entry, KEYS[K_DIGEST]);
            if (given == NULL) rc = PyErr_Occurred() ? -1 : OFF_PATH;
            else if (!is_b64url(given, DIGEST_CHARS, 1)) rc = OFF_PATH;
            else memcpy(digest, PyUnicode_DATA(given), DIGEST_CHARS);
        } else {
            rc = OFF_PATH;
        }
        if (rc == 0 && i) rc = PUT_LIT(b, ",");
        if (rc == 0) rc = put_text(b, items[i].key, items[i].len);
        if (rc == 0) rc = PUT_LIT(b, ":\"");
        if (rc == 0) rc = put(b, digest, DIGEST_CHARS);
        if (rc == 0) rc = PUT_LIT(b, "\"");
    }
    if (rc == 0) rc = PUT_LIT(b, "}");
    PyMem_Free(items);
    return rc;
}

/* "resolution": {by, kind, resolves}, each non-empty text. */
static int put_resolution(Buf *b, PyObject *r) {
    static const int order[3] = {K_BY, K_KIND, K_RESOLVES};
    if (!PyDict_CheckExact(r) || PyDict_GET_SIZE(r) != 3 || !text_keys_only(r)) return OFF_PATH;
    int rc = PUT_LIT(b, "{");
    for (int i = 0; rc == 0 && i < 3; i++) {
        PyObject *v = PyDict_GetItemWithError(r, KEYS[order[i]]);
        if (v == NULL) return PyErr_Occurred() ? -1 : OFF_PATH;
        if (!PyUnicode_CheckExact(v) || PyUnicode_GET_LENGTH(v) == 0) return OFF_PATH;
        if (i) rc = PUT_LIT(b, ",");
        if (rc == 0) rc = put_text(b, KEY_NAMES[order[i]], (Py_ssize_t)strlen(KEY_NAMES[order[i]]));
        if (rc == 0) rc = PUT_LIT(b, ":");
        if (rc == 0) rc = put_str(b, v);
    }
    return rc ? rc : PUT_LIT(b, "}");
}

/* -- the change ----------------------------------------------------------------------------------- */
/* The header's keys in sorted order, "fields" and "resolution" among them; what each must be. */
typedef enum { TEXT, TEXT_OR_NULL, BOOL, SEQ, BASE, FIELDS, RESOLUTION } Kind;
static const struct { int key; Kind kind; } LAYOUT[] = {
    {K_AGENCY, TEXT},        {K_BASE, BASE}, {K_COLLECTION, TEXT}, {K_DELETED, BOOL},     {K_DEVICE, TEXT},
    {K_FIELDS, FIELDS},      {K_HLC, TEXT},  {K_ID, TEXT},         {K_PREV, TEXT_OR_NULL}, {K_RECORD_ID, TEXT},
    {K_RESOLUTION, RESOLUTION}, {K_SEQ, SEQ},
};

static int put_change(Buf *b, PyObject *change, const char *fp, Py_ssize_t fpn) {
    Py_ssize_t known = 0;
    PyObject *signature = PyDict_GetItemWithError(change, KEYS[K_SIGNATURE]);
    if (signature == NULL && PyErr_Occurred()) return -1;
    known += signature != NULL;
    int rc = PUT_LIT(b, "{");
    int first = 1;
    for (size_t i = 0; rc == 0 && i < sizeof LAYOUT / sizeof LAYOUT[0]; i++) {
        int key = LAYOUT[i].key;
        PyObject *v = PyDict_GetItemWithError(change, KEYS[key]);
        if (v == NULL) {
            if (PyErr_Occurred()) return -1;
            if (key == K_RESOLUTION) continue; /* the one optional key */
            return OFF_PATH;
        }
        known++;
        if (!first) rc = PUT_LIT(b, ",");
        first = 0;
        if (rc == 0) rc = put_text(b, KEY_NAMES[key], (Py_ssize_t)strlen(KEY_NAMES[key]));
        if (rc == 0) rc = PUT_LIT(b, ":");
        if (rc) break;
        switch (LAYOUT[i].kind) {
        case TEXT: rc = is_text(v) ? put_str(b, v) : OFF_PATH; break;
        case TEXT_OR_NULL: rc = v == Py_None ? PUT_LIT(b, "null") : is_text(v) ? put_str(b, v) : OFF_PATH; break;
        case BOOL: rc = v == Py_True ? PUT_LIT(b, "true") : v == Py_False ? PUT_LIT(b, "false") : OFF_PATH; break;
        case SEQ: rc = PyLong_CheckExact(v) ? put_int(b, v) : OFF_PATH; break;
        case BASE: rc = PyDict_CheckExact(v) ? put_base(b, v) : OFF_PATH; break;
        case FIELDS: rc = PyDict_CheckExact(v) ? put_fields(b, v, fp, fpn) : OFF_PATH; break;
        case RESOLUTION: rc = put_resolution(b, v); break;
        }
    }
    if (rc == 0 && known != PyDict_GET_SIZE(change)) rc = OFF_PATH; /* a key nothing signs */
    return rc ? rc : PUT_LIT(b, "}");
}

static PyObject *signed_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "signed_bytes(change, change_prefix: bytes, field_prefix: bytes)");
        return NULL;
    }
    if (!PyDict_CheckExact(args[0]) || !text_keys_only(args[0])) Py_RETURN_NONE;
    Buf b;
    buf_init(&b);
    int rc = put(&b, PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]));
    if (rc == 0) rc = put_change(&b, args[0], PyBytes_AS_STRING(args[2]), PyBytes_GET_SIZE(args[2]));
    PyObject *out = rc == 0 ? PyBytes_FromStringAndSize(b.data, b.len) : NULL;
    buf_free(&b);
    if (rc == OFF_PATH) Py_RETURN_NONE;
    return out;
}

static PyMethodDef METHODS[] = {
    {"signed_bytes", (PyCFunction)(void (*)(void))signed_bytes, METH_FASTCALL,
     "signed_bytes(change, change_prefix, field_prefix) -> bytes | None: the change's signed bytes, or None\n"
     "when it is not in the common shape (the reference path in crypto.changes decides then)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "crypto._speedups", NULL, -1, METHODS, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__speedups(void) {
    memset(B64INDEX, -1, sizeof B64INDEX);
    for (int i = 0; i < 64; i++) B64INDEX[(unsigned char)B64URL[i]] = (signed char)i;
    for (int i = 0; i < K_COUNT; i++)
        if ((KEYS[i] = PyUnicode_InternFromString(KEY_NAMES[i])) == NULL) {
            while (i--) Py_CLEAR(KEYS[i]);
            return NULL;
        }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    SHA256_MD = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    SHA256_MD = EVP_sha256();
#endif
    if (SHA256_MD == NULL || (SHA256_CTX_ = EVP_MD_CTX_new()) == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256 here");
        return NULL;
    }
    PyObject *module = PyModule_Create(&MODULE);
    if (module != NULL && PyModule_AddStringConstant(module, "SOURCE_SHA256", SOURCE_SHA256) < 0) Py_CLEAR(module);
    return module;
}

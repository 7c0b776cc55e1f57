/*
** The standard modules query code may import besides lmql, dataclasses and
** typing (class.c): json (loads, dumps), math and re (its functions are
** modules_re.c's). Each is a static module
** value with a table of static members; class.c's import statements and
** attribute lookups ask here for the modules it does not own.
*/
#include "modules.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "regex_match.h"
#include "utf8.h"

static struct lmql_val *oom(struct lmql__err *err) {
    lmql__err_nomem(err);
    return NULL;
}

static int n_positional(int argc, const char **names) {
    int n = 0;
    while (n < argc && !names[n]) n++;
    return n;
}

/* ---------------------------------------------------------------- json -- */

/* json.loads(s): numbers as json.h reads values (exact when no machine
** number holds them). */
static struct lmql_val *json_loads(void *ud, int argc, struct lmql_val **argv, const char **names,
                                   struct lmql__err *err) {
    (void)ud;
    if (argc != 1 || names[0]) return lmql__errp(err, "TypeError: json.loads() takes one string");
    if (argv[0]->kind != LMQL_V_STR)
        return lmql__errp(err, "TypeError: the JSON object must be str, not %s", lmql__val_type_name(argv[0]));
    struct lmql__err je = {0};
    struct lmql_val *v = lmql__json_parse(argv[0]->u.str.s, argv[0]->u.str.len, &je);
    if (!v && je.status == LMQL_ERR_NOMEM) return oom(err);
    if (!v) return lmql__errp(err, "json.decoder.JSONDecodeError: %s", je.msg);
    return v;
}

/* Non-ASCII characters as \uXXXX (surrogate pairs past U+FFFF): Python's
** json.dumps with ensure_ascii=True, its default. They only occur inside
** strings of the JSON text, so the whole text can be rewritten. */
static int ascii_only(struct lmql__buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (lmql__buf_add(out, s + i, 1)) return -1;
            i++;
            continue;
        }
        uint32_t cp = 0;
        size_t len = lmql__utf8_decode((const unsigned char *)s + i, n - i, &cp);
        LMQL_ASSERT(len >= 2);   /* our JSON writer writes valid UTF-8 */
        if (len < 2) return -1;
        i += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            if (lmql__buf_addf(out, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))) return -1;
        } else if (lmql__buf_addf(out, "\\u%04x", cp)) {
            return -1;
        }
    }
    return 0;
}

/* json.dumps(obj, ensure_ascii=True, sort_keys=False): separators ", " and
** ": " as Python's default; indent is not supported. */
static struct lmql_val *json_dumps(void *ud, int argc, struct lmql_val **argv, const char **names,
                                   struct lmql__err *err) {
    (void)ud;
    int np = n_positional(argc, names);
    if (np != 1) return lmql__errp(err, "TypeError: json.dumps() takes one object");
    bool ensure_ascii = true;
    for (int i = np; i < argc; i++) {
        if (!strcmp(names[i], "ensure_ascii")) ensure_ascii = lmql__val_truthy(argv[i]);
        else if (!strcmp(names[i], "indent") && argv[i]->kind == LMQL_V_NONE) continue;
        else
            return lmql__errp(err, "TypeError: json.dumps() argument '%s' is not supported (ensure_ascii is)", names[i]);
    }
    struct lmql__buf b = {0}, a = {0};
    if (lmql__val_json_into(&b, argv[0])) {
        const char *why = lmql__val_error();
        lmql__buf_free(&b);
        return why ? lmql__errp(err, "%s", why) : oom(err);
    }
    struct lmql_val *s = NULL;
    if (!ensure_ascii) s = lmql__val_str(b.data ? b.data : "", b.len);
    else if (!ascii_only(&a, b.data ? b.data : "", b.len)) s = lmql__val_str(a.data ? a.data : "", a.len);
    lmql__buf_free(&b);
    lmql__buf_free(&a);
    return s ? s : oom(err);
}

/* ---------------------------------------------------------------- math -- */

static bool num_arg(const struct lmql_val *v, double *x) {
    if (v->kind == LMQL_V_INT) *x = (double)v->u.i;
    else if (v->kind == LMQL_V_BOOL) *x = v->u.b;
    else if (v->kind == LMQL_V_FLOAT) *x = v->u.f;
    else return false;
    return true;
}

enum mfn {
    M_SQRT, M_EXP, M_LOG, M_LOG2, M_LOG10, M_SIN, M_COS, M_TAN, M_ASIN, M_ACOS, M_ATAN, M_FABS,
    M_FLOOR, M_CEIL, M_TRUNC, M_POW, M_ATAN2, M_ISNAN, M_ISINF, M_ISFINITE, M_ISCLOSE
};

/* Python's int() of a double that is integral: an error past 64 bits. */
static struct lmql_val *int_of(double r, const char *fn, struct lmql__err *err) {
    if (isnan(r)) return lmql__errp(err, "ValueError: cannot convert float NaN to integer (math.%s)", fn);
    if (isinf(r)) return lmql__errp(err, "OverflowError: cannot convert float infinity to integer (math.%s)", fn);
    if (r < -9223372036854775808.0 || r >= 9223372036854775808.0)
        return lmql__errp(err, "OverflowError: math.%s(): the result does not fit in 64 bits", fn);
    struct lmql_val *v = lmql__val_int((int64_t)r);
    return v ? v : oom(err);
}

static struct lmql_val *math_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                struct lmql__err *err) {
    static const struct { const char *name; int min, max; } info[] = {
        [M_SQRT] = {"sqrt", 1, 1},   [M_EXP] = {"exp", 1, 1},     [M_LOG] = {"log", 1, 2},
        [M_LOG2] = {"log2", 1, 1},   [M_LOG10] = {"log10", 1, 1}, [M_SIN] = {"sin", 1, 1},
        [M_COS] = {"cos", 1, 1},     [M_TAN] = {"tan", 1, 1},     [M_ASIN] = {"asin", 1, 1},
        [M_ACOS] = {"acos", 1, 1},   [M_ATAN] = {"atan", 1, 1},   [M_FABS] = {"fabs", 1, 1},
        [M_FLOOR] = {"floor", 1, 1}, [M_CEIL] = {"ceil", 1, 1},   [M_TRUNC] = {"trunc", 1, 1},
        [M_POW] = {"pow", 2, 2},     [M_ATAN2] = {"atan2", 2, 2}, [M_ISNAN] = {"isnan", 1, 1},
        [M_ISINF] = {"isinf", 1, 1}, [M_ISFINITE] = {"isfinite", 1, 1}, [M_ISCLOSE] = {"isclose", 2, 2},
    };
    enum mfn f = (enum mfn)(uintptr_t)ud;
    const char *fn = info[f].name;
    int np = n_positional(argc, names);
    if (np < info[f].min || np > info[f].max || (np != argc && f != M_ISCLOSE))
        return lmql__errp(err, "TypeError: math.%s() takes %d argument%s", fn, info[f].min, info[f].min == 1 ? "" : "s");
    double x[2] = {0, 0};
    for (int i = 0; i < np; i++)
        if (!num_arg(argv[i], &x[i]))
            return lmql__errp(err, "TypeError: must be real number, not %s (math.%s)", lmql__val_type_name(argv[i]), fn);
    /* floor/ceil/trunc of an int is that int, exactly */
    if ((f == M_FLOOR || f == M_CEIL || f == M_TRUNC) && argv[0]->kind != LMQL_V_FLOAT)
        return lmql__val_int(argv[0]->kind == LMQL_V_INT ? argv[0]->u.i : argv[0]->u.b);
    double r = 0;
    bool domain = false;
    switch (f) {
    case M_SQRT: domain = x[0] < 0; r = sqrt(x[0]); break;
    case M_EXP: r = exp(x[0]); break;
    case M_LOG:
        domain = x[0] <= 0 || (np == 2 && (x[1] <= 0 || x[1] == 1));
        r = np == 2 ? log(x[0]) / log(x[1]) : log(x[0]);
        break;
    case M_LOG2: domain = x[0] <= 0; r = log2(x[0]); break;
    case M_LOG10: domain = x[0] <= 0; r = log10(x[0]); break;
    case M_SIN: domain = isinf(x[0]); r = sin(x[0]); break;
    case M_COS: domain = isinf(x[0]); r = cos(x[0]); break;
    case M_TAN: domain = isinf(x[0]); r = tan(x[0]); break;
    case M_ASIN: domain = x[0] < -1 || x[0] > 1; r = asin(x[0]); break;
    case M_ACOS: domain = x[0] < -1 || x[0] > 1; r = acos(x[0]); break;
    case M_ATAN: r = atan(x[0]); break;
    case M_FABS: r = fabs(x[0]); break;
    case M_FLOOR: return int_of(floor(x[0]), fn, err);
    case M_CEIL: return int_of(ceil(x[0]), fn, err);
    case M_TRUNC: return int_of(trunc(x[0]), fn, err);
    case M_POW:
        domain = (x[0] == 0 && x[1] < 0) || (x[0] < 0 && x[1] != floor(x[1]));
        r = pow(x[0], x[1]);
        break;
    case M_ATAN2: r = atan2(x[0], x[1]); break;
    case M_ISNAN: return lmql__val_bool(isnan(x[0]));
    case M_ISINF: return lmql__val_bool(isinf(x[0]));
    case M_ISFINITE: return lmql__val_bool(isfinite(x[0]));
    case M_ISCLOSE: {
        double rel = 1e-9, abs_tol = 0;
        for (int i = np; i < argc; i++) {
            double *t = !strcmp(names[i], "rel_tol") ? &rel : !strcmp(names[i], "abs_tol") ? &abs_tol : NULL;
            if (!t || !num_arg(argv[i], t))
                return lmql__errp(err, "TypeError: math.isclose() takes rel_tol= and abs_tol= numbers");
        }
        if (x[0] == x[1]) return lmql__val_bool(true);
        if (isinf(x[0]) || isinf(x[1])) return lmql__val_bool(false);
        double d = fabs(x[1] - x[0]);
        return lmql__val_bool(d <= fabs(rel * x[1]) || d <= fabs(rel * x[0]) || d <= abs_tol);
    }
    }
    if (domain || (isnan(r) && !isnan(x[0]) && !isnan(x[1]))) return lmql__errp(err, "ValueError: math domain error");
    if (isinf(r) && isfinite(x[0]) && isfinite(x[1]) && f != M_TAN)
        return lmql__errp(err, "OverflowError: math range error (math.%s)", fn);
    struct lmql_val *v = lmql__val_float(r);
    return v ? v : oom(err);
}

/* ------------------------------------------------------------ the table -- */

#define FN(NAME, FUNC, DATA) {.kind = LMQL_V_FUNC, .refs = -1, .u.func = {.name = NAME, .fn = FUNC, .ud = (void *)(uintptr_t)(DATA)}}
#define MATH(n, id) FN(n, math_fn, id)
#define CONST(x) {.kind = LMQL_V_FLOAT, .refs = -1, .u.f = (x)}

static struct lmql_val g_json_members[] = {FN("loads", json_loads, 0), FN("dumps", json_dumps, 0)};
static const char *const g_json_names[] = {"loads", "dumps"};

static struct lmql_val g_math_members[] = {
    MATH("sqrt", M_SQRT),   MATH("exp", M_EXP),       MATH("log", M_LOG),         MATH("log2", M_LOG2),
    MATH("log10", M_LOG10), MATH("sin", M_SIN),       MATH("cos", M_COS),         MATH("tan", M_TAN),
    MATH("asin", M_ASIN),   MATH("acos", M_ACOS),     MATH("atan", M_ATAN),       MATH("fabs", M_FABS),
    MATH("floor", M_FLOOR), MATH("ceil", M_CEIL),     MATH("trunc", M_TRUNC),     MATH("pow", M_POW),
    MATH("atan2", M_ATAN2), MATH("isnan", M_ISNAN),   MATH("isinf", M_ISINF),     MATH("isfinite", M_ISFINITE),
    MATH("isclose", M_ISCLOSE),
    CONST(3.141592653589793), CONST(2.718281828459045), CONST(6.283185307179586), CONST(INFINITY), CONST(NAN),
};
static const char *const g_math_names[] = {
    "sqrt", "exp",  "log",   "log2",  "log10", "sin", "cos",   "tan",   "asin",     "acos", "atan",
    "fabs", "floor", "ceil", "trunc", "pow",   "atan2", "isnan", "isinf", "isfinite", "isclose",
    "pi",   "e",     "tau",  "inf",   "nan",
};

#define RE(n, op) FN(n, lmql__re_fn, op)
#define ICONST(x) {.kind = LMQL_V_INT, .refs = -1, .u.i = (x)}
static struct lmql_val g_re_members[] = {
    RE("search", RE_SEARCH),   RE("match", RE_MATCH), RE("fullmatch", RE_FULLMATCH), RE("findall", RE_FINDALL),
    RE("finditer", RE_FINDITER), RE("sub", RE_SUB),   RE("subn", RE_SUBN),           RE("split", RE_SPLIT),
    RE("compile", RE_COMPILE), RE("escape", RE_ESCAPE), RE("purge", RE_PURGE),
    ICONST(LMQL_RX_IGNORECASE), ICONST(LMQL_RX_IGNORECASE), ICONST(LMQL_RX_MULTILINE), ICONST(LMQL_RX_MULTILINE),
    ICONST(LMQL_RX_DOTALL), ICONST(LMQL_RX_DOTALL), ICONST(LMQL_RX_ASCII), ICONST(LMQL_RX_ASCII),
    ICONST(LMQL_RX_UNICODE), ICONST(LMQL_RX_UNICODE), ICONST(LMQL_RX_VERBOSE), ICONST(LMQL_RX_VERBOSE),
    ICONST(0),
};
static const char *const g_re_names[] = {
    "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split", "compile", "escape", "purge",
    "I", "IGNORECASE", "M", "MULTILINE", "S", "DOTALL", "A", "ASCII", "U", "UNICODE", "X", "VERBOSE", "NOFLAG",
};

static struct lmql_val g_json = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", (void *)"json", NULL}};
static struct lmql_val g_math = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", (void *)"math", NULL}};
static struct lmql_val g_re = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", (void *)"re", NULL}};

static const struct {
    struct lmql_val *mod;
    struct lmql_val *members;
    const char *const *names;
    size_t n;
} g_modules[] = {
    {&g_json, g_json_members, g_json_names, sizeof g_json_names / sizeof *g_json_names},
    {&g_math, g_math_members, g_math_names, sizeof g_math_names / sizeof *g_math_names},
    {&g_re, g_re_members, g_re_names, sizeof g_re_names / sizeof *g_re_names},
};
#define N_MODULES (sizeof g_modules / sizeof *g_modules)

struct lmql_val *lmql__std_module(const char *name) {
    for (size_t i = 0; i < N_MODULES; i++)
        if (!strcmp((const char *)g_modules[i].mod->u.obj.ptr, name)) return g_modules[i].mod;
    return NULL;
}

bool lmql__is_std_module(const struct lmql_val *v) {
    for (size_t i = 0; i < N_MODULES; i++)
        if (v == g_modules[i].mod) return true;
    return false;
}

struct lmql_val *lmql__std_module_attr(const struct lmql_val *mod, const char *name) {
    for (size_t i = 0; i < N_MODULES; i++) {
        if (mod != g_modules[i].mod) continue;
        LMQL_ASSERT(sizeof g_json_members / sizeof *g_json_members == sizeof g_json_names / sizeof *g_json_names &&
                    sizeof g_math_members / sizeof *g_math_members == sizeof g_math_names / sizeof *g_math_names &&
                    sizeof g_re_members / sizeof *g_re_members == sizeof g_re_names / sizeof *g_re_names);
        for (size_t k = 0; k < g_modules[i].n; k++)
            if (!strcmp(g_modules[i].names[k], name)) return &g_modules[i].members[k];
    }
    return NULL;
}

void lmql__std_module_list(const struct lmql_val *mod, struct lmql__buf *out) {
    for (size_t i = 0; i < N_MODULES; i++) {
        if (mod != g_modules[i].mod) continue;
        for (size_t k = 0; k < g_modules[i].n; k++)
            lmql__buf_addf(out, "%s%s", k ? ", " : "", g_modules[i].names[k]);
    }
}

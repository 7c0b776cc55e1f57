/*
** A strict JSON reader producing runtime values.
*/
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    const char *s;
    size_t n, i;
    int depth;
    struct lmql__err *err;
    bool doubles;   /* numbers no int64 holds become doubles, not exact numbers */
};

static struct lmql_val *fail(struct reader *r, const char *what) {
    lmql__errf(r->err, "invalid JSON at byte %zu: %s", r->i, what);
    return NULL;
}

static void skip_ws(struct reader *r) {
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r')) r->i++;
}

static struct lmql_val *read_string(struct reader *r) {
    struct lmql__buf b = {0};
    const char *bad = lmql__buf_reserve(&b, 0) ? "out of memory" : lmql__json_unescape(r->s, r->n, &r->i, &b);
    struct lmql_val *v = bad ? NULL : lmql__val_str(b.data ? b.data : "", b.len);
    lmql__buf_free(&b);
    return bad ? fail(r, bad) : v;
}

static struct lmql_val *read_value(struct reader *r);

/* A number becomes an int when it is integral and fits 64 bits, a float
** when it has a fraction or exponent and a finite double that is not 0
** unless the number is 0 (a fraction with more digits than a double holds
** becomes the nearest double, as Python's json.loads makes it). Anything
** else keeps its text exactly (lmql__val_num): an integer beyond 64 bits,
** 1e400, 1e-400, never inf or a silent 0. */
static struct lmql_val *read_number(struct reader *r) {
    double d;
    int64_t iv;
    bool is_int;
    size_t start = r->i;
    const char *bad = lmql__json_number(r->s, r->n, &r->i, &d, &iv, &is_int);
    if (bad) return fail(r, bad);
    if (is_int) return lmql__val_int(iv);
    if (r->doubles) return lmql__val_float(d);
    bool integral = true, nonzero = false;
    for (size_t k = start; k < r->i; k++) {
        char c = r->s[k];
        if (c == 'e' || c == 'E') {
            integral = false;
            break;
        }
        integral &= c != '.';
        nonzero |= c >= '1' && c <= '9';
    }
    struct lmql_val *v = !integral && isfinite(d) && (d != 0 || !nonzero) ? lmql__val_float(d)
                                                                            : lmql__val_num(r->s + start, r->i - start);
    return v ? v : fail(r, "out of memory");
}

static struct lmql_val *read_container(struct reader *r, bool object) {
    if (++r->depth > 256) return fail(r, "nesting too deep");
    struct lmql_val *c = object ? lmql__val_dict() : lmql__val_list(0);
    if (!c) return fail(r, "out of memory");
    r->i++;
    skip_ws(r);
    if (r->i < r->n && r->s[r->i] == (object ? '}' : ']')) { r->i++; r->depth--; return c; }
    for (;;) {
        skip_ws(r);
        struct lmql_val *key = NULL;
        if (object) {
            if (r->i >= r->n || r->s[r->i] != '"') { lmql__val_unref(c); return fail(r, "expected a string key"); }
            if (!(key = read_string(r))) { lmql__val_unref(c); return NULL; }
            skip_ws(r);
            if (r->i >= r->n || r->s[r->i] != ':') { lmql__val_unref(key); lmql__val_unref(c); return fail(r, "expected ':'"); }
            r->i++;
        }
        struct lmql_val *v = read_value(r);
        if (!v) { lmql__val_unref(key); lmql__val_unref(c); return NULL; }
        if (object ? lmql__dict_set(c, key, v) : lmql__list_push(c, v)) { lmql__val_unref(c); return fail(r, "out of memory"); }
        skip_ws(r);
        if (r->i < r->n && r->s[r->i] == ',') { r->i++; continue; }
        if (r->i < r->n && r->s[r->i] == (object ? '}' : ']')) { r->i++; r->depth--; return c; }
        lmql__val_unref(c);
        return fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool word(struct reader *r, const char *w) {
    size_t k = strlen(w);
    if (r->i + k <= r->n && !memcmp(r->s + r->i, w, k)) { r->i += k; return true; }
    return false;
}

static struct lmql_val *read_value(struct reader *r) {
    skip_ws(r);
    if (r->i >= r->n) return fail(r, "unexpected end");
    char c = r->s[r->i];
    if (c == '{') return read_container(r, true);
    if (c == '[') return read_container(r, false);
    if (c == '"') return read_string(r);
    if (c == '-' || (c >= '0' && c <= '9')) return read_number(r);
    if (word(r, "true")) return &lmql__true;
    if (word(r, "false")) return &lmql__false;
    if (word(r, "null")) return &lmql__none;
    return fail(r, "unexpected character");
}

static struct lmql_val *parse(const char *text, size_t len, struct lmql__err *err, bool doubles) {
    struct reader r = {text, len, 0, 0, err, doubles};
    struct lmql_val *v = read_value(&r);
    if (!v) return NULL;
    skip_ws(&r);
    if (r.i != r.n) { lmql__val_unref(v); return fail(&r, "trailing characters"); }
    return v;
}

struct lmql_val *lmql__json_parse(const char *text, size_t len, struct lmql__err *err) {
    return parse(text, len, err, false);
}

struct lmql_val *lmql__json_parse_doubles(const char *text, size_t len, struct lmql__err *err) {
    return parse(text, len, err, true);
}

/*
** The regexes of numbers for the JSON Schema compiler: integer ranges as
** digit-string ranges, bounded non-integers as decimal ranges (fraction
** forms; a bound moved to the nearest double that keeps every admitted
** text valid for a validator comparing floats), multiples.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"

/* Digit strings x of length n with lo <= x <= hi (no grouping at the top:
** the caller wraps). */
static int rx_same_len(struct lmql__buf *b, const char *lo, const char *hi, size_t n) {
    size_t i = 0;
    while (i < n && lo[i] == hi[i]) i++;
    if (i > 0 && lmql__buf_add(b, lo, i)) return -1;
    if (i == n) return 0;
    size_t r = n - i - 1;
    bool lo_zero = true, hi_nine = true;
    for (size_t k = i + 1; k < n; k++) {
        lo_zero &= lo[k] == '0';
        hi_nine &= hi[k] == '9';
    }
    char nines[340], zeros[340];
    if (r >= sizeof nines) return -1;
    memset(nines, '9', r);
    memset(zeros, '0', r);
    /* lo[i] < hi[i]: lo[i] with lo's rest up to 9..9, the digits between
    ** with anything, hi[i] with 0..0 up to hi's rest; a full block joins the
    ** middle */
    int from = lo_zero ? lo[i] : lo[i] + 1, to = hi_nine ? hi[i] : hi[i] - 1;
    bool first = true;
    if (lmql__buf_adds(b, "(?:")) return -1;
    if (!lo_zero) {
        if (lmql__buf_add(b, &lo[i], 1) || lmql__buf_adds(b, "(?:") || rx_same_len(b, lo + i + 1, nines, r) ||
            lmql__buf_add(b, ")", 1))
            return -1;
        first = false;
    }
    if (from <= to) {
        if ((!first && lmql__buf_add(b, "|", 1)) || lmql__buf_addf(b, "[%c-%c]", from, to) ||
            (r && lmql__buf_addf(b, "\\d{%zu}", r)))
            return -1;
        first = false;
    }
    if (!hi_nine) {
        if ((!first && lmql__buf_add(b, "|", 1)) || lmql__buf_add(b, &hi[i], 1) || lmql__buf_adds(b, "(?:") ||
            rx_same_len(b, zeros, hi + i + 1, r) || lmql__buf_add(b, ")", 1))
            return -1;
    }
    return lmql__buf_add(b, ")", 1);
}

/* Integers without leading zeros in [lo, hi] (digit strings; hi NULL:
** unbounded). Appends alternatives separated by |, no grouping. */
static int rx_uint_range(struct lmql__buf *b, const char *lo, const char *hi) {
    size_t nl = strlen(lo), nh = hi ? strlen(hi) : 0;
    bool first = true;
    char from[330], to[330];
    size_t top = hi ? nh : nl;
    for (size_t len = nl; len <= top; len++) {
        if (len >= sizeof from) return -1;
        if (len == nl) memcpy(from, lo, nl + 1);
        else { from[0] = '1'; memset(from + 1, '0', len - 1); from[len] = 0; }
        if (hi && len == nh) memcpy(to, hi, nh + 1);
        else { memset(to, '9', len); to[len] = 0; }
        if (!first && lmql__buf_add(b, "|", 1)) return -1;
        first = false;
        if (rx_same_len(b, from, to, len)) return -1;
    }
    if (!hi && lmql__buf_addf(b, "|[1-9]\\d{%zu,}", nl)) return -1;
    return 0;
}

/* Compare a bound's value with x: <0, 0, >0. */
static int cmp_val_d(const struct lmql_val *v, double x) {
    if (v->kind == LMQL_V_FLOAT) return v->u.f < x ? -1 : v->u.f > x;
    int64_t i = v->u.i;
    if (x >= 9223372036854775808.0) return -1;
    if (x < -9223372036854775808.0) return 1;
    int64_t t = (int64_t)x;   /* truncates toward zero */
    if (i != t) return i < t ? -1 : 1;
    double f = x - (double)t;
    return f > 0 ? -1 : f < 0 ? 1 : 0;
}

/* Integer bounds as int64 (clamped inward: a subset stays valid). *none:
** no bound. Returns false when no integer fits. */
static bool int_lo(const struct js_bound *bd, int64_t *out, bool *none) {
    *none = !bd->v;
    if (!bd->v) return true;
    if (bd->v->kind == LMQL_V_INT) {
        if (bd->excl && bd->v->u.i == INT64_MAX) return false;
        *out = bd->v->u.i + bd->excl;
        return true;
    }
    double d = bd->v->u.f;
    if (isnan(d)) return false;
    double f = bd->excl ? floor(d) + 1 : ceil(d);
    if (f >= 9223372036854775807.0) return false;
    *out = f < -9223372036854775807.0 ? INT64_MIN : (int64_t)f;
    return true;
}

static bool int_hi(const struct js_bound *bd, int64_t *out, bool *none) {
    *none = !bd->v;
    if (!bd->v) return true;
    if (bd->v->kind == LMQL_V_INT) {
        if (bd->excl && bd->v->u.i == INT64_MIN) return false;
        *out = bd->v->u.i - bd->excl;
        return true;
    }
    double d = bd->v->u.f;
    if (isnan(d)) return false;
    double f = bd->excl ? ceil(d) - 1 : floor(d);
    if (f < -9223372036854775807.0) return false;
    *out = f >= 9223372036854775807.0 ? INT64_MAX : (int64_t)f;
    return true;
}

static void u64s(char *s, uint64_t v) { snprintf(s, 24, "%llu", (unsigned long long)v); }

static uint64_t mag(int64_t v) { return v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v; }

/* Integer literals in [lo, hi] (flags: unbounded sides; lo <= hi). 1:
** none. */
static int rx_int_range(struct lmql__buf *b, int64_t lo, bool lo_none, int64_t hi, bool hi_none) {
    bool any = false;
    char x[24], y[24];
    if (lo_none || lo < 0) {
        /* negatives: magnitudes [max(1, |hi|), |lo|] */
        u64s(x, !hi_none && hi < 0 ? mag(hi) : 1);
        if (!lo_none) u64s(y, mag(lo));
        if (lmql__buf_adds(b, "\\-(?:") || rx_uint_range(b, x, lo_none ? NULL : y) || lmql__buf_add(b, ")", 1)) return -1;
        any = true;
    }
    if (hi_none || hi >= 0) {
        u64s(x, lo_none || lo < 0 ? 0 : (uint64_t)lo);
        if (!hi_none) u64s(y, (uint64_t)hi);
        if ((any && lmql__buf_add(b, "|", 1)) || lmql__buf_adds(b, "(?:") || rx_uint_range(b, x, hi_none ? NULL : y) ||
            lmql__buf_add(b, ")", 1))
            return -1;
        any = true;
    }
    return any ? 0 : 1;
}

/* A decimal: integer digits (no leading zeros) and fraction digits (no
** trailing zeros). */
struct dec {
    bool neg;
    char ip[340], fp[360];
};

static void dec_of(double d, struct dec *o) {
    char dig[32];
    int e, n = js_shortest_digits(d, dig, &e);
    o->neg = d < 0;
    if (d == 0) {
        strcpy(o->ip, "0");
        o->fp[0] = 0;
        return;
    }
    if (e >= 0) {
        int k = 0;
        for (; k <= e; k++) o->ip[k] = k < n ? dig[k] : '0';
        o->ip[k] = 0;
        int m = 0;
        for (int j = e + 1; j < n; j++) o->fp[m++] = dig[j];
        o->fp[m] = 0;
    } else {
        strcpy(o->ip, "0");
        int m = 0;
        for (int j = 0; j < -e - 1; j++) o->fp[m++] = '0';
        for (int j = 0; j < n; j++) o->fp[m++] = dig[j];
        o->fp[m] = 0;
    }
}

/* Fraction digit strings F (non-empty) with 0.F >= 0.f (ge) or <= (le). */
static int rx_frac_ge(struct lmql__buf *b, const char *f) {
    if (!*f) return lmql__buf_adds(b, "\\d+");
    size_t z = 0;
    while (f[z] == '0') z++;
    if (z > 0) {
        /* a non-zero digit among the first z, or z zeros then the rest */
        return lmql__buf_addf(b, "(?:0{0,%zu}[1-9]\\d*|0{%zu}", z - 1, z) || rx_frac_ge(b, f + z) || lmql__buf_add(b, ")", 1) ? -1 : 0;
    }
    if (lmql__buf_adds(b, "(?:")) return -1;
    if (f[0] < '9' && lmql__buf_addf(b, "[%c-9]\\d*|", f[0] + 1)) return -1;
    if (lmql__buf_add(b, f, 1)) return -1;
    if (f[1] ? rx_frac_ge(b, f + 1) : lmql__buf_adds(b, "\\d*")) return -1;
    return lmql__buf_add(b, ")", 1);
}

static int rx_frac_le(struct lmql__buf *b, const char *f) {
    if (!*f) return lmql__buf_adds(b, "0+");
    size_t z = 0;
    while (f[z] == '0') z++;
    if (z > 0) return lmql__buf_addf(b, "(?:0{1,%zu}|0{%zu}", z, z) || rx_frac_le(b, f + z) || lmql__buf_add(b, ")", 1) ? -1 : 0;
    if (lmql__buf_adds(b, "(?:")) return -1;
    if (f[0] > '0' && lmql__buf_addf(b, "[0-%c]\\d*|", f[0] - 1)) return -1;
    if (lmql__buf_add(b, f, 1)) return -1;
    if (f[1]) {
        if (lmql__buf_adds(b, "(?:") || rx_frac_le(b, f + 1) || lmql__buf_adds(b, ")?")) return -1;
    } else if (lmql__buf_adds(b, "0*")) {
        return -1;
    }
    return lmql__buf_add(b, ")", 1);
}

/* Fraction digit strings F (non-empty) with 0.a <= 0.F <= 0.z (a < z, both
** without trailing zeros). With a and z padded to one length, let i be
** where they first differ: F either stops within the zeros that end a
** before i (its value is a), or follows their common prefix and then at i
** takes a's digit (and stays >= a's rest), one in between, or z's digit
** (and stays <= z's rest). */
static int rx_frac_range(struct lmql__buf *b, const char *a, const char *z) {
    if (!*a) return rx_frac_le(b, z);
    if (!strcmp(a, z)) return lmql__buf_add(b, a, strlen(a)) || lmql__buf_adds(b, "0*");
    size_t la = strlen(a), lz = strlen(z), n = la > lz ? la : lz, i = 0;
    char pa[400], pz[400];
    if (n >= sizeof pa) return -1;
    memset(pa, '0', n);
    memset(pz, '0', n);
    memcpy(pa, a, la);
    memcpy(pz, z, lz);
    pa[n] = pz[n] = 0;
    while (i < n && pa[i] == pz[i]) i++;
    if (i == n) return -1;   /* equal values: cannot happen with a < z */
    if (lmql__buf_adds(b, "(?:")) return -1;
    if (la <= i) {
        if (lmql__buf_add(b, a, la) || lmql__buf_addf(b, "(?:0{0,%zu}|0{%zu}(?:", i - la, i - la)) return -1;
    } else if (lmql__buf_add(b, pz, i) || lmql__buf_adds(b, "(?:(?:")) {
        return -1;
    }
    /* at i: pa[i] < pz[i] */
    char ar[400], zr[400];
    strcpy(ar, pa + i + 1);
    strcpy(zr, pz + i + 1);
    for (size_t k = strlen(ar); k > 0 && ar[k - 1] == '0'; k--) ar[k - 1] = 0;
    for (size_t k = strlen(zr); k > 0 && zr[k - 1] == '0'; k--) zr[k - 1] = 0;
    if (lmql__buf_add(b, &pa[i], 1) || (*ar ? rx_frac_ge(b, ar) : lmql__buf_adds(b, "\\d*"))) return -1;
    if (pa[i] + 1 <= pz[i] - 1 && lmql__buf_addf(b, "|[%c-%c]\\d*", pa[i] + 1, pz[i] - 1)) return -1;
    if (lmql__buf_addf(b, "|%c", pz[i])) return -1;
    if (*zr) {
        if (lmql__buf_adds(b, "(?:") || rx_frac_le(b, zr) || lmql__buf_adds(b, ")?")) return -1;
    } else if (lmql__buf_adds(b, "0*")) {
        return -1;
    }
    return lmql__buf_adds(b, ")))");
}

static int dec_cmp_ip(const char *x, const char *y) {
    size_t a = strlen(x), b = strlen(y);
    if (a != b) return a < b ? -1 : 1;
    return strcmp(x, y);
}

/* ip + 1 or ip - 1 (ip > 0 for minus) as digit strings. */
static void ip_add(const char *ip, int delta, char *out) {
    size_t n = strlen(ip);
    char tmp[342];
    memcpy(tmp + 1, ip, n + 1);
    tmp[0] = '0';
    for (size_t k = n; k >= 1; k--) {
        int d = tmp[k] - '0' + delta;
        if (d >= 0 && d <= 9) { tmp[k] = (char)('0' + d); break; }
        tmp[k] = delta > 0 ? '0' : '9';
        if (k == 1) tmp[0] = '1';
    }
    const char *s = tmp;
    while (*s == '0' && s[1]) s++;
    strcpy(out, s);
}

/* Magnitudes I.F (fraction forms) in [lo, hi] (NULL: unbounded). */
static int rx_mag(struct lmql__buf *b, const struct dec *lo, const struct dec *hi) {
    static const struct dec zero = {false, "0", ""};
    if (!lo) lo = &zero;
    char x[342], y[342];
    if (hi && !strcmp(lo->ip, hi->ip))
        return lmql__buf_addf(b, "%s\\.", lo->ip) || rx_frac_range(b, lo->fp, hi->fp) ? -1 : 0;
    if (lmql__buf_addf(b, "%s\\.", lo->ip) || rx_frac_ge(b, lo->fp)) return -1;
    ip_add(lo->ip, 1, x);
    if (hi) {
        if (strcmp(hi->ip, "0")) ip_add(hi->ip, -1, y);
        if (strcmp(hi->ip, "0") && dec_cmp_ip(x, y) <= 0) {
            if (lmql__buf_adds(b, "|(?:") || rx_uint_range(b, x, y) || lmql__buf_adds(b, ")\\.\\d+")) return -1;
        }
        return lmql__buf_addf(b, "|%s\\.", hi->ip) || rx_frac_le(b, hi->fp) ? -1 : 0;
    }
    return lmql__buf_adds(b, "|(?:") || rx_uint_range(b, x, NULL) || lmql__buf_adds(b, ")\\.\\d+") ? -1 : 0;
}

/* The double bound for fraction forms: float(t) >= lo (or <= hi) makes t
** valid, and a decimal t >= repr(lo) reads as a float >= lo (rounding is
** monotonic). An exclusive bound moves to the next double. Returns false
** when nothing fits. */
static bool frac_bound(const struct js_bound *bd, bool upper, double *out) {
    const struct lmql_val *v = bd->v;
    double toward = upper ? -INFINITY : INFINITY;
    double d;
    if (v->kind == LMQL_V_FLOAT) {
        d = v->u.f;
        if (isnan(d)) return false;
        if (bd->excl) d = nextafter(d, toward);
    } else {
        d = (double)v->u.i;
        int k = cmp_val_d(v, d);   /* the int against its double */
        /* lower: need d >= i (> i when exclusive) */
        if (!upper && (k > 0 || (bd->excl && k == 0))) d = nextafter(d, toward);
        if (upper && (k < 0 || (bd->excl && k == 0))) d = nextafter(d, toward);
    }
    *out = d;
    return !isinf(d) || (upper ? d > 0 : d < 0);
}

static int rx_frac_forms(struct lmql__buf *b, const struct js_node *n) {
    double lo = -INFINITY, hi = INFINITY;
    if (n->lo.v && !frac_bound(&n->lo, false, &lo)) return 1;
    if (n->hi.v && !frac_bound(&n->hi, true, &hi)) return 1;
    if (lo > hi) return 1;
    struct dec *dl = lmql__malloc(sizeof *dl), *dh = lmql__malloc(sizeof *dh);
    if (!dl || !dh) {
        free(dl);
        free(dh);
        return -1;
    }
    int rc = 0;
    bool any = false;
    if (!isinf(lo)) dec_of(lo, dl);
    if (!isinf(hi)) dec_of(hi, dh);
    /* negative part: magnitudes in [max(0, -hi), -lo] */
    if (lo < 0 || (lo == 0 && hi >= 0)) {
        struct dec mlo, mhi;
        bool has_lo = hi < 0;
        if (has_lo) { mlo = *dh; mlo.neg = false; }
        if (!isinf(lo)) { mhi = *dl; mhi.neg = false; }
        if (lo < 0 || (lo == 0 && !signbit(lo))) {
            rc = lmql__buf_adds(b, "\\-(?:") || rx_mag(b, has_lo ? &mlo : NULL, isinf(lo) ? NULL : &mhi) ||
                 lmql__buf_add(b, ")", 1);
            any = true;
        }
    }
    if (!rc && hi >= 0) {
        struct dec plo, phi;
        bool has_lo = lo > 0;
        if (has_lo) plo = *dl;
        if (!isinf(hi)) phi = *dh;
        rc = (any && lmql__buf_add(b, "|", 1)) || lmql__buf_adds(b, "(?:") ||
             rx_mag(b, has_lo ? &plo : NULL, isinf(hi) ? NULL : &phi) || lmql__buf_add(b, ")", 1);
        any = true;
    }
    free(dl);
    free(dh);
    return rc ? -1 : any ? 0 : 1;
}

/* Multiples of k >= 2 as integer literals: every integer when the bounds
** are open and k divides a power of ten (the last digits decide), or the
** multiples listed one by one when the range is small. 1: none. */
static int rx_multiples(struct js_ctx *c, struct lmql__buf *b, const struct js_node *n, int64_t k) {
    int64_t lo = 0, hi = 0;
    bool lo_none, hi_none;
    if (!int_lo(&n->lo, &lo, &lo_none) || !int_hi(&n->hi, &hi, &hi_none)) return 1;
    if (!lo_none && !hi_none) {
        if (lo > hi) return 1;
        /* first multiple >= lo */
        int64_t m = lo % k == 0 ? lo : lo > 0 ? lo + (k - lo % k) : lo - lo % k;
        if (m > hi) return 1;
        if ((uint64_t)(hi - m) / (uint64_t)k >= 1000) goto refuse;
        bool first = true;
        for (int64_t v = m; v <= hi; v += k) {
            if (lmql__buf_addf(b, "%s%s%lld", first ? "" : "|", v < 0 ? "\\" : "", (long long)v)) return -1;
            first = false;
            if (v > INT64_MAX - k) break;
        }
        return 0;
    }
    if (!lo_none || !hi_none) goto refuse;
    int64_t p = 10;
    int j = 1;
    while (j <= 4 && p % k) { p *= 10; j++; }
    if (p % k) goto refuse;
    /* small ones: the multiples below 10^j; large ones end in such j digits */
    if (lmql__buf_adds(b, "\\-?(?:")) return -1;
    for (int64_t v = 0; v < p; v += k)
        if (lmql__buf_addf(b, "%s%lld", v ? "|" : "", (long long)v)) return -1;
    if (lmql__buf_addf(b, "|[1-9]\\d*(?:")) return -1;
    for (int64_t v = 0; v < p; v += k)
        if (lmql__buf_addf(b, "%s%0*lld", v ? "|" : "", j, (long long)v)) return -1;
    return lmql__buf_adds(b, "))");
refuse:
    js_fail(c, n->ptr, "multipleOf %lld with these bounds cannot be enforced exactly", (long long)k);
    return -1;
}

const char *js_rx_number(struct js_ctx *c, const struct js_node *n, unsigned types, bool *empty) {
    struct lmql__buf b = {0};
    int got_int = 1, got_frac = 1;
    *empty = false;
    bool bounded = n->lo.v || n->hi.v;
    if (n->mult >= 1) types &= ~(unsigned)JT_FRAC;   /* multiples: integer literals only */
    if (lmql__buf_adds(&b, "(?:")) goto oom;
    if (types & JT_INT) {
        if (n->mult > 1) {
            got_int = rx_multiples(c, &b, n, n->mult);
            if (got_int < 0) goto fail;
        } else if (!bounded) {
            got_int = lmql__buf_adds(&b, "\\-?(?:0|[1-9]\\d*)") ? -1 : 0;
        } else {
            int64_t lo = 0, hi = 0;
            bool lo_none, hi_none;
            if (!int_lo(&n->lo, &lo, &lo_none) || !int_hi(&n->hi, &hi, &hi_none) || (!lo_none && !hi_none && lo > hi))
                got_int = 1;
            else
                got_int = rx_int_range(&b, lo, lo_none, hi, hi_none);
        }
        if (got_int < 0) goto oom;
    }
    if (types & JT_FRAC) {
        size_t at = b.len;
        if (got_int == 0 && lmql__buf_add(&b, "|", 1)) goto oom;
        if (!bounded) {
            got_frac = lmql__buf_adds(&b, "\\-?(?:0|[1-9]\\d*)(?:\\.\\d+(?:[eE][\\+\\-]?\\d+)?|[eE][\\+\\-]?\\d+)") ? -1 : 0;
        } else {
            got_frac = rx_frac_forms(&b, n);
        }
        if (got_frac < 0) goto oom;
        if (got_frac == 1) b.len = at;
    }
    if (got_int && got_frac) {
        lmql__buf_free(&b);
        *empty = true;
        return NULL;
    }
    if (lmql__buf_add(&b, ")", 1)) goto oom;
    return js_buf_keep(c, &b);
oom:
    lmql__buf_free(&b);
    return c->failed ? NULL : js_oom(c);
fail:
    lmql__buf_free(&b);
    return NULL;
}

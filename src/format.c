/*
** Python's format mini-language for f-strings and str.format:
** [[fill]align][sign][0][width][,][.precision][type]
*/
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_align(char c) { return c == '<' || c == '>' || c == '^' || c == '='; }

int lmql__val_format(struct lmql__buf *out, const struct lmql_val *v, const char *spec, struct lmql__err *err) {
    const char *p = spec;
    char fill = ' ', align = 0, sign = '-', type = 0;
    bool zero = false, comma = false;
    long width = 0, prec = -1;
    if (p[0] && is_align(p[1])) { fill = p[0]; align = p[1]; p += 2; }
    else if (is_align(p[0])) { align = p[0]; p++; }
    if (*p == '+' || *p == '-' || *p == ' ') sign = *p++;
    if (*p == '0') { zero = true; p++; }
    while (*p >= '0' && *p <= '9') { width = width * 10 + (*p++ - '0'); if (width > 10000) return lmql__errf(err, "format width too large"); }
    if (*p == ',') { comma = true; p++; }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return lmql__errf(err, "format precision expected in '%s'", spec);
        prec = 0;
        while (*p >= '0' && *p <= '9') { prec = prec * 10 + (*p++ - '0'); if (prec > 100) return lmql__errf(err, "format precision too large"); }
    }
    if (*p) type = *p++;
    if (*p) return lmql__errf(err, "invalid format spec '%s'", spec);

    struct lmql__buf body = {0};
    bool numeric = v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT || v->kind == LMQL_V_BOOL;
    int rc = 0;
    if (type == 's' || (!type && !numeric)) {
        if (numeric && type == 's') return lmql__errf(err, "format code 's' is for strings");
        rc = lmql__val_str_into(&body, v);
        if (prec >= 0) body.len = lmql__utf8_offset(body.data, body.len, (size_t)prec);
        if (!align) align = '<';
    } else if (numeric) {
        double f = v->kind == LMQL_V_FLOAT ? v->u.f : v->kind == LMQL_V_INT ? (double)v->u.i : (double)v->u.b;
        long long i = v->kind == LMQL_V_INT ? v->u.i : v->kind == LMQL_V_BOOL ? v->u.b : 0;
        char tmp[512];
        const char *plus = sign == '+' ? "+" : sign == ' ' ? " " : "";
        if (!type && v->kind != LMQL_V_FLOAT) type = 'd';
        switch (type) {
        case 'd':
            if (v->kind == LMQL_V_FLOAT) return lmql__errf(err, "format code 'd' is for integers");
            snprintf(tmp, sizeof tmp, "%s%lld", i >= 0 ? plus : "", i);
            break;
        case 'x': case 'X': case 'o': case 'b':
            if (v->kind == LMQL_V_FLOAT) return lmql__errf(err, "format code '%c' is for integers", type);
            if (type == 'b') {
                unsigned long long u = i < 0 ? (unsigned long long)(-(i + 1)) + 1 : (unsigned long long)i;
                char bits[70];
                int k = 0;
                do { bits[k++] = (char)('0' + (u & 1)); u >>= 1; } while (u);
                int n = snprintf(tmp, sizeof tmp, "%s", i < 0 ? "-" : plus);
                while (k) tmp[n++] = bits[--k];
                tmp[n] = 0;
            } else {
                snprintf(tmp, sizeof tmp, type == 'x' ? "%s%llx" : type == 'X' ? "%s%llX" : "%s%llo",
                         i < 0 ? "-" : plus, i < 0 ? -(unsigned long long)i : (unsigned long long)i);
            }
            break;
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case '%': {
            double x = type == '%' ? f * 100 : f;
            int pr = prec < 0 ? 6 : (int)prec;
            const char *sg = x >= 0 || isnan(x) ? plus : "";
            switch (type) {
            case 'e': snprintf(tmp, sizeof tmp, "%s%.*e", sg, pr, x); break;
            case 'E': snprintf(tmp, sizeof tmp, "%s%.*E", sg, pr, x); break;
            case 'g': snprintf(tmp, sizeof tmp, "%s%.*g", sg, pr, x); break;
            case 'G': snprintf(tmp, sizeof tmp, "%s%.*G", sg, pr, x); break;
            default: snprintf(tmp, sizeof tmp, "%s%.*f", sg, pr, x); break;
            }
            if (type == '%') strncat(tmp, "%", sizeof tmp - strlen(tmp) - 1);
            break;
        }
        case 0: {   /* a float without a type: repr, or %g-like with a precision */
            if (prec >= 0) {
                snprintf(tmp, sizeof tmp, "%s%.*g", f >= 0 ? plus : "", (int)(prec ? prec : 1), f);
            } else {
                struct lmql__buf r = {0};
                lmql__val_str_into(&r, v);
                snprintf(tmp, sizeof tmp, "%s%s", f >= 0 ? plus : "", r.data ? r.data : "");
                lmql__buf_free(&r);
            }
            break;
        }
        default: return lmql__errf(err, "unknown format code '%c' for a number", type);
        }
        if (comma) {
            /* Group the integer digits by thousands. */
            char grouped[600];
            size_t n = strlen(tmp), start = (tmp[0] == '-' || tmp[0] == '+' || tmp[0] == ' ') ? 1 : 0, end = start;
            while (end < n && tmp[end] >= '0' && tmp[end] <= '9') end++;
            size_t k = 0;
            for (size_t j = 0; j < start; j++) grouped[k++] = tmp[j];
            for (size_t j = start; j < end; j++) {
                grouped[k++] = tmp[j];
                size_t left = end - j - 1;
                if (left && left % 3 == 0) grouped[k++] = ',';
            }
            snprintf(grouped + k, sizeof grouped - k, "%s", tmp + end);
            rc = lmql__buf_adds(&body, grouped);
        } else {
            rc = lmql__buf_adds(&body, tmp);
        }
        if (!align) align = zero ? '=' : '>';
        if (zero && fill == ' ' && spec[0] != ' ') fill = '0';
    } else {
        return lmql__errf(err, "format code '%c' does not apply to %s", type, lmql__val_type_name(v));
    }
    if (rc) {
        lmql__buf_free(&body);
        const char *why = lmql__val_error();   /* str() of a value nested too deeply */
        return why ? lmql__errf(err, "RecursionError: %s", why) : lmql__errf(err, "out of memory");
    }
    const char *b = body.data ? body.data : "";
    size_t len = body.len, chars = lmql__utf8_count(b, len);
    size_t pad = (size_t)width > chars ? (size_t)width - chars : 0;
    size_t left = align == '<' ? 0 : align == '^' ? pad / 2 : pad, right = pad - left;
    if (align == '=' && len && (b[0] == '-' || b[0] == '+' || b[0] == ' ')) {
        rc = lmql__buf_add(out, b, 1);
        b++;
        len--;
    }
    for (size_t k = 0; k < left && !rc; k++) rc = lmql__buf_add(out, &fill, 1);
    if (!rc) rc = lmql__buf_add(out, b, len);
    for (size_t k = 0; k < right && !rc; k++) rc = lmql__buf_add(out, &fill, 1);
    lmql__buf_free(&body);
    return rc ? lmql__errf(err, "out of memory") : 0;
}

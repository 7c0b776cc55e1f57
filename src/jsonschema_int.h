/*
** The inside of the JSON Schema compiler, shared by jsonschema.c (schema
** to a normal form: keywords, $ref, allOf merging, validation of enum
** values), jsonschema_gen.c (normal form to grammar) and jsonschema_rx.c
** (the regexes: strings, ECMA patterns, numbers, formats). Not for other
** modules.
**
** The normal form is a tree (a graph through $ref) of nodes: ANY, NONE,
** TYPED (a set of JSON types, each with its keywords), ENUM (a finite set
** of values), UNION (anyOf) and REF (a definition, for recursion). allOf,
** sibling keywords and $ref with siblings become intersections of nodes,
** computed here, so the generator only ever sees one set of constraints
** per type.
*/
#ifndef LMQL_JSONSCHEMA_INT_H
#define LMQL_JSONSCHEMA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "regex.h"
#include "jsonschema.h"
#include "value.h"

/* Limits: a schema past one is an error naming the limit, never a
** run out of memory or of stack. */
#define JS_MAX_DEPTH      128       /* nested schemas, $ref expansions, intersections */
#define JS_MAX_ENUM       4096      /* values of one enum */
#define JS_MAX_UNION      256       /* alternatives of one anyOf after distributing allOf */
#define JS_MAX_PATTERNS   4         /* patterns on one string (all must match) */
#define JS_MAX_WORK       20000000L /* steps of building, intersecting and validating */
#define JS_MAX_ARENA      ((size_t)256 << 20)
#define JS_MAX_NT         200000    /* grammar nonterminals */
#define JS_MAX_ALTS       400000    /* grammar alternatives */
#define JS_MAX_RX_BYTES   ((size_t)32 << 20)   /* regex text of all terminals */
#define JS_MAX_REP        1000      /* a regex repetition count (regex.h) */
#define JS_WS_MAX         32        /* whitespace characters in one gap (free_ws) */

enum js_kind { JS_ANY, JS_NONE, JS_TYPED, JS_ENUM, JS_UNION, JS_REF };

/* JSON types. JT_INT is a number written as an integer literal, JT_FRAC one
** written with a fraction or an exponent: "number" is both, "integer" only
** JT_INT (5.0 is an integer from draft 6 on but not in draft 4, so it is
** never produced for "integer"). */
enum {
    JT_NULL = 1, JT_BOOL = 2, JT_INT = 4, JT_FRAC = 8, JT_STR = 16, JT_ARR = 32, JT_OBJ = 64,
    JT_NUM = JT_INT | JT_FRAC, JT_ALL = 127
};

/* A bound of a number: the schema's value (int or float; NULL: none). */
struct js_bound {
    const struct lmql_val *v;
    bool excl;
};

struct js_node;

struct js_prop {
    const struct lmql_val *name;   /* a string value */
    struct js_node *node;          /* NONE: the property must not appear */
};

struct js_pprop {
    const struct lmql_val *pattern;
    const char *ptr;
    struct js_node *node;
};

struct js_pattern {
    const struct lmql_val *pattern;
    const char *ptr;
};

struct js_node {
    enum js_kind kind;
    const char *ptr;               /* where in the schema, for messages */
    /* TYPED */
    unsigned types;
    struct js_bound lo, hi;        /* numbers */
    int64_t mult;                  /* multipleOf (an integer), 0: none */
    int64_t min_len, max_len;      /* strings, in characters; max -1: none */
    struct js_pattern pat[JS_MAX_PATTERNS];
    int32_t n_pat;
    const struct lmql_val **not_str;   /* strings excluded (from not with enum/const) */
    int32_t n_not_str;
    const char *format;            /* an enforced format, or NULL */
    const char *format_ptr;
    struct js_node **prefix;       /* arrays: items by position */
    int32_t n_prefix;
    struct js_node *items;         /* the items after the prefix; NULL: any */
    int64_t min_items, max_items;  /* max -1: none */
    bool unique;
    struct js_prop *props;         /* objects, in the order they are written */
    int32_t n_props;
    const struct lmql_val **req;   /* required names, in order */
    int32_t n_req;
    struct js_node *addl;          /* additionalProperties; NULL: any */
    struct js_pprop *pprops;
    int32_t n_pprops;
    struct js_node *names;         /* propertyNames; NULL: any */
    int64_t min_props, max_props;  /* max -1: none */
    /* ENUM */
    const struct lmql_val **vals;
    int32_t n_vals;
    /* UNION */
    struct js_node **alts;
    int32_t n_alts;
    /* REF */
    int32_t def;
    /* the generator's memo */
    int32_t g_nt;                  /* -1: not made */
    const char *g_rx;
    bool g_done;
};

/* A $ref target: built once, on first use. */
struct js_def {
    const struct lmql_val *target;
    const char *ptr;
    struct js_node *node;
    int state;                     /* 0 not built, 1 being built, 2 built */
    int32_t nt;                    /* its grammar rule, -1 until made */
};

/* One grammar-to-be: rules over nonterminals and regex terminals, kept
** here so that adjacent terminals can be joined before the builder sees
** them. Items: NT id >= 0, or -1 - (index of a regex text). */
struct js_pgalt {
    int32_t lhs, off, n;
};

struct js_ctx {
    struct lmql_arena arena;
    const struct lmql_val *root;
    struct lmql__err *e;
    bool failed;
    bool free_ws;
    int draft;                     /* 4, 6, 7, 2019, 2020: the root's $schema (default 2020-12) */
    long work;
    int depth;
    int maybe;                     /* > 0: js_validate answers "may be valid" (for disjointness proofs) */
    struct js_def *defs;
    int32_t n_defs, cap_defs;
    /* generator */
    const char **nt_names;
    int32_t n_nt, cap_nt;
    struct js_pgalt *alts;
    int32_t n_alts, cap_alts;
    int32_t *items;
    int32_t n_items, cap_items;
    struct js_rx {
        const char *text, *ptr;    /* the pattern; where in the schema it comes from */
    } *rx;
    int32_t n_rx, cap_rx;
    size_t rx_bytes;
    int32_t any_nt, any_obj_nt, any_arr_nt;   /* -1 until made */
    /* compiled regexes of patterns and formats, for validating values */
    struct {
        const struct lmql_val *pat;
        struct lmql_regex *re;
    } *rxc;
    int32_t n_rxc, cap_rxc;
    struct {
        const char *name;
        struct lmql_regex *re;
    } *fmc;
    int32_t n_fmc, cap_fmc;
    /* punctuation regexes (with or without whitespace) */
    const char *p_lbrace, *p_rbrace, *p_lbrack, *p_rbrack, *p_comma, *p_colon, *p_empty_obj, *p_empty_arr;
};

/* ---- jsonschema.c ---- */

/* Fail with LMQL_ERR_QUERY: "ptr: message". Returns NULL. */
void *js_fail(struct js_ctx *c, const char *ptr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *js_oom(struct js_ctx *c);
/* Count one step of work; false (with the error set) past the limit. */
bool js_step(struct js_ctx *c);
void *js_alloc(struct js_ctx *c, size_t n);
char *js_strdup(struct js_ctx *c, const char *s, size_t n);
char *js_printf(struct js_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The node of a definition, built if needed (NULL on error, or when it is
** being built and the caller needs its inside: a recursive $ref that
** cannot be merged with its siblings). */
struct js_node *js_def_node(struct js_ctx *c, int32_t def, const char *ptr);

/* The schema of property `name` in object node n: its own ones and those
** of the patternProperties it matches, or additionalProperties; NONE
** when propertyNames refuses the name. NULL: any value (or an error, then
** *err). */
struct js_node *js_key_schema(struct js_ctx *c, struct js_node *n, const struct lmql_val *name, bool *err);
/* Whether the two regexes (compiled) share no string: 1, 0, or -1 when
** the check is too large. */
int js_rx_disjoint(const struct lmql_regex *a, const struct lmql_regex *b);
/* The compiled regex of a pattern's JSON strings (cached), NULL on error. */
struct lmql_regex *js_pattern_re(struct js_ctx *c, const struct lmql_val *pat, const char *ptr);

/* JSON equality (1 == 1.0, true != 1, objects by keys). */
bool js_equal(const struct lmql_val *a, const struct lmql_val *b);
/* Whether value v is valid under node n: 1, 0, or -1 on error. */
int js_validate(struct js_ctx *c, struct js_node *n, const struct lmql_val *v);

/* ---- jsonschema_rx.c ---- */

/* Regex atoms. */
int js_rx_cp(struct lmql__buf *b, uint32_t cp);
int js_rx_literal(struct lmql__buf *b, const char *s, size_t n);
/* json.dumps(s, ensure_ascii=False) of a UTF-8 string, quotes included. */
int js_enc_str(struct lmql__buf *b, const char *s, size_t n);
/* Python's repr of a float (finite). */
int js_py_float(struct lmql__buf *b, double d);
/* json.dumps(v) (", " and ": "). */
int js_dumps(struct lmql__buf *b, const struct lmql_val *v);
/* A regex matching the JSON texts of value v that equal it: its json.dumps
** form (an integral number also as "5" and "5.0"), with the punctuation of
** c (whitespace when free). */
int js_rx_value(struct js_ctx *c, struct lmql__buf *b, const struct lmql_val *v);

/* One character of a JSON string as json.dumps writes it (raw UTF-8 but
** for " \ and control characters, which are escaped), for characters in
** the code point ranges r[0..n) (pairs lo, hi; sorted, disjoint). */
int js_rx_cset(struct lmql__buf *b, const uint32_t *r, int n);
/* Any character of a JSON string in any of JSON's spellings (raw, \n,
** \uXXXX, a surrogate pair as one character). */
extern const char js_rx_char_any[];
/* Any character as json.dumps writes it. */
extern const char js_rx_char_canon[];

/* An ECMA-262 pattern searched in a string: the regex of the JSON string
** literals (quotes included, json.dumps's spelling) whose value contains
** a match, restricted to lengths [min_len, max_len] (max -1: none). Returns
** the regex (arena), or NULL with *empty set when no string qualifies, or
** NULL with the error set. When the lengths cannot be folded in exactly,
** *parts describes the string as pre + unit{a,b} + post for the caller to
** build in pieces. */
struct js_rxparts {
    const char *pre, *unit, *post;
    int64_t a, b;                  /* b -1: unbounded */
};
const char *js_rx_pattern(struct js_ctx *c, const struct lmql_val *pattern, const char *ptr, int64_t min_len,
                          int64_t max_len, bool *empty, struct js_rxparts *parts);

/* The regex of a format's strings (quotes included) or NULL with the error
** set; *lmin / *lmax their lengths in characters (max -1: unbounded).
** js_format_kind: 1 enforced, 0 an annotation (not a format the JSON Schema
** vocabulary defines), -1 defined but not enforceable here. */
int js_format_kind(const char *name);
const char *js_rx_format(struct js_ctx *c, const char *name, const char *ptr, int64_t *lmin, int64_t *lmax);

/* The number literals (json.dumps's forms, and JSON's) of the types in
** `types` (JT_INT, JT_FRAC) within the node's bounds and multipleOf. NULL
** with *empty when none, or with the error set. */
const char *js_rx_number(struct js_ctx *c, const struct js_node *n, unsigned types, bool *empty);

/* ---- jsonschema_gen.c ---- */

struct lmql_grammar *js_generate(struct js_ctx *c, struct js_node *root);

#endif

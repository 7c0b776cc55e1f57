/*
** Interpreter internals shared by interp.c (statements, prompts, holes),
** seqs.c and search.c (sequences, decoders), eval.c (expressions) and
** builtins.c (functions and methods).
*/
#ifndef LMQL_INTERP_INT_H
#define LMQL_INTERP_INT_H

#include "constraint.h"
#include "decode.h"
#include "interp.h"

enum flow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE, FLOW_RETURN };

struct lmql__decos;

struct interp {
    const struct lmql__host *host;
    struct lmql__gc *gc;             /* the run's container registry (set for threads) */
    const struct lmql_ast_query *q;
    struct lmql__err *err;
    struct lmql_val *globals;        /* dict */
    struct lmql_val *locals;         /* dict of the running def, NULL at top level */
    struct lmql_val *env;            /* the enclosing defs' scopes of the running def (value.h), or NULL */
    struct lmql_val *decl;           /* names the running def declared global or nonlocal: dict name -> bool
                                     ** (true: global), or NULL */
    bool class_body;                 /* locals is a class body's dict, not a def's */
    struct lmql_val *module_names;   /* the top-level names that are module globals (the host's
                                     ** functions and what the prologue bound), dict name -> True;
                                     ** the arguments and what the body binds are the query
                                     ** function's locals (globals(), locals()). NULL in the prologue */
    struct lmql_val *caller_module_names; /* a called query function: its caller's (borrowed) */
    const struct lmql__decos *decos;  /* the streaming decorators of the hole being generated, or NULL */
    const struct lmql_node *deco_seg; /* that hole */
    struct lmql__buf deco_value;      /* its value so far */
    int64_t steps;
    int     depth;
    enum flow flow;
    struct lmql_val *retval;         /* set with FLOW_RETURN */

    /* The sequence being built. */
    struct lmql__model *model;
    int     slot;
    struct lmql__seq seq;            /* tokens the model has seen or will see */
    struct lmql__buf pending;        /* prompt text not yet tokenized */
    /* Role tags rendered by the model's chat template (chat.c): the roles of
    ** the messages so far, each NUL-terminated, and their count; chat_trim
    ** drops the whitespace that starts a message's text, as templates trim. */
    struct lmql__buf chat_roles;
    int     chat_n;
    bool    chat_trim;
    struct lmql__buf chat_ws;        /* whitespace held back at the end of a text (interp.c) */
    struct lmql__seq_result *res;
    struct lmql__gen gen;
    uint64_t rng;
    const char *decoder_override;    /* @lmql.query(decoder=...) of a sub-query, or its call's decoder= */
    struct lmql_val *decoder_kwargs; /* a sub-query call's decoder options (lmql__call_opts), or NULL */
    const struct lmql_node *call_at; /* that call */
    bool frontier;                   /* a replay stopped at its next choice: -1 unwinds, no error */
    const struct lmql_node *dist;    /* the DISTRIBUTION in force (global or of this prompt) */
    size_t dist_end;                 /* prompt length once it was scored; 0 before */
    uint64_t n_generated;
    const struct lmql__err *handling; /* the exception the running except clause took, or NULL */
};

/* Record an error at node n (NULL: no position). Returns -1. */
int lmql__fail(struct interp *I, const struct lmql_node *n, lmql_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error of a failed equality/ordering/str/repr/JSON of values
** (recursion depth, circular reference; out of memory otherwise). -1. */
int lmql__val_fail(struct interp *I, const struct lmql_node *n);
/* 0 when key can be a dict key; else Python's TypeError, -1. */
int lmql__check_key(struct interp *I, const struct lmql_node *n, const struct lmql_val *key);
/* Note this thread's stack limits for the evaluation guard (eval.c). */
void lmql__stack_mark(void);
/* Count one step against max_steps; -1 when over. */
int lmql__step(struct interp *I, const struct lmql_node *n);

/* Evaluate an expression: a new reference, or NULL with the error set. */
struct lmql_val *lmql__eval(struct interp *I, const struct lmql_node *n);
/* The text of an {expr} part (conversion !r/!s, format spec) into out. */
int lmql__interp_text(struct interp *I, const struct lmql_node *part, struct lmql_val *v, struct lmql__buf *out);
/* Bind a value to an assignment target (name, tuple, subscript). */
int lmql__assign(struct interp *I, const struct lmql_node *target, struct lmql_val *v);
/* Look a name up: locals, globals, builtins. Borrowed, or NULL. */
/* Call fn (one of the static builtins) when it is one that needs the interpreter (eval, map,
** filter, sorted/min/max with key=): *handled true and the result (NULL on
** error, in I); else *handled false. */
struct lmql_val *lmql__call_interp_builtin(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                                           struct lmql_val **argv, const char **names, bool *handled);
/* A def statement's function value, closing over the scopes it sees. */
struct lmql_val *lmql__def_value(struct interp *I, const struct lmql_node *def);
/* global / nonlocal: record the names for the running def. */
int lmql__declare(struct interp *I, const struct lmql_node *s);
struct lmql_val *lmql__lookup(struct interp *I, const char *name);
int lmql__set_name(struct interp *I, const char *name, struct lmql_val *v);

/* The items of an iterable as a list (strings by character, dicts by
** key); I may be NULL when no error position is wanted. */
struct lmql_val *lmql__iter_list(struct interp *I, const struct lmql_node *at, struct lmql_val *v);

/* Builtins and methods (builtins.c). */
struct lmql_val *lmql__builtin(const char *name);
bool lmql__builtin_exists(const char *name);
struct lmql_val *lmql__method(struct interp *I, const struct lmql_node *at, struct lmql_val *obj, const char *name);
/* Call a function value. */
struct lmql_val *lmql__call(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                            struct lmql_val **argv, const char **names);
/* Bind a def's parameters from call arguments into the dict scope. */
int lmql__bind_params(struct interp *I, const struct lmql_node *at, const struct lmql_node *def, int argc,
                      struct lmql_val **argv, const char **names, struct lmql_val *scope);
/* Call a query function from script code: an independent query on the
** caller's model unless it names its own (interp.c). */
struct lmql_val *lmql__run_subquery(struct interp *I, const struct lmql_node *at, const struct lmql_node *def, int argc,
                                    struct lmql_val **argv, const char **names);
/* How a query function was called: the decoder its @lmql.query(decoder=)
** or the call's decoder= names (or NULL), the call's other decoder options
** (a dict name -> value: n=, max_len=, temperature=, ...; or NULL), and the
** call, where their errors point. */
struct lmql__call_opts {
    const char *decoder;
    struct lmql_val *kwargs;
    const struct lmql_node *at;
    struct lmql_val *module_names;   /* the caller's (borrowed), or NULL */
};
/* Run query q (seqs.c): the top-level query (inherited NULL, opts NULL) or
** a query function called from script code (inherited = the caller's
** model). */
int lmql__run_query(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                    struct lmql__model *inherited, const struct lmql__call_opts *opts, int depth,
                    struct lmql__run_out *out, struct lmql__err *err);
/* Classes (class.c): the class statement, import statements (lmql,
** dataclasses, typing), calling a class, attributes of instances, classes
** and the modules class.c provides (lmql__class_has_attrs says which
** values those are). */
int lmql__exec_class(struct interp *I, const struct lmql_node *s);
int lmql__exec_import(struct interp *I, const struct lmql_node *s);
struct lmql_val *lmql__class_call(struct interp *I, const struct lmql_node *at, struct lmql_val *cls, int argc,
                                  struct lmql_val **argv, const char **names);
bool lmql__class_has_attrs(const struct lmql_val *obj);
struct lmql_val *lmql__class_getattr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj,
                                     const char *name);
int lmql__class_setattr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj, const char *name,
                        struct lmql_val *v);
/* Is v an instance of cls or of a class derived from it? */
bool lmql__class_isinstance(const struct lmql_val *v, const struct lmql_val *cls);

/* The text a role tag adds to a prompt under chat template tmpl, after
** n_prev messages whose roles are in `roles` (chat.c): appended to frag.
** -1 with err filled for a template llama.cpp does not know or one whose
** renderings are not prefix-stable. */
int lmql__chat_turn(const char *tmpl, const struct lmql__buf *roles, int n_prev, const char *role, size_t rlen,
                    struct lmql__buf *frag, struct lmql__err *err);

/* Emit the whitespace held back at the end of the prompt (chat_ws): before
** a hole and when the run ends. */
int lmql__chat_flush(struct interp *I);

/* Exceptions (exceptions.c): the builtin exception class of that name or
** NULL; try/except/else/finally, raise and del statements. */
struct lmql_val *lmql__exc_builtin(const char *name);
int lmql__exec_try(struct interp *I, const struct lmql_node *s);
int lmql__exec_raise(struct interp *I, const struct lmql_node *s);
int lmql__exec_del(struct interp *I, const struct lmql_node *s);

/* Run the statements of a def body (interp.c). */
int lmql__exec_block(struct interp *I, const struct lmql_node_list *body);

/* Results leave the run as JSON: a cycle (or nesting past the depth
** limit) in a variable or return value is an error of the run, found
** here while the run's registry can still free it; then each becomes what
** its JSON shows (lmql__val_plain), so that no survivor of the registry
** holds a cycle JSON does not see, through an instance's class or a bound
** method (interp_results.c). */
int lmql__results_check(struct lmql__run_out *out, struct lmql__err *err);
/* Free what one sequence's result holds and clear it (interp_results.c). */
void lmql__seq_result_free(struct lmql__seq_result *r);

/* A model named in `from` or by lmql.model(...). */
struct lmql__model_spec {
    char *id;
    struct lmql__kv *kv;
    int n_kv;
};
void lmql__model_spec_free(void *p);
/* The model a model= value names (a string or lmql.model(...)), or NULL
** with e (interp.c). */
struct lmql__model *lmql__model_of(struct interp *I, const struct lmql_val *v, struct lmql__err *e);
/* lmql.F(template, constraints=, model=): a query function (builtins.c). */
struct lmql_val *lmql__lmql_F(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err);

/* LMQL's Generations API in query code (generations.c): the attributes of
** model values, ScoringResult values and lmql.generate/lmql.score (obj
** NULL), *handled false for anything else; their functions carry
** lmql__generations_fn and are called through lmql__generations_call;
** context.score is lmql__context_score. */
struct lmql_val *lmql__generations_attr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj,
                                        const char *name, bool *handled);
struct lmql_val *lmql__generations_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                      struct lmql__err *err);
struct lmql_val *lmql__generations_call(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                                        struct lmql_val **argv, const char **names);
struct lmql_val *lmql__context_score(struct interp *I, const struct lmql_node *at);

#endif

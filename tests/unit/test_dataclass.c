/*
** Dataclasses as the types of holes (src/dataclass.h): which class a name
** means for a hole, the JSON Schema of a dataclass (golden JSON texts),
** its errors with their positions, and JSON values made into instances
** by an interpreter that ran the program's class statements.
*/
#include <lmql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dataclass.h"
#include "diag.h"
#include "harness.h"
#include "interp_int.h"
#include "json.h"
#include "parse.h"

struct prog {
    struct lmql_arena arena;
    struct lmql_ast_query *q;
};

static int parse(struct prog *p, const char *src) {
    lmql__arena_init(&p->arena);
    struct lmql_diags d;
    lmql__diags_init(&d);
    char *text = lmql__arena_strndup(&p->arena, src, strlen(src));
    p->q = text ? lmql__parse_query(&p->arena, text, strlen(src), "<test>", &d, NULL) : NULL;
    int bad = !p->q || d.n;
    if (d.n) th_fail(__FILE__, __LINE__, "parse: %s", d.items[0].msg);
    lmql__diags_free(&d);
    return bad ? -1 : 0;
}

static void prog_free(struct prog *p) { lmql__arena_free(&p->arena); }

/* The schema of class `name` of src as JSON text (malloc'd), or the error
** as "LINE:COL: message". */
static char *schema_of(const char *src, const char *name) {
    struct prog p;
    if (parse(&p, src)) { prog_free(&p); return NULL; }
    const struct lmql_node *cls = lmql__class_find(p.q, name);
    char *out = NULL;
    if (!cls) {
        out = strdup("(no class)");
    } else {
        struct lmql__err e;
        struct lmql_val *s = lmql__class_schema(p.q, cls, &e);
        struct lmql__buf b = {0};
        if (s) {
            lmql__val_json_into(&b, s);
            CHECK_INT(e.status, LMQL_OK);
        } else {
            CHECK_INT(e.status, LMQL_ERR_QUERY);
            lmql__buf_addf(&b, "%d:%d: %s", e.pos.line, e.pos.col, e.msg);
        }
        out = b.data;
        lmql__val_unref(s);
    }
    prog_free(&p);
    return out;
}

static void check_schema(int line, const char *src, const char *name, const char *want) {
    char *got = schema_of(src, name);
    if (got && !strcmp(got, want)) th_passed++;
    else th_fail(__FILE__, line, "schema of %s:\n   got: %s\n  want: %s", name, got ? got : "(null)", want);
    free(got);
}
#define SCHEMA(src, name, want) check_schema(__LINE__, src, name, want)

#define OBJ(props, req) "{\"type\": \"object\", \"properties\": {" props "}, \"required\": [" req "], " \
                        "\"additionalProperties\": false}"

static void test_schema_types(void) {
    SCHEMA("from dataclasses import dataclass\n"
           "@dataclass\n"
           "class Person:\n"
           "    '''a person'''\n"
           "    name: str\n"
           "    age: int\n"
           "    job: str = 'none'\n"
           "argmax \"[P]\"\n",
           "Person",
           OBJ("\"name\": {\"type\": \"string\"}, \"age\": {\"type\": \"integer\"}, \"job\": {\"type\": \"string\"}",
               "\"name\", \"age\", \"job\""));
    SCHEMA("import dataclasses\n"
           "from typing import List, Optional, Literal, Dict, Union\n"
           "@dataclasses.dataclass(frozen=True)\n"
           "class T:\n"
           "    f: float\n"
           "    b: bool\n"
           "    l: List[str]\n"
           "    l2: list[int]\n"
           "    o: Optional[int]\n"
           "    lit: Literal['a', \"b\", 1, -2, 2.5, True, None]\n"
           "    d: Dict[str, float]\n"
           "    u: Union[int, str, None]\n"
           "    p: int | None\n"
           "    n: None\n"
           "    tl: typing.List[bool]\n"
           "    x: ClassVar[int] = 3\n"
           "    y = 4\n"
           "argmax \"[P]\"\n",
           "T",
           OBJ("\"f\": {\"type\": \"number\"}, \"b\": {\"type\": \"boolean\"}, "
               "\"l\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}, "
               "\"l2\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}, "
               "\"o\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}]}, "
               "\"lit\": {\"enum\": [\"a\", \"b\", 1, -2, 2.5, true, null]}, "
               "\"d\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"number\"}}, "
               "\"u\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"string\"}, {\"type\": \"null\"}]}, "
               "\"p\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}]}, "
               "\"n\": {\"type\": \"null\"}, "
               "\"tl\": {\"type\": \"array\", \"items\": {\"type\": \"boolean\"}}",
               "\"f\", \"b\", \"l\", \"l2\", \"o\", \"lit\", \"d\", \"u\", \"p\", \"n\", \"tl\""));
    /* nested dataclasses inline, by name or as a string; a base's fields come first */
    SCHEMA("@dataclass\n"
           "class Address:\n"
           "    city: str\n"
           "@dataclass\n"
           "class Base:\n"
           "    id: int\n"
           "    tag: str\n"
           "@dataclass\n"
           "class Person(Base):\n"
           "    home: Address\n"
           "    tag: int\n"
           "    past: list['Address']\n"
           "argmax \"[P]\"\n",
           "Person",
           OBJ("\"id\": {\"type\": \"integer\"}, \"tag\": {\"type\": \"integer\"}, \"home\": " OBJ(
                   "\"city\": {\"type\": \"string\"}", "\"city\"") ", \"past\": {\"type\": \"array\", \"items\": " OBJ(
                   "\"city\": {\"type\": \"string\"}", "\"city\"") "}",
               "\"id\", \"tag\", \"home\", \"past\""));
    /* a dataclass without fields */
    SCHEMA("@dataclass\nclass E:\n    pass\nargmax \"[P]\"\n", "E", OBJ("", ""));
}

static void test_schema_recursive(void) {
    /* the class itself inside itself: "#" */
    SCHEMA("@dataclass\n"
           "class Node:\n"
           "    value: int\n"
           "    children: List['Node']\n"
           "argmax \"[P]\"\n",
           "Node",
           OBJ("\"value\": {\"type\": \"integer\"}, \"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}",
               "\"value\", \"children\""));
    /* another class inside itself: under $defs, inline at its first place */
    SCHEMA("@dataclass\n"
           "class Tree:\n"
           "    root: Optional[Leaf]\n"
           "@dataclass\n"
           "class Leaf:\n"
           "    next: Optional[Leaf]\n"
           "argmax \"[P]\"\n",
           "Tree",
           "{\"type\": \"object\", \"properties\": {\"root\": {\"anyOf\": [{\"type\": \"object\", \"properties\": "
           "{\"next\": {\"anyOf\": [{\"$ref\": \"#/$defs/Leaf\"}, {\"type\": \"null\"}]}}, \"required\": [\"next\"], "
           "\"additionalProperties\": false}, {\"type\": \"null\"}]}}, \"required\": [\"root\"], "
           "\"additionalProperties\": false, \"$defs\": {\"Leaf\": {\"type\": \"object\", \"properties\": {\"next\": "
           "{\"anyOf\": [{\"$ref\": \"#/$defs/Leaf\"}, {\"type\": \"null\"}]}}, \"required\": [\"next\"], "
           "\"additionalProperties\": false}}}");
    /* mutual recursion back to the root */
    SCHEMA("@dataclass\n"
           "class A:\n"
           "    b: Optional['B']\n"
           "@dataclass\n"
           "class B:\n"
           "    a: A | None\n"
           "argmax \"[P]\"\n",
           "A",
           OBJ("\"b\": {\"anyOf\": [" OBJ("\"a\": {\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"null\"}]}", "\"a\"")
               ", {\"type\": \"null\"}]}",
               "\"b\""));
}

static void test_schema_errors(void) {
    SCHEMA("@dataclass\nclass P:\n    name: str\n    z: complex\nargmax \"[P]\"\n", "P",
           "4:8: field 'z' of P: complex is not a type this query defines (use int, float, str, bool, None, list[T], "
           "dict[str, T], Optional[T], Union[...], Literal[...] or a dataclass)");
    SCHEMA("@dataclass\nclass P:\n    xs: List[set]\nargmax \"[P]\"\n", "P",
           "3:14: field 'xs' of P: set is not a type this query defines (use int, float, str, bool, None, list[T], "
           "dict[str, T], Optional[T], Union[...], Literal[...] or a dataclass)");
    SCHEMA("@dataclass\nclass P:\n    xs: list\nargmax \"[P]\"\n", "P",
           "3:9: field 'xs' of P: list needs the type of its items (list[str], dict[str, int])");
    SCHEMA("@dataclass\nclass P:\n    d: dict[int, str]\nargmax \"[P]\"\n", "P",
           "3:13: field 'd' of P: int cannot be the type of JSON keys (str can)");
    SCHEMA("@dataclass\nclass P:\n    a: Any\nargmax \"[P]\"\n", "P",
           "3:8: field 'a' of P: Any has no JSON schema (use int, float, str, bool, None, list[T], dict[str, T], "
           "Optional[T], Union[...], Literal[...] or a dataclass)");
    SCHEMA("@dataclass\nclass P:\n    a: Literal[x]\nargmax \"[P]\"\n", "P",
           "3:16: field 'a' of P: x is not a literal value (strings, numbers, True, False, None are)");
    SCHEMA("@dataclass\nclass P:\n    a: tuple[int, int]\nargmax \"[P]\"\n", "P",
           "3:8: field 'a' of P: tuple[int, int] has no JSON schema (use int, float, str, bool, None, list[T], "
           "dict[str, T], Optional[T], Union[...], Literal[...] or a dataclass)");
    /* a class that is no dataclass, as the hole's type and inside one */
    SCHEMA("class Plain:\n    x: int\nargmax \"[P]\"\n", "Plain",
           "1:1: class Plain is not a dataclass: decorate it with @dataclass to use it as a type");
    SCHEMA("class Plain:\n    x: int\n@dataclass\nclass P:\n    p: Plain\nargmax \"[P]\"\n", "P",
           "5:8: class Plain is not a dataclass: decorate it with @dataclass to use it as a type");
}

static void test_find(void) {
    struct prog p;
    const char *src =
        "import lmql\n"
        "@dataclass\n"
        "class Person:\n"
        "    name: str\n"
        "def f():\n"
        "    class Hidden:\n"
        "        pass\n"
        "@lmql.query\n"
        "def q():\n"
        "    '''lmql\n"
        "    if True:\n"
        "        class Inner:\n"
        "            x: int\n"
        "    \"[P]\"\n"
        "    '''\n"
        "argmax\n"
        "    for i in range(2):\n"
        "        class Person:\n"
        "            age: int\n"
        "    \"[P]\"\n";
    if (parse(&p, src)) { prog_free(&p); return; }
    const struct lmql_node *c = lmql__class_find(p.q, "Person");
    CHECK(c != NULL && c->pos.line == 3);                     /* the first in source order: prologue first */
    CHECK(lmql__class_find(p.q, "Hidden") == NULL);           /* inside a def */
    CHECK(lmql__class_find(p.q, "Inner") == NULL);            /* inside a query function */
    CHECK_INT(p.q->query_defs.n, 1);
    const struct lmql_ast_query *inner = p.q->query_defs.items[0]->u.def.query;
    CHECK(inner && inner->parent == p.q && p.q->parent == NULL);
    c = inner ? lmql__class_find(inner, "Inner") : NULL;
    CHECK(c != NULL && c->pos.line == 12);
    c = inner ? lmql__class_find(inner, "Person") : NULL;     /* the enclosing program's */
    CHECK(c != NULL && c->pos.line == 3);
    prog_free(&p);
}

/* ------------------------------------------------------- instances -- */

struct run {
    struct prog p;
    struct lmql_params params;
    struct lmql__host host;
    struct lmql__err err;
    struct interp I;
};

/* Run src's prologue (its class statements) in a bare interpreter. */
static int run_prologue(struct run *r, const char *src) {
    memset(r, 0, sizeof *r);
    if (parse(&r->p, src)) return -1;
    r->params = lmql_default_params();
    r->host.params = &r->params;
    r->I.host = &r->host;
    r->I.q = r->p.q;
    r->I.err = &r->err;
    r->I.globals = lmql__val_dict();
    if (lmql__exec_block(&r->I, &r->p.q->prologue)) {
        th_fail(__FILE__, __LINE__, "prologue: %s", r->err.msg);
        return -1;
    }
    return 0;
}

static void run_free(struct run *r) {
    lmql__val_unref(r->I.globals);
    prog_free(&r->p);
}

/* The instance of class `name` from JSON text: its repr, or the error. */
static char *instance_of(struct run *r, const char *name, const char *json) {
    memset(&r->err, 0, sizeof r->err);
    struct lmql__err je;
    struct lmql_val *j = lmql__json_parse(json, strlen(json), &je);
    if (!j) return strdup("(bad json)");
    struct lmql_val *cls = lmql__lookup(&r->I, name);
    struct lmql_node at = {.kind = LMQL_NODE_NONE, .pos = {7, 3, 0}};
    struct lmql_val *v = cls ? lmql__class_instance(&r->I, &at, cls, j) : NULL;
    lmql__val_unref(j);
    struct lmql__buf b = {0};
    if (v) {
        lmql__val_repr_into(&b, v);
        lmql__buf_adds(&b, " ");
        lmql__val_json_into(&b, v);
        /* a real instance: attributes read as in Python */
        CHECK(v->kind == LMQL_V_INST && v->u.inst.cls == cls);
    } else {
        CHECK(r->err.pos.line == 7 || r->err.status == LMQL_ERR_NOMEM);
        lmql__buf_addf(&b, "error: %s", r->err.msg);
    }
    lmql__val_unref(v);
    return b.data;
}

static void check_instance(int line, struct run *r, const char *name, const char *json, const char *want) {
    char *got = instance_of(r, name, json);
    if (got && !strcmp(got, want)) th_passed++;
    else th_fail(__FILE__, line, "instance of %s from %s:\n   got: %s\n  want: %s", name, json, got ? got : "(null)",
                 want);
    free(got);
}
#define INSTANCE(r, name, json, want) check_instance(__LINE__, r, name, json, want)

static void test_instances(void) {
    struct run r;
    const char *src =
        "from dataclasses import dataclass, field\n"
        "from typing import List, Optional, Literal, Dict, Union\n"
        "@dataclass\n"
        "class Address:\n"
        "    city: str\n"
        "    zip: Optional[int] = None\n"
        "@dataclass\n"
        "class Person:\n"
        "    name: str\n"
        "    height: float\n"
        "    home: Address\n"
        "    past: List[Address]\n"
        "    kind: Literal['a', 'b']\n"
        "    scores: Dict[str, float] = field(default_factory=dict)\n"
        "    either: Union[int, str, Address] = 0\n"
        "    def __post_init__(self):\n"
        "        self.initials = self.name[0]\n"
        "@dataclass\n"
        "class Node:\n"
        "    v: int\n"
        "    kids: list['Node']\n"
        "class Plain:\n"
        "    x: int\n"
        "argmax \"[P]\"\n";
    if (run_prologue(&r, src)) { run_free(&r); return; }
    INSTANCE(&r, "Person",
             "{\"name\": \"Ada\", \"height\": 2, \"home\": {\"city\": \"X\"}, \"past\": [{\"city\": \"Y\", \"zip\": 1}], "
             "\"kind\": \"b\", \"scores\": {\"m\": 1, \"n\": 0.5}, \"either\": {\"city\": \"Z\"}}",
             "Person(name='Ada', height=2.0, home=Address(city='X', zip=None), past=[Address(city='Y', zip=1)], "
             "kind='b', scores={'m': 1.0, 'n': 0.5}, either=Address(city='Z', zip=None)) "
             "{\"name\": \"Ada\", \"height\": 2.0, \"home\": {\"city\": \"X\", \"zip\": null}, \"past\": [{\"city\": "
             "\"Y\", \"zip\": 1}], \"kind\": \"b\", \"scores\": {\"m\": 1.0, \"n\": 0.5}, \"either\": {\"city\": \"Z\", "
             "\"zip\": null}}");
    INSTANCE(&r, "Person",
             "{\"name\": \"Bo\", \"height\": 1.5, \"home\": {\"city\": \"X\", \"zip\": null}, \"past\": [], "
             "\"kind\": \"a\", \"either\": \"s\"}",
             "Person(name='Bo', height=1.5, home=Address(city='X', zip=None), past=[], kind='a', scores={}, either='s') "
             "{\"name\": \"Bo\", \"height\": 1.5, \"home\": {\"city\": \"X\", \"zip\": null}, \"past\": [], \"kind\": "
             "\"a\", \"scores\": {}, \"either\": \"s\"}");
    INSTANCE(&r, "Node", "{\"v\": 1, \"kids\": [{\"v\": 2, \"kids\": []}]}",
             "Node(v=1, kids=[Node(v=2, kids=[])]) {\"v\": 1, \"kids\": [{\"v\": 2, \"kids\": []}]}");
    /* what does not fit, named by field */
    INSTANCE(&r, "Address", "{\"city\": 3}", "error: field 'city' of Address: a JSON integer is no str");
    INSTANCE(&r, "Address", "{\"city\": \"x\", \"zip\": 1.5}",
             "error: field 'zip' of Address: a JSON number is no Optional[int]");
    INSTANCE(&r, "Person",
             "{\"name\": \"A\", \"height\": 1, \"home\": {\"city\": \"X\"}, \"past\": [{\"city\": true}], \"kind\": \"a\"}",
             "error: field 'city' of Address: a JSON boolean is no str");
    INSTANCE(&r, "Person",
             "{\"name\": \"A\", \"height\": 1, \"home\": {\"city\": \"X\"}, \"past\": [], \"kind\": \"c\"}",
             "error: field 'kind' of Person: a JSON string is no Literal['a', 'b']");
    INSTANCE(&r, "Address", "{\"city\": \"x\", \"country\": \"y\"}", "error: Address has no field 'country'");
    INSTANCE(&r, "Address", "{\"zip\": 1}", "error: TypeError: Address.__init__() missing 1 required positional argument: 'city'");
    INSTANCE(&r, "Address", "[1]", "error: a value of Address must be a JSON object, not a JSON array");
    INSTANCE(&r, "Plain", "{\"x\": 1}", "error: class Plain is not a dataclass: decorate it with @dataclass to use it as a type");
    /* __post_init__ ran */
    struct lmql_val *cls = lmql__lookup(&r.I, "Person");
    struct lmql__err je;
    const char *js = "{\"name\": \"Cy\", \"height\": 1, \"home\": {\"city\": \"X\"}, \"past\": [], \"kind\": \"a\"}";
    struct lmql_val *j = lmql__json_parse(js, strlen(js), &je);
    struct lmql_node at = {.kind = LMQL_NODE_NONE};
    struct lmql_val *v = cls && j ? lmql__class_instance(&r.I, &at, cls, j) : NULL;
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {"initials", 8}};
    struct lmql_val *ini = v ? lmql__dict_get(v->u.inst.attrs, &key) : NULL;
    CHECK(ini && ini->kind == LMQL_V_STR && !strcmp(ini->u.str.s, "C"));
    CHECK(cls && lmql__class_node(cls) == lmql__class_find(r.p.q, "Person"));
    lmql__val_unref(v);
    lmql__val_unref(j);
    run_free(&r);
}

int main(void) {
    RUN(test_schema_types);
    RUN(test_schema_recursive);
    RUN(test_schema_errors);
    RUN(test_find);
    RUN(test_instances);
    return th_report("dataclass");
}

/*
** dataclass.h -- dataclasses as the types of holes ([P: Person]): the class
** a hole names, its JSON Schema, and a generated JSON value made into an
** instance of it.
**
** Which class a name means is decided on the syntax tree, before the
** program runs (the schema becomes the hole's grammar when the program is
** compiled): the first `class NAME` statement, in source order, of the
** hole's query (prologue and body, inside if/while/for blocks at any
** depth, not inside defs or other classes), else of the query whose code
** holds that query's @lmql.query def, and so on outwards
** (lmql_ast_query.parent). A class is a dataclass when one of its
** decorators is `dataclass` or `X.dataclass`, called or not.
*/
#ifndef LMQL_DATACLASS_H
#define LMQL_DATACLASS_H

#include "ast.h"
#include "value.h"

struct interp;

/* The CLASS statement named `name` that a hole of query q sees (rule
** above), or NULL. */
const struct lmql_node *lmql__class_find(const struct lmql_ast_query *q, const char *name);

/*
** The JSON Schema of the dataclass `cls` (a CLASS node; names in its
** annotations are resolved with lmql__class_find(q, ...)), as a dict value
** like one parsed from JSON:
**
**   {"type": "object", "properties": {FIELD: SCHEMA, ...},
**    "required": [every FIELD], "additionalProperties": false}
**
** with the fields in order (a base dataclass's first, as Python orders
** them) and every field required, defaults or not (LMQL's rule: the model
** writes each field). Field types: int {"type": "integer"}, float
** {"type": "number"}, str {"type": "string"}, bool {"type": "boolean"},
** None {"type": "null"}, list[T]/List[T] {"type": "array", "items": T},
** dict[str, T]/Dict[str, T] {"type": "object", "additionalProperties": T},
** Optional[T] {"anyOf": [T, {"type": "null"}]}, Union[A, B, ...] and A | B
** {"anyOf": [A, B, ...]}, Literal["a", 1, ...] {"enum": ["a", 1, ...]},
** another dataclass its schema inline; a dataclass inside itself (at any
** depth) is {"$ref": "#"} for cls, else {"$ref": "#/$defs/NAME"} with the
** class's schema under "$defs" of the result. Names may be written as
** strings ("Node", forward references) and with a `typing.` prefix.
** ClassVar annotations are not fields.
**
** Returns a new reference, or NULL with e set: LMQL_ERR_QUERY at the
** position of the part of the annotation that has no schema (or of the
** class, when it is not a dataclass), naming the field and its class; or
** LMQL_ERR_NOMEM.
*/
struct lmql_val *lmql__class_schema(const struct lmql_ast_query *q, const struct lmql_node *cls, struct lmql__err *e);

/*
** The instance of dataclass `cls` (a class value, e.g. lmql__lookup(I,
** name) in the hole's scope) that the JSON value `json` (parsed, a dict
** valid under the class's schema) describes: each field's value converted
** by its annotation (ints to floats where the field is a float, lists,
** dicts, Optional/Union by the kind of JSON value, nested dataclasses
** looked up by name in I's scope), then the class called with the fields
** as keyword arguments, so __post_init__ runs and fields missing from json
** take their defaults. Returns a new reference, or NULL with the error in
** I (lmql__fail, at `at`): LMQL_ERR_RUNTIME for a value that does not fit
** its field, naming the field, or the class's own errors.
*/
struct lmql_val *lmql__class_instance(struct interp *I, const struct lmql_node *at, struct lmql_val *cls,
                                      const struct lmql_val *json);

/* The CLASS statement a class value was made by. */
const struct lmql_node *lmql__class_node(const struct lmql_val *cls);

#endif

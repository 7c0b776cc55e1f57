/*
** libFuzzer target for the whole language: any bytes are compiled and,
** when they compile, run on LMQL's random model (the query's own `from`
** is overridden, so no file named by the input is ever opened). Nothing
** may crash, leak, hang or trip a sanitizer; runaway programs must end
** through the step, depth and length limits.
**
**   make fuzz   (builds build/fuzz/fuzz_interp; run from the repository root)
*/
#include <lmql.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lmql *g_L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    struct lmql_params p = lmql_default_params();
    p.model_override = "random";
    p.max_steps = 20000;
    p.max_len = 64;    /* holes without a bound stay short under instrumentation */
    g_L = lmql_init(&p);
    return g_L ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lmql_program *P = lmql_program_compile(g_L, "fuzz.lmql", (const char *)data, size);
    if (!P) return 0;
    struct lmql_result *R = NULL;
    if (lmql_run(g_L, P, NULL, &R) == LMQL_OK) {
        (void)lmql_result_json(R);
        lmql_result_free(R);
    }
    lmql_program_free(P);
    return 0;
}

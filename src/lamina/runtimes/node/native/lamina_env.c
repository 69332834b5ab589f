/* lamina's Node.js runtime client, native part: _X_AMZN_TRACE_ID without setenv(3) per invocation.
 *
 * The runtime client sets _X_AMZN_TRACE_ID for every invocation, as AWS's does (process.env, which is
 * setenv(3)). glibc keeps every value setenv was ever given, so a warm environment grew ~0.4-1.5 MB per
 * 10,000 invocations (bench/warm_memory_bench.py --runtime node) until its memory limit killed it. Here
 * the C environment's entry is a static buffer handed to putenv(3), which keeps the pointer it is given,
 * and rewritten in place: process.env reads it (getenv), child processes inherit it. Code that sets or
 * deletes the variable itself replaces the entry; the next call notices and puts the buffer back.
 *
 * Node-API (ABI-stable across Node.js majors). Built by `make install` into build/lamina-env.node;
 * without it the client keeps setting process.env.
 */
#define NAPI_VERSION 3
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#define NAME "_X_AMZN_TRACE_ID"
#define CAPACITY 1024

static char entry[sizeof(NAME) + CAPACITY] = NAME "=";
#define VALUE (entry + sizeof(NAME))

/* setTrace(value) -> true when the environment now holds value; false (nothing changed) when it is not a
 * string, is too long or holds a NUL: the caller sets process.env the usual way. */
static napi_value set_trace(napi_env env, napi_callback_info info) {
    size_t argc = 1, length = 0;
    napi_value arg, result;
    int done = 0;
    if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) == napi_ok && argc == 1
            && napi_get_value_string_utf8(env, arg, NULL, 0, &length) == napi_ok && length < CAPACITY) {
        static char staged[CAPACITY];
        if (napi_get_value_string_utf8(env, arg, staged, CAPACITY, &length) == napi_ok
                && strlen(staged) == length) {
            memcpy(VALUE, staged, length + 1);
            done = getenv(NAME) == VALUE || putenv(entry) == 0;
        }
    }
    napi_get_boolean(env, done, &result);
    return result;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    if (napi_create_function(env, "setTrace", NAPI_AUTO_LENGTH, set_trace, NULL, &fn) != napi_ok
            || napi_set_named_property(env, exports, "setTrace", fn) != napi_ok) {
        return NULL;
    }
    return exports;
}

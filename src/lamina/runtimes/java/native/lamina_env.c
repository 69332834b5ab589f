/* lamina's Java runtime client, native part: a standby JVM takes its function's environment variables.
 *
 * A JVM reads its environment once: System.getenv() is a map made at start, and the processes it starts
 * get the C library's environ. A standby JVM (started before any function was assigned to it) learns its
 * function's variables later, so both must change: setenv(3) for environ, and a put into the map behind
 * System.getenv()'s unmodifiable view (JNI is not held by the module system's access checks, so no
 * --add-opens is needed). Called once per variable, at assignment, before the function's code is loaded.
 *
 * Built by `make install` (cc -shared) into build/liblamina-env.so; without it Java has no standby.
 */
#include <jni.h>
#include <stdlib.h>

static int put_in_java_map(JNIEnv *env, jstring name, jstring value) {
    jclass system = (*env)->FindClass(env, "java/lang/System");
    if (system == NULL) return -1;
    jmethodID getenv = (*env)->GetStaticMethodID(env, system, "getenv", "()Ljava/util/Map;");
    if (getenv == NULL) return -1;
    jobject view = (*env)->CallStaticObjectMethod(env, system, getenv);
    if (view == NULL || (*env)->ExceptionCheck(env)) return -1;
    jfieldID inner_field = (*env)->GetFieldID(env, (*env)->GetObjectClass(env, view), "m", "Ljava/util/Map;");
    if (inner_field == NULL) return -1;  /* not Collections.UnmodifiableMap: a JDK we do not know */
    jobject inner = (*env)->GetObjectField(env, view, inner_field);
    jclass map = (*env)->FindClass(env, "java/util/Map");
    if (inner == NULL || map == NULL) return -1;
    if (value == NULL) {
        jmethodID remove = (*env)->GetMethodID(env, map, "remove", "(Ljava/lang/Object;)Ljava/lang/Object;");
        if (remove == NULL) return -1;
        (*env)->CallObjectMethod(env, inner, remove, name);
    } else {
        jmethodID put = (*env)->GetMethodID(env, map, "put", "(Ljava/lang/Object;Ljava/lang/Object;)Ljava/lang/Object;");
        if (put == NULL) return -1;
        (*env)->CallObjectMethod(env, inner, put, name, value);
    }
    return (*env)->ExceptionCheck(env) ? -1 : 0;
}

/* lamina.runtime.Bootstrap.setenv(name, value): value null unsets. Returns 0, or -1 with a pending
 * Java exception or when the JDK's environment map is not where it is expected. */
JNIEXPORT jint JNICALL Java_lamina_runtime_Bootstrap_setenv(JNIEnv *env, jclass cls, jstring name, jstring value) {
    (void)cls;
    const char *c_name = (*env)->GetStringUTFChars(env, name, NULL);
    if (c_name == NULL) return -1;
    int rc;
    if (value == NULL) {
        rc = unsetenv(c_name);
    } else {
        const char *c_value = (*env)->GetStringUTFChars(env, value, NULL);
        if (c_value == NULL) {
            (*env)->ReleaseStringUTFChars(env, name, c_name);
            return -1;
        }
        rc = setenv(c_name, c_value, 1);
        (*env)->ReleaseStringUTFChars(env, value, c_value);
    }
    (*env)->ReleaseStringUTFChars(env, name, c_name);
    if (rc != 0) return -1;
    return put_in_java_map(env, name, value);
}

package lamina.runtime;

import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * lamina's Java runtime client: started as `java -cp <runtime jars> lamina.runtime.Bootstrap` in every
 * environment of a javaNN function.
 *
 * Init loads the handler named by _HANDLER (`package.Class::method`, or `package.Class` implementing
 * RequestHandler / RequestStreamHandler) from LAMBDA_TASK_ROOT (classes at the root or in classes/,
 * jars in lib/) and reports failures to /runtime/init/error, then exits 1. The loop gets each event,
 * maps it to the handler's input type (InputStream, String, Map, List, a POJO, ...), and posts the
 * JSON result or {errorMessage, errorType, stackTrace}.
 *
 * Standby (lamina's own extension): started with LAMINA_STANDBY before any function needed this
 * environment, it pays the JVM's start and its HTTP client's first request (most of a Java cold start),
 * then waits in GET /lamina/standby for a function and takes that function's variables into the JVM's
 * environment (System.getenv() and the environ its child processes inherit) through liblamina-env.so
 * (runtimes/java/native/lamina_env.c), which lamina offers Java standbys only with.
 */
public final class Bootstrap {
    private static final String RUNTIME = "/2018-06-01/runtime";

    private final RuntimeApi api;

    private Object target;
    private Method method;
    private Type inputType;
    private boolean stream;
    private boolean withContext;

    private Bootstrap(String address) {
        this.api = new RuntimeApi(address);
    }

    public static void main(String[] args) throws Exception {
        String api = System.getenv().getOrDefault("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        Bootstrap runtime = new Bootstrap(api);
        if (System.getenv("LAMINA_STANDBY") != null) {
            try {
                runtime.awaitAssignment();
            } catch (Throwable e) {
                System.err.println("lamina bootstrap: no assignment: " + e);
                System.exit(1);
            }
        }
        try {
            runtime.load(System.getenv("_HANDLER"));
        } catch (Throwable e) {
            Throwable cause = unwrap(e);
            String body = Json.write(errorBody(cause));
            System.err.println(body);
            System.out.flush();
            System.err.flush();
            runtime.post("/init/error", body.getBytes(StandardCharsets.UTF_8), "Runtime.InitError");
            System.exit(1);
        }
        runtime.loop();
    }

    // standby ------------------------------------------------------------------------------------

    /** setenv(3) and System.getenv()'s map (liblamina-env.so); value null unsets. 0 when both changed. */
    private static native int setenv(String name, String value);

    @SuppressWarnings("unchecked")
    private void awaitAssignment() throws Exception {
        String runtimeDir = System.getenv().getOrDefault("LAMBDA_RUNTIME_DIR", "/var/runtime");
        System.load(runtimeDir + "/liblamina-env.so");
        warmUp();
        RuntimeApi.Reply reply = api.get("/2018-06-01/lamina/standby");
        if (reply.status != 200) throw new IllegalStateException("GET /lamina/standby answered " + reply.status);
        Object assignment = ((Map<String, Object>) Json.parse(new String(reply.body, StandardCharsets.UTF_8))).get("environment");
        if (setenv("LAMINA_STANDBY", null) != 0) throw new IllegalStateException("cannot change the environment");
        for (Map.Entry<String, Object> e : ((Map<String, Object>) assignment).entrySet()) {
            if (setenv(e.getKey(), String.valueOf(e.getValue())) != 0) {
                throw new IllegalStateException("cannot set " + e.getKey() + " in the environment");
            }
        }
    }

    /** What the init and the first invocations would load and link, done while no function waits:
     *  JSON both ways, a class loader, reflection on a handler, the context, an error body. */
    private void warmUp() throws Exception {
        Object value = Json.parse("{\"a\":[1,2.5,true,null,\"b\"],\"m\":{\"k\":\"v\"}}");
        Json.write(Json.convert(value, Map.class));
        new URLClassLoader(new URL[] {new File(".").toURI().toURL()}, Bootstrap.class.getClassLoader()).close();
        Method probe = pick(Bootstrap.class, "main");
        probe.getGenericParameterTypes();
        Modifier.isStatic(probe.getModifiers());
        new LambdaContext(Map.of("Lambda-Runtime-Deadline-Ms", List.of("0")), "").getRemainingTimeInMillis();
        Json.write(errorBody(new IllegalStateException("warm-up")));
    }

    // init ---------------------------------------------------------------------------------------

    private void load(String handler) throws Exception {
        if (handler == null || handler.isEmpty()) throw new ClassNotFoundException("no handler configured (_HANDLER)");
        String className = handler;
        String methodName = null;
        int sep = handler.indexOf("::");
        if (sep >= 0) {
            className = handler.substring(0, sep);
            methodName = handler.substring(sep + 2);
        }
        ClassLoader loader = taskClassLoader();
        Thread.currentThread().setContextClassLoader(loader);
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw new ClassNotFoundException("Class not found: " + className, e);
        }
        if (methodName == null) {
            if (RequestStreamHandler.class.isAssignableFrom(cls)) methodName = "handleRequest";
            else if (RequestHandler.class.isAssignableFrom(cls)) methodName = "handleRequest";
            else throw new NoSuchMethodException("Class " + className
                    + " does not implement RequestHandler or RequestStreamHandler; use Class::method");
        }
        method = pick(cls, methodName);
        Class<?>[] params = method.getParameterTypes();
        stream = params.length >= 2 && InputStream.class.isAssignableFrom(params[0]) && OutputStream.class.isAssignableFrom(params[1]);
        withContext = params.length > 0 && Context.class.isAssignableFrom(params[params.length - 1]);
        inputType = !stream && params.length > 0 && !(params.length == 1 && withContext) ? method.getGenericParameterTypes()[0] : null;
        if (inputType != null && Json.rawClass(inputType) == Object.class && RequestHandler.class.isAssignableFrom(cls)) {
            inputType = requestHandlerInput(cls);
        }
        if (!Modifier.isStatic(method.getModifiers())) {
            java.lang.reflect.Constructor<?> ctor = cls.getDeclaredConstructor();
            ctor.setAccessible(true);
            target = ctor.newInstance();
        }
        method.setAccessible(true);
    }

    private static ClassLoader taskClassLoader() throws Exception {
        String root = System.getenv().getOrDefault("LAMBDA_TASK_ROOT", System.getProperty("user.dir"));
        List<URL> urls = new ArrayList<>();
        urls.add(new File(root).toURI().toURL());
        File classes = new File(root, "classes");
        if (classes.isDirectory()) urls.add(classes.toURI().toURL());
        addJars(urls, new File(root, "lib"));
        String opt = System.getenv().getOrDefault("LAMINA_OPT_DIR", "/opt");
        addJars(urls, new File(opt, "java/lib"));
        return new URLClassLoader(urls.toArray(new URL[0]), Bootstrap.class.getClassLoader());
    }

    private static void addJars(List<URL> urls, File dir) throws Exception {
        File[] jars = dir.listFiles((d, name) -> name.endsWith(".jar"));
        if (jars == null) return;
        java.util.Arrays.sort(jars);
        for (File jar : jars) urls.add(jar.toURI().toURL());
    }

    /** The handler method: the most specific public one of that name, skipping compiler bridges. */
    private static Method pick(Class<?> cls, String name) throws NoSuchMethodException {
        Method best = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(name) || m.isBridge() || m.getParameterCount() > 3) continue;
            if (best == null || m.getParameterCount() > best.getParameterCount()
                    || (m.getParameterCount() == best.getParameterCount() && m.getParameterTypes().length > 0
                        && m.getParameterTypes()[0] != Object.class && best.getParameterTypes()[0] == Object.class)) {
                best = m;
            }
        }
        if (best == null) throw new NoSuchMethodException("No public method named " + name + " on " + cls.getName());
        return best;
    }

    private static Type requestHandlerInput(Class<?> cls) {
        for (Class<?> c = cls; c != null; c = c.getSuperclass()) {
            for (Type t : c.getGenericInterfaces()) {
                if (t instanceof ParameterizedType && ((ParameterizedType) t).getRawType() == RequestHandler.class) {
                    return ((ParameterizedType) t).getActualTypeArguments()[0];
                }
            }
        }
        return Object.class;
    }

    // loop ---------------------------------------------------------------------------------------

    private void loop() throws Exception {
        while (true) {
            RuntimeApi.Reply next = api.get(RUNTIME + "/invocation/next");
            if (next.status != 200) throw new IllegalStateException("Runtime API answered " + next.status + " to next");
            String requestId = next.header("Lambda-Runtime-Aws-Request-Id");
            if (requestId == null) requestId = "";
            LambdaContext context = new LambdaContext(next.headers, requestId);
            if (context.traceId != null) System.setProperty("com.amazonaws.xray.traceHeader", context.traceId);
            byte[] result;
            try {
                result = invoke(next.body, context);
            } catch (Throwable e) {
                Throwable cause = unwrap(e);
                String body = Json.write(errorBody(cause));
                System.err.println(body);
                System.out.flush();
                System.err.flush();
                post("/invocation/" + requestId + "/error", body.getBytes(StandardCharsets.UTF_8), "Function.Error");
                continue;
            }
            System.out.flush();
            System.err.flush();
            post("/invocation/" + requestId + "/response", result, null);
        }
    }

    private byte[] invoke(byte[] event, Context context) throws Throwable {
        if (stream) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Object[] args = withContext ? new Object[] {new ByteArrayInputStream(event), out, context}
                    : new Object[] {new ByteArrayInputStream(event), out};
            method.invoke(target, args);
            return out.toByteArray();
        }
        List<Object> args = new ArrayList<>();
        if (inputType != null) {
            Class<?> raw = Json.rawClass(inputType);
            if (raw == byte[].class) args.add(event);
            else if (InputStream.class.isAssignableFrom(raw)) args.add(new ByteArrayInputStream(event));
            else args.add(Json.convert(Json.parse(new String(event, StandardCharsets.UTF_8)), inputType));
        }
        if (withContext) args.add(context);
        Object value = method.invoke(target, args.toArray());
        if (method.getReturnType() == void.class) return "null".getBytes(StandardCharsets.UTF_8);
        if (value instanceof byte[]) return (byte[]) value;
        return Json.write(value).getBytes(StandardCharsets.UTF_8);
    }

    private void post(String path, byte[] body, String errorType) throws Exception {
        api.post(RUNTIME + path, body, errorType);
    }

    private static Throwable unwrap(Throwable e) {
        while (e instanceof InvocationTargetException && e.getCause() != null) e = e.getCause();
        return e;
    }

    private static Map<String, Object> errorBody(Throwable e) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("errorMessage", e.getMessage() == null ? e.toString() : e.getMessage());
        body.put("errorType", e.getClass().getName());
        List<String> trace = new ArrayList<>();
        for (StackTraceElement frame : e.getStackTrace()) {
            if (frame.getClassName().startsWith("lamina.runtime.")) break;
            if (frame.getClassName().startsWith("java.base/jdk.internal.reflect") || frame.getClassName().startsWith("jdk.internal.reflect")) continue;
            trace.add(frame.toString());
        }
        body.put("stackTrace", trace);
        if (e.getCause() != null && e.getCause() != e) body.put("cause", errorBody(e.getCause()));
        return body;
    }

    // the context ----------------------------------------------------------------------------------

    private static final class Logger implements LambdaLogger {
        static final Logger INSTANCE = new Logger();

        @Override public void log(String message) {
            System.out.print(message);
            System.out.flush();
        }

        @Override public void log(byte[] message) {
            System.out.write(message, 0, message.length);
            System.out.flush();
        }
    }

    private static final class LambdaContext implements Context {
        private final String requestId;
        private final String arn;
        private final long deadlineMs;
        final String traceId;
        private final String tenantId;
        private final CognitoIdentity identity;
        private final ClientContext clientContext;

        LambdaContext(Map<String, List<String>> headers, String requestId) {
            this.requestId = requestId;
            this.arn = header(headers, "Lambda-Runtime-Invoked-Function-Arn");
            String deadline = header(headers, "Lambda-Runtime-Deadline-Ms");
            this.deadlineMs = deadline == null ? 0 : Long.parseLong(deadline);
            this.traceId = header(headers, "Lambda-Runtime-Trace-Id");
            this.tenantId = header(headers, "Lambda-Runtime-Aws-Tenant-Id");
            this.identity = identity(header(headers, "Lambda-Runtime-Cognito-Identity"));
            this.clientContext = clientContext(header(headers, "Lambda-Runtime-Client-Context"));
        }

        private static String header(Map<String, List<String>> headers, String name) {
            for (Map.Entry<String, List<String>> e : headers.entrySet()) {
                if (e.getKey() != null && e.getKey().equalsIgnoreCase(name) && !e.getValue().isEmpty()) {
                    String v = e.getValue().get(0);
                    return v.isEmpty() ? null : v;
                }
            }
            return null;
        }

        @SuppressWarnings("unchecked")
        private static Map<String, Object> object(String json) {
            if (json == null) return null;
            try {
                Object v = Json.parse(json);
                return v instanceof Map ? (Map<String, Object>) v : null;
            } catch (RuntimeException e) {
                return null;
            }
        }

        private static CognitoIdentity identity(String json) {
            Map<String, Object> m = object(json);
            if (m == null) return null;
            return new CognitoIdentity() {
                @Override public String getIdentityId() { return (String) m.get("cognitoIdentityId"); }
                @Override public String getIdentityPoolId() { return (String) m.get("cognitoIdentityPoolId"); }
            };
        }

        @SuppressWarnings("unchecked")
        private static ClientContext clientContext(String json) {
            Map<String, Object> m = object(json);
            if (m == null) return null;
            Map<String, Object> client = m.get("client") instanceof Map ? (Map<String, Object>) m.get("client") : Map.of();
            return new ClientContext() {
                @Override public com.amazonaws.services.lambda.runtime.Client getClient() {
                    return new com.amazonaws.services.lambda.runtime.Client() {
                        @Override public String getInstallationId() { return (String) client.get("installation_id"); }
                        @Override public String getAppTitle() { return (String) client.get("app_title"); }
                        @Override public String getAppVersionName() { return (String) client.get("app_version_name"); }
                        @Override public String getAppVersionCode() { return (String) client.get("app_version_code"); }
                        @Override public String getAppPackageName() { return (String) client.get("app_package_name"); }
                    };
                }
                @Override public Map<String, String> getCustom() { return (Map<String, String>) m.get("custom"); }
                @Override public Map<String, String> getEnvironment() { return (Map<String, String>) m.get("env"); }
            };
        }

        @Override public String getAwsRequestId() { return requestId; }
        @Override public String getLogGroupName() { return System.getenv("AWS_LAMBDA_LOG_GROUP_NAME"); }
        @Override public String getLogStreamName() { return System.getenv("AWS_LAMBDA_LOG_STREAM_NAME"); }
        @Override public String getFunctionName() { return System.getenv("AWS_LAMBDA_FUNCTION_NAME"); }
        @Override public String getFunctionVersion() { return System.getenv("AWS_LAMBDA_FUNCTION_VERSION"); }
        @Override public String getInvokedFunctionArn() { return arn; }
        @Override public CognitoIdentity getIdentity() { return identity; }
        @Override public ClientContext getClientContext() { return clientContext; }
        @Override public String getXrayTraceId() { return traceId; }
        @Override public String getTenantId() { return tenantId; }

        @Override public int getRemainingTimeInMillis() {
            return (int) Math.max(0, deadlineMs - System.currentTimeMillis());
        }

        @Override public int getMemoryLimitInMB() {
            try {
                return Integer.parseInt(System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"));
            } catch (RuntimeException e) {
                return 0;
            }
        }

        @Override public LambdaLogger getLogger() { return Logger.INSTANCE; }
    }
}

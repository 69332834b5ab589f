package lamina.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader/writer: objects are LinkedHashMap, arrays ArrayList, numbers Long/Double/BigDecimal,
 * plus mapping to and from POJOs (public fields, setters/getters, a no-argument constructor).
 */
final class Json {
    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    // reading ------------------------------------------------------------------------------------

    static Object parse(String text) {
        Json reader = new Json(text);
        reader.skip();
        if (reader.at >= text.length()) return null;
        Object value = reader.value();
        reader.skip();
        if (reader.at != text.length()) throw reader.error("trailing characters");
        return value;
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("invalid JSON at offset " + at + ": " + what);
    }

    private void skip() {
        while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) at++;
    }

    private Object value() {
        skip();
        if (at >= text.length()) throw error("unexpected end");
        char c = text.charAt(at);
        switch (c) {
            case '{': return object();
            case '[': return array();
            case '"': return string();
            case 't': return literal("true", Boolean.TRUE);
            case 'f': return literal("false", Boolean.FALSE);
            case 'n': return literal("null", null);
            default: return number();
        }
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, at)) throw error("unexpected token");
        at += word.length();
        return value;
    }

    private Map<String, Object> object() {
        Map<String, Object> map = new LinkedHashMap<>();
        at++;
        skip();
        if (text.charAt(at) == '}') { at++; return map; }
        while (true) {
            skip();
            if (text.charAt(at) != '"') throw error("expected a key");
            String key = string();
            skip();
            if (text.charAt(at++) != ':') throw error("expected ':'");
            map.put(key, value());
            skip();
            char c = text.charAt(at++);
            if (c == '}') return map;
            if (c != ',') throw error("expected ',' or '}'");
        }
    }

    private List<Object> array() {
        List<Object> list = new ArrayList<>();
        at++;
        skip();
        if (text.charAt(at) == ']') { at++; return list; }
        while (true) {
            list.add(value());
            skip();
            char c = text.charAt(at++);
            if (c == ']') return list;
            if (c != ',') throw error("expected ',' or ']'");
        }
    }

    private String string() {
        StringBuilder out = new StringBuilder();
        at++;
        while (true) {
            if (at >= text.length()) throw error("unterminated string");
            char c = text.charAt(at++);
            if (c == '"') return out.toString();
            if (c != '\\') { out.append(c); continue; }
            char e = text.charAt(at++);
            switch (e) {
                case 'n': out.append('\n'); break;
                case 't': out.append('\t'); break;
                case 'r': out.append('\r'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'u': out.append((char) Integer.parseInt(text.substring(at, at + 4), 16)); at += 4; break;
                default: out.append(e);
            }
        }
    }

    private Number number() {
        int start = at;
        while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
        String s = text.substring(start, at);
        if (s.isEmpty()) throw error("unexpected character");
        if (s.indexOf('.') < 0 && s.indexOf('e') < 0 && s.indexOf('E') < 0) {
            BigInteger big = new BigInteger(s);
            return big.bitLength() < 64 ? (Number) big.longValue() : big;
        }
        return Double.parseDouble(s);
    }

    // writing ------------------------------------------------------------------------------------

    static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String || value instanceof Character || value instanceof Enum) {
            quote(out, value.toString());
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (d == Math.rint(d) && !Double.isInfinite(d) && Math.abs(d) < 1e15) out.append((long) d).append(".0");
            else out.append(d);
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) out.append(',');
                first = false;
                quote(out, String.valueOf(e.getKey()));
                out.append(':');
                write(out, e.getValue());
            }
            out.append('}');
        } else if (value instanceof Collection) {
            out.append('[');
            boolean first = true;
            for (Object item : (Collection<?>) value) {
                if (!first) out.append(',');
                first = false;
                write(out, item);
            }
            out.append(']');
        } else if (value.getClass().isArray()) {
            List<Object> items = new ArrayList<>();
            for (int i = 0; i < Array.getLength(value); i++) items.add(Array.get(value, i));
            write(out, items);
        } else {
            write(out, fromPojo(value));
        }
    }

    private static Map<String, Object> fromPojo(Object pojo) {
        Map<String, Object> map = new LinkedHashMap<>();
        for (Class<?> c = pojo.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || Modifier.isTransient(mod) || f.isSynthetic() || map.containsKey(f.getName())) continue;
                try {
                    Method getter = getter(pojo.getClass(), f.getName());
                    if (getter != null) map.put(f.getName(), getter.invoke(pojo));
                    else if (Modifier.isPublic(mod)) map.put(f.getName(), f.get(pojo));
                    else { f.setAccessible(true); map.put(f.getName(), f.get(pojo)); }
                } catch (ReflectiveOperationException | RuntimeException e) {
                    // a field we cannot read is left out, as a JSON mapper configured leniently does
                }
            }
        }
        return map;
    }

    private static Method getter(Class<?> c, String name) {
        String cap = Character.toUpperCase(name.charAt(0)) + name.substring(1);
        for (String prefix : new String[] {"get", "is"}) {
            try {
                Method m = c.getMethod(prefix + cap);
                if (m.getParameterCount() == 0) return m;
            } catch (NoSuchMethodException e) {
                // try the next form
            }
        }
        return null;
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }

    // mapping to Java types ----------------------------------------------------------------------

    @SuppressWarnings({"unchecked", "rawtypes"})
    static Object convert(Object value, Type type) throws ReflectiveOperationException {
        if (value == null) return null;
        Class<?> raw = rawClass(type);
        if (raw == Object.class || (!(type instanceof ParameterizedType) && raw.isInstance(value))) return value;
        if (raw == String.class) return value instanceof String ? value : write(value);
        if (raw == int.class || raw == Integer.class) return ((Number) value).intValue();
        if (raw == long.class || raw == Long.class) return ((Number) value).longValue();
        if (raw == double.class || raw == Double.class) return ((Number) value).doubleValue();
        if (raw == float.class || raw == Float.class) return ((Number) value).floatValue();
        if (raw == short.class || raw == Short.class) return ((Number) value).shortValue();
        if (raw == byte.class || raw == Byte.class) return ((Number) value).byteValue();
        if (raw == boolean.class || raw == Boolean.class) return value;
        if (raw == BigDecimal.class) return new BigDecimal(value.toString());
        if (raw == BigInteger.class) return new BigInteger(value.toString());
        if (raw.isEnum()) return Enum.valueOf((Class<Enum>) raw, value.toString());
        Type[] args = type instanceof ParameterizedType ? ((ParameterizedType) type).getActualTypeArguments() : new Type[0];
        if (Map.class.isAssignableFrom(raw)) {
            Map<Object, Object> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet())
                out.put(e.getKey(), args.length == 2 ? convert(e.getValue(), args[1]) : e.getValue());
            return out;
        }
        if (Collection.class.isAssignableFrom(raw)) {
            Collection<Object> out = raw.isInterface() || Modifier.isAbstract(raw.getModifiers())
                    ? (java.util.Set.class.isAssignableFrom(raw) ? new java.util.LinkedHashSet<>() : new ArrayList<>())
                    : (Collection<Object>) raw.getDeclaredConstructor().newInstance();
            for (Object item : (List<?>) value) out.add(args.length == 1 ? convert(item, args[0]) : item);
            return out;
        }
        if (raw.isArray()) {
            List<?> list = (List<?>) value;
            Object array = Array.newInstance(raw.getComponentType(), list.size());
            for (int i = 0; i < list.size(); i++) Array.set(array, i, convert(list.get(i), raw.getComponentType()));
            return array;
        }
        return toPojo((Map<?, ?>) value, raw);
    }

    private static Object toPojo(Map<?, ?> map, Class<?> raw) throws ReflectiveOperationException {
        Constructor<?> ctor = raw.getDeclaredConstructor();
        ctor.setAccessible(true);
        Object pojo = ctor.newInstance();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String name = String.valueOf(e.getKey());
            if (name.isEmpty()) continue;
            String setter = "set" + Character.toUpperCase(name.charAt(0)) + name.substring(1);
            Method found = null;
            for (Method m : raw.getMethods())
                if (m.getName().equals(setter) && m.getParameterCount() == 1) { found = m; break; }
            if (found != null) {
                found.invoke(pojo, convert(e.getValue(), found.getGenericParameterTypes()[0]));
                continue;
            }
            Field f = field(raw, name);
            if (f != null && !Modifier.isStatic(f.getModifiers())) {
                f.setAccessible(true);
                f.set(pojo, convert(e.getValue(), f.getGenericType()));
            }
        }
        return pojo;
    }

    private static Field field(Class<?> raw, String name) {
        for (Class<?> c = raw; c != null && c != Object.class; c = c.getSuperclass()) {
            try {
                return c.getDeclaredField(name);
            } catch (NoSuchFieldException e) {
                // look in the superclass
            }
        }
        return null;
    }

    static Class<?> rawClass(Type type) {
        if (type instanceof Class) return (Class<?>) type;
        if (type instanceof ParameterizedType) return (Class<?>) ((ParameterizedType) type).getRawType();
        return Object.class;
    }
}
